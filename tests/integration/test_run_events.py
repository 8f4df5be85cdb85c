"""CloudEvents written by `cellvisor run` (DESIGN.md §6): envelope, order, fields, sinks,
degraded authority under the portable profile and refusal under hardened."""

import json

import pytest

from conftest import (
    COMPLETED,
    DEGRADED,
    DESTROYED,
    STARTED,
    SUMMARY,
    assert_envelope,
    parse_jsonl,
)

SEQUENCE = [STARTED, COMPLETED, SUMMARY, DESTROYED]


def test_successful_run_event_sequence_and_envelope(run_cell, base_spec):
    res = run_cell(base_spec(id="t-events", argv=["/bin/true"]))
    assert res.rc == 0, res
    assert res.types() == SEQUENCE, res
    for ev in res.events:
        assert_envelope(ev, "t-events", res.wall0, res.wall1)
    ids = [e["id"] for e in res.events]
    assert len(set(ids)) == len(ids), ids
    run_ids = {e["data"]["runId"] for e in res.events}
    assert len(run_ids) == 1, run_ids
    run_id = run_ids.pop()
    assert isinstance(run_id, str) and len(run_id) >= 8, run_id
    for ev in res.events:
        assert ev["data"]["cellId"] == "t-events", ev
    times = [e["time"] for e in res.events]
    assert times == sorted(times), times


def test_started_fields(run_cell, base_spec):
    res = run_cell(base_spec(id="t-started"))
    data = res.event(STARTED)["data"]
    assert data["cellId"] == "t-started"
    assert data["specId"] == "t-started"
    assert data["backend"] in ("host", "stub"), data


def test_completed_fields_on_success(run_cell, base_spec):
    res = run_cell(base_spec(id="t-ok", argv=["/bin/sh", "-c", "sleep 0.3"]))
    assert res.rc == 0, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == 0
    assert data["signal"] is None
    assert data["spawnError"] is None
    assert data["oomKilled"] is False
    assert isinstance(data["durationMs"], int) and 280 <= data["durationMs"] < 5000, data
    destroyed = res.event(DESTROYED)["data"]
    assert destroyed["outcome"] == "succeeded"
    assert destroyed["terminalState"] == "clean"


def test_failed_workload_outcome(run_cell, base_spec):
    res = run_cell(base_spec(id="t-fail", argv=["/bin/sh", "-c", "exit 3"]))
    assert res.rc == 3, res
    assert res.types() == SEQUENCE, res
    assert res.event(COMPLETED)["data"]["exitCode"] == 3
    assert res.event(SUMMARY)["data"]["commandExitCode"] == 3
    destroyed = res.event(DESTROYED)["data"]
    assert destroyed["outcome"] == "failed"
    assert destroyed["terminalState"] == "clean"


def test_compliance_summary_fields(run_cell, base_spec):
    correlation = {"platform": "ci", "externalRunId": "1234", "tenantId": "acme",
                   "labels": {"team": "infra"}}
    spec = base_spec(id="t-summary", ttlSeconds=45, correlation=correlation)
    res = run_cell(spec)
    assert res.rc == 0, res
    data = res.event(SUMMARY)["data"]
    assert data["cellId"] == "t-summary" and data["specId"] == "t-summary"
    assert data["lifetimeTtlSeconds"] == 45
    assert data["egressRuleCount"] == 0
    assert data["secretDeliveryMode"] == "env"
    assert data["commandExitCode"] == 0
    assert data["correlation"] == correlation
    assert data["runId"] == res.event(STARTED)["data"]["runId"]


def test_events_flag_file(run_cell, base_spec):
    res = run_cell(base_spec(id="t-flagfile"), events="flag")
    assert res.rc == 0, res
    assert res.types() == SEQUENCE, res
    assert res.stdout == b""


def test_events_flag_and_env_mirror_write_the_same_events(run_cell, base_spec, tmp):
    mirror = tmp / "mirror.jsonl"
    res = run_cell(
        base_spec(id="t-mirror"),
        args=["--events", str(tmp / "primary.jsonl")],
        env={"CELL_OS_JSONL_EVENTS": str(mirror)},
    )
    assert res.rc == 0, res
    primary = parse_jsonl((tmp / "primary.jsonl").read_text())
    mirrored = parse_jsonl(mirror.read_text())
    assert [e["type"] for e in primary] == SEQUENCE
    assert [e["id"] for e in primary] == [e["id"] for e in mirrored]


def test_events_to_stdout(run_cell, base_spec):
    res = run_cell(base_spec(id="t-stdout"), args=["--events", "-"], events=None)
    assert res.rc == 0, res
    assert res.stdout.endswith(b"\n")
    events = parse_jsonl(res.stdout.decode())
    assert [e["type"] for e in events] == SEQUENCE, res


def test_events_to_stdout_cannot_be_forged_by_the_workload(run_cell, base_spec, tmp):
    # Issue 7 item 6: with --events - the workload's stdout goes to cellvisor's stderr, so a
    # fake completed line cannot join the stream, nor can an unterminated line glue a real
    # event into garbage. Every stdout line is one of cellvisor's own events.
    fake = json.dumps({"specversion": "1.0", "id": "00000000-0000-4000-8000-000000000000",
                       "source": "/cellvisor/forged", "type": COMPLETED,
                       "subject": "cell:t-forge", "data": {"cellId": "t-forge",
                                                           "exitCode": 0}})
    (tmp / "fake").write_text(fake + "\n" + '{"unterminated": ')
    spec = base_spec(id="t-forge", argv=["/bin/sh", "-c", f"cat {tmp}/fake; exit 3"])
    res = run_cell(spec, args=["--events", "-"], events=None)
    assert res.rc == 3, res
    assert res.stdout.endswith(b"\n"), res
    events = parse_jsonl(res.stdout.decode())
    assert [e["type"] for e in events] == SEQUENCE, res
    for ev in events:
        assert_envelope(ev, "t-forge", res.wall0, res.wall1)
    assert [e["data"]["exitCode"] for e in events if e["type"] == COMPLETED] == [3], res
    assert b"forged" not in res.stdout and b"unterminated" not in res.stdout, res
    assert res.stderr.startswith(fake + "\n" + '{"unterminated": '), res


def test_noop_sink_keeps_jsonl_mirror(run_cell, base_spec):
    res = run_cell(base_spec(id="t-noop", argv=["/bin/echo", "x"]),
                   env={"CELL_OS_USE_NOOP_SINK": "1"})
    assert res.rc == 0, res
    assert res.stdout == b"x\n"
    assert res.types() == SEQUENCE, res


def test_no_sink_means_stdout_is_the_workloads(run_cell, base_spec):
    res = run_cell(base_spec(id="t-nosink", argv=["/bin/echo", "only me"]), events=None)
    assert res.rc == 0, res
    assert res.stdout == b"only me\n"


def test_jsonl_file_is_appended(run_cell, base_spec, tmp):
    path = tmp / "append.jsonl"
    for i in range(2):
        res = run_cell(base_spec(id=f"t-append{i}"), env={"CELL_OS_JSONL_EVENTS": str(path)})
        assert res.rc == 0, res
    text = path.read_text()
    assert text.endswith("\n")
    events = parse_jsonl(text)
    assert [e["type"] for e in events] == SEQUENCE * 2
    assert events[0]["data"]["runId"] != events[4]["data"]["runId"]
    assert [e["subject"] for e in events] == ["cell:t-append0"] * 4 + ["cell:t-append1"] * 4


def test_each_run_has_a_new_run_id(run_cell, base_spec):
    a = run_cell(base_spec(id="t-same"))
    b = run_cell(base_spec(id="t-same"))
    assert a.event(STARTED)["data"]["runId"] != b.event(STARTED)["data"]["runId"]
    assert a.events[0]["id"] != b.events[0]["id"]


def test_spawn_failure_still_has_full_sequence(run_cell, base_spec):
    res = run_cell(base_spec(id="t-spawnfail", argv=["/nonexistent/cellvisor-test-binary"]))
    assert res.rc == 127, res
    assert res.types() == SEQUENCE, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == -1
    assert data["spawnError"].startswith("spawn failed:"), data
    assert res.event(DESTROYED)["data"]["outcome"] == "failed"


# --- authority the host backend cannot enforce ---------------------------------------------

DEGRADING = {
    "network": {"network": "none"},
    "filesystem": {"filesystem": {"readOnly": ["/usr"]}},
    "egress": {"egressRules": [{"host": "example.org", "port": 443}]},
}


@pytest.mark.parametrize("item", sorted(DEGRADING))
def test_portable_profile_records_degraded_authority(run_cell, base_spec, item):
    res = run_cell(base_spec(id="t-degraded", argv=["/bin/echo", "ran"], **DEGRADING[item]))
    assert res.rc == 0, res
    assert res.stdout == b"ran\n"
    assert res.types() == [DEGRADED] + SEQUENCE, res
    data = res.event(DEGRADED)["data"]
    assert data["cellId"] == "t-degraded"
    assert data["runId"] == res.event(STARTED)["data"]["runId"]
    assert data["profile"] == "portable"
    assert item in data["item"].lower(), data
    assert isinstance(data["reason"], str) and data["reason"], data
    assert_envelope(res.events[0], "t-degraded")


def test_loopback_network_is_degraded_too(run_cell, base_spec):
    res = run_cell(base_spec(id="t-loopback", network="loopback"))
    assert res.rc == 0, res
    assert res.types() == [DEGRADED] + SEQUENCE, res


def test_all_three_degradations(run_cell, base_spec):
    overrides = {}
    for o in DEGRADING.values():
        overrides.update(o)
    res = run_cell(base_spec(id="t-degraded3", **overrides))
    assert res.rc == 0, res
    assert res.types() == [DEGRADED] * 3 + SEQUENCE, res
    items = [e["data"]["item"].lower() for e in res.events[:3]]
    for name in DEGRADING:
        assert sum(name in i for i in items) == 1, items
    assert res.event(SUMMARY)["data"]["egressRuleCount"] == 1


def test_host_network_is_not_degraded(run_cell, base_spec):
    # run.user "0": a root workload on the host backend is refused under hardened unless
    # declared (docs/run.md).
    res = run_cell(base_spec(id="t-hostnet", network="host", user="0"),
                   env={"CELLOS_DEPLOYMENT_PROFILE": "hardened"})
    assert res.rc == 0, res
    assert res.types() == SEQUENCE, res


def test_explicit_portable_profile(run_cell, base_spec):
    res = run_cell(base_spec(id="t-portable", network="none"), args=["--profile", "portable"],
                   env={"CELLOS_DEPLOYMENT_PROFILE": "portable"})
    assert res.rc == 0, res
    assert res.types() == [DEGRADED] + SEQUENCE, res


@pytest.mark.parametrize("item", sorted(DEGRADING))
@pytest.mark.parametrize("how", ["env", "flag"])
def test_hardened_profile_refuses_unenforceable_authority(run_cell, base_spec, tmp, item, how):
    spec = base_spec(id="t-hardened", argv=["/bin/touch", str(tmp / "ran")], **DEGRADING[item])
    if how == "env":
        res = run_cell(spec, env={"CELLOS_DEPLOYMENT_PROFILE": "hardened"})
    else:
        res = run_cell(spec, args=["--profile", "hardened"])
    assert res.rc == 125, res
    assert item in res.stderr.lower(), res
    assert not (tmp / "ran").exists(), "the workload must not run"
    assert not [t for t in res.types() if ".lifecycle." in t or ".command." in t], res


def test_every_line_is_one_whole_event(run_cell, base_spec):
    res = run_cell(base_spec(id="t-lines", network="none"))
    assert res.rc == 0, res
    lines = res.events_raw.split("\n")
    assert len(lines) == 6, res  # degraded, started, completed, summary, destroyed, ""
    assert lines[-1] == "", "file must end with a newline"
    for line in lines[:-1]:
        obj = json.loads(line)
        assert isinstance(obj, dict) and "type" in obj, line
