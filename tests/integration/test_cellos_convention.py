"""`cellvisor SPEC`: cellos-supervisor's calling convention (the spec as the only argument,
everything else from the environment), used by CellOS's own tests."""

from conftest import COMPLETED, DESTROYED


def test_spec_as_the_only_argument_runs_it(cli, write_spec, base_spec, tmp):
    spec = write_spec(base_spec(id="t-timeout", argv=["/bin/sh", "-c", "sleep 2"]))
    events = tmp / "events.jsonl"
    res = cli(str(spec), env={"CELLOS_DEPLOYMENT_PROFILE": "portable",
                              "CELL_OS_USE_NOOP_SINK": "1", "CELLOS_CELL_BACKEND": "stub",
                              "CELL_OS_JSONL_EVENTS": str(events),
                              "CELLOS_RUN_TIMEOUT_MS": "100"})
    assert res.rc == 124, res
    lines = events.read_text().splitlines()
    assert any(f'"type":"{COMPLETED}"' in l and
               "command timed out after 100 ms (CELLOS_RUN_TIMEOUT_MS)" in l for l in lines)
    assert f'"type":"{DESTROYED}"' in lines[-1]


def test_a_missing_spec_is_named(cli, tmp):
    res = cli(str(tmp / "missing.json"))
    assert res.rc == 125, res
    assert "missing.json" in res.stderr and "No such file" in res.stderr


def test_an_unknown_word_is_still_an_unknown_command(cli):
    res = cli("frobnicate")
    assert res.rc == 125 and "unknown command 'frobnicate'" in res.stderr
