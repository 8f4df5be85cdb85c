"""A cell is a cgroup (DESIGN.md §1.2): a workload that double-forks and calls setsid cannot
outlive its cell. Escapees carry a unique `sleep 1000.NNNNNN` argv (the `marker` fixture)."""

import time

import pytest

from conftest import COMPLETED, DESTROYED, procs_with_marker


def wait_for_marker(marker, running, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = procs_with_marker(marker)
        if pids:
            return pids
        if running.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"the escapee `sleep {marker}` never ran")


ESCAPES = {
    # double fork + setsid, stdio detached
    "detached": "(setsid /bin/sleep {m} </dev/null >/dev/null 2>&1 &); sleep 1; exit 0",
    # double fork + setsid, still holding the cell's stdout/stderr pipes
    "holding-pipes": "(setsid /bin/sleep {m} &); sleep 1; exit 0",
    # ignores SIGTERM as well: only SIGKILL to the whole cell gets it
    "ignoring-term": "(trap '' TERM; setsid /bin/sleep {m} </dev/null >/dev/null 2>&1 &);"
                     " sleep 1; exit 0",
    # a new session that forks again below it
    "deep": "(setsid /bin/sh -c '(/bin/sleep {m} &) ; /bin/sleep {m}' "
            "</dev/null >/dev/null 2>&1 &); sleep 1; exit 0",
}


@pytest.mark.parametrize("how", sorted(ESCAPES))
def test_double_forked_setsid_child_dies_with_the_cell(start_cell, base_spec, marker, how):
    spec = base_spec(id="t-escape", argv=["/bin/sh", "-c", ESCAPES[how].format(m=marker)])
    running = start_cell(spec)
    wait_for_marker(marker, running)
    res = running.wait(timeout=20)
    # Checked at once: `destroyed` promises nothing of the cell still runs.
    survivors = procs_with_marker(marker)
    assert survivors == [], f"escaped processes still running: {survivors} ({res})"
    assert res.rc == 0, res  # the workload's own exit code
    assert res.elapsed < 10, res
    assert res.types()[-1] == DESTROYED, res


def test_escapee_dies_on_timeout(start_cell, base_spec, marker):
    spec = base_spec(
        id="t-escape-timeout",
        argv=["/bin/sh", "-c", f"(setsid /bin/sleep {marker} &); sleep 30"],
        timeoutMs=1000,
    )
    running = start_cell(spec)
    wait_for_marker(marker, running)
    res = running.wait(timeout=20)
    assert procs_with_marker(marker) == [], res
    assert res.rc == 124, res
    assert res.event(COMPLETED)["data"]["spawnError"] == (
        "command timed out after 1000 ms (spec.run.timeoutMs)"
    )
    assert res.types()[-1] == DESTROYED, res


def test_runner_does_not_wait_for_escapee_holding_stdout(run_cell, base_spec, marker):
    # The main process exits at once; an escapee keeps the stdout pipe open for 1000 s.
    spec = base_spec(
        id="t-escape-pipe",
        argv=["/bin/sh", "-c", f"echo before; (setsid /bin/sleep {marker} &); exit 5"],
    )
    res = run_cell(spec, timeout=20)
    assert res.rc == 5, res
    assert res.stdout == b"before\n", res
    assert res.elapsed < 10, res
    assert procs_with_marker(marker) == []
