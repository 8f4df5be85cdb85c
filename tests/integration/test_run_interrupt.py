"""A runner that receives SIGINT or SIGTERM stops the whole cell, still writes `completed` and
`destroyed`, and exits 130 or 143 (DESIGN.md §5)."""

import os
import signal
import time

import pytest

from conftest import COMPLETED, DESTROYED, STARTED, SUMMARY, procs_with_marker


def wait_for_marker(marker, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs_with_marker(marker):
            return
        time.sleep(0.02)
    raise AssertionError(f"workload `sleep {marker}` never ran")


@pytest.mark.parametrize("signame, rc", [("SIGINT", 130), ("SIGTERM", 143)])
def test_runner_signal_stops_the_cell(start_cell, base_spec, marker, signame, rc):
    spec = base_spec(
        id="t-interrupt",
        argv=["/bin/sh", "-c", f"/bin/sleep {marker} & (setsid /bin/sleep {marker} &); "
                               f"/bin/sleep {marker}; wait"],
    )
    running = start_cell(spec)
    running.wait_started()
    wait_for_marker(marker)
    t0 = time.monotonic()
    os.kill(running.proc.pid, getattr(signal, signame))
    res = running.wait(timeout=20)
    stop_time = time.monotonic() - t0

    assert procs_with_marker(marker) == [], res
    assert res.rc == rc, res
    assert stop_time < 3.0, res
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == -1, data
    assert data["spawnError"] == f"cell stopped: cellvisor received {signame}", data
    destroyed = res.event(DESTROYED)["data"]
    assert destroyed["outcome"] == "failed", destroyed
    assert destroyed["terminalState"] == "clean", destroyed


@pytest.mark.parametrize("signame, rc", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_of_term_ignoring_workload_is_forced(start_cell, base_spec, marker, signame, rc):
    spec = base_spec(
        id="t-interrupt-forced",
        argv=["/bin/sh", "-c", f"trap '' TERM INT; /bin/sleep {marker}; exit 0"],
    )
    running = start_cell(spec, args=["--grace", "500"])
    running.wait_started()
    wait_for_marker(marker)
    t0 = time.monotonic()
    os.kill(running.proc.pid, getattr(signal, signame))
    res = running.wait(timeout=20)
    stop_time = time.monotonic() - t0

    assert procs_with_marker(marker) == [], res
    assert res.rc == rc, res
    assert 0.45 <= stop_time < 4.0, res
    assert res.types()[-1] == DESTROYED, res
    assert res.event(DESTROYED)["data"]["terminalState"] == "forced"
    assert res.event(COMPLETED)["data"]["spawnError"] == (
        f"cell stopped: cellvisor received {signame}"
    )
