"""readWrite paths the cell's user could not write are idmapped to it.

The workload runs as an unprivileged uid (65534 in the cell, a dedicated host uid outside). A
declared readWrite directory owned by root with mode 0700 would grant nothing; cellvisor
mounts it idmapped so the workload acts as its owner: it can write there, and what it writes
belongs to the directory's owner on the host. A directory the workload can already write
(e.g. mode 1777) is bound as is.
"""

import os

from conftest import COMPLETED


def sandbox_run(run_cell, base_spec, directory, script, **kw):
    spec = base_spec(id="t-idmap", argv=["/bin/sh", "-c", script],
                     filesystem={"readWrite": [str(directory)]}, **kw)
    return run_cell(spec, args=("--backend", "sandbox"))


def test_root_owned_private_dir_becomes_writable_and_files_stay_root_owned(run_cell, base_spec,
                                                                          tmp):
    d = tmp / "private"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    assert os.stat(d).st_uid == 0
    res = sandbox_run(run_cell, base_spec, d,
                      f"id -u; stat -c '%u %a' {d}; echo data > {d}/out && cat {d}/out")
    assert res.rc == 0, res
    uid, owner, out = res.stdout.decode().split("\n")[:3]
    assert uid == "65534"
    assert owner == "65534 700"  # the owner, as the cell sees it: itself
    assert out == "data"
    st = os.stat(d / "out")
    assert (st.st_uid, st.st_gid) == (0, 0)  # on the host: the directory's owner
    assert (d / "out").read_text() == "data\n"


def test_world_writable_dir_is_bound_as_is(run_cell, base_spec, tmp):
    d = tmp / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    res = sandbox_run(run_cell, base_spec, d, f"stat -c %u {d}; echo x > {d}/mine")
    assert res.rc == 0, res
    assert res.stdout.decode().split("\n")[0] == "65534"  # root shows as overflow: not mapped
    # Not idmapped: the file belongs to the cell's own host uid, not to the directory's owner.
    assert os.stat(d / "mine").st_uid not in (0,)


def test_idmap_does_not_open_other_users_files(run_cell, base_spec, tmp):
    d = tmp / "mixed"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    other = d / "other"
    other.write_text("secret\n")
    os.chown(other, 4242, 4242)
    os.chmod(other, 0o600)
    res = sandbox_run(run_cell, base_spec, d, f"cat {other}; echo rc=$?")
    assert res.rc == 0, res
    assert b"secret" not in res.stdout
    assert b"rc=1" in res.stdout
    done = res.event(COMPLETED)
    assert done["data"]["exitCode"] == 0
