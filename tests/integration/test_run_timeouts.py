"""Timeouts (DESIGN.md §4): CellOS's three timeout tests ported with the same specs, variables
and assertions, then precedence, exit code 124, the destroy guarantee and the stop grace."""

import pytest

from conftest import COMPLETED, DESTROYED, STARTED, SUMMARY

# The three specs exactly as in CellOS's cellos-supervisor tests (seed 000).
CELLOS_SPEC_ENV_CAP = r"""{
          "apiVersion":"cellos.io/v1",
          "kind":"ExecutionCell",
          "spec":{
            "id":"t-timeout",
            "authority":{"secretRefs":[]},
            "lifetime":{"ttlSeconds":60},
            "run":{
"secretDelivery": "env","argv":["/bin/sh","-c","sleep 2"]}
          }
        }"""

CELLOS_SPEC_TTL = r"""{
          "apiVersion":"cellos.io/v1",
          "kind":"ExecutionCell",
          "spec":{
            "id":"t-ttl-watchdog",
            "authority":{"secretRefs":[]},
            "lifetime":{"ttlSeconds":1},
            "run":{
"secretDelivery": "env","argv":["/bin/sh","-c","sleep 5"]}
          }
        }"""

CELLOS_SPEC_SPEC_CAP = r"""{
          "apiVersion":"cellos.io/v1",
          "kind":"ExecutionCell",
          "spec":{
            "id":"t-timeout-spec",
            "authority":{"secretRefs":[]},
            "lifetime":{"ttlSeconds":60},
            "run":{
"secretDelivery": "env","argv":["/bin/sh","-c","sleep 2"],"timeoutMs":120}
          }
        }"""


def cellos_env(tmp, **extra):
    env = {
        "CELLOS_DEPLOYMENT_PROFILE": "portable",
        "CELL_OS_USE_NOOP_SINK": "1",
        "CELLOS_CELL_BACKEND": "stub",
        "CELL_OS_JSONL_EVENTS": str(tmp / "events.jsonl"),
        "CELLOS_RUN_TIMEOUT_MS": None,
    }
    env.update(extra)
    return env


def command_event(res):
    found = [e for e in res.events if e["type"] == COMPLETED]
    assert found, f"command completed event: {res}"
    return found[0]


# --- CellOS's own tests, ported -----------------------------------------------------------


def test_command_timeout_fails_supervisor_and_emits_spawn_error(run_cell, write_spec, tmp):
    spec_path = write_spec(CELLOS_SPEC_ENV_CAP.encode(), "spec.json")
    res = run_cell(spec_path, env=cellos_env(tmp, CELLOS_RUN_TIMEOUT_MS="100"))

    assert res.rc != 0, f"supervisor should fail on command timeout: {res}"
    assert res.elapsed < 1.5, f"timeout should stop the run well before the 2s sleep: {res}"
    ev = command_event(res)
    assert ev["data"]["exitCode"] == -1
    assert ev["data"]["spawnError"] == "command timed out after 100 ms (CELLOS_RUN_TIMEOUT_MS)"


def test_ttl_alone_acts_as_run_timeout_watchdog(run_cell, write_spec, tmp):
    spec_path = write_spec(CELLOS_SPEC_TTL.encode(), "spec.json")
    res = run_cell(spec_path, env=cellos_env(tmp))  # no CELLOS_RUN_TIMEOUT_MS

    assert res.rc != 0, f"supervisor should fail when TTL ceiling fires: {res}"
    assert res.elapsed < 2.5, f"TTL watchdog should stop the run well before 5s: {res}"
    ev = command_event(res)
    assert ev["data"]["exitCode"] == -1
    assert ev["data"]["spawnError"] == "cell killed by TTL watchdog after 1000 ms (ttl_seconds=1)"
    assert any(e["type"] == DESTROYED for e in res.events), (
        "cell.lifecycle.v1.destroyed must fire after TTL-watchdog kill"
    )


def test_spec_timeout_without_env_cap_fails_supervisor(run_cell, write_spec, tmp):
    spec_path = write_spec(CELLOS_SPEC_SPEC_CAP.encode(), "spec.json")
    res = run_cell(spec_path, env=cellos_env(tmp))

    assert res.rc != 0, f"supervisor should fail on spec-defined timeout: {res}"
    ev = command_event(res)
    assert ev["data"]["spawnError"] == "command timed out after 120 ms (spec.run.timeoutMs)"


# --- cellvisor's contract on top ----------------------------------------------------------

ENV_MSG = "command timed out after {} ms (CELLOS_RUN_TIMEOUT_MS)"
SPEC_MSG = "command timed out after {} ms (spec.run.timeoutMs)"
TTL_MSG = "cell killed by TTL watchdog after {} ms (ttl_seconds={})"


@pytest.mark.parametrize(
    "env_ms, spec_ms, ttl_s, expected",
    [
        # tightest wins
        (1000, 150, 60, SPEC_MSG.format(150)),
        (150, 1000, 60, ENV_MSG.format(150)),
        (None, 3000, 1, TTL_MSG.format(1000, 1)),
        (3000, None, 1, TTL_MSG.format(1000, 1)),
        (3000, 3000, 1, TTL_MSG.format(1000, 1)),
        # ties: env beats spec, spec beats TTL, env beats TTL
        (150, 150, 60, ENV_MSG.format(150)),
        (None, 1000, 1, SPEC_MSG.format(1000)),
        (1000, None, 1, ENV_MSG.format(1000)),
        (1000, 1000, 1, ENV_MSG.format(1000)),
    ],
    ids=[
        "spec-tightest",
        "env-tightest",
        "ttl-tightest-no-env",
        "ttl-tightest-no-spec",
        "ttl-tightest-all",
        "tie-env-beats-spec",
        "tie-spec-beats-ttl",
        "tie-env-beats-ttl",
        "tie-all-three-env-wins",
    ],
)
def test_cap_precedence(run_cell, base_spec, env_ms, spec_ms, ttl_s, expected):
    spec = base_spec(id="t-precedence", argv=["/bin/sh", "-c", "sleep 5"], ttlSeconds=ttl_s)
    if spec_ms is not None:
        spec["spec"]["run"]["timeoutMs"] = spec_ms
    env = {"CELLOS_RUN_TIMEOUT_MS": env_ms}
    res = run_cell(spec, env=env)
    assert res.rc == 124, res
    ev = res.event(COMPLETED)
    assert ev["data"]["exitCode"] == -1, ev
    assert ev["data"]["spawnError"] == expected, ev
    assert res.elapsed < 4.0, res


def test_timeout_flag_is_attributed_to_the_flag(run_cell, base_spec):
    spec = base_spec(id="t-flag", argv=["/bin/sh", "-c", "sleep 2"])
    res = run_cell(spec, args=["--timeout", "100"])
    assert res.rc == 124, res
    assert res.elapsed < 1.5, res
    ev = res.event(COMPLETED)
    assert ev["data"]["exitCode"] == -1
    assert ev["data"]["spawnError"] == "command timed out after 100 ms (--timeout)"


def test_timeout_flag_tightest_wins_over_env_and_spec(run_cell, base_spec):
    spec = base_spec(id="t-flag2", argv=["/bin/sh", "-c", "sleep 5"], timeoutMs=2000)
    res = run_cell(spec, args=["--timeout", "150"], env={"CELLOS_RUN_TIMEOUT_MS": "3000"})
    assert res.rc == 124, res
    assert res.event(COMPLETED)["data"]["spawnError"] == (
        "command timed out after 150 ms (--timeout)"
    )


def test_spec_tighter_than_timeout_flag_wins(run_cell, base_spec):
    spec = base_spec(id="t-flag3", argv=["/bin/sh", "-c", "sleep 5"], timeoutMs=150)
    res = run_cell(spec, args=["--timeout", "3000"])
    assert res.rc == 124, res
    assert res.event(COMPLETED)["data"]["spawnError"] == SPEC_MSG.format(150)


@pytest.mark.parametrize("cap", ["env", "spec", "ttl", "flag"])
def test_every_cap_exits_124_and_destroys(run_cell, base_spec, cap):
    spec = base_spec(id=f"t-cap-{cap}", argv=["/bin/sh", "-c", "sleep 5"])
    env, args = {}, []
    if cap == "env":
        env["CELLOS_RUN_TIMEOUT_MS"] = "200"
    elif cap == "spec":
        spec["spec"]["run"]["timeoutMs"] = 200
    elif cap == "ttl":
        spec["spec"]["lifetime"]["ttlSeconds"] = 1
    else:
        args = ["--timeout", "200"]
    res = run_cell(spec, args=args, env=env)
    assert res.rc == 124, res
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    destroyed = res.event(DESTROYED)["data"]
    assert destroyed["outcome"] == "failed", destroyed
    # sh and sleep die on SIGTERM: no SIGKILL was needed.
    assert destroyed["terminalState"] == "clean", destroyed


def test_timeout_fires_at_the_deadline_not_before(run_cell, base_spec):
    spec = base_spec(id="t-deadline", argv=["/bin/sleep", "5"], timeoutMs=400)
    res = run_cell(spec)
    assert res.rc == 124, res
    assert 0.39 <= res.elapsed < 2.0, res
    duration = res.event(COMPLETED)["data"]["durationMs"]
    assert isinstance(duration, int) and 390 <= duration < 2000, duration


def test_workload_finishing_before_caps_is_not_a_timeout(run_cell, base_spec):
    spec = base_spec(id="t-fast", argv=["/bin/sh", "-c", "sleep 0.1; exit 0"], timeoutMs=3000)
    res = run_cell(spec, env={"CELLOS_RUN_TIMEOUT_MS": "3000"}, args=["--timeout", "3000"])
    assert res.rc == 0, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == 0 and data["spawnError"] is None, data


def test_timeout_grace_then_sigkill_is_forced(run_cell, base_spec):
    # The shell and its sleep ignore SIGTERM (ignored dispositions survive exec).
    spec = base_spec(
        id="t-grace",
        argv=["/bin/sh", "-c", "trap '' TERM; sleep 30; exit 0"],
        timeoutMs=200,
    )
    res = run_cell(spec, args=["--grace", "400"])
    assert res.rc == 124, res
    # deadline 200 ms + grace 400 ms must pass before SIGKILL; generous upper bound.
    assert 0.55 <= res.elapsed < 4.0, res
    assert res.types()[-1] == DESTROYED, res
    assert res.event(DESTROYED)["data"]["terminalState"] == "forced"
    assert res.event(COMPLETED)["data"]["spawnError"] == SPEC_MSG.format(200)


def test_default_grace_is_5000_ms(run_cell, base_spec):
    spec = base_spec(
        id="t-grace-default",
        argv=["/bin/sh", "-c", "trap '' TERM; sleep 30; exit 0"],
        timeoutMs=100,
    )
    res = run_cell(spec)
    assert res.rc == 124, res
    assert 5.0 <= res.elapsed < 9.0, res
    assert res.event(DESTROYED)["data"]["terminalState"] == "forced"


@pytest.mark.parametrize("value", ["abc", "-5", "", "12ms"])
def test_bad_timeout_flag_is_rejected(run_cell, base_spec, tmp, value):
    spec = base_spec(id="t-badflag", argv=["/bin/touch", str(tmp / "ran")])
    res = run_cell(spec, args=["--timeout", value])
    assert res.rc == 125, res
    assert "--timeout" in res.stderr, res
    assert not (tmp / "ran").exists()
    assert res.events == [], res
