"""Findings of the sandbox security review, each checked the way it was reproduced:
AF_VSOCK under every network (F1), the host root's inotify/fanotify quota and the cell's
/proc/sys/user limits (F2), exports with the runner's groups (F3), setuid/setgid files left
in readWrite paths (F4), secrets in init's copy of the runner's heap (F5), pidsMax counting
the hidden init (F6), and init's process name."""

import ctypes
import json
import os
import re
import select
import stat
import subprocess
import time

import pytest

from conftest import RW_OWNER, cell_rw_dir, make_env, parse_jsonl, procs_with_marker

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")
EXPORTED = "dev.cellos.events.cell.export.v2.completed"
FAILED = "dev.cellos.events.cell.export.v2.failed"


def py(script, *args):
    return [PY, "-I", "-S", "-c", script, *args]


def read_line(run, timeout=15):
    """The first line the cell writes on stdout, while it is still running."""
    fd = run.proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    assert b"\n" in buf, (buf, run.proc.poll())
    return buf.split(b"\n", 1)[0].decode()


# ---------------------------------------------------------------- F1: AF_VSOCK

VSOCK_PROBE = r"""
import errno, socket
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, 47123))
    print("bound")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


@pytest.mark.parametrize("network", ["none", "loopback", "host"])
def test_vsock_is_refused_under_every_network(run_cell, base_spec, network):
    # vsock is not network-namespaced: a socket would reach the hypervisor and bind the
    # host's ports whatever the cell's network namespace.
    res = run_cell(base_spec(id="t-sbvsock", network=network, argv=py(VSOCK_PROBE)), args=SB)
    assert res.rc == 0, res
    assert res.stdout.strip() == b"EAFNOSUPPORT", res


# ---------------------------------------------------------------- F2: ucounts of host root

INOTIFY_HOG = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 1000:
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        break
    fds.append(fd)
print(len(fds), flush=True)
time.sleep(float(sys.argv[1]))
"""


def host_inotify_ok():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0o2000000)
    if fd < 0:
        return os.strerror(ctypes.get_errno())
    os.close(fd)
    return "ok"


def test_a_cell_cannot_exhaust_host_roots_inotify_instances(start_cell, base_spec):
    # Two cells at once, each taking every inotify instance it can: they are charged to the
    # user namespace's creator (host root) up the chain, but each is capped by its own
    # namespace's max_inotify_instances.
    runs = [start_cell(base_spec(id=f"t-sbino{i}", timeoutMs=20000,
                                 argv=py(INOTIFY_HOG, "3")), args=SB) for i in range(2)]
    counts = [int(read_line(r)) for r in runs]
    host = host_inotify_ok()
    for r in runs:
        res = r.wait()
        assert res.rc == 0, res
    assert all(0 < n <= 16 for n in counts), counts
    assert host == "ok", (host, counts)


SYSCTL_PROBE = r"""
import ctypes, errno, json, os
out = {}
for name in sorted(os.listdir("/proc/sys/user")):
    out[name] = int(open("/proc/sys/user/" + name).read())
try:
    open("/proc/sys/user/max_inotify_instances", "w").write("100000")
    out["write"] = "ok"
except OSError as e:
    out["write"] = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.fanotify_init(0x200, 0)  # FAN_REPORT_FID | FAN_CLASS_NOTIF: the unprivileged mode
out["fanotify_init"] = "ok" if fd >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
"""


def test_cell_user_namespace_limits(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbulim", argv=py(SYSCTL_PROBE)), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert got["max_inotify_instances"] == 16, got
    assert got["max_inotify_watches"] == 8192, got
    assert got.get("max_fanotify_groups", 0) == 0, got
    assert got.get("max_fanotify_marks", 0) == 0, got
    for ns in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"):
        assert got.get(f"max_{ns}_namespaces", 0) == 0, (ns, got)
    assert got["write"] in ("EACCES", "EPERM"), got
    assert got["fanotify_init"] == "EPERM", got


# ---------------------------------------------------------------- F3: exports

@pytest.mark.parametrize("group", [0, 4242])
def test_export_does_not_use_the_runners_supplementary_groups(cellvisor_bin, write_spec,
                                                              base_spec, tmp, group):
    # A root:GROUP 0750 directory: a runner with GROUP among its supplementary groups (root's
    # group 0 in a login shell) can search it, the cell's user cannot. The export must be
    # what the workload could read, not what the runner could with its groups.
    ro = tmp / "ro"
    (ro / "d").mkdir(parents=True)
    os.chmod(ro, 0o755)
    os.chown(ro / "d", 0, group)
    os.chmod(ro / "d", 0o750)
    (ro / "d" / "f").write_text("group only\n")
    os.chmod(ro / "d" / "f", 0o644)
    outdir = tmp / "exports"
    outdir.mkdir()
    spec = write_spec(base_spec(id="t-sbexpgrp", filesystem={"readOnly": [str(ro)]},
                                argv=["/bin/sh", "-c", f"cat {ro}/d/f; echo rc=$?"],
                                export={"artifacts": [{"name": "f", "path": f"{ro}/d/f"}]}))
    events = tmp / "ev.jsonl"
    proc = subprocess.run([str(cellvisor_bin), "run", *SB, "--events", str(events),
                           "--export-dir", str(outdir), str(spec)], env=make_env({}),
                          cwd=tmp, capture_output=True, timeout=30, extra_groups=[group])
    assert proc.returncode == 0, proc
    assert b"group only" not in proc.stdout, proc  # the workload itself cannot read it
    evs = [e for e in parse_jsonl(events.read_text()) if e["type"] in (EXPORTED, FAILED)]
    assert len(evs) == 1 and evs[0]["type"] == FAILED, (evs, proc)
    assert "Permission denied" in evs[0]["data"]["error"], evs[0]
    assert not (outdir / "t-sbexpgrp" / "f").exists()


# ---------------------------------------------------------------- F4: setuid/setgid files

SUID_PROBE = r"""
import ctypes, errno, json, os, stat, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
def sys_call(*args):
    r = libc.syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
f = os.path.join(d, "f")
open(f, "w").close()
attempt("chmod 0755", lambda: os.chmod(f, 0o755))
attempt("chmod u+s", lambda: os.chmod(f, 0o4755))
attempt("chmod g+s", lambda: os.chmod(f, 0o2755))
fd = os.open(f, os.O_RDONLY)
attempt("fchmod u+s", lambda: os.fchmod(fd, 0o4755))
attempt("fchmodat2 u+s", lambda: sys_call(452, -100, f.encode(), 0o4755, 0))
attempt("open O_CREAT u+s", lambda: os.close(os.open(os.path.join(d, "c"), os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt("open O_CREAT 0644", lambda: os.close(os.open(os.path.join(d, "p"), os.O_CREAT | os.O_WRONLY, 0o644)))
attempt("O_TMPFILE g+s", lambda: os.close(os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o2755)))
attempt("mkdir g+s", lambda: os.mkdir(os.path.join(d, "sd"), 0o2755))
attempt("mkdir 0755", lambda: os.mkdir(os.path.join(d, "pd"), 0o755))
attempt("mknod u+s", lambda: os.mknod(os.path.join(d, "n"), stat.S_IFREG | 0o4755))
class How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]
how = How(os.O_CREAT | os.O_WRONLY, 0o4755, 0)
attempt("openat2", lambda: sys_call(437, -100, os.path.join(d, "o2").encode(), ctypes.byref(how), 24))
print(json.dumps(out))
"""


def test_a_cell_cannot_leave_setuid_or_setgid_files_in_readwrite_paths(run_cell, base_spec, tmp):
    rw = cell_rw_dir(tmp / "rw")
    res = run_cell(base_spec(id="t-sbsuid", filesystem={"readWrite": [str(rw)]},
                             argv=py(SUID_PROBE, str(rw))), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert got == {
        "chmod 0755": "ok", "chmod u+s": "EPERM", "chmod g+s": "EPERM", "fchmod u+s": "EPERM",
        "fchmodat2 u+s": "EPERM", "open O_CREAT u+s": "EPERM", "open O_CREAT 0644": "ok",
        "O_TMPFILE g+s": "EPERM", "mkdir g+s": "EPERM", "mkdir 0755": "ok",
        "mknod u+s": "EPERM", "openat2": "ENOSYS",
    }, got
    # What a host user would look for: nothing in the path is setuid or setgid.
    for dirpath, dirnames, filenames in os.walk(rw):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), (name, oct(st.st_mode))


def test_setuid_refusal_also_applies_to_cell_root(run_cell, base_spec, tmp):
    rw = cell_rw_dir(tmp / "rw")
    res = run_cell(base_spec(id="t-sbsuid0", user="0:0", filesystem={"readWrite": [str(rw)]},
                             argv=["/bin/sh", "-c", f"cp /bin/true {rw}/t && chmod 4755 {rw}/t"]),
                   args=SB)
    assert res.rc != 0, res
    st = os.stat(rw / "t")
    assert st.st_uid == RW_OWNER and not st.st_mode & stat.S_ISUID, oct(st.st_mode)


# ---------------------------------------------------------------- F5: secrets in init's memory

def children_of(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(p) for p in open(f"/proc/{pid}/task/{tid}/children").read().split()]
        except OSError:
            pass
    return out


def memory_holds(pid, needle):
    """Every readable mapping of pid (host root reads /proc/<pid>/mem), searched for needle.
    Mappings over 4 GiB (a sanitizer's shadow memory) are skipped; the rest is read in
    chunks that overlap by len(needle)."""
    found = []
    chunk = 16 << 20
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for line in open(f"/proc/{pid}/maps"):
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            lo, hi, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or "[vvar" in line or "[vsyscall]" in line or hi - lo > 4 << 30:
                continue
            off = lo
            while off < hi:
                try:
                    data = os.pread(fd, min(chunk + len(needle), hi - off), off)
                except OSError:
                    break
                if needle in data:
                    found.append(line.strip())
                    break
                off += chunk
    finally:
        os.close(fd)
    return found


@pytest.mark.parametrize("delivery", ["env", "file"])
def test_init_keeps_no_copy_of_the_secrets(start_cell, base_spec, tmp, marker, delivery):
    canary = "canary-" + os.urandom(16).hex()
    (tmp / "db").write_text(canary)
    env = {"CELLOS_BROKER": "file", "CELLOS_SECRET_FILE_DB_PASSWORD": str(tmp / "db")}
    run = start_cell(base_spec(id="t-sbinitmem", secretRefs=["db-password"],
                               secretDelivery=delivery,
                               argv=["/bin/sh", "-c", f"echo up; exec sleep {marker}"]),
                     args=SB, env=env)
    assert read_line(run) == "up"
    inits = [p for p in children_of(run.proc.pid)
             if open(f"/proc/{p}/comm").read().strip() == "cellvisor-init"]
    assert len(inits) == 1, (children_of(run.proc.pid), inits)
    init = inits[0]
    # "up" comes before the exec: wait for the sleeper itself to exist.
    deadline = time.monotonic() + 10
    while not procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    (sleeper,) = procs_with_marker(marker)
    if delivery == "env":  # the workload did get it
        assert canary.encode() in open(f"/proc/{sleeper}/environ", "rb").read()
    try:
        assert memory_holds(init, canary.encode()) == []
    finally:
        os.kill(sleeper, 9)
    res = run.wait()
    assert res.rc == 137, res


# ---------------------------------------------------------------- F6: pidsMax

PIDS_PROBE = r"""
import os, sys
marker = sys.argv[1]
n = 0
while n < 64:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.execv("/bin/sleep", ["sleep", marker])
    n += 1
print(n, flush=True)
"""


@pytest.mark.parametrize("pids_max", [1, 2, 5])
def test_pids_max_is_the_workloads_own(run_cell, base_spec, marker, pids_max):
    # pidsMax N: the workload and its descendants hold N processes; the cell's init is extra.
    res = run_cell(base_spec(id="t-sbpids", limits={"pidsMax": pids_max},
                             argv=py(PIDS_PROBE, marker)), args=SB)
    assert res.rc == 0, res
    assert int(res.stdout) == pids_max - 1, res
    assert procs_with_marker(marker) == []


def test_pids_max_2_can_run_one_subshell(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbpids2", limits={"pidsMax": 2},
                             argv=["/bin/sh", "-c", "echo hi; (true); echo sub=$?"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"hi", b"sub=0"], res


# ---------------------------------------------------------------- init's name

def test_init_is_named_in_the_cell(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbinitname", argv=["/bin/cat", "/proc/1/comm"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout == b"cellvisor-init\n", res
