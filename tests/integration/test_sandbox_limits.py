"""Resource limits in the sandbox (issue 3, deliverable 5; reliability.md R1-R3): a fork bomb
stopped by pidsMax while the host stays responsive, a memory hog OOM-killed and reported
`oomKilled: true`, fd exhaustion confined to the cell."""

import json
import os
import subprocess
import time

import pytest

from conftest import COMPLETED, procs_with_marker

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")

FORK_BOMB = r"""
import errno, os, sys, time
marker = sys.argv[1]
children, refused = 0, 0
for _ in range(500):
    try:
        pid = os.fork()
    except OSError as e:
        refused += 1
        if refused >= 20:
            break
        continue
    if pid == 0:
        try:
            os.execv("/bin/sleep", ["sleep", marker])
        finally:
            os._exit(1)
    children += 1
print(children, refused, flush=True)
"""


def test_fork_bomb_is_stopped_by_pids_max_and_the_host_stays_responsive(run_cell, base_spec,
                                                                       marker):
    t0 = time.monotonic()
    res = run_cell(base_spec(id="t-sbbomb", limits={"pidsMax": 32},
                             argv=[PY, "-I", "-S", "-c", FORK_BOMB, marker]), args=SB)
    assert res.rc == 0, res
    children, refused = map(int, res.stdout.split())
    # 32 tasks for the workload (the cell's init is counted apart): python and at most 31
    # children.
    assert children <= 31 and refused >= 20, res
    assert procs_with_marker(marker) == [], "the cell's processes outlived it"
    assert time.monotonic() - t0 < 20


def test_shell_fork_bomb_with_timeout_host_responsive(start_cell, base_spec, marker):
    # The top shell becomes a sleep (no fork needed) while the bomb fills the cell.
    bomb = f"b() {{ b | b & }}; b; exec sleep {marker}"
    run = start_cell(base_spec(id="t-sbbomb2", limits={"pidsMax": 64}, timeoutMs=3000,
                               argv=["/bin/sh", "-c", bomb]), args=SB)
    run.wait_started()
    time.sleep(0.5)
    # During the bomb, the host spawns 100 processes quickly.
    t0 = time.monotonic()
    for _ in range(100):
        subprocess.run(["/bin/true"], check=True)
    host_spawn = time.monotonic() - t0
    res = run.wait(timeout=30)
    assert res.rc == 124, res  # stopped by the timeout, the whole cell killed
    assert host_spawn < 5.0, host_spawn
    assert procs_with_marker(marker) == []


MEMORY_HOG = r"""
import sys
chunks = []
for _ in range(64):
    chunks.append(bytearray(8 * 1024 * 1024))  # touched: bytearray zero-fills
print("survived", flush=True)
"""


def test_memory_hog_is_oom_killed_and_reported(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sboom", limits={"memoryMaxBytes": 64 * 1024 * 1024},
                             argv=[PY, "-I", "-S", "-c", MEMORY_HOG]), args=SB)
    assert b"survived" not in res.stdout, res
    data = res.event(COMPLETED)["data"]
    assert data["oomKilled"] is True, data
    assert data["signal"] == "SIGKILL" and data["exitCode"] == 137, data
    assert res.rc == 137, res


def test_memory_within_the_limit_is_fine(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbmem", limits={"memoryMaxBytes": 256 * 1024 * 1024},
                             argv=[PY, "-I", "-S", "-c",
                                   "b = bytearray(32 * 1024 * 1024); print('ok')"]), args=SB)
    assert res.rc == 0 and res.stdout.strip() == b"ok", res
    assert res.event(COMPLETED)["data"]["oomKilled"] is False


def test_fd_exhaustion_stays_in_the_cell(run_cell, base_spec):
    script = ("import errno, os\nn = 0\n"
              "try:\n    while True:\n        os.open('/dev/null', os.O_RDONLY); n += 1\n"
              "except OSError as e:\n    print(errno.errorcode[e.errno], n)")
    res = run_cell(base_spec(id="t-sbfd", limits={"nofile": 32},
                             argv=[PY, "-I", "-S", "-c", script]), args=SB)
    assert res.rc == 0, res
    err, n = res.stdout.split()
    assert err == b"EMFILE" and int(n) < 32, res


def test_a_child_oom_killed_while_the_top_process_exits_0_is_not_oom_killed(run_cell, base_spec):
    """oomKilled means the OOM killer killed a process of the cell and the top process died
    of SIGKILL (events.md): a child killed while the top process carries on is not that."""
    script = f"{PY} -I -S -c 'b = bytearray(256 * 1024 * 1024)'; echo child $?; exit 0"
    res = run_cell(base_spec(id="t-sboomchild", limits={"memoryMaxBytes": 64 * 1024 * 1024},
                             argv=["/bin/sh", "-c", script]), args=SB)
    assert res.rc == 0, res
    assert res.stdout.strip() == b"child 137", res
    data = res.event(COMPLETED)["data"]
    assert data["oomKilled"] is False and data["exitCode"] == 0, data


@pytest.mark.parametrize("argv0,rc", [("/sbin/ldconfig", 0), ("/nonexistent-sb", 127)])
def test_nofile_3_still_runs_and_reports(run_cell, base_spec, argv0, rc):
    """nofile's lowest value (3): a static binary (Debian's ldconfig) runs; a failed execve
    is still reported (127, spawnError), not a silent 125."""
    res = run_cell(base_spec(id="t-sbnofile3", argv=[argv0, "--version"],
                             limits={"nofile": 3}), args=SB)
    assert res.rc == rc, res
    data = res.event(COMPLETED)["data"]
    if rc == 0:
        assert data["exitCode"] == 0 and data["spawnError"] is None, data
    else:
        assert data["exitCode"] == -1 and "exec" in data["spawnError"], data
        assert data["durationMs"] == 0, data
