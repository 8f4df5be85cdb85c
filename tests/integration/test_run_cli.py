"""The command line: --version, help, usage errors, backends and profiles."""

import re

import pytest

from conftest import COMPLETED, DESTROYED, STARTED, SUMMARY

RUN_OPTIONS = ["--events", "--timeout", "--grace", "--backend", "--quiet"]


def test_version(cli):
    res = cli("--version")
    assert res.rc == 0, res
    assert re.match(rb"^cellvisor \S+\n$", res.stdout), res


def test_help_lists_commands(cli):
    res = cli("help")
    assert res.rc == 0, res
    out = res.stdout.decode()
    assert "run" in out and "validate" in out, out


@pytest.mark.parametrize("argv", [("help", "run"), ("run", "--help"), ("run", "-h")])
def test_run_help_lists_options(cli, argv):
    res = cli(*argv)
    assert res.rc == 0, res
    out = res.stdout.decode()
    for opt in RUN_OPTIONS:
        assert opt in out, (opt, out)


@pytest.mark.parametrize("argv", [("help", "validate"), ("validate", "--help")])
def test_validate_help(cli, argv):
    res = cli(*argv)
    assert res.rc == 0, res
    assert b"validate" in res.stdout, res


def test_unknown_run_option_is_named(run_cell, base_spec, tmp):
    spec = base_spec(argv=["/bin/touch", str(tmp / "ran")])
    res = run_cell(spec, args=["--no-such-option"])
    assert res.rc == 125, res
    assert "--no-such-option" in res.stderr, res
    assert not (tmp / "ran").exists()
    assert res.events == []


def test_run_without_spec_is_a_usage_error(cli):
    res = cli("run")
    assert res.rc == 125, res
    assert res.stderr.strip() != "", res


def test_unknown_command(cli):
    res = cli("frobnicate")
    assert res.rc != 0, res
    assert "frobnicate" in res.stderr, res


@pytest.mark.parametrize("backend", ["host", "stub"])
def test_host_and_stub_backends_run(run_cell, base_spec, backend):
    res = run_cell(base_spec(id="t-backend", argv=["/bin/echo", "hi"]), args=["--backend", backend])
    assert res.rc == 0, res
    assert res.stdout == b"hi\n"
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    assert res.event(STARTED)["data"]["backend"] in ("host", "stub")


def test_backend_from_env(run_cell, base_spec):
    res = run_cell(base_spec(id="t-backend-env"), env={"CELLOS_CELL_BACKEND": "stub"})
    assert res.rc == 0, res
    assert res.event(STARTED)["data"]["backend"] in ("host", "stub")


def test_unknown_backend_flag(run_cell, base_spec, tmp):
    res = run_cell(base_spec(argv=["/bin/touch", str(tmp / "ran")]), args=["--backend", "nosuch"])
    assert res.rc == 125, res
    assert "nosuch" in res.stderr, res
    assert not (tmp / "ran").exists()
    assert not [t for t in res.types() if ".lifecycle." in t or ".command." in t], res


def test_unknown_backend_env(run_cell, base_spec, tmp):
    res = run_cell(
        base_spec(argv=["/bin/touch", str(tmp / "ran")]), env={"CELLOS_CELL_BACKEND": "nosuch"}
    )
    assert res.rc == 125, res
    assert "nosuch" in res.stderr, res
    assert not (tmp / "ran").exists()
    assert not [t for t in res.types() if ".lifecycle." in t or ".command." in t], res


def test_unknown_profile(run_cell, base_spec, tmp):
    res = run_cell(base_spec(argv=["/bin/touch", str(tmp / "ran")]), args=["--profile", "lax"])
    assert res.rc == 125, res
    assert "lax" in res.stderr, res
    assert not (tmp / "ran").exists()


def test_quiet_keeps_workload_output(run_cell, base_spec):
    spec = base_spec(id="t-quiet", argv=["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    res = run_cell(spec, args=["--quiet"])
    assert res.rc == 3, res
    assert res.stdout == b"out\n"
    assert res.stderr == "err\n", res
