"""CELLOS_CGROUP_PARENT as a cgroup path and as a directory of the mounted hierarchy."""

import os
import uuid

import pytest

from conftest import V2_ROOT as V2

pytestmark = pytest.mark.skipif(V2 is None, reason="no cgroup v2 tree")


@pytest.fixture
def parent(v2_parent):
    return v2_parent


@pytest.mark.parametrize("form", ["cgroup path", "hierarchy directory"])
def test_cell_is_created_under_the_parent(run_cell, base_spec, parent, form):
    name, path = parent
    value = f"/{name}" if form == "cgroup path" else path
    res = run_cell(base_spec(id="t-parent", argv=["/bin/sh", "-c", "grep '^0::' /proc/self/cgroup"]),
                   env={"CELLOS_CGROUP_PARENT": value})
    assert res.rc == 0, res
    run_id = res.events[0]["data"]["runId"]
    assert res.stdout.decode().strip() == f"0::/{name}/cellvisor-t-parent-{run_id[:8]}"
    assert not any(d.startswith("cellvisor-") for d in os.listdir(path))  # removed after the run


def test_a_parent_that_does_not_exist_is_refused(run_cell, base_spec):
    res = run_cell(base_spec(id="t-parent"), env={"CELLOS_CGROUP_PARENT": "/no-such-parent-x"})
    assert res.rc == 125, res
    assert "no-such-parent-x" in res.stderr


def test_an_unprivileged_runner_uses_a_delegated_parent(cellvisor_bin, write_spec, base_spec):
    """A parent delegated (chowned) to an unprivileged user in every hierarchy: that user's
    runner makes the cell there, with its memory limit, and probe says so."""
    import json
    import subprocess
    from conftest import make_env
    name = f"cvtest-deleg-{uuid.uuid4().hex[:8]}"
    dirs = [os.path.join("/sys/fs/cgroup", h, name) for h in ("unified", "pids", "memory")
            if os.path.isdir(os.path.join("/sys/fs/cgroup", h))]
    for d in dirs:
        os.mkdir(d)
        for root, subdirs, files in os.walk(d):
            for f in [root] + [os.path.join(root, x) for x in files]:
                os.chown(f, 65534, 65534)
    try:
        spec = json.dumps(base_spec(id="t-deleg", argv=["/bin/cat", "/proc/self/cgroup"],
                                    limits={"memoryMaxBytes": 64 << 20})).encode()
        env = make_env({"CELLOS_CGROUP_PARENT": f"/{name}"})
        drop = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        p = subprocess.run(drop + [str(cellvisor_bin), "run", "-"], env=env, input=spec,
                           capture_output=True, timeout=30, cwd="/")
        assert p.returncode == 0, p
        assert f"/{name}/cellvisor-t-deleg-" in p.stdout.decode(), p.stdout
        probe = subprocess.run(drop + [str(cellvisor_bin), "probe", "--json"], env=env,
                               capture_output=True, timeout=30)
        host = json.loads(probe.stdout.decode().splitlines()[0])
        assert host["cgroupLimits"] is True, host
    finally:
        for d in dirs:
            os.rmdir(d)
