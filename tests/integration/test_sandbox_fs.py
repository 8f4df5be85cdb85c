"""The sandbox's filesystem view (issue 3, deliverable 2): a read-only default view, a fresh
/proc of the cell's own, a minimal /dev, tmpfs /tmp, and authority.filesystem's readOnly,
readWrite and tmpfs; mount targets resolved without following symlinks; the host's /proc
never visible. Everything is checked the way a user would: errno of a write, a listing, a
file on the host afterwards."""

import json
import os
import stat
import subprocess

import pytest

from conftest import COMPLETED, REJECTED, RW_OWNER, STARTED, cell_rw_dir, make_env

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")

# Writes each path and prints {path: "ok" | errno name}.
WRITE_PROBE = r"""
import errno, json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"x")
        os.close(fd)
        out[p] = "ok"
    except OSError as e:
        out[p] = errno.errorcode[e.errno]
print(json.dumps(out))
"""


def sb_spec(base_spec, **kw):
    kw.setdefault("id", "t-sbfs")
    return base_spec(**kw)


def probe_writes(run_cell, base_spec, paths, **kw):
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", WRITE_PROBE, *paths], **kw),
                   args=SB)
    assert res.rc == 0, res
    return json.loads(res.stdout)


def rw_dir(tmp, name="rw", mode=0o755):
    return cell_rw_dir(tmp / name, mode)  # owned by RW_OWNER: the cell writes as that owner


def test_default_view_is_read_only_except_tmp(run_cell, base_spec):
    got = probe_writes(run_cell, base_spec,
                       ["/x", "/usr/x", "/etc/x", "/bin/x", "/tmp/x", "/dev/x", "/dev/shm/x"])
    assert got == {"/x": "EROFS", "/usr/x": "EROFS", "/etc/x": "EROFS", "/bin/x": "EROFS",
                   "/tmp/x": "ok", "/dev/x": "EROFS", "/dev/shm/x": "ok"}, got


def test_default_view_shows_the_system_but_not_the_host(run_cell, base_spec):
    script = ("import json, os; print(json.dumps({'root': sorted(os.listdir('/')),"
              " 'binsh': os.access('/bin/sh', os.X_OK),"
              " 'passwd': open('/etc/passwd').read().startswith('root:'),"
              " 'bin': os.readlink('/bin') if os.path.islink('/bin') else None}))")
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script]), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert got["binsh"] and got["passwd"], got
    for hidden in ("root", "home", "work", "var", "srv", "opt", "mnt", "boot"):
        assert hidden not in got["root"], got
    for shown in ("usr", "etc", "proc", "dev", "tmp"):
        assert shown in got["root"], got
    if os.path.islink("/bin"):  # merged /usr: the link is recreated, not bound
        assert got["bin"] == os.readlink("/bin"), got


def test_write_outside_readwrite_fails_with_erofs(run_cell, base_spec, tmp):
    ro = tmp / "ro"
    ro.mkdir()
    os.chmod(ro, 0o777)  # the mount, not the mode, must refuse
    rw = rw_dir(tmp)
    got = probe_writes(run_cell, base_spec, [f"{ro}/f", f"{rw}/f", "/usr/f"],
                       filesystem={"readOnly": [str(ro)], "readWrite": [str(rw)]})
    assert got == {f"{ro}/f": "EROFS", f"{rw}/f": "ok", "/usr/f": "EROFS"}, got
    assert not (ro / "f").exists()
    # What the cell wrote is on the host, owned by the directory's owner (idmapped mount).
    st = os.stat(rw / "f")
    assert (rw / "f").read_bytes() == b"x"
    assert (st.st_uid, st.st_gid) == (RW_OWNER, RW_OWNER), st


def test_declared_tmpfs_is_writable_and_leaves_nothing_on_the_host(run_cell, base_spec, tmp):
    target = tmp / "scratch"
    target.mkdir()
    got = probe_writes(run_cell, base_spec, [f"{target}/f"], filesystem={"tmpfs": [str(target)]})
    assert got == {f"{target}/f": "ok"}, got
    assert list(target.iterdir()) == []


def test_readonly_file_and_nested_readwrite(run_cell, base_spec, tmp):
    top = tmp / "top"
    cell_rw_dir(top / "out")
    (top / "config").write_text("cfg\n")
    script = (f"print(open('{top}/config').read().strip());"
              f"open('{top}/out/r', 'w').write('y');"
              f"import os; print(os.path.exists('{top}/out/r'))")
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script],
                           filesystem={"readOnly": [str(top)], "readWrite": [f"{top}/out"]}),
                   args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"cfg", b"True"], res
    assert (top / "out" / "r").read_text() == "y"


def test_cell_runs_as_unprivileged_user(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, argv=["/usr/bin/id", "-u"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout.strip() == b"65534", res


def test_run_user_maps_to_the_same_host_user(run_cell, base_spec, tmp):
    rw = rw_dir(tmp, mode=0o777)  # writable by 1234 as it is: bound without idmap
    res = run_cell(sb_spec(base_spec, user="1234:2345",
                           argv=["/bin/sh", "-c", f"id -u; id -g; touch {rw}/mine"],
                           filesystem={"readWrite": [str(rw)]}), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"1234", b"2345"], res
    st = os.stat(rw / "mine")
    assert (st.st_uid, st.st_gid) == (1234, 2345)


def test_run_user_root_is_never_host_root(run_cell, base_spec, tmp):
    rw = rw_dir(tmp)
    res = run_cell(sb_spec(base_spec, user="0",
                           argv=["/bin/sh", "-c", f"id -u; touch {rw}/mine; cat /etc/shadow"],
                           filesystem={"readWrite": [str(rw)]}), args=SB)
    assert res.stdout.split()[:1] == [b"0"], res
    assert b"Permission denied" in res.stdout + res.stderr_bytes, res
    assert res.rc != 0, res  # cat /etc/shadow failed
    st = os.stat(rw / "mine")
    assert st.st_uid == RW_OWNER, st


def test_proc_is_the_cells_own(run_cell, base_spec):
    script = ("import json, os; pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit());"
              " mi = open('/proc/self/mountinfo').read().splitlines();"
              " print(json.dumps({'pids': pids, 'self': os.getpid(),"
              " 'procs': [l for l in mi if ' - proc ' in l], 'n': len(mi),"
              " 'points': [l.split()[4] for l in mi]}))")
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script]), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    # init (1) and the workload (2) only.
    assert got["pids"] == [1, 2] and got["self"] == 2, got
    assert len(got["procs"]) == 1 and " /proc " in got["procs"][0], got
    # No host mount is left in the cell's namespace: the view only.
    for host_only in ("/sys", "/sys/fs/cgroup", "/work", "/root", "/mnt"):
        assert not any(p == host_only or p.startswith(host_only + "/") for p in got["points"]), got
    assert got["n"] < 40, got


def test_readonly_root_shows_the_host_root_without_its_proc(run_cell, base_spec):
    script = ("import os; print(os.path.isdir('/usr/bin'),"
              " sorted(p for p in os.listdir('/proc') if p.isdigit()) == ['1', '2'])")
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script],
                           filesystem={"readOnly": ["/"]}), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"True", b"True"], res


def test_dev_is_minimal(run_cell, base_spec):
    script = ("import json, os; d = sorted(os.listdir('/dev'));"
              " n = open('/dev/null', 'w').write('x');"
              " z = open('/dev/zero', 'rb').read(4);"
              " print(json.dumps({'dev': d, 'zero': z.hex()}))")
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script]), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert got["zero"] == "00000000"
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd",
               "stdin", "stdout", "stderr", "ptmx"}
    assert set(got["dev"]) <= allowed, got
    assert {"null", "zero", "urandom", "pts", "shm"} <= set(got["dev"]), got


def test_dev_nodes_are_the_hosts_devices_in_a_read_only_dev(run_cell, base_spec):
    script = r"""
import errno, json, os, stat
out = {}
for n in ("null", "zero", "full", "random", "urandom", "tty"):
    st = os.lstat("/dev/" + n)
    out[n] = [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
              oct(st.st_mode & 0o7777)]
def err(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
out["create"] = err(lambda: open("/dev/newfile", "w"))
out["mknod_shm"] = err(lambda: os.mknod("/dev/shm/n", stat.S_IFCHR | 0o666, os.makedev(1, 3)))
out["write_full"] = err(lambda: os.write(os.open("/dev/full", os.O_WRONLY), b"x"))
print(json.dumps(out))
"""
    res = run_cell(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script]), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    want = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
            "urandom": (1, 9), "tty": (5, 0)}
    for n, (major, minor) in want.items():
        assert got[n] == [True, major, minor, "0o666"], (n, got)
    assert got["create"] == "EROFS", got
    assert got["mknod_shm"] == "EPERM", got  # no CAP_MKNOD, and /dev/shm is nodev
    assert got["write_full"] == "ENOSPC", got


@pytest.mark.parametrize("path", ["/proc", "/proc/sys", "/dev", "/dev/shm"])
def test_proc_and_dev_cannot_be_declared(run_cell, base_spec, path):
    res = run_cell(sb_spec(base_spec, filesystem={"readOnly": [path]}), args=SB)
    assert res.rc == 125, res
    assert STARTED not in res.types(), res
    reason = res.event(REJECTED)["data"]
    assert "spec.authority.filesystem.readOnly[0]" in json.dumps(reason), reason


def test_readwrite_source_through_a_symlink_is_refused(run_cell, base_spec, tmp):
    real = rw_dir(tmp, "real")
    (tmp / "link").symlink_to(real)
    res = run_cell(sb_spec(base_spec, filesystem={"readWrite": [str(tmp / "link")]}), args=SB)
    assert res.rc == 125, res
    assert "symlink" in json.dumps(res.event(REJECTED)["data"]), res


def test_mount_target_through_a_symlink_in_the_view_is_refused(run_cell, base_spec, tmp):
    # /bin is a symlink in the view (merged /usr): a target below it would follow it.
    if not os.path.islink("/bin"):
        pytest.skip("/bin is not a symlink on this host")
    res = run_cell(sb_spec(base_spec, filesystem={"tmpfs": ["/bin/x"]}), args=SB)
    assert res.rc == 125, res
    assert "symlink" in json.dumps(res.event(REJECTED)["data"]), res


def test_missing_source_is_refused_with_its_spec_path(run_cell, base_spec, tmp):
    res = run_cell(sb_spec(base_spec, filesystem={"readOnly": [str(tmp / "nope")]}), args=SB)
    assert res.rc == 125, res
    text = json.dumps(res.event(REJECTED)["data"])
    assert "spec.authority.filesystem.readOnly[0]" in text and "No such file" in text, text


def test_a_host_symlink_planted_in_a_readwrite_dir_stays_a_symlink_inside(run_cell, base_spec, tmp):
    # A link to a host file is just a dangling name in the cell: the host file is not shown.
    rw = rw_dir(tmp)
    secret = tmp / "host-only"
    secret.write_text("host data\n")
    (rw / "link").symlink_to(secret)
    res = run_cell(sb_spec(base_spec, argv=["/bin/cat", f"{rw}/link"],
                           filesystem={"readWrite": [str(rw)]}), args=SB)
    assert res.rc != 0, res
    assert b"host data" not in res.stdout, res


@pytest.mark.parametrize("cwd, ok", [
    ("/tmp", True),
    ("/nonexistent", False),
    ("/proc/self/fd/3", False),  # a magic link (CVE-2024-21626 shape)
    ("/proc/self/cwd", False),
])
def test_cwd_is_resolved_inside_the_root(run_cell, base_spec, cwd, ok):
    res = run_cell(sb_spec(base_spec, cwd=cwd, argv=["/bin/pwd"]), args=SB)
    if ok:
        assert res.rc == 0 and res.stdout.strip() == cwd.encode(), res
    else:
        assert res.rc == 125, res
        assert "chdir" in res.event(COMPLETED)["data"]["spawnError"], res


def test_cwd_symlink_stays_inside_the_view(run_cell, base_spec, tmp):
    rw = rw_dir(tmp)
    (rw / "up").symlink_to("/")
    res = run_cell(sb_spec(base_spec, cwd=f"{rw}/up", argv=["/bin/sh", "-c", "pwd -P; ls"],
                           filesystem={"readWrite": [str(rw)]}), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split()[0] == b"/", res
    assert b"work" not in res.stdout.split(), res  # the cell's root, not the host's


def test_setuid_root_binary_gains_nothing(run_cell, base_spec, tmp):
    # In a readOnly tree: a readWrite tree holding a setuid file is refused (test_sandbox_identity).
    ro = tmp / "ro"
    ro.mkdir()
    suid = ro / "id"
    suid.write_bytes(open("/usr/bin/id", "rb").read())
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    assert os.stat(suid).st_mode & stat.S_ISUID
    res = run_cell(sb_spec(base_spec, argv=[str(suid)], filesystem={"readOnly": [str(ro)]}),
                   args=SB)
    assert res.rc == 0, res
    assert res.stdout.startswith(b"uid=65534"), res
    assert b"euid" not in res.stdout, res


def test_symlink_swap_race_never_lands_outside(run_cell, base_spec, tmp):
    """reliability.md I8, short: while a helper swaps the readWrite directory with a symlink
    to a canary directory (renameat2 RENAME_EXCHANGE in a tight loop), every cell either is
    refused (exit 125) or writes into the real directory; the canary stays empty."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    rw = rw_dir(tmp)
    canary = rw_dir(tmp, "canary")
    (tmp / "evil").symlink_to(canary)
    stop = threading.Event()

    def swapper():
        a, b = str(rw).encode(), str(tmp / "evil").encode()
        while not stop.is_set():
            libc.syscall(316, -100, a, -100, b, 2)  # renameat2(..., RENAME_EXCHANGE)

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    outcomes = []
    try:
        for i in range(20):
            res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", f"echo {i} > {rw}/f{i}"],
                                   filesystem={"readWrite": [str(rw)]}), args=SB)
            outcomes.append(res.rc)
            assert res.rc in (0, 125), res
    finally:
        stop.set()
        t.join()
    assert list(canary.iterdir()) == [], (outcomes, list(canary.iterdir()))
    # Whichever name holds the real directory now, the cells' files are in it.
    real = rw if rw.is_dir() and not rw.is_symlink() else tmp / "evil"
    assert len(list(real.iterdir())) == outcomes.count(0), outcomes


def test_dev_without_cap_mknod_binds_the_hosts_nodes(cellvisor_bin, write_spec, base_spec):
    """A runner that may not mknod (no CAP_MKNOD: a container, systemd's PrivateDevices=)
    binds the host's device nodes into the cell's /dev instead: the same devices work."""
    script = ("import json, os; n = open('/dev/null', 'w').write('x');"
              " z = open('/dev/zero', 'rb').read(2);"
              " mi = [l.split()[4] for l in open('/proc/self/mountinfo')];"
              " print(json.dumps({'zero': z.hex(), 'null_mounted': '/dev/null' in mi,"
              " 'rdev': os.major(os.stat('/dev/null').st_rdev)}))")
    spec = write_spec(sb_spec(base_spec, argv=[PY, "-I", "-S", "-c", script]))
    argv = ["setpriv", "--bounding-set", "-mknod", str(cellvisor_bin), "run", *SB, str(spec)]
    p = subprocess.run(argv, capture_output=True, timeout=30, env=make_env({}))
    assert p.returncode == 0, p
    got = json.loads(p.stdout)
    assert got == {"zero": "0000", "null_mounted": True, "rdev": 1}, got
