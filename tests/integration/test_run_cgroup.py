"""A cell is a cgroup: the workload lives in its own leaf `cellvisor-<cellId>-<runId[:8]>`,
which is gone after the run; memoryMaxBytes and pidsMax are enforced and reported."""

import errno
import json
import os
import random

import pytest

from conftest import COMPLETED, STARTED

CG = "/sys/fs/cgroup"
PY = "/usr/bin/python3"


def v2_root():
    if os.path.exists(f"{CG}/cgroup.controllers"):
        return CG
    return f"{CG}/unified"


def cgroup_dirs(proc_cgroup_text, leaf):
    """Directories of every hierarchy line whose path ends in `leaf`."""
    dirs = []
    for line in proc_cgroup_text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if path.rstrip("/").rsplit("/", 1)[-1] != leaf:
            continue
        if ctrls == "":
            mount = v2_root()
        else:
            mount = f"{CG}/{ctrls.replace('name=', '')}"
        dirs.append((ctrls, path, mount + path))
    return dirs


def leaf_name(res, cell_id):
    return f"cellvisor-{cell_id}-{res.event(STARTED)['data']['runId'][:8]}"


def test_workload_runs_in_its_own_cgroup_which_is_removed(run_cell, base_spec):
    res = run_cell(base_spec(id="t-cgroup", argv=["/bin/cat", "/proc/self/cgroup"]))
    assert res.rc == 0, res
    text = res.stdout.decode()
    leaf = leaf_name(res, "t-cgroup")
    dirs = cgroup_dirs(text, leaf)
    assert dirs, f"no hierarchy puts the workload in {leaf}:\n{text}"
    # The v2 tree (hybrid: unified) tracks the cell when it is writable.
    if os.access(v2_root(), os.W_OK):
        assert any(c == "" for c, _, _ in dirs), f"not tracked in the v2 tree:\n{text}"
    for _, _, d in dirs:
        assert not os.path.exists(d), f"cgroup {d} left behind after the run"


MEMORY_LIMIT_PROBE = (
    "import os\n"
    "for line in open('/proc/self/cgroup'):\n"
    "    _, ctrls, path = line.rstrip('\\n').split(':', 2)\n"
    "    if ctrls == '':\n"
    "        files = ['/sys/fs/cgroup' + path + '/memory.max',\n"
    "                 '/sys/fs/cgroup/unified' + path + '/memory.max']\n"
    "    elif 'memory' in ctrls.split(','):\n"
    "        files = ['/sys/fs/cgroup/' + ctrls + path + '/memory.limit_in_bytes']\n"
    "    else:\n"
    "        continue\n"
    "    for f in files:\n"
    "        if os.path.exists(f):\n"
    "            print(open(f).read().strip())\n"
)


def test_memory_limit_is_visible_from_inside(run_cell, base_spec):
    spec = base_spec(id="t-memlimit", argv=[PY, "-I", "-S", "-c", MEMORY_LIMIT_PROBE],
                     limits={"memoryMaxBytes": 64 * 1024 * 1024})
    res = run_cell(spec)
    assert res.rc == 0, res
    assert str(64 * 1024 * 1024) in res.stdout.decode().split(), res


def test_memory_hog_is_oom_killed_and_reported(run_cell, base_spec):
    hog = (
        "import sys\n"
        "chunks = []\n"
        "for i in range(1024):\n"
        "    chunks.append(b'x' * (1 << 20))\n"
        "print('survived', len(chunks))\n"
    )
    spec = base_spec(id="t-oom", argv=[PY, "-I", "-S", "-c", hog],
                     limits={"memoryMaxBytes": 48 * 1024 * 1024})
    res = run_cell(spec, timeout=60)
    assert b"survived" not in res.stdout, res
    data = res.event(COMPLETED)["data"]
    assert data["oomKilled"] is True, data
    assert data["signal"] == "SIGKILL", data
    assert data["exitCode"] == 137, data
    assert res.rc == 137, res


def test_no_oom_without_pressure(run_cell, base_spec):
    code = "chunks = [b'x' * (1 << 20) for _ in range(8)]\nprint('ok')\n"
    spec = base_spec(id="t-nooom", argv=[PY, "-I", "-S", "-c", code],
                     limits={"memoryMaxBytes": 256 * 1024 * 1024})
    res = run_cell(spec)
    assert res.rc == 0, res
    assert res.stdout == b"ok\n"
    assert res.event(COMPLETED)["data"]["oomKilled"] is False


FORK_LOOP = (
    "import os, time, json\n"
    "kids, err = [], None\n"
    "for i in range(64):\n"
    "    try:\n"
    "        pid = os.fork()\n"
    "    except OSError as e:\n"
    "        err = e.errno\n"
    "        break\n"
    "    if pid == 0:\n"
    "        time.sleep(30)\n"
    "        os._exit(0)\n"
    "    kids.append(pid)\n"
    "for k in kids:\n"
    "    os.kill(k, 9)\n"
    "for k in kids:\n"
    "    os.waitpid(k, 0)\n"
    "print(json.dumps({'forked': len(kids), 'errno': err}))\n"
)


def test_pids_max_stops_a_fork_loop(run_cell, base_spec):
    spec = base_spec(id="t-pids", argv=[PY, "-I", "-S", "-c", FORK_LOOP],
                     limits={"pidsMax": 16})
    res = run_cell(spec, timeout=60)
    assert res.rc == 0, res
    out = json.loads(res.stdout)
    assert out["errno"] == errno.EAGAIN, out
    assert 1 <= out["forked"] <= 15, out


def test_fork_loop_without_pids_max_is_not_stopped(run_cell, base_spec):
    # The control for the test above: the same loop completes without the limit.
    res = run_cell(base_spec(id="t-nopids", argv=[PY, "-I", "-S", "-c", FORK_LOOP]), timeout=60)
    assert res.rc == 0, res
    assert json.loads(res.stdout) == {"forked": 64, "errno": None}


@pytest.fixture
def cgroup_parent():
    """A fresh parent cgroup path, created in the v2 tree and the v1 limit hierarchies."""
    name = "/cellvisor-test-%06d" % random.randrange(10**6)
    roots = [v2_root()] + [f"{CG}/{c}" for c in ("memory", "pids", "cpu")
                           if os.path.isdir(f"{CG}/{c}") and v2_root() != CG]
    made = []
    for root in roots:
        try:
            os.mkdir(root + name)
            made.append(root + name)
        except OSError:
            pass
    yield name
    for d in made + [r + name for r in roots]:
        try:
            os.rmdir(d)
        except OSError:
            pass


def test_cgroup_parent_is_honoured(run_cell, base_spec, cgroup_parent):
    res = run_cell(base_spec(id="t-parent", argv=["/bin/cat", "/proc/self/cgroup"]),
                   env={"CELLOS_CGROUP_PARENT": cgroup_parent})
    assert res.rc == 0, res
    leaf = leaf_name(res, "t-parent")
    dirs = cgroup_dirs(res.stdout.decode(), leaf)
    assert dirs, res
    for _, path, d in dirs:
        assert path == f"{cgroup_parent}/{leaf}", path
        assert not os.path.exists(d), d


DIR_MODES = (
    "import os\n"
    "for line in open('/proc/self/cgroup'):\n"
    "    _, ctrls, path = line.rstrip('\\n').split(':', 2)\n"
    "    if not path.rsplit('/', 1)[-1].startswith('cellvisor-'):\n"
    "        continue\n"
    "    root = '/sys/fs/cgroup/' + ctrls if ctrls else\\\n"
    "        ('/sys/fs/cgroup/unified' if os.path.isdir('/sys/fs/cgroup/unified') else\n"
    "         '/sys/fs/cgroup')\n"
    "    st = os.stat(root + path)\n"
    "    print(ctrls or 'v2', oct(st.st_mode & 0o7777), st.st_uid)\n"
)


def test_cell_directories_are_the_runners_and_closed_to_others(run_cell, base_spec):
    """0711, owned by the runner: no other user can open one (to flock it: see
    test_run_stale.py), while the files inside keep the kernel's modes."""
    spec = base_spec(id="t-cgmode", argv=[PY, "-I", "-S", "-c", DIR_MODES],
                     limits={"memoryMaxBytes": 64 << 20, "pidsMax": 64})
    res = run_cell(spec)
    assert res.rc == 0, res
    rows = [line.split() for line in res.stdout.decode().splitlines()]
    assert rows, res
    for kind, mode, uid in rows:
        assert (mode, uid) == ("0o711", "0"), (kind, mode, uid)


def test_a_run_user_workload_still_reads_its_own_limits(run_cell, base_spec):
    """Container-aware runtimes read memory.max by name: 0711 keeps that working."""
    spec = base_spec(id="t-cglimit-user", argv=[PY, "-I", "-S", "-c", MEMORY_LIMIT_PROBE],
                     limits={"memoryMaxBytes": 64 * 1024 * 1024}, user="64123")
    res = run_cell(spec)
    assert res.rc == 0, res
    assert str(64 * 1024 * 1024) in res.stdout.decode().split(), res
