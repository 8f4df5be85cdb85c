"""Spec validation and bad inputs (DESIGN.md §3, §5): one-line errors naming the JSON path,
exit 125, nothing started, no events. `validate` prints every error; `run` only the first."""

import json
import re

import pytest

from conftest import base_spec

INVALID_JSON_RE = r"spec: invalid JSON at line (\d+), column (\d+): "


def assert_rejected(res, tmp, path, message, regex=False):
    """`run` refused the spec: exit 125, exactly one stderr line, no workload, no events."""
    assert res.rc == 125, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"run must print exactly one error line: {res}"
    want = f"cellvisor: {path}: {message}"
    if regex:
        assert re.match(f"^cellvisor: {path}: {message}", lines[0]), (lines[0], want)
    else:
        assert lines[0].startswith(want), (lines[0], want)
    assert not (tmp / "ran").exists(), "the workload must not have started"
    assert res.events == [] and res.events_raw == "", res


def spec_touching(tmp, **kw):
    """A spec whose workload leaves a file behind if it ever runs."""
    kw.setdefault("argv", ["/bin/touch", str(tmp / "ran")])
    return base_spec(**kw)


INVALID_SPECS = {
    "empty-argv": (
        {"argv": []},
        "spec.run.argv",
        "must be a non-empty array of strings",
    ),
    "argv-not-array": (
        {"argv": "/bin/true"},
        "spec.run.argv",
        "must be a non-empty array of strings",
    ),
    "argv-nul": (
        {"argv": ["/bin/touch", "ran\u0000x"]},
        r"spec.run.argv[1]",
        "must not contain NUL bytes",
    ),
    "run-unknown-field": (
        {"run": {"foo": 1}},
        "spec.run.foo",
        "unknown field",
    ),
    "spec-unknown-field": (
        {"foo": "bar"},
        "spec.foo",
        "unknown field",
    ),
    "authority-typo": (
        {"authority": {"secretref": []}},
        "spec.authority.secretref",
        "unknown field",
    ),
    "limits-typo": (
        {"limits": {"memoryMax": 1048576}},
        "spec.run.limits.memoryMax",
        "unknown field",
    ),
    "env-nul-value": (
        {"env": {"A": "x\u0000y"}},
        "spec.run.env.A",
        "must not contain NUL bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_SPECS))
def test_invalid_spec_is_refused_by_run(run_cell, tmp, case):
    overrides, path, message = INVALID_SPECS[case]
    res = run_cell(spec_touching(tmp, **overrides))
    assert_rejected(res, tmp, re.escape(path), re.escape(message), regex=True)


def test_missing_argv_is_refused(run_cell, tmp):
    spec = spec_touching(tmp)
    del spec["spec"]["run"]["argv"]
    res = run_cell(spec)
    assert res.rc == 125, res
    assert res.stderr.startswith("cellvisor: spec.run.argv: "), res
    assert res.events == []


@pytest.mark.parametrize(
    "bad_id",
    ["", "-lead", ".hidden", "a/b", "a b", "x" * 65, "caf\u00e9", "..", "a\nb", "id:1"],
    ids=["empty", "dash", "dot", "slash", "space", "65-chars", "non-ascii", "dotdot", "newline",
         "colon"],
)
def test_bad_spec_id(run_cell, tmp, bad_id):
    res = run_cell(spec_touching(tmp, id=bad_id))
    assert_rejected(res, tmp, "spec.id", "must be 1-64 characters")


@pytest.mark.parametrize("good_id", ["a", "x" * 64, "A.b_c-9", "9lives", "a..b"])
def test_good_spec_id(cli, write_spec, good_id):
    res = cli("validate", write_spec(base_spec(id=good_id)))
    assert res.rc == 0, res
    assert json.loads(res.stdout)["spec"]["id"] == good_id


def test_malformed_json_reports_line_and_column(run_cell, write_spec, tmp):
    doc = (
        b'{\n  "apiVersion": "cellos.io/v1",\n  "kind": "ExecutionCell",\n'
        b'  "spec": {"id": "x", "run": {"argv": ["/bin/touch", "' + str(tmp / "ran").encode()
        + b'"],}}\n}\n'
    )
    res = run_cell(write_spec(doc))
    assert_rejected(res, tmp, "spec", r"invalid JSON at line 4, column \d+: \S", regex=True)


@pytest.mark.parametrize(
    "doc",
    [b"", b"   \n", b"{", b"{]", b"nul", b"{'a': 1}", b'{"a" 1}', b"{}{}",
     b'{"apiVersion": "cellos.io/v1",}', b'{"a": "\xff"}', b'{"a":\x00 1}'],
    ids=["empty", "blank", "unclosed", "mismatch", "bad-literal", "single-quotes", "no-colon",
         "two-docs", "trailing-comma", "invalid-utf8", "raw-nul"],
)
def test_malformed_json_variants(run_cell, write_spec, tmp, doc):
    res = run_cell(write_spec(doc))
    assert_rejected(res, tmp, "spec", r"invalid JSON at line \d+, column \d+: \S", regex=True)


def test_duplicate_key_is_rejected_with_position(run_cell, write_spec, tmp):
    doc = (
        '{\n "apiVersion": "cellos.io/v1",\n "kind": "ExecutionCell",\n'
        ' "spec": {"id": "a", "id": "b",\n  "run": {"argv": ["/bin/touch", "%s"]}}\n}\n'
        % (tmp / "ran")
    )
    res = run_cell(write_spec(doc))
    assert_rejected(
        res, tmp, r"spec\.id", r"duplicate key \(line 4, column \d+\)", regex=True
    )


def test_duplicate_key_deep_inside_is_rejected(run_cell, write_spec, tmp):
    doc = json.dumps(spec_touching(tmp))
    doc = doc.replace('"secretDelivery": "env"', '"secretDelivery": "env", "secretDelivery": "env"')
    assert doc.count("secretDelivery") == 2
    res = run_cell(write_spec(doc))
    assert_rejected(
        res, tmp, r"spec\.run\.secretDelivery", r"duplicate key \(line 1, column \d+\)",
        regex=True
    )


def padded(doc_bytes, size):
    """A valid document padded with trailing whitespace to exactly `size` bytes."""
    assert len(doc_bytes) < size
    return doc_bytes + b" " * (size - len(doc_bytes))


def test_spec_of_exactly_1_mib_is_accepted(cli, tmp, write_spec):
    doc = json.dumps(spec_touching(tmp)).encode()
    res = cli("validate", write_spec(padded(doc, 1048576)))
    assert res.rc == 0, res
    assert json.loads(res.stdout)["spec"]["id"] == "t-cell", res


def test_spec_one_byte_over_1_mib_is_refused(run_cell, write_spec, tmp):
    doc = json.dumps(spec_touching(tmp)).encode()
    res = run_cell(write_spec(padded(doc, 1048577)))
    assert_rejected(res, tmp, "spec", "document is larger than 1048576 bytes")
    assert res.stderr == "cellvisor: spec: document is larger than 1048576 bytes\n", res


def two_mib_spec(tmp):
    spec = spec_touching(tmp, env={"BIG": "x" * (2 * 1024 * 1024)})
    return json.dumps(spec).encode()


def test_2_mib_spec_file_is_refused(run_cell, write_spec, tmp):
    res = run_cell(write_spec(two_mib_spec(tmp)))
    assert_rejected(res, tmp, "spec", "document is larger than 1048576 bytes")


def test_2_mib_spec_on_stdin_is_refused(run_cell, tmp):
    res = run_cell("-", stdin=two_mib_spec(tmp))
    assert_rejected(res, tmp, "spec", "document is larger than 1048576 bytes")


def test_nesting_depth_1000_is_refused(run_cell, write_spec, tmp):
    res = run_cell(write_spec(b"[" * 1000 + b"]" * 1000))
    assert_rejected(
        res, tmp, "spec", r"invalid JSON at line 1, column \d+: nesting deeper than 64", regex=True
    )


def test_nesting_depth_1000_inside_a_spec_is_refused(run_cell, write_spec, tmp):
    spec = spec_touching(tmp, correlation={"platform": "ci"})
    doc = json.dumps(spec, indent=1)
    deep = "[" * 1000 + "]" * 1000
    doc = doc.replace('"platform": "ci"', '"platform": "ci", "labels": ' + deep)
    res = run_cell(write_spec(doc))
    assert_rejected(
        res, tmp, "spec", r"invalid JSON at line \d+, column \d+: nesting deeper than 64",
        regex=True,
    )


def test_nesting_depth_64_is_not_a_nesting_error_but_65_is(cli, write_spec):
    ok = cli("validate", write_spec(b"[" * 64 + b"]" * 64))
    assert ok.rc == 125, ok  # not a cell
    assert "nesting deeper" not in ok.stderr and "invalid JSON" not in ok.stderr, ok
    bad = cli("validate", write_spec(b"[" * 65 + b"]" * 65))
    assert bad.rc == 125, bad
    assert re.search(INVALID_JSON_RE + "nesting deeper than 64", bad.stderr), bad


@pytest.mark.parametrize(
    "overrides, path_re",
    [
        ({"timeoutMs": "100"}, r"spec\.run\.timeoutMs"),
        ({"timeoutMs": -1}, r"spec\.run\.timeoutMs"),
        ({"timeoutMs": 1.5}, r"spec\.run\.timeoutMs"),
        ({"ttlSeconds": "60"}, r"spec\.lifetime\.ttlSeconds"),
        ({"secretDelivery": "smoke-signal"}, r"spec\.run\.secretDelivery"),
        ({"network": "internet"}, r"spec\.authority\.network"),
        ({"env": {"A": 1}}, r"spec\.run\.env(\.A)?"),
        ({"env": ["A=1"]}, r"spec\.run\.env"),
        ({"secretRefs": "db-password"}, r"spec\.authority\.secretRefs"),
        ({"apiVersion": "v1"}, r"apiVersion"),
        ({"kind": "Pod"}, r"kind"),
        ({"run": "sh"}, r"spec\.run"),
    ],
)
def test_wrong_types_and_values_name_the_path(run_cell, tmp, overrides, path_re):
    spec = spec_touching(tmp)
    for key, value in overrides.items():  # replace, not merge
        if key in ("apiVersion", "kind"):
            spec[key] = value
        elif key == "run":
            spec["spec"]["run"] = value
        else:
            spec = spec_touching(tmp, **{key: value})
    res = run_cell(spec)
    assert_rejected(res, tmp, path_re, r"\S", regex=True)


@pytest.mark.parametrize(
    "doc",
    [b"[]", b'"cell"', b"null", b"42", b'{"apiVersion": "cellos.io/v1", "kind": "ExecutionCell"}'],
    ids=["array", "string", "null", "number", "no-spec"],
)
def test_documents_that_are_not_cells(run_cell, write_spec, tmp, doc):
    res = run_cell(write_spec(doc))
    assert res.rc == 125, res
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("cellvisor: "), res
    assert "invalid JSON" not in res.stderr, res
    assert res.events == []


@pytest.mark.parametrize("api", ["cellos.io/v1", "cellvisor.dev/v1"])
def test_both_api_versions_accepted(cli, write_spec, api):
    res = cli("validate", write_spec(base_spec(apiVersion=api)))
    assert res.rc == 0, res
    assert json.loads(res.stdout)["kind"] == "ExecutionCell", res


def test_run_prints_only_the_first_error_validate_prints_all(run_cell, cli, write_spec, tmp):
    spec = spec_touching(tmp, id="-bad", timeoutMs="soon", run={"foo": 1})
    path = write_spec(spec)
    ran = run_cell(path)
    assert ran.rc == 125, ran
    assert len(ran.stderr.splitlines()) == 1, ran

    val = cli("validate", path)
    assert val.rc == 125, val
    assert val.stdout == b"", val
    lines = val.stderr.splitlines()
    assert len(lines) == 3, val
    for line in lines:
        assert re.match(r"^cellvisor: [A-Za-z.\[\]0-9]+: \S", line), line
    joined = "\n".join(lines)
    assert "cellvisor: spec.id: must be 1-64 characters" in joined
    assert "cellvisor: spec.run.timeoutMs: " in joined
    assert "cellvisor: spec.run.foo: unknown field" in joined
    assert ran.stderr.splitlines()[0] in lines


def test_validate_prints_normalised_spec(cli, write_spec, tmp):
    spec = base_spec(
        id="t-validate",
        argv=["/bin/touch", str(tmp / "ran")],
        env={"LANG": "C.UTF-8"},
        timeoutMs=5000,
        correlation={"platform": "ci", "externalRunId": "1234"},
    )
    res = cli("validate", write_spec(spec))
    assert res.rc == 0, res
    assert res.stderr == "", res
    out = json.loads(res.stdout)
    assert out["apiVersion"] == "cellos.io/v1" and out["kind"] == "ExecutionCell"
    assert out["spec"]["id"] == "t-validate"
    assert out["spec"]["run"]["argv"] == spec["spec"]["run"]["argv"]
    assert out["spec"]["run"]["env"] == {"LANG": "C.UTF-8"}
    assert out["spec"]["run"]["timeoutMs"] == 5000
    assert out["spec"]["lifetime"]["ttlSeconds"] == 60
    assert out["spec"]["correlation"]["externalRunId"] == "1234"
    assert not (tmp / "ran").exists(), "validate must not run the workload"

    # The normalised form is itself valid and a fixed point.
    again = cli("validate", write_spec(res.stdout))
    assert again.rc == 0, again
    assert json.loads(again.stdout) == out


def test_validate_from_stdin(cli):
    res = cli("validate", "-", stdin=json.dumps(base_spec(id="t-stdin")).encode())
    assert res.rc == 0, res
    assert json.loads(res.stdout)["spec"]["id"] == "t-stdin"


def test_validate_stdin_errors(cli):
    res = cli("validate", "-", stdin=b'{"apiVersion":')
    assert res.rc == 125, res
    assert re.match("^cellvisor: " + INVALID_JSON_RE, res.stderr), res


def test_run_spec_from_stdin(run_cell, base_spec):
    spec = base_spec(id="t-run-stdin", argv=["/bin/echo", "from stdin spec"])
    res = run_cell("-", stdin=json.dumps(spec).encode())
    assert res.rc == 0, res
    assert res.stdout == b"from stdin spec\n", res


def test_missing_spec_file(run_cell, tmp):
    res = run_cell(str(tmp / "no-such-spec.json"))
    assert res.rc == 125, res
    assert "no-such-spec.json" in res.stderr, res
    assert res.events == []


def test_spec_path_is_a_directory(run_cell, tmp):
    res = run_cell(str(tmp))
    assert res.rc == 125, res
    assert res.stderr.startswith("cellvisor: "), res
    assert res.events == []
