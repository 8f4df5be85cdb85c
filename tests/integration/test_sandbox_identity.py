"""Who a sandbox cell is on the host, and what its grants let it write there (issue 7, items 1,
3 and 5; docs/sandbox.md "Identity", "Who owns what a cell writes", "Grant sources").

Each attack of the audit is reproduced as the workload would run it:
- a setuid-root helper (or a file with cap_dac_override) in a readWrite tree, rewritten
  through a MAP_SHARED mapping, which keeps S_ISUID / security.capability: refused now;
- readWrite: ["/"] (write access to /etc/passwd, /root...): refused under hardened;
- one cell's symlink, planted in its readWrite tree, used as another spec's grant source to
  reach a directory behind a 0700 root directory: refused now;
- every cell as the same host uid, so one cell's pipes shrank another's pipe buffers: each
  cell now has a host uid of its own, locked for as long as it runs.
"""

import fcntl
import json
import os
import shutil
import stat
import subprocess
import time
import uuid

import pytest

from conftest import DEGRADED, REJECTED, RW_OWNER, STARTED, cell_rw_dir, procs_with_marker

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")
POOL_FIRST, POOL_LAST = 2147418112, 2147483645  # uidpool.h
LOCK_DIR = "/run/cellvisor/uids"

# Rewrites the start of a file through a shared mapping, as the audit did; prints the outcome.
MMAP_REWRITE = r"""
import errno, mmap, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDWR)
    m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:8] = b"PWNED!!!"
    m.flush()
    print("rewritten")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def py(script, *args):
    return [PY, "-I", "-S", "-c", script, *args]


def rejected_reason(res):
    assert res.rc == 125, res
    assert STARTED not in res.types(), res
    return json.dumps(res.event(REJECTED)["data"])


def helper_copy(path, uid, gid, mode):
    shutil.copyfile("/bin/true", path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path.read_bytes()


def assert_unchanged(path, content, uid, mode):
    st = os.stat(path)
    assert path.read_bytes() == content, "the cell rewrote the privileged file"
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, mode), (st.st_uid, oct(st.st_mode))


# ------------------------------------------------ item 1: no privileged file, no host root

def test_setuid_root_helper_in_a_root_owned_tree_cannot_be_rewritten(run_cell, base_spec, tmp):
    d = tmp / "rootdir"
    d.mkdir(mode=0o700)
    helper = d / "helper"
    content = helper_copy(helper, 0, 0, 0o4755)
    res = run_cell(base_spec(id="t-sbid-suid0", argv=py(MMAP_REWRITE, str(helper)),
                             filesystem={"readWrite": [str(d)]}), args=SB)
    reason = rejected_reason(res)
    assert "authority.filesystem.readWrite[0]" in reason, reason
    assert f"{d} is owned by root" in reason and "chown" in reason, reason
    assert_unchanged(helper, content, 0, 0o4755)


def test_setuid_file_in_a_users_tree_is_refused_and_named(run_cell, base_spec, tmp):
    # The tree's owner is not root, so the cell would act as 4242 there: a setuid-4242
    # file it rewrote would hand 4242 to every host user who runs it.
    d = cell_rw_dir(tmp / "tree", 0o700, owner=4242)
    (d / "sub").mkdir()
    os.chown(d / "sub", 4242, 4242)
    helper = d / "sub" / "helper"
    content = helper_copy(helper, 4242, 4242, 0o4755)
    res = run_cell(base_spec(id="t-sbid-suid", argv=py(MMAP_REWRITE, str(helper)),
                             filesystem={"readWrite": [str(d)]}), args=SB)
    reason = rejected_reason(res)
    assert f"{helper} is a setuid file" in reason, reason
    assert_unchanged(helper, content, 4242, 0o4755)


def test_setgid_file_is_refused_too(run_cell, base_spec, tmp):
    d = cell_rw_dir(tmp / "tree", 0o755, owner=4242)
    helper = d / "helper"
    helper_copy(helper, 4242, 4242, 0o2755)
    res = run_cell(base_spec(id="t-sbid-sgid", argv=py(MMAP_REWRITE, str(helper)),
                             filesystem={"readWrite": [str(d)]}), args=SB)
    assert f"{helper} is a setgid file" in rejected_reason(res)


@pytest.mark.skipif(not shutil.which("setcap"), reason="setcap (libcap2-bin) is not installed")
def test_file_with_capabilities_is_refused(run_cell, base_spec, tmp):
    d = cell_rw_dir(tmp / "tree", 0o700, owner=4242)
    helper = d / "helper"
    content = helper_copy(helper, 4242, 4242, 0o755)
    subprocess.run(["setcap", "cap_dac_override=ep", str(helper)], check=True)
    res = run_cell(base_spec(id="t-sbid-caps", argv=py(MMAP_REWRITE, str(helper)),
                             filesystem={"readWrite": [str(d)]}), args=SB)
    assert f"{helper} is a file with capabilities" in rejected_reason(res)
    assert_unchanged(helper, content, 4242, 0o755)
    got = subprocess.run(["getcap", str(helper)], capture_output=True, text=True).stdout
    assert "cap_dac_override" in got, got


def test_readwrite_root_is_refused_under_hardened(run_cell, base_spec, tmp):
    res = run_cell(base_spec(id="t-sbid-rwroot", argv=["/bin/true"],
                             filesystem={"readWrite": ["/"]}), args=SB)
    reason = rejected_reason(res)
    assert "authority.filesystem.readWrite[0]" in reason and "/ is owned by root" in reason, \
        reason


def test_readwrite_root_under_portable_writes_nothing_of_roots(run_cell, base_spec, tmp):
    # Bound without idmap: the cell is an unprivileged host uid of its own, and root's
    # directories (here a 0755 one of the test's, standing for /etc or /usr/bin) stay root's.
    d = tmp / "roots"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    res = run_cell(base_spec(id="t-sbid-rwroot-p", filesystem={"readWrite": ["/"]},
                             argv=["/bin/sh", "-c", f"echo x > {d}/f; echo rc=$?"]),
                   args=SB, env={"CELLOS_DEPLOYMENT_PROFILE": "portable"})
    assert res.rc == 0, res
    assert res.event(DEGRADED)["data"]["item"] == "authority.filesystem.readWrite[0]", res
    assert b"rc=2" in res.stdout, res
    assert not (d / "f").exists()


def test_past_the_walk_cap_a_tree_is_refused(run_cell, base_spec, tmp):
    d = cell_rw_dir(tmp / "big", 0o755, owner=4242)
    for i in range(65 * 1024 + 1):  # SB_VIEW_SCAN_MAX_ENTRIES is 65536
        os.close(os.open(d / str(i), os.O_CREAT | os.O_WRONLY, 0o644))
    res = run_cell(base_spec(id="t-sbid-big", argv=["/bin/true"],
                             filesystem={"readWrite": [str(d)]}), args=SB)
    assert "over 65536 entries" in rejected_reason(res)


# --------------------------------------------------- item 3: a stable owner across runs

def test_files_of_two_runs_have_one_owner_and_the_second_run_can_change_the_first(
        run_cell, base_spec, tmp):
    d = cell_rw_dir(tmp / "shared", 0o755)
    for i in (1, 2):
        script = f"echo run{i} > {d}/f{i}" + (f" && echo again >> {d}/f1" if i == 2 else "")
        res = run_cell(base_spec(id=f"t-sbid-own{i}", argv=["/bin/sh", "-c", script],
                                 filesystem={"readWrite": [str(d)]}), args=SB)
        assert res.rc == 0, res
    owners = {(os.stat(d / f).st_uid, os.stat(d / f).st_gid) for f in ("f1", "f2")}
    assert owners == {(RW_OWNER, RW_OWNER)}, owners
    assert (d / "f1").read_text() == "run1\nagain\n"


# -------------------------------------------------------- item 5: a host uid per cell

def host_ids(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_two_concurrent_cells_have_distinct_host_uids_from_the_pool(start_cell, base_spec,
                                                                    marker):
    runs = [start_cell(base_spec(id=f"t-sbid-uid{i}", argv=["sleep", marker]), args=SB)
            for i in (1, 2)]
    try:
        deadline = time.monotonic() + 20
        while len(pids := procs_with_marker(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids) == 2, pids
        ids = [host_ids(p) for p in pids]
        uids = {u for u, _ in ids}
        assert len(uids) == 2, ids
        for uid, gid in ids:
            assert POOL_FIRST <= uid <= POOL_LAST and gid == uid, ids
            # The id is locked while the cell runs: a third taker cannot have it.
            with open(os.path.join(LOCK_DIR, str(uid))) as f:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        for r in runs:
            r.proc.terminate()
    for r in runs:
        r.wait(20)
    for uid in uids:  # released at destroy
        with open(os.path.join(LOCK_DIR, str(uid))) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def procs_with_marker(marker):
    from conftest import procs_with_marker
    return procs_with_marker(marker)


PIPE_HOG = r"""
import os, sys, time
pipes = [os.pipe() for _ in range(1100)]   # 1100 x 16 pages > pipe-user-pages-soft (16384)
open(sys.argv[1], "w").write("ready")
time.sleep(30)
"""
PIPE_SIZE = r"""
import fcntl, os
r, w = os.pipe()
print(fcntl.fcntl(w, 1032))  # F_GETPIPE_SZ
"""


def test_one_cells_pipes_do_not_shrink_anothers(start_cell, run_cell, base_spec, tmp):
    with open("/proc/sys/fs/pipe-user-pages-soft") as f:
        soft = int(f.read())
    if soft == 0 or soft > 16384:
        pytest.skip(f"fs.pipe-user-pages-soft is {soft}")
    d = cell_rw_dir(tmp / "ready", 0o755)
    hog = start_cell(base_spec(id="t-sbid-hog", argv=py(PIPE_HOG, f"{d}/ready"),
                               limits={"nofile": 4096}, filesystem={"readWrite": [str(d)]}),
                     args=SB)
    try:
        deadline = time.monotonic() + 20
        while not (d / "ready").exists() and time.monotonic() < deadline:
            assert hog.proc.poll() is None, hog.wait()
            time.sleep(0.05)
        assert (d / "ready").exists()
        res = run_cell(base_spec(id="t-sbid-pipe", argv=py(PIPE_SIZE)), args=SB)
        assert res.rc == 0, res
        assert int(res.stdout) == 65536, res  # 8192 when the two cells shared a host uid
    finally:
        hog.proc.terminate()
        hog.wait(20)


# ------------------------------------------- item 4 (issue item 3): grant sources

def test_a_symlink_planted_by_a_cell_is_not_followed_as_another_specs_source(
        run_cell, base_spec, tmp):
    private = tmp / "rootonly"
    (private / "inner").mkdir(parents=True)
    os.chmod(private, 0o700)
    os.chmod(private / "inner", 0o755)
    (private / "inner" / "f").write_text("root only\n")
    os.chmod(private / "inner" / "f", 0o644)
    rw = cell_rw_dir(tmp / "rw", 0o755)
    plant = run_cell(base_spec(id="t-sbid-plant", filesystem={"readWrite": [str(rw)]},
                               argv=["/bin/ln", "-s", str(private / "inner"), f"{rw}/link"]),
                     args=SB)
    assert plant.rc == 0, plant
    assert os.path.islink(rw / "link")
    for kind in ("readOnly", "readWrite"):
        res = run_cell(base_spec(id="t-sbid-use", filesystem={kind: [f"{rw}/link"]},
                                 argv=["/bin/cat", f"{rw}/link/f"]), args=SB)
        assert b"root only" not in res.stdout, res
        reason = rejected_reason(res)
        assert f"spec.authority.filesystem.{kind}[0]" in reason, reason
        assert f"{rw}/link: a symlink, not followed" in reason, reason


@pytest.fixture
def run_dir():
    """A directory in /run (root's, 0755 here): a trusted owner chain above it."""
    st = os.stat("/run")
    if st.st_uid != 0 or st.st_mode & 0o022:
        pytest.skip("/run is not root's alone on this host")
    d = os.path.join("/run", f"cvtest-{uuid.uuid4().hex[:8]}")
    os.mkdir(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def test_roots_own_symlinks_in_root_only_directories_are_followed(run_cell, base_spec,
                                                                  run_dir):
    real = os.path.join(run_dir, "real")
    os.mkdir(real, 0o755)
    with open(os.path.join(real, "f"), "w") as f:
        f.write("through a trusted link\n")
    os.symlink("real", os.path.join(run_dir, "link"))
    res = run_cell(base_spec(id="t-sbid-trusted", filesystem={"readOnly": [f"{run_dir}/link"]},
                             argv=["/bin/cat", f"{run_dir}/link/f"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout == b"through a trusted link\n"
    # The same link in a directory others may write is refused.
    os.chmod(run_dir, 0o777)
    res = run_cell(base_spec(id="t-sbid-trusted", filesystem={"readOnly": [f"{run_dir}/link"]},
                             argv=["/bin/cat", f"{run_dir}/link/f"]), args=SB)
    assert f"{run_dir}/link: a symlink, not followed" in rejected_reason(res)
