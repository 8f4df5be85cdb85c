"""The exit-code table of DESIGN.md §5 (timeouts: test_run_timeouts.py; interrupts:
test_run_interrupt.py; invalid specs: test_run_validation.py)."""

import os

import pytest

from conftest import COMPLETED, DESTROYED, STARTED, SUMMARY


@pytest.mark.parametrize("code", [0, 1, 2, 42, 125, 126, 127, 200, 255])
def test_workload_exit_code_is_passed_through(run_cell, base_spec, code):
    res = run_cell(base_spec(id="t-exit", argv=["/bin/sh", "-c", f"exit {code}"]))
    assert res.rc == code, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == code and data["signal"] is None and data["spawnError"] is None


def test_argv0_not_found_is_127(run_cell, base_spec):
    res = run_cell(base_spec(id="t-127", argv=["/nonexistent/dir/prog", "arg"]))
    assert res.rc == 127, res
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == -1
    assert data["spawnError"].startswith("spawn failed:"), data


def test_argv0_not_found_in_default_path_is_127(run_cell, base_spec):
    res = run_cell(base_spec(id="t-127p", argv=["cellvisor-no-such-command-xyz"]))
    assert res.rc == 127, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == -1
    assert data["spawnError"].startswith("spawn failed:"), data


def test_argv0_not_executable_is_126(run_cell, base_spec, tmp):
    script = tmp / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    res = run_cell(base_spec(id="t-126", argv=[str(script)]))
    assert res.rc == 126, res
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == -1
    assert data["spawnError"].startswith("spawn failed:"), data


def test_argv0_directory_is_126(run_cell, base_spec, tmp):
    res = run_cell(base_spec(id="t-126d", argv=[str(tmp)]))
    assert res.rc == 126, res
    assert res.event(COMPLETED)["data"]["spawnError"].startswith("spawn failed:")


def test_argv0_without_slash_uses_default_path(run_cell, base_spec):
    # run.env declares no PATH, yet argv[0] without a slash is found.
    res = run_cell(base_spec(id="t-path", argv=["sh", "-c", "exit 7"]))
    assert res.rc == 7, res


@pytest.mark.parametrize(
    "sig, num",
    [("SEGV", 11), ("KILL", 9), ("ABRT", 6), ("TERM", 15), ("USR1", 10)],
)
def test_workload_killed_by_own_signal_is_128_plus_n(run_cell, base_spec, sig, num):
    res = run_cell(base_spec(id="t-sig", argv=["/bin/sh", "-c", f"kill -{sig} $$; sleep 5"]))
    assert res.rc == 128 + num, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == 128 + num, data
    assert data["signal"] == f"SIG{sig}", data
    assert data["spawnError"] is None, data
    assert data["oomKilled"] is False, data
    assert res.event(DESTROYED)["data"]["outcome"] == "failed"


@pytest.mark.parametrize("backend", ["host", "sandbox"])
def test_inherited_sigchld_ignored_changes_nothing(cellvisor_bin, write_spec, base_spec, tmp,
                                                   backend):
    """Started with SIGCHLD ignored (a parent that set SIG_IGN): the kernel would reap the
    workload before anyone could read its status. The exit code still comes through."""
    import signal
    import subprocess
    from conftest import COMPLETED, make_env, parse_jsonl
    spec = write_spec(base_spec(id="t-sigchld-ign", argv=["/bin/sh", "-c", "exit 3"]))
    events = tmp / "ev.jsonl"
    p = subprocess.run([str(cellvisor_bin), "run", "--backend", backend, "--events",
                        str(events), str(spec)], env=make_env({}), capture_output=True,
                       timeout=30, preexec_fn=lambda: signal.signal(signal.SIGCHLD,
                                                                    signal.SIG_IGN))
    assert p.returncode == 3, p
    done = [e for e in parse_jsonl(events.read_text()) if e["type"] == COMPLETED]
    assert done and done[0]["data"]["exitCode"] == 3, done
