"""A cell that declares no limits cannot take the host down (issue 7, item 4).

Every cell gets the operator's default memory, pids and nofile bounds unless its spec
declares its own (explicit 0 = unlimited for memoryMaxBytes and pidsMax), on both backends;
CELLVISOR_DEFAULT_MEMORY_MAX / _PIDS_MAX / _NOFILE change them; the sandbox sizes every tmpfs
it makes from the cell's memory bound and bounds the cell's tasks with RLIMIT_NPROC too (so
a fork bomb is bounded without a pids cgroup). The bounds are read from the host (the v1
files of the cell's cgroups while it runs) and from inside the cell (statfs, /proc/self/limits,
what a fork bomb or a writer gets), and `probe` says what they are.
"""

import json
import os
import resource
import subprocess
import time

import pytest

from conftest import (COMPLETED, DEGRADED, REJECTED, STARTED, cell_cgroups, make_env,
                      procs_with_marker)
from test_sandbox_limits import FORK_BOMB  # forks until 20 are refused; prints both counts

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")
BACKENDS = {"host": (), "sandbox": SB}
MiB = 1 << 20


def probe_defaults(cli, backend):
    res = cli("probe", "--json")
    assert res.rc == 0, res
    rows = {r["backend"]: r for r in map(json.loads, res.stdout.decode().splitlines())}
    return rows[backend]["defaults"]


def builtin_memory_default():
    """A quarter of the RAM, in whole MiB (docs/sandbox.md, "Limits")."""
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return ram // 4 // MiB * MiB


def builtin_pids_default():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    return min(4096, max(pid_max * 15 // 100, 16))


def v1_limit(cell_id, hierarchy, name):
    """The value of a v1 limit file of the cell's cgroup, or None without that directory."""
    dirs = [d for d in cell_cgroups(cell_id) if d.startswith(f"/sys/fs/cgroup/{hierarchy}/")]
    if not dirs:
        return None
    assert len(dirs) == 1, dirs
    with open(os.path.join(dirs[0], name)) as f:
        return f.read().strip()


def read_limits_while_running(start_cell, spec, cell_id, marker, args=(), env=None):
    """Start a cell that sleeps, read its pids.max and memory limit from the host, stop it."""
    run = start_cell(spec, args=args, env=env)
    try:
        run.wait_started()
        deadline = time.monotonic() + 10
        while not procs_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert procs_with_marker(marker), "the workload did not start"
        pids = v1_limit(cell_id, "pids", "pids.max")
        mem = v1_limit(cell_id, "memory", "memory.limit_in_bytes")
    finally:
        run.proc.terminate()
    res = run.wait(timeout=30)
    assert res.rc == 143, res
    return pids, mem, res


needs_v1 = pytest.mark.skipif(
    not (os.path.isdir("/sys/fs/cgroup/pids/") and os.path.isdir("/sys/fs/cgroup/memory/")),
    reason="reads the limits from the v1 pids and memory hierarchies (hybrid host)")


@needs_v1
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cell_without_limits_gets_the_default_bounds_in_its_cgroup(start_cell, base_spec,
                                                                      marker, cli, backend):
    cid = f"t-defl-{backend}"
    spec = base_spec(id=cid, argv=["/bin/sleep", marker])
    pids, mem, _ = read_limits_while_running(start_cell, spec, cid, marker, BACKENDS[backend])
    # The sandbox's init is counted apart from the workload's tasks: pids.max is one more.
    extra = 1 if backend == "sandbox" else 0
    assert pids == str(builtin_pids_default() + extra)
    assert mem == str(builtin_memory_default())
    # And probe tells the same.
    d = probe_defaults(cli, backend)
    assert d["memoryMaxBytes"] == builtin_memory_default() and d["memoryEnforced"] is True, d
    assert d["pidsMax"] == builtin_pids_default() and d["pidsEnforced"] is True, d


@needs_v1
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_operator_sets_the_defaults(start_cell, base_spec, marker, cli, backend):
    env = {"CELLVISOR_DEFAULT_MEMORY_MAX": "192M", "CELLVISOR_DEFAULT_PIDS_MAX": "100"}
    cid = f"t-defenv-{backend}"
    spec = base_spec(id=cid, argv=["/bin/sleep", marker])
    pids, mem, _ = read_limits_while_running(start_cell, spec, cid, marker, BACKENDS[backend],
                                             env=env)
    assert pids == ("101" if backend == "sandbox" else "100")
    assert mem == str(192 * MiB)
    res = cli("probe", env=env)
    assert res.rc == 0, res
    assert "default memory   192 MiB (CELLVISOR_DEFAULT_MEMORY_MAX), enforced" in \
        res.stdout.decode(), res


@needs_v1
@pytest.mark.parametrize("backend", BACKENDS)
def test_declared_limits_win_over_the_defaults(start_cell, base_spec, marker, backend):
    cid = f"t-defdecl-{backend}"
    spec = base_spec(id=cid, argv=["/bin/sleep", marker],
                     limits={"memoryMaxBytes": 96 * MiB, "pidsMax": 20})
    pids, mem, _ = read_limits_while_running(start_cell, spec, cid, marker, BACKENDS[backend],
                                             env={"CELLVISOR_DEFAULT_PIDS_MAX": "7"})
    assert pids == ("21" if backend == "sandbox" else "20")
    assert mem == str(96 * MiB)


@needs_v1
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_explicit_zero_is_unlimited(start_cell, base_spec, marker, backend):
    cid = f"t-defzero-{backend}"
    spec = base_spec(id=cid, argv=["/bin/sleep", marker],
                     limits={"memoryMaxBytes": 0, "pidsMax": 0})
    pids, mem, res = read_limits_while_running(start_cell, spec, cid, marker,
                                               BACKENDS[backend])
    # No limit written: no directory in those hierarchies (v2 tracks the cell), or "max".
    assert pids in (None, "max"), pids
    assert mem is None or int(mem) >= 1 << 62, mem
    assert DEGRADED not in res.types(), res


def test_operator_zero_turns_a_default_off(run_cell, base_spec):
    script = "print(open('/proc/self/limits').read())"
    res = run_cell(base_spec(id="t-defoff", argv=[PY, "-I", "-S", "-c", script]), args=SB,
                   env={"CELLVISOR_DEFAULT_PIDS_MAX": "0"})
    assert res.rc == 0, res
    # No pids bound: RLIMIT_NPROC stays the runner's.
    mine = resource.getrlimit(resource.RLIMIT_NPROC)
    line = next(l for l in res.stdout.decode().splitlines() if l.startswith("Max processes"))
    assert line.split()[2:4] == [str(v) if v >= 0 else "unlimited" for v in mine], line




@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fork_bomb_without_pids_max_is_bounded(run_cell, base_spec, marker, backend):
    res = run_cell(base_spec(id=f"t-defbomb-{backend}", timeoutMs=20000,
                             argv=[PY, "-I", "-S", "-c", FORK_BOMB, marker]),
                   args=BACKENDS[backend], env={"CELLVISOR_DEFAULT_PIDS_MAX": "40"}, timeout=60)
    assert res.rc == 0, res
    children, refused = map(int, res.stdout.split())
    # 40 tasks: python and at most 39 children; the rest refused.
    assert children <= 39 and refused >= 20, res
    assert procs_with_marker(marker) == []


def test_the_sandbox_bounds_a_cells_tasks_with_rlimit_nproc(run_cell, base_spec):
    script = "print(open('/proc/self/limits').read())"
    res = run_cell(base_spec(id="t-defnproc", argv=[PY, "-I", "-S", "-c", script]), args=SB,
                   env={"CELLVISOR_DEFAULT_PIDS_MAX": "300"})
    assert res.rc == 0, res
    line = next(l for l in res.stdout.decode().splitlines() if l.startswith("Max processes"))
    # The workload's 300 tasks and the cell's init, which shares the cell's uid.
    assert line.split()[2:4] == ["301", "301"], line


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_default_nofile(run_cell, base_spec, backend):
    script = "print(open('/proc/self/limits').read())"
    res = run_cell(base_spec(id=f"t-defnofile-{backend}", argv=[PY, "-I", "-S", "-c", script]),
                   args=BACKENDS[backend])
    assert res.rc == 0, res
    line = next(l for l in res.stdout.decode().splitlines() if l.startswith("Max open files"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want_hard = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    assert line.split()[3:5] == ["1024", str(want_hard)], line
    # A spec's nofile is both limits, as before.
    res = run_cell(base_spec(id=f"t-defnofile2-{backend}", limits={"nofile": 77},
                             argv=[PY, "-I", "-S", "-c", script]), args=BACKENDS[backend])
    line = next(l for l in res.stdout.decode().splitlines() if l.startswith("Max open files"))
    assert line.split()[3:5] == ["77", "77"], line


STATFS = r"""
import json, os, sys
out = {}
for p in sys.argv[1:]:
    st = os.statvfs(p)
    out[p] = [st.f_blocks * st.f_frsize, st.f_files]
print(json.dumps(out))
"""


def test_every_tmpfs_is_sized_from_the_memory_bound(run_cell, base_spec):
    spec = base_spec(id="t-deftmpfs", limits={"memoryMaxBytes": 64 * MiB},
                     filesystem={"tmpfs": ["/scratch"]},
                     argv=[PY, "-I", "-S", "-c", STATFS, "/tmp", "/dev/shm", "/scratch",
                           "/dev", "/"])
    res = run_cell(spec, args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    # Half the memory bound each, one inode per 4 KiB page of it (at least 1024).
    for p in ("/tmp", "/dev/shm", "/scratch"):
        assert got[p] == [32 * MiB, 8192], (p, got)
    # The cell's /dev and its root: small fixed sizes.
    assert got["/dev"][0] <= 64 * 1024 and got["/dev"][1] <= 64, got
    assert got["/"][0] <= MiB, got


def test_without_a_declared_bound_the_tmpfs_follow_the_default(run_cell, base_spec, cli):
    spec = base_spec(id="t-deftmpfs2", argv=[PY, "-I", "-S", "-c", STATFS, "/tmp", "/dev/shm"])
    res = run_cell(spec, args=SB, env={"CELLVISOR_DEFAULT_MEMORY_MAX": "200M"})
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert got["/tmp"] == got["/dev/shm"] == [100 * MiB, 25600], got
    # The built-in default, as probe reports it (a quarter of the RAM, half of it each).
    res = run_cell(spec, args=SB)
    d = probe_defaults(cli, "sandbox")
    assert json.loads(res.stdout)["/tmp"] == [d["tmpfsSizeBytes"], d["tmpfsNrInodes"]], d
    assert d["tmpfsSizeBytes"] == builtin_memory_default() // 2, d


FILL = r"""
import errno, os, sys
n = 0
try:
    with open(sys.argv[1], "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20)); f.flush(); n += 1
except OSError as e:
    print(errno.errorcode[e.errno], n)
else:
    print("wrote", n)
"""


@pytest.mark.parametrize("path", ["/tmp/fill", "/dev/shm/fill"])
def test_writing_past_a_tmpfs_bound_fails_with_enospc(run_cell, base_spec, path):
    spec = base_spec(id="t-deffill", limits={"memoryMaxBytes": 96 * MiB},
                     argv=[PY, "-I", "-S", "-c", FILL, path])
    res = run_cell(spec, args=SB)
    assert res.rc == 0, res
    err, n = res.stdout.split()
    # 48 MiB of tmpfs: ENOSPC, not an OOM kill, and the cell carries on.
    assert err == b"ENOSPC" and 40 <= int(n) <= 48, res
    assert res.event(COMPLETED)["data"]["oomKilled"] is False


def test_the_secrets_tmpfs_holds_only_the_secrets(run_cell, base_spec, tmp):
    secret = tmp / "s"
    secret.write_text("hunter2\n")
    env = {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_DB_PASSWORD": str(secret)}
    spec = base_spec(id="t-defsecret", secretRefs=["db-password"], secretDelivery="file",
                     argv=[PY, "-I", "-S", "-c", STATFS, "/run/secrets"])
    res = run_cell(spec, args=SB, env=env)
    assert res.rc == 0, res
    size, inodes = json.loads(res.stdout)["/run/secrets"]
    assert size <= 64 * 1024 and inodes <= 64, (size, inodes)


@pytest.mark.parametrize("var,value", [("CELLVISOR_DEFAULT_MEMORY_MAX", "lots"),
                                       ("CELLVISOR_DEFAULT_MEMORY_MAX", "512"),
                                       ("CELLVISOR_DEFAULT_MEMORY_MAX", "101%"),
                                       ("CELLVISOR_DEFAULT_PIDS_MAX", "-1"),
                                       ("CELLVISOR_DEFAULT_NOFILE", "2")])
def test_a_malformed_default_refuses_to_run(run_cell, base_spec, cli, var, value):
    res = run_cell(base_spec(id="t-defbad"), env={var: value})
    assert res.rc == 125, res
    assert res.stderr.startswith(f"cellvisor: {var}: '{value}' must be 0 (none)"), res
    assert res.events == [], res
    assert cli("probe", env={var: value}).rc == 125


def test_probe_says_what_the_defaults_are(cli):
    res = cli("probe")
    assert res.rc == 0, res
    text = res.stdout.decode()
    for line in ("default memory", "default pids", "default nofile", "tmpfs size",
                 "open files"):
        assert f"\n  {line}" in text, text
    res = cli("probe", env={"CELLVISOR_DEFAULT_PIDS_MAX": "0"})
    assert "default pids     none (CELLVISOR_DEFAULT_PIDS_MAX=0)" in res.stdout.decode()
    d = probe_defaults(cli, "host")
    assert set(d) >= {"memoryMaxBytes", "memoryEnforced", "pidsMax", "pidsEnforced",
                      "nofileSoft", "nofileHard", "openFilesMax", "fileMax"}, d
    assert "tmpfsSizeBytes" not in d  # the host backend makes no tmpfs


# A host without a pids or memory controller, simulated as in test_run_v2only.py: the defaults
# cannot be set there, which never refuses a spec that declared nothing.

from test_run_v2only import WRAP, run_v2only  # noqa: E402
from test_run_v2only import pytestmark as v2only_mark  # noqa: E402


@v2only_mark
def test_without_a_pids_controller_the_sandbox_still_bounds_a_fork_bomb(cellvisor_bin, tmp,
                                                                         write_spec, base_spec,
                                                                         marker):
    spec = write_spec(base_spec(id="t-defv2bomb", timeoutMs=20000,
                                argv=[PY, "-I", "-S", "-c", FORK_BOMB, marker]))
    events = tmp / "events.jsonl"
    argv = ["unshare", "-m", "/bin/sh", "-c", WRAP, str(cellvisor_bin), "run", "--backend",
            "sandbox", "--events", str(events), str(spec)]
    p = subprocess.run(argv, env=make_env({"CELLVISOR_DEFAULT_PIDS_MAX": "40"}),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p
    children, refused = map(int, p.stdout.split())
    assert children <= 39 and refused >= 20, p  # RLIMIT_NPROC: 40 tasks and init
    evs = [json.loads(l) for l in events.read_text().splitlines()]
    # hardened (the sandbox's default): not refused, and no degraded event.
    assert DEGRADED not in [e["type"] for e in evs] and REJECTED not in [e["type"] for e in evs]
    assert procs_with_marker(marker) == []


@v2only_mark
def test_defaults_without_controllers_degrade_under_portable_only(cellvisor_bin, tmp, write_spec,
                                                                  base_spec):
    # run.user "0": a root workload on the host backend must be declared under hardened.
    spec = write_spec(base_spec(id="t-defv2deg", user="0"))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--profile", "portable")
    assert p.returncode == 0, p.stderr
    degraded = [e["data"] for e in evs if e["type"] == DEGRADED]
    assert [d["item"] for d in degraded] == ["run.limits.memoryMaxBytes", "run.limits.pidsMax"]
    assert degraded[0]["reason"].startswith("the default bound "), degraded
    assert "CELLVISOR_DEFAULT_MEMORY_MAX" in degraded[0]["reason"], degraded
    (tmp / "hardened").mkdir()
    p, evs = run_v2only(cellvisor_bin, tmp / "hardened", spec, "--profile", "hardened")
    assert p.returncode == 0, p.stderr
    assert [e["type"] for e in evs][0] == STARTED, evs
    assert DEGRADED not in [e["type"] for e in evs]
