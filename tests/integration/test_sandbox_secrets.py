"""File-delivered secrets in the sandbox (issue 3, deliverable 6; reliability.md I14, I15):
one file per ref under /run/secrets on a tmpfs private to the cell, mode 0400, owned by the
workload's user, read-only, gone with the cell, and the value in no event, log or output."""

import hashlib
import json
import os

import pytest

from conftest import COMPLETED, DESTROYED, REVOKED, STARTED, SUMMARY

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")
SECRET = "s3cr3t-Sandbox-Value-9d41c7"
OTHER = "other-Sandbox-Secret-53aa"

PROBE = r"""
import errno, hashlib, json, os, stat
out = {"env": sorted(k for k in os.environ), "files": {}}
for name in sorted(os.listdir("/run/secrets")):
    p = "/run/secrets/" + name
    st = os.lstat(p)
    out["files"][name] = {"mode": oct(stat.S_IMODE(st.st_mode)), "mine": st.st_uid == os.getuid(),
                          "reg": stat.S_ISREG(st.st_mode),
                          "sha": hashlib.sha256(open(p, "rb").read()).hexdigest()}
try:
    open("/run/secrets/new", "w")
    out["write"] = "ok"
except OSError as e:
    out["write"] = errno.errorcode[e.errno]
try:
    os.chmod("/run/secrets/db-password", 0o644)
    out["chmod"] = "ok"
except OSError as e:
    out["chmod"] = errno.errorcode[e.errno]
mi = [l.split() for l in open("/proc/self/mountinfo")]
out["mount"] = [(l[4], l[5], l[l.index("-") + 1]) for l in mi if l[4] == "/run/secrets"]
print(json.dumps(out))
"""


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def broker_env(tmp):
    (tmp / "db").write_text(SECRET + "\n")
    (tmp / "api").write_text(OTHER)
    return {"CELLOS_BROKER": "file",
            "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db"),
            "CELLOS_SECRET_FILE_API_TOKEN": str(tmp / "api")}


def host_has_value(value):
    """Search the host's tmpfs-like places for the value (never written to disk either)."""
    needle = value.encode()
    for root in ("/tmp", "/run", "/dev/shm", "/var/tmp"):
        for dirpath, dirnames, filenames in os.walk(root):
            for f in filenames:
                p = os.path.join(dirpath, f)
                try:
                    if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) > 1 << 20:
                        continue
                    with open(p, "rb") as fh:
                        if needle in fh.read():
                            return p
                except OSError:
                    continue
    return None


def test_file_delivery(run_cell, base_spec, tmp):
    env = broker_env(tmp)
    spec = base_spec(id="t-sbsecret", secretRefs=["db-password", "api-token"],
                     secretDelivery="file", argv=[PY, "-I", "-S", "-c", PROBE])
    res = run_cell(spec, args=SB, env=env)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    files = got["files"]
    assert set(files) == {"db-password", "api-token"}, got
    assert files["db-password"]["sha"] == sha(SECRET), got  # trailing newline stripped
    assert files["api-token"]["sha"] == sha(OTHER), got
    for f in files.values():
        assert f == {**f, "mode": "0o400", "mine": True, "reg": True}, got
    assert got["write"] in ("EROFS", "EACCES"), got
    assert got["chmod"] == "EROFS", got
    assert len(got["mount"]) == 1 and got["mount"][0][2] == "tmpfs", got
    assert got["mount"][0][1].startswith("ro,"), got
    # Delivered as files only: no variable named after the refs.
    assert "DB_PASSWORD" not in got["env"] and "API_TOKEN" not in got["env"], got


def test_secret_value_appears_nowhere_and_is_gone_afterwards(run_cell, base_spec, tmp):
    env = broker_env(tmp)
    unique = "uniq-" + os.urandom(12).hex()  # only this run's broker file ever held it
    (tmp / "db").write_text(unique)
    script = ("import sys; v = open('/run/secrets/db-password').read();"
              " print('length', len(v)); sys.stderr.write('checked\\n')")
    spec = base_spec(id="t-sbsecret2", secretRefs=["db-password", "api-token"],
                     secretDelivery="file", argv=[PY, "-I", "-S", "-c", script])
    res = run_cell(spec, args=SB + ("--events", str(tmp / "ev.jsonl")), env=env, events=None)
    assert res.rc == 0, res
    assert res.stdout.strip() == b"length %d" % len(unique), res
    events = (tmp / "ev.jsonl").read_text()
    for v in (unique, OTHER):
        assert v not in events and v not in res.stderr and v.encode() not in res.stdout
    types = [json.loads(l)["type"] for l in events.splitlines()]
    # Revoked once the backend destroyed the cell (its secrets tmpfs with it), as for env.
    assert types == [STARTED, COMPLETED, SUMMARY, REVOKED, DESTROYED], types
    # Nothing of it on the host: no file holds the value, no mount is left behind.
    os.unlink(tmp / "db")
    os.unlink(tmp / "api")
    assert host_has_value(unique) is None
    assert "/run/secrets" not in open("/proc/self/mountinfo").read()


def test_secret_in_a_failing_exec_message_is_not_shown(run_cell, base_spec, tmp):
    env = broker_env(tmp)
    spec = base_spec(id="t-sbsecret3", secretRefs=["db-password"], secretDelivery="file",
                     argv=["/no/such/" + "prog"])
    res = run_cell(spec, args=SB, env=env)
    assert res.rc == 127, res
    assert SECRET not in res.events_raw and SECRET not in res.stderr


def test_env_delivery_still_works(run_cell, base_spec, tmp):
    env = broker_env(tmp)
    script = ("import hashlib, os; print(hashlib.sha256(os.environ['DB_PASSWORD'].encode())"
              ".hexdigest(), os.path.exists('/run/secrets'))")
    spec = base_spec(id="t-sbsecret4", secretRefs=["db-password"], secretDelivery="env",
                     argv=[PY, "-I", "-S", "-c", script])
    res = run_cell(spec, args=SB, env=env)
    assert res.rc == 0, res
    assert res.stdout.split() == [sha(SECRET).encode(), b"False"], res


@pytest.mark.parametrize("backend", ["sandbox", "host"])
def test_secret_in_an_export_failure_is_redacted_everywhere(run_cell, base_spec, tmp, backend):
    """DESIGN §3: a secret's value never appears in an event, a log line or an error message,
    including cellvisor's own warnings (here: an export that fails, named after the value)."""
    env = broker_env(tmp)
    spec = base_spec(id="t-sbsecret-export", secretRefs=["db-password"], secretDelivery="env",
                     argv=["/bin/true"],
                     export={"artifacts": [{"name": f"n-{SECRET}", "path": f"/tmp/{SECRET}"}]})
    res = run_cell(spec, args=("--backend", backend, "--export-dir", str(tmp / "out")), env=env)
    assert res.rc == 0, res
    assert "export" in res.stderr and "[REDACTED]" in res.stderr, res
    assert SECRET not in res.stderr and SECRET not in res.events_raw, res


def test_file_secrets_with_the_hosts_root_as_the_view(run_cell, base_spec, tmp):
    """readOnly ["/"] shows the host's root; the host has no /run/secrets to mount on and
    nothing is created in a host tree: the cell gets a /run tmpfs of its own for them."""
    env = broker_env(tmp)
    script = ("import json, os; v = open('/run/secrets/db-password').read();"
              " mi = [l.split()[4] for l in open('/proc/self/mountinfo')];"
              " print(json.dumps({'len': len(v), 'run': '/run' in mi,"
              " 'usr': os.path.isdir('/usr/bin')}))")
    spec = base_spec(id="t-sbsecret-hostroot", secretRefs=["db-password"],
                     secretDelivery="file", argv=[PY, "-I", "-S", "-c", script],
                     filesystem={"readOnly": ["/"]})
    res = run_cell(spec, args=SB, env=env)
    assert res.rc == 0, res
    assert json.loads(res.stdout) == {"len": len(SECRET), "run": True, "usr": True}, res
    assert not os.path.exists("/run/secrets/db-password")
