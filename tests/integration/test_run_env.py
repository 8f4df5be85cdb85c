"""What the workload sees: an environment built from scratch, stdin /dev/null, only fds 0-2,
its declared cwd."""

import json
import os

from conftest import COMPLETED

PY = "/usr/bin/python3"


def env_of(res):
    assert res.rc == 0, res
    assert res.event(COMPLETED)["data"]["exitCode"] == 0, res
    entries = [e for e in res.stdout.split(b"\0") if e]
    return dict(e.decode().split("=", 1) for e in entries)


def test_runner_environment_is_not_visible(run_cell, base_spec):
    spec = base_spec(id="t-env", argv=["/usr/bin/env", "-0"], env={"FOO": "bar"})
    res = run_cell(spec, env={
        "CELLVISOR_TEST_LEAK": "leaked-value",
        "HOME": "/root",
        "CELLOS_RUN_TIMEOUT_MS": "20000",
        "CELLOS_DEPLOYMENT_PROFILE": "portable",
    })
    assert env_of(res) == {"FOO": "bar"}, res
    assert b"leaked-value" not in res.stdout


def test_no_env_declared_means_empty_environment(run_cell, base_spec):
    res = run_cell(base_spec(id="t-noenv", argv=["/usr/bin/env", "-0"]))
    assert env_of(res) == {}, res


def test_declared_env_values_are_exact(run_cell, base_spec):
    env = {
        "LANG": "C.UTF-8",
        "PATH": "/opt/x:/bin",
        "WITH_EQUALS": "a=b=c",
        "SPACES_AND_NL": " two\nlines ",
        "UNICODE": "gr\u00fc\u00dfe \u2603",
        "EMPTY": "",
        "_under": "x",
    }
    res = run_cell(base_spec(id="t-envexact", argv=["/usr/bin/env", "-0"], env=env))
    assert env_of(res) == env


def test_stdin_is_dev_null(run_cell, base_spec):
    spec = base_spec(id="t-stdin", argv=["/bin/readlink", "/proc/self/fd/0"])
    res = run_cell(spec, stdin=b"runner input must not reach the cell\n")
    assert res.rc == 0, res
    assert res.stdout == b"/dev/null\n"


def test_cell_reading_stdin_gets_eof_even_if_runner_stdin_stays_open(run_cell, base_spec):
    r, w = os.pipe()  # the write end stays open for the whole run
    try:
        spec = base_spec(id="t-cat", argv=["/bin/cat"], timeoutMs=10000)
        res = run_cell(spec, stdin=r, timeout=20)
    finally:
        os.close(r)
        os.close(w)
    assert res.rc == 0, res
    assert res.stdout == b""
    assert res.event(COMPLETED)["data"]["exitCode"] == 0, res
    assert res.elapsed < 5, res


FD_PROBE = (
    "import os, json\n"
    "fds = []\n"
    "for fd in range(0, 65536):\n"
    "    try:\n"
    "        os.fstat(fd)\n"
    "    except OSError:\n"
    "        continue\n"
    "    fds.append(fd)\n"
    "print(json.dumps(fds))\n"
)


def test_workload_has_only_fds_0_1_2(run_cell, base_spec):
    # The runner itself inherits extra fds (a pipe, a file); none may reach the cell.
    r, w = os.pipe()
    f = os.open("/etc/hostname", os.O_RDONLY)
    try:
        spec = base_spec(id="t-fds", argv=[PY, "-I", "-S", "-c", FD_PROBE])
        res = run_cell(spec, pass_fds=(r, w, f))
    finally:
        for fd in (r, w, f):
            os.close(fd)
    assert res.rc == 0, res
    assert json.loads(res.stdout) == [0, 1, 2], res


def test_workload_fds_listed_in_proc(run_cell, base_spec):
    # `ls` opens one directory fd of its own while listing: 0, 1, 2 and that one.
    spec = base_spec(id="t-fds-ls", argv=["/bin/sh", "-c", "exec /bin/ls /proc/self/fd"])
    res = run_cell(spec, pass_fds=())
    assert res.rc == 0, res
    assert sorted(int(x) for x in res.stdout.split()) == [0, 1, 2, 3], res


def test_cwd_is_run_cwd(run_cell, base_spec, tmp):
    (tmp / "work").mkdir()
    spec = base_spec(id="t-cwd", argv=["/bin/pwd", "-P"], cwd=str(tmp / "work"))
    res = run_cell(spec, cwd="/")
    assert res.rc == 0, res
    assert res.stdout == str(tmp / "work").encode() + b"\n"


def test_relative_paths_resolve_against_cwd(run_cell, base_spec, tmp):
    (tmp / "work").mkdir()
    spec = base_spec(id="t-cwd2", argv=["/bin/sh", "-c", "echo hi > out.txt"],
                     cwd=str(tmp / "work"))
    res = run_cell(spec, cwd="/")
    assert res.rc == 0, res
    assert (tmp / "work" / "out.txt").read_text() == "hi\n"


def test_missing_cwd_does_not_run(run_cell, base_spec, tmp):
    spec = base_spec(id="t-nocwd", argv=["/bin/touch", str(tmp / "ran")],
                     cwd=str(tmp / "does-not-exist"))
    res = run_cell(spec)
    assert res.rc in (125, 126, 127), res
    assert not (tmp / "ran").exists()
