"""Edges found by a contract review: identifiers stay exact under redaction, a FIFO given as a
secret file cannot hang the runner, and a stop signal that arrives while leftovers are being
stopped still makes cellvisor exit 128+N (DESIGN §5)."""

import os
import signal
import time

from conftest import COMPLETED, DESTROYED, UUID_RE, procs_with_marker


def test_a_short_secret_never_cuts_into_ids(run_cell, base_spec, tmp):
    (tmp / "s").write_text("4")
    res = run_cell(base_spec(id="build-42", secretRefs=["k"],
                             correlation={"externalRunId": "1234"}),
                   env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_K": str(tmp / "s")})
    assert res.rc == 0, res
    for ev in res.events:
        assert ev["data"]["cellId"] == "build-42", ev
        assert UUID_RE.match(ev["data"]["runId"]), ev
        assert ev["subject"] == "cell:build-42"
    summary = [e for e in res.events if "correlation" in e["data"]][0]
    assert "4" not in summary["data"]["correlation"]["externalRunId"]  # still redacted


def test_a_fifo_as_secret_file_is_refused_not_waited_on(run_cell, base_spec, tmp):
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    res = run_cell(base_spec(secretRefs=["db-password"]),
                   env={"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_DB_PASSWORD": str(fifo)},
                   timeout=10)
    assert time.monotonic() - t0 < 5
    assert res.rc == 125, res
    assert "does not name a regular file" in res.stderr


def test_stop_signal_during_leftover_cleanup_exits_130(start_cell, base_spec, marker):
    script = (f"(setsid sh -c 'trap \"\" TERM; exec sleep {marker}' >/dev/null 2>&1 &); "
              "sleep 0.2; exit 0")
    running = start_cell(base_spec(id="t-late", argv=["/bin/sh", "-c", script]),
                         args=("--grace", "10000"))
    running.wait_started()
    deadline = time.monotonic() + 5
    while not any(e["type"] == COMPLETED for e in running.current_events()):
        assert time.monotonic() < deadline, "the top process never completed"
        time.sleep(0.02)
    running.proc.send_signal(signal.SIGINT)
    res = running.wait(timeout=10)
    assert res.rc == 130, res
    done = res.event(COMPLETED)
    assert done["data"]["exitCode"] == 0  # the record is not rewritten
    destroyed = res.event(DESTROYED)
    assert destroyed["data"]["terminalState"] == "forced"
    assert procs_with_marker(marker) == []
