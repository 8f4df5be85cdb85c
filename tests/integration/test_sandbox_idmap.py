"""readWrite trees are idmapped to the cell (docs/sandbox.md, "Who owns what a cell writes").

The workload runs as 65534 in the cell and as a host uid of its own outside. A declared
readWrite directory is mounted idmapped so that the workload acts as the directory's owner
and group, which must not be root's: it can write there, and what it writes belongs to that
owner on the host. Files of other owners keep their permissions (they show as nobody and the
kernel refuses to write them through the mount). A root-owned directory is refused under
`hardened` and bound as it is (no idmap) under `portable`.
"""

import json
import os

from conftest import COMPLETED, DEGRADED, REJECTED, STARTED, cell_rw_dir


def sandbox_run(run_cell, base_spec, directory, script, env=None, **kw):
    spec = base_spec(id="t-idmap", argv=["/bin/sh", "-c", script],
                     filesystem={"readWrite": [str(directory)]}, **kw)
    return run_cell(spec, args=("--backend", "sandbox"), env=env)


def test_private_dir_of_a_user_becomes_writable_and_files_stay_that_users(run_cell, base_spec,
                                                                         tmp):
    d = cell_rw_dir(tmp / "private", 0o700, owner=4242)
    res = sandbox_run(run_cell, base_spec, d,
                      f"id -u; stat -c '%u %a' {d}; echo data > {d}/out && cat {d}/out")
    assert res.rc == 0, res
    uid, owner, out = res.stdout.decode().split("\n")[:3]
    assert uid == "65534"
    assert owner == "65534 700"  # the owner, as the cell sees it: itself
    assert out == "data"
    st = os.stat(d / "out")
    assert (st.st_uid, st.st_gid) == (4242, 4242)  # on the host: the directory's owner
    assert (d / "out").read_text() == "data\n"


def test_root_owned_dir_is_refused_under_hardened(run_cell, base_spec, tmp):
    d = tmp / "rootdir"
    d.mkdir(mode=0o700)
    res = sandbox_run(run_cell, base_spec, d, f"echo x > {d}/f")
    assert res.rc == 125, res
    assert STARTED not in res.types(), res
    reason = json.dumps(res.event(REJECTED)["data"])
    assert "authority.filesystem.readWrite[0]" in reason, reason
    assert str(d) in reason and "owned by root" in reason and "chown" in reason, reason
    assert not (d / "f").exists()


def test_root_owned_world_writable_dir_is_refused_too(run_cell, base_spec, tmp):
    d = tmp / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    res = sandbox_run(run_cell, base_spec, d, f"echo x > {d}/mine")
    assert res.rc == 125, res
    assert "owned by root" in json.dumps(res.event(REJECTED)["data"]), res


def test_root_owned_dir_under_portable_is_bound_as_is(run_cell, base_spec, tmp):
    d = tmp / "rootdir"
    d.mkdir()
    os.chmod(d, 0o755)
    res = sandbox_run(run_cell, base_spec, d, f"echo x > {d}/f; echo rc=$?",
                      env={"CELLOS_DEPLOYMENT_PROFILE": "portable"})
    assert res.rc == 0, res
    degraded = res.event(DEGRADED)["data"]
    assert degraded["item"] == "authority.filesystem.readWrite[0]", degraded
    assert b"rc=2" in res.stdout, res  # no idmap: the cell is nobody there, root's 0755 stays
    assert not (d / "f").exists()


def test_idmap_does_not_open_other_users_files(run_cell, base_spec, tmp):
    d = cell_rw_dir(tmp / "mixed", 0o700, owner=4242)
    other = d / "other"
    other.write_text("secret\n")
    os.chown(other, 4243, 4243)
    os.chmod(other, 0o600)
    roots = d / "roots"
    roots.write_text("root's\n")
    os.chmod(roots, 0o666)  # world-writable, but root's: never written through the idmap
    res = sandbox_run(run_cell, base_spec, d,
                      f"cat {other}; echo rc=$?; echo more >> {roots}; echo rc=$?")
    assert res.rc == 0, res
    assert b"secret" not in res.stdout
    assert res.stdout.split(b"\n")[:2] == [b"rc=1", b"rc=2"], res
    assert roots.read_text() == "root's\n"
    done = res.event(COMPLETED)
    assert done["data"]["exitCode"] == 0
