"""A hostile local user against a root operator's `cellvisor run` (issue 7, items 7 and 8).

The "user" here is LOCAL_UID, a uid no account uses, which these tests switch to (setpriv,
or a forked child that calls setuid) to do what any local user could: signal their own
processes, open world-readable files, own a delegated cgroup. Each test reproduces one attack
and checks what the operator sees: the exit status, the events, stderr.

- A workload child stopped (SIGSTOP by run.user's owner) between its uid switch and execve
  cannot hold the runner: the start report is waited for in the loop, so --timeout (124) and
  SIGTERM (143) still end the run. The window is held open deterministically: a fanotify
  FAN_OPEN_EXEC_PERM mark on the workload's binary (a private copy) holds the child inside
  execve; the user's SIGSTOP is queued meanwhile; the test then denies the exec, so the
  child returns from execve and stops before it can write its report, exactly as a child
  stopped between setresuid() and execve() would be.
- A cgroup parent another uid may write is refused under hardened and a warning under
  portable.
- An unprivileged user with a delegated v2 parent (its own cgroup not writable) gets cgroup
  v2 from probe and from run.
- The sandbox's init shows `cellvisor-init` in /proc/<pid>/cmdline, not the runner's argv.
- A root workload on the host backend is refused under hardened unless run.user says "0".
"""

import ctypes
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import COMPLETED, DEGRADED, DESTROYED, STARTED, V2_ROOT, make_env, \
    procs_with_marker

LOCAL_UID = 64123  # no account; the tests act as this user

FAN_CLOEXEC = 0x1
FAN_CLASS_CONTENT = 0x4
FAN_MARK_ADD = 0x1
FAN_OPEN_EXEC_PERM = 0x00040000
FAN_ALLOW, FAN_DENY = 0x1, 0x2
AT_FDCWD = -100

needs_v2 = pytest.mark.skipif(V2_ROOT is None, reason="no cgroup v2 tree")


class ExecGate:
    """A private copy of /bin/sleep whose every execve waits for the test's answer
    (fanotify permission event). The copy lives in a 0755 directory any uid can reach."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.dir = tempfile.mkdtemp(prefix="cvgate-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.binary = os.path.join(self.dir, "sleep")
        shutil.copy2("/bin/sleep", self.binary)
        os.chmod(self.binary, 0o755)
        self.fd = self.libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC,
                                          os.O_RDONLY | os.O_CLOEXEC)
        if self.fd < 0:
            shutil.rmtree(self.dir)
            pytest.skip(f"fanotify_init: {os.strerror(ctypes.get_errno())}")
        r = self.libc.fanotify_mark(self.fd, FAN_MARK_ADD, ctypes.c_uint64(FAN_OPEN_EXEC_PERM),
                                    AT_FDCWD, self.binary.encode())
        if r < 0:
            self.close()
            pytest.skip(f"fanotify_mark: {os.strerror(ctypes.get_errno())}")

    def wait_exec(self, timeout=10):
        """(pid, event fd) of the next execve of the binary, held until answered."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        assert ready, f"no execve of {self.binary} within {timeout}s"
        buf = os.read(self.fd, 4096)
        _, _, _, _, mask, efd, pid = struct.unpack("IBBHQii", buf[:24])
        assert mask & FAN_OPEN_EXEC_PERM, hex(mask)
        return pid, efd

    def answer(self, efd, response):
        os.write(self.fd, struct.pack("iI", efd, response))
        os.close(efd)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)  # pending events are allowed
            self.fd = -1
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def gate():
    g = ExecGate()
    yield g
    g.close()


def as_local_user(fn):
    """Run fn() in a forked child that has become LOCAL_UID; its return value (an int)
    comes back as the exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(LOCAL_UID)
            os.setuid(LOCAL_UID)
            os._exit(fn())
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def signal_as_local_user(pid, sig):
    def send():
        try:
            os.kill(pid, sig)
            return 0
        except PermissionError:
            return 1
    return as_local_user(send)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return None


@needs_v2
@pytest.mark.parametrize("backend", ["host", "sandbox"])
@pytest.mark.parametrize("how", ["timeout", "sigterm"])
def test_a_child_stopped_before_its_exec_cannot_hold_the_runner(start_cell, base_spec, gate,
                                                                v2_parent, backend, how):
    name, _ = v2_parent
    spec = base_spec(id=f"t-frozen-{backend}", argv=[gate.binary, "300"], user=str(LOCAL_UID))
    if backend == "sandbox":
        spec["spec"]["authority"]["filesystem"] = {"readOnly": [gate.dir]}
    args = ["--backend", backend, "--grace", "1000"]
    if how == "timeout":
        args += ["--timeout", "1500"]
    run = start_cell(spec, args=args, env={"CELLOS_CGROUP_PARENT": f"/{name}"})
    pid, efd = gate.wait_exec()
    try:
        # The workload's user stops it (its pid was in the cell's cgroup.procs, and is in
        # /proc); a sandbox cell's host uid may differ from run.user's: then root stops it,
        # which is the same to the runner.
        if signal_as_local_user(pid, signal.SIGSTOP) != 0:
            assert backend == "sandbox"
            os.kill(pid, signal.SIGSTOP)
        gate.answer(efd, FAN_DENY)  # execve fails; the child stops before it reports
        deadline = time.monotonic() + 5
        while proc_state(pid) not in ("T", None) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc_state(pid) == "T", f"the child did not stop: {proc_state(pid)}"

        if how == "sigterm":
            time.sleep(0.3)
            t0 = time.monotonic()
            run.proc.send_signal(signal.SIGTERM)
            res = run.wait(timeout=15)
            assert res.rc == 143, res
            assert time.monotonic() - t0 < 1 + 2, res  # grace + 2 s
            assert res.event(COMPLETED)["data"]["spawnError"] == \
                "cell stopped: cellvisor received SIGTERM", res
        else:
            res = run.wait(timeout=15)
            assert res.rc == 124, res
            assert res.elapsed < 1.5 + 1 + 2, res  # the cap + grace + 2 s
            assert res.event(COMPLETED)["data"]["spawnError"] == \
                "command timed out after 1500 ms (--timeout)", res
        assert res.event(COMPLETED)["data"]["exitCode"] == -1
        assert res.event(DESTROYED)["data"]["terminalState"] == "forced"
        assert res.types()[-1] == DESTROYED
        assert proc_state(pid) in (None, "Z"), "the stopped child outlived its cell"
    finally:
        if proc_state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def foreign_parent(v2_parent):
    """A v2 parent cgroup delegated to LOCAL_UID (its directory and its files, as systemd's
    Delegate= does)."""
    name, path = v2_parent
    for f in (path, *(os.path.join(path, x) for x in ("cgroup.procs", "cgroup.threads",
                                                      "cgroup.subtree_control"))):
        os.chown(f, LOCAL_UID, LOCAL_UID)
    return name, path


@needs_v2
@pytest.mark.parametrize("backend", ["host", "sandbox"])
def test_a_parent_another_user_owns_is_refused_under_hardened(run_cell, base_spec, tmp,
                                                              foreign_parent, backend):
    name, path = foreign_parent
    ran = tmp / "ran"
    argv = ["/bin/touch", str(ran)] if backend == "host" else ["/bin/true"]
    res = run_cell(base_spec(id="t-foreign-hard", argv=argv, user="0"),
                   args=("--backend", backend, "--profile", "hardened"),
                   env={"CELLOS_CGROUP_PARENT": f"/{name}"})
    assert res.rc == 125, res
    assert "cgroupParent" in res.stderr and path in res.stderr, res
    assert f"owned by uid {LOCAL_UID}" in res.stderr, res
    assert STARTED not in res.types(), res
    assert not ran.exists()
    assert [d for d in os.listdir(path) if d.startswith("cellvisor-")] == []


@needs_v2
def test_a_parent_another_user_owns_is_a_warning_under_portable(run_cell, base_spec,
                                                                foreign_parent):
    name, path = foreign_parent
    res = run_cell(base_spec(id="t-foreign-port", argv=["/bin/echo", "ran"]),
                   args=("--profile", "portable"), env={"CELLOS_CGROUP_PARENT": f"/{name}"})
    assert res.rc == 0 and res.stdout == b"ran\n", res
    # The parent exists in the v2 tree only, so the default bounds (v1) are degraded too.
    degs = [e["data"] for e in res.events if e["type"] == DEGRADED]
    deg = [d for d in degs if d["item"] == "cgroupParent"]
    assert len(deg) == 1, degs
    deg = deg[0]
    assert path in deg["reason"] and f"owned by uid {LOCAL_UID}" in deg["reason"], deg
    assert "warning: cgroupParent" in res.stderr, res


@needs_v2
def test_an_unprivileged_user_gets_v2_under_a_delegated_parent(cellvisor_bin, base_spec,
                                                               foreign_parent):
    """The user's own cgroup (`runner`, root's) is not writable, the delegated parent is:
    cells go under the parent, in v2, and probe says so."""
    name, path = foreign_parent
    runner = os.path.join(path, "runner")
    os.mkdir(runner)  # root's: the user's runner sits in a cgroup it cannot write
    try:
        env = make_env({"CELLOS_CGROUP_PARENT": f"/{name}"})

        def as_user(*argv, stdin=None):
            def enter():
                with open(os.path.join(runner, "cgroup.procs"), "w") as f:
                    f.write("0")
            return subprocess.run(
                ["setpriv", "--reuid", str(LOCAL_UID), "--regid", str(LOCAL_UID),
                 "--clear-groups", str(cellvisor_bin), *argv], env=env, input=stdin,
                capture_output=True, timeout=30, cwd="/", preexec_fn=enter)

        probe = as_user("probe", "--json")
        assert probe.returncode == 0, probe
        host = json.loads(probe.stdout.decode().splitlines()[0])
        assert host["cgroupV2"] is True, host
        assert host["containment"].startswith("cgroup v2"), host

        spec = json.dumps(base_spec(id="t-deleg-v2", argv=["/bin/cat", "/proc/self/cgroup"]))
        p = as_user("run", "-", stdin=spec.encode())
        assert p.returncode == 0, p
        v2_line = [line for line in p.stdout.decode().splitlines() if line.startswith("0::")]
        assert v2_line and v2_line[0].startswith(f"0::/{name}/cellvisor-t-deleg-v2-"), p.stdout
    finally:
        os.rmdir(runner)


def test_sandbox_init_shows_its_own_name_and_no_paths(start_cell, base_spec, marker, tmp):
    run = start_cell(base_spec(id="t-initname", argv=["/bin/sleep", marker]),
                     args=("--backend", "sandbox"), events="flag")
    run.wait_started()
    deadline = time.monotonic() + 10
    while not procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    (workload,) = procs_with_marker(marker)
    with open(f"/proc/{workload}/stat", "rb") as f:
        init = int(f.read().rsplit(b")", 1)[1].split()[1])
    # World-readable: what any local user sees of the root runner's cell.
    with open(f"/proc/{init}/cmdline", "rb") as f:
        cmdline = f.read()
    run.proc.send_signal(signal.SIGTERM)
    res = run.wait()
    assert res.rc == 143, res
    assert cmdline.rstrip(b"\0") == b"cellvisor-init", cmdline
    assert str(tmp).encode() not in cmdline, cmdline


def test_sandbox_init_shows_its_own_name_inside_the_cell(run_cell, base_spec):
    res = run_cell(base_spec(id="t-initname-in", argv=["/bin/cat", "/proc/1/cmdline"]),
                   args=("--backend", "sandbox"))
    assert res.rc == 0, res
    assert res.stdout.rstrip(b"\0") == b"cellvisor-init", res


def test_a_root_workload_on_the_host_backend_needs_run_user_0_under_hardened(run_cell,
                                                                              base_spec, tmp):
    ran = tmp / "ran"
    spec = base_spec(id="t-rootwl", argv=["/bin/touch", str(ran)])
    res = run_cell(spec, args=("--profile", "hardened"))
    assert res.rc == 125, res
    assert "run.user: not enforceable by backend host: not set: the workload would run as " \
           "root" in res.stderr, res
    assert not ran.exists()
    assert STARTED not in res.types(), res

    res = run_cell(base_spec(id="t-rootwl", argv=["/bin/touch", str(ran)], user="0"),
                   args=("--profile", "hardened"))
    assert res.rc == 0, res
    assert ran.exists()

    res = run_cell(base_spec(id="t-rootwl", argv=["/bin/true"], user=str(LOCAL_UID)),
                   args=("--profile", "hardened"))
    assert res.rc == 0, res
    # portable (the host backend's default today) runs it as before, with no event.
    res = run_cell(base_spec(id="t-rootwl", argv=["/bin/true"]))
    assert res.rc == 0 and DEGRADED not in res.types(), res


def test_probe_says_which_backend_contains_a_root_workload(cli):
    res = cli("probe", "--json")
    assert res.rc == 0, res
    host, sandbox = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert host["rootWorkloadContained"] is False and sandbox["rootWorkloadContained"] is True
    text = cli("probe").stdout.decode()
    assert "root workload    not contained: root can leave its cgroup" in text
