"""Secrets from the file broker (DESIGN.md §3): env delivery, preparation failures answered
with a `rejected` event and exit 125, and the value never shown anywhere."""

import hashlib
import json
import os

import pytest

from conftest import (
    COMPLETED,
    DESTROYED,
    REJECTED,
    REVOKED,
    STARTED,
    SUMMARY,
    assert_envelope,
)

SECRET = "s3cr3t-Value-7f1c9a2e"
OTHER = "another-Secret-42b8"

ENV_HASH_PROBE = (
    "import os, json, hashlib\n"
    "print(json.dumps({k: hashlib.sha256(v.encode()).hexdigest()"
    " for k, v in os.environ.items()}))\n"
)


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def assert_value_nowhere(res, *values):
    for v in values:
        assert v not in res.stderr, res
        assert v.encode() not in res.stdout, res
        assert v not in res.events_raw, res


def secret_spec(base_spec, tmp, refs=("db-password",), argv=None, **kw):
    return base_spec(
        id="t-secret",
        secretRefs=list(refs),
        argv=argv or ["/usr/bin/python3", "-I", "-S", "-c", ENV_HASH_PROBE],
        **kw,
    )


def test_env_delivery_from_file_broker(run_cell, base_spec, tmp):
    (tmp / "db").write_text(SECRET + "\n")  # the trailing newline is stripped
    (tmp / "api").write_text(OTHER)
    spec = secret_spec(base_spec, tmp, refs=("db-password", "api-token"), env={"LANG": "C.UTF-8"})
    res = run_cell(spec, env={
        "CELLOS_BROKER": "file",
        "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db"),
        "CELLOS_SECRET_FILE_API_TOKEN": str(tmp / "api"),
    })
    assert res.rc == 0, res
    seen = json.loads(res.stdout)
    assert seen == {"DB_PASSWORD": sha(SECRET), "API_TOKEN": sha(OTHER), "LANG": sha("C.UTF-8")}
    assert res.types() == [STARTED, COMPLETED, SUMMARY, REVOKED, DESTROYED], res
    assert res.event(SUMMARY)["data"]["secretDeliveryMode"] == "env"
    revoked = res.event(REVOKED)
    assert revoked["data"]["cellId"] == "t-secret"
    assert revoked["data"]["runId"] == res.event(STARTED)["data"]["runId"]
    assert_value_nowhere(res, SECRET, OTHER)


def test_secret_value_not_in_output_of_a_failing_run(run_cell, base_spec, tmp):
    (tmp / "db").write_text(SECRET)
    spec = secret_spec(base_spec, tmp, argv=["/bin/sh", "-c", "exit 9"], timeoutMs=5000)
    res = run_cell(spec, env={"CELLOS_BROKER": "file",
                              "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db")})
    assert res.rc == 9, res
    assert_value_nowhere(res, SECRET)


def assert_rejected(res, tmp, needles):
    assert res.rc == 125, res
    assert res.types() == [REJECTED], res
    ev = res.events[0]
    assert_envelope(ev, "t-secret")
    assert ev["data"]["cellId"] == "t-secret" and ev["data"]["specId"] == "t-secret", ev
    assert isinstance(ev["data"]["reason"], str) and ev["data"]["reason"], ev
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res
    for needle in needles:
        assert needle in lines[0], (needle, res)
    assert not (tmp / "ran").exists(), "the workload must not run"


def touching(base_spec, tmp):
    return secret_spec(base_spec, tmp, argv=["/bin/touch", str(tmp / "ran")])


def test_missing_secret_variable_is_rejected(run_cell, base_spec, tmp):
    res = run_cell(touching(base_spec, tmp), env={"CELLOS_BROKER": "file"})
    assert_rejected(res, tmp, ["db-password", "CELLOS_SECRET_FILE_DB_PASSWORD"])


def test_missing_secret_file_is_rejected(run_cell, base_spec, tmp):
    res = run_cell(touching(base_spec, tmp), env={
        "CELLOS_BROKER": "file",
        "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "absent"),
    })
    assert_rejected(res, tmp, ["db-password", "CELLOS_SECRET_FILE_DB_PASSWORD"])


def test_secret_file_that_is_a_symlink_is_rejected(run_cell, base_spec, tmp):
    (tmp / "real").write_text(SECRET + "\n")
    os.symlink(tmp / "real", tmp / "link")
    res = run_cell(touching(base_spec, tmp), env={
        "CELLOS_BROKER": "file",
        "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "link"),
    })
    assert_rejected(res, tmp, ["db-password", "CELLOS_SECRET_FILE_DB_PASSWORD"])
    assert_value_nowhere(res, SECRET)


def test_second_secret_missing_rejects_whole_cell(run_cell, base_spec, tmp):
    (tmp / "db").write_text(SECRET)
    spec = secret_spec(base_spec, tmp, refs=("db-password", "api-token"),
                       argv=["/bin/touch", str(tmp / "ran")])
    res = run_cell(spec, env={"CELLOS_BROKER": "file",
                              "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db")})
    assert_rejected(res, tmp, ["api-token", "CELLOS_SECRET_FILE_API_TOKEN"])
    assert_value_nowhere(res, SECRET)


@pytest.mark.parametrize("broker", ["vault-nope", "FILE2"])
def test_unknown_broker_is_rejected(run_cell, base_spec, tmp, broker):
    (tmp / "db").write_text(SECRET)
    res = run_cell(touching(base_spec, tmp), env={
        "CELLOS_BROKER": broker,
        "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db"),
    })
    assert_rejected(res, tmp, [broker])
    assert_value_nowhere(res, SECRET)


# ------------------------------------------------------ issue 7 item 7: swapped parent dirs
#
# O_NOFOLLOW guards only the last component: a user who can write a directory on the way to
# a secret file could swap it for a symlink (a race in the audit; planted beforehand here,
# which is the race won) and make the root runner hand a root-only file to the workload.

USER = 4242  # the hostile local user


def assert_secret_file_refused(run_cell, base_spec, tmp, path, *needles):
    res = run_cell(touching(base_spec, tmp), env={"CELLOS_BROKER": "file",
                                                   "CELLOS_SECRET_FILE_DB_PASSWORD": str(path)})
    assert_rejected(res, tmp, ["db-password", "CELLOS_SECRET_FILE_DB_PASSWORD", *needles])
    assert_value_nowhere(res, SECRET)


def root_only_file(tmp, text):
    private = tmp / "private"
    private.mkdir(mode=0o700)
    (private / "secret").write_text(text)
    os.chmod(private / "secret", 0o600)
    return private


def test_secret_through_a_user_writable_parent_swapped_for_a_symlink_is_refused(
        run_cell, base_spec, tmp):
    private = root_only_file(tmp, SECRET)
    user_dir = tmp / "userdir"
    user_dir.mkdir()
    os.chown(user_dir, USER, USER)
    (user_dir / "sub").symlink_to(private)  # was a directory holding the user's secret
    os.lchown(user_dir / "sub", USER, USER)
    assert_secret_file_refused(run_cell, base_spec, tmp, str(user_dir / "sub" / "secret"),
                               f"{user_dir} is owned by uid {USER}")


def test_secret_through_a_symlinked_parent_is_refused_whoever_owns_it(run_cell, base_spec, tmp):
    private = root_only_file(tmp, SECRET)
    (tmp / "keys").symlink_to(private)
    assert_secret_file_refused(run_cell, base_spec, tmp, str(tmp / "keys" / "secret"),
                               f"{tmp / 'keys'} is a symlink, which is refused")


def test_secret_hard_linked_into_a_sticky_directory_is_refused(run_cell, base_spec, tmp):
    # A sticky world-writable directory (like /tmp): anyone can make a hard link there to a
    # root-only file on the same file system (fs.protected_hardlinks is not relied on).
    private = root_only_file(tmp, SECRET)
    shared = tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    os.link(private / "secret", shared / "db")
    assert_secret_file_refused(run_cell, base_spec, tmp, str(shared / "db"),
                               "has 2 hard links")


def test_secret_of_another_user_in_a_sticky_directory_is_refused(run_cell, base_spec, tmp):
    shared = tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "db").write_text(SECRET)
    os.chown(shared / "db", USER, USER)
    assert_secret_file_refused(run_cell, base_spec, tmp, str(shared / "db"),
                               f"is owned by uid {USER} in a directory others can write")


def test_secret_in_a_world_writable_directory_is_refused(run_cell, base_spec, tmp):
    shared = tmp / "open"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "db").write_text(SECRET)
    assert_secret_file_refused(run_cell, base_spec, tmp, str(shared / "db"),
                               f"{shared} is writable by group or others (mode 0777) and not "
                               "sticky")


def test_secret_by_a_relative_path_and_from_a_sticky_directory(run_cell, base_spec, tmp):
    # What the rule accepts: a relative path from a working directory root owns, and a file
    # the runner owns in a sticky directory.
    shared = tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "db").write_text(SECRET + "\n")
    (tmp / "api").write_text(OTHER)
    spec = secret_spec(base_spec, tmp, refs=("db-password", "api-token"))
    res = run_cell(spec, env={"CELLOS_BROKER": "file",
                              "CELLOS_SECRET_FILE_DB_PASSWORD": str(shared / "db"),
                              "CELLOS_SECRET_FILE_API_TOKEN": "api"}, cwd=tmp)
    assert res.rc == 0, res
    seen = json.loads(res.stdout)
    assert (seen["DB_PASSWORD"], seen["API_TOKEN"]) == (sha(SECRET), sha(OTHER)), seen
    assert_value_nowhere(res, SECRET, OTHER)
