"""A cellvisor killed with SIGKILL cannot tear its cell down; the next cellvisor that starts a
cell under the same parent cgroup does: each runner flock()s its cell's cgroup directory for
the whole run and marks it (trusted.cellvisor.cell); an unlocked, marked "cellvisor-*"
sibling at least 2 s old is a leftover. What is still in it is killed and its directories
removed, with a line on stderr. A live runner's cell, and anything not marked, is never
touched. Every test here works under a parent cgroup of its own, so that no other
cellvisor (another test run) collects its leftovers first."""

import os
import signal
import subprocess
import time

import pytest

from conftest import V2_ROOT as V2
from conftest import cell_cgroups, procs_with_marker

STALE_AGE_S = 2.2  # CGROUP_STALE_MIN_AGE_S, and a little more

pytestmark = pytest.mark.skipif(V2 is None, reason="no cgroup v2 tree")


@pytest.fixture
def parent_env(v2_parent):
    """A parent cgroup of the test's own (v2, where cells without limits live)."""
    name, path = v2_parent
    return {"CELLOS_CGROUP_PARENT": f"/{name}"}, path


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.mark.parametrize("backend", ["host", "sandbox"])
def test_cell_of_a_killed_runner_is_collected_by_the_next_run(start_cell, run_cell, base_spec,
                                                              marker, backend, parent_env):
    env, _ = parent_env
    cell_id = f"t-stale-{backend}"
    # A background process that outlives the top one's parent-death signal on the host.
    argv = ["/bin/sh", "-c", f'sleep 300 "{marker}" & exec sleep 300 "{marker}"']
    victim = start_cell(base_spec(id=cell_id, argv=argv), args=("--backend", backend), env=env)
    victim.wait_started()
    assert wait_for(lambda: len(procs_with_marker(marker)) == 2), procs_with_marker(marker)
    os.kill(victim.proc.pid, signal.SIGKILL)  # the runner only, not its session
    victim.proc.wait()
    assert cell_cgroups(cell_id), "the killed runner's cell cgroup should still be there"
    if backend == "host":
        # The top process dies with the runner (PR_SET_PDEATHSIG); the other one stays.
        assert wait_for(lambda: len(procs_with_marker(marker)) == 1), procs_with_marker(marker)
    else:
        # init dies with the runner, and the pid namespace with it.
        assert wait_for(lambda: procs_with_marker(marker) == []), procs_with_marker(marker)

    time.sleep(STALE_AGE_S)
    res = run_cell(base_spec(id="t-stale-next"), args=("--backend", backend), env=env)
    assert res.rc == 0, res
    assert f"cellvisor-{cell_id}-" in res.stderr and "left by a cellvisor that is gone" in \
        res.stderr, res
    assert cell_cgroups(cell_id) == []
    assert wait_for(lambda: procs_with_marker(marker) == []), procs_with_marker(marker)


def test_a_live_runners_cell_is_left_alone(start_cell, run_cell, base_spec, marker, parent_env):
    env, _ = parent_env
    live = start_cell(base_spec(id="t-stale-live", argv=["/bin/sleep", "300", marker]), env=env)
    live.wait_started()
    time.sleep(STALE_AGE_S)
    res = run_cell(base_spec(id="t-stale-other"), env=env)
    assert res.rc == 0, res
    assert "left by a cellvisor that is gone" not in res.stderr, res
    assert cell_cgroups("t-stale-live"), "a live cell's cgroup was removed"
    assert len(procs_with_marker(marker)) == 1
    live.proc.send_signal(signal.SIGTERM)
    out = live.wait(timeout=30)
    assert out.rc == 143, out
    assert cell_cgroups("t-stale-live") == []


def test_a_cgroup_that_only_looks_like_a_cell_is_left_alone(run_cell, base_spec, marker,
                                                           parent_env):
    """Named like a cell, old enough, not locked, a process in it: but not marked as
    cellvisor's (a unit of the same name, an older cellvisor): untouched."""
    env, path = parent_env
    fake = os.path.join(path, "cellvisor-ci-0123abcd")
    os.mkdir(fake)
    sleeper = subprocess.Popen(["/bin/sleep", marker])
    try:
        with open(os.path.join(fake, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))
        time.sleep(STALE_AGE_S)
        res = run_cell(base_spec(id="t-stale-fake"), env=env)
        assert res.rc == 0, res
        assert "left by a cellvisor that is gone" not in res.stderr, res
        assert os.path.isdir(fake)
        assert sleeper.poll() is None, "a process of a foreign cgroup was killed"
    finally:
        sleeper.kill()
        sleeper.wait()


LOCAL_UID = 64123  # no account: a local user other than the runner's
HOLD_LOCK = (
    "import fcntl, os, sys, time\n"
    "try:\n"
    "    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "except OSError as e:\n"
    "    print('refused', e.errno, flush=True)\n"
    "else:\n"
    "    print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def test_another_user_cannot_lock_a_cell_to_keep_it_from_collection(start_cell, run_cell,
                                                                    base_spec, marker,
                                                                    parent_env):
    """Cell directories are 0711, the runner's: another user cannot open one, so cannot
    flock() it to make a live cell look foreign or keep a dead runner's cell alive."""
    env, _ = parent_env
    cell_id = "t-stale-userlock"
    argv = ["/bin/sh", "-c", f'sleep 300 "{marker}" & exec sleep 300 "{marker}"']
    victim = start_cell(base_spec(id=cell_id, argv=argv), env=env)
    victim.wait_started()
    assert wait_for(lambda: len(procs_with_marker(marker)) == 2), procs_with_marker(marker)
    (cell_dir,) = [d for d in cell_cgroups(cell_id) if d.startswith(V2)]
    os.kill(victim.proc.pid, signal.SIGKILL)  # the runner crashes
    victim.proc.wait()
    holder = subprocess.Popen(
        ["setpriv", "--reuid", str(LOCAL_UID), "--regid", str(LOCAL_UID), "--clear-groups",
         "/usr/bin/python3", "-I", "-c", HOLD_LOCK, cell_dir],
        stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        said = holder.stdout.readline().strip()
        time.sleep(STALE_AGE_S)
        res = run_cell(base_spec(id="t-stale-next2"), env=env)
        assert res.rc == 0, res
        assert f"cellvisor-{cell_id}-" in res.stderr and "left by a cellvisor that is gone" \
            in res.stderr, (said, res)
        assert cell_cgroups(cell_id) == []
        assert wait_for(lambda: procs_with_marker(marker) == []), procs_with_marker(marker)
        assert said == "refused 13", said  # EACCES: the directory is not the user's to open
    finally:
        holder.kill()
        holder.wait()
