"""The sandbox's process isolation and privileges (issue 3, deliverables 1 and 4): PID 1 init,
the workload's real exit status, its own session, host processes invisible, no capability,
no_new_privs and seccomp, denied syscalls, TIOCSTI, no fd leaks (reliability.md I1-I7)."""

import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

from conftest import COMPLETED, DESTROYED, STARTED, SUMMARY, cell_rw_dir, procs_with_marker

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")


def sb_spec(base_spec, **kw):
    kw.setdefault("id", "t-sbproc")
    return base_spec(**kw)


def py(script):
    return [PY, "-I", "-S", "-c", script]


def test_status_shows_no_capabilities_no_new_privs_and_seccomp(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, argv=["/bin/cat", "/proc/self/status"]), args=SB)
    assert res.rc == 0, res
    fields = dict(line.split(":", 1) for line in res.stdout.decode().splitlines() if ":" in line)
    fields = {k: v.strip() for k, v in fields.items()}
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0000000000000000", (cap, fields[cap])
    assert fields["NoNewPrivs"] == "1", fields
    assert fields["Seccomp"] == "2", fields
    # The runner's supplementary groups (root's gid 0) are not kept.
    assert fields["Groups"] == "", fields
    assert fields["Uid"].split() == ["65534"] * 4 and fields["Gid"].split() == ["65534"] * 4


def test_host_processes_are_invisible(run_cell, start_cell, base_spec, marker):
    host = subprocess.Popen(["sleep", marker])
    try:
        script = ("import os, json; out = []\n"
                  "for p in os.listdir('/proc'):\n"
                  "    if p.isdigit():\n"
                  "        out.append(open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace'))\n"
                  "print(json.dumps(out))")
        res = run_cell(sb_spec(base_spec, argv=py(script)), args=SB)
        assert res.rc == 0, res
        cmdlines = json.loads(res.stdout)
        assert len(cmdlines) == 2, cmdlines  # init (no cmdline readable) and the probe
        assert not any(marker in c for c in cmdlines), cmdlines
        # kill(2) cannot reach the host process by its number either.
        res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", f"kill -0 {host.pid}"]), args=SB)
        assert res.rc != 0, res
        assert host.poll() is None
    finally:
        host.kill()
        host.wait()


def test_workload_is_pid_2_under_an_init(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, argv=py("import os; print(os.getpid(), os.getppid())")),
                   args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"2", b"1"], res


def test_hostname_is_the_cell_id(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, id="my-cell", argv=["/bin/hostname"]), args=SB)
    assert res.rc == 0 and res.stdout.strip() == b"my-cell", res


@pytest.mark.parametrize("code", [0, 3, 42, 255])
def test_workload_exit_code_not_inits(run_cell, base_spec, code):
    res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", f"exit {code}"]), args=SB)
    assert res.rc == code, res
    data = res.event(COMPLETED)["data"]
    assert data["exitCode"] == code and data["signal"] is None, data


@pytest.mark.parametrize("sig, num", [("SEGV", 11), ("KILL", 9), ("TERM", 15)])
def test_workload_killed_by_a_signal_is_reported_as_such(run_cell, base_spec, sig, num):
    res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", f"kill -{sig} $$; sleep 5"]), args=SB)
    assert res.rc == 128 + num, res
    data = res.event(COMPLETED)["data"]
    assert data["signal"] == f"SIG{sig}" and data["exitCode"] == 128 + num, data
    assert data["oomKilled"] is False


def test_exec_not_found_is_127_and_not_executable_126(run_cell, base_spec, tmp):
    res = run_cell(sb_spec(base_spec, argv=["/no/such/prog"]), args=SB)
    assert res.rc == 127, res
    assert res.types() == [STARTED, COMPLETED, SUMMARY, DESTROYED], res
    assert "exec" in res.event(COMPLETED)["data"]["spawnError"]
    res = run_cell(sb_spec(base_spec, argv=["no-such-command-xyz"]), args=SB)
    assert res.rc == 127, res
    res = run_cell(sb_spec(base_spec, argv=["/etc/passwd"]), args=SB)
    assert res.rc == 126, res
    # A host binary outside the view does not exist for the cell.
    script = tmp / "host-script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o755)
    res = run_cell(sb_spec(base_spec, argv=[str(script)]), args=SB)
    assert res.rc == 127, res


def test_path_search_happens_inside_the_cell(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, argv=["sh", "-c", "exit 7"], env={"PATH": "/usr/bin"}),
                   args=SB)
    assert res.rc == 7, res


def test_workload_has_its_own_session_and_no_terminal(run_cell, base_spec):
    script = ("import os, errno\n"
              "print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())\n"
              "try:\n    os.open('/dev/tty', os.O_RDWR)\n    print('tty')\n"
              "except OSError as e:\n    print(errno.errorcode[e.errno])\n")
    res = run_cell(sb_spec(base_spec, argv=py(script)), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"True", b"True", b"ENXIO"], res


TIOCSTI_PROBE = r"""
import errno, fcntl, os, termios
res = []
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"X")
        res.append("injected")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
m, s = os.openpty()  # even a terminal of its own: seccomp refuses TIOCSTI
try:
    fcntl.ioctl(s, termios.TIOCSTI, b"X")
    res.append("injected")
except OSError as e:
    res.append(errno.errorcode[e.errno])
print(" ".join(res))
"""


def test_tiocsti_cannot_inject_into_the_runners_terminal(cellvisor_bin, write_spec, base_spec, tmp):
    # The runner runs on a pty, as from an interactive shell; the cell tries to push
    # characters into every terminal it can reach.
    spec = write_spec(sb_spec(base_spec, argv=py(TIOCSTI_PROBE)))
    pid, master = pty.fork()
    if pid == 0:
        os.execve(str(cellvisor_bin), [str(cellvisor_bin), "run", *SB, str(spec)],
                  {"PATH": "/usr/bin:/bin"})
    out = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        else:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
    else:
        os.kill(pid, signal.SIGKILL)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 0
    os.close(master)
    words = out.split()
    assert b"injected" not in words, out
    # stdin is /dev/null and stdout/stderr pipes (ENOTTY), or seccomp answers first (EPERM).
    assert all(w in (b"ENOTTY", b"EPERM") for w in words[-4:-1]), out
    assert words[-1] == b"EPERM", out
    # Nothing was typed into the runner's terminal: its input queue stayed empty.
    assert b"X" not in out.replace(b"EXIST", b""), out


@pytest.mark.parametrize("what, cmd", [
    ("nested userns", "unshare -U true"),
    ("mount", "mount -t tmpfs none /tmp"),
    ("chroot", "chroot / true"),
])
def test_privileged_operations_are_refused(run_cell, base_spec, what, cmd):
    res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", cmd]), args=SB)
    assert res.rc != 0, (what, res)


SYSCALL_PROBE = r"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
calls = {"keyctl": (250, 0), "bpf": (321, 0), "perf_event_open": (298, 0),
         "userfaultfd": (323, 0), "io_uring_setup": (425, 0), "ptrace": (101, 0),
         "fsopen": (430, 0), "open_tree": (428, 0), "kexec_load": (246, 0),
         "unshare(NEWUSER)": (272, 0x10000000), "setns": (308, 0)}
out = {}
for name, (nr, arg) in calls.items():
    r = libc.syscall(nr, arg, 0, 0, 0, 0)
    out[name] = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
"""


def test_denied_syscalls_fail(run_cell, base_spec):
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers below are x86-64's")
    res = run_cell(sb_spec(base_spec, argv=py(SYSCALL_PROBE)), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    assert all(v in ("EPERM", "ENOSYS") for v in got.values()), got


def test_runner_fds_do_not_leak_into_the_cell(start_cell, base_spec, tmp):
    leak = open(tmp / "leak", "w")
    script = ("import os, json\n"
              "fds = {}\n"
              "for f in os.listdir('/proc/self/fd'):\n"
              "    try:\n"
              "        fds[int(f)] = os.readlink(f'/proc/self/fd/{f}')\n"
              "    except OSError:\n"
              "        fds[int(f)] = '(closed: the listing itself)'\n"
              "print(json.dumps(fds))")
    run = start_cell(sb_spec(base_spec, argv=py(script)), args=SB, pass_fds=(leak.fileno(),))
    res = run.wait()
    leak.close()
    assert res.rc == 0, res
    fds = {int(k): v for k, v in json.loads(res.stdout).items()}
    # 0-2 and the directory fd of the listing itself, nothing else.
    extra = {k: v for k, v in fds.items() if k > 2 and not v.startswith(("/proc/", "(closed"))}
    assert extra == {}, fds
    assert set(fds) <= {0, 1, 2, 3}, fds
    assert fds[0] == "/dev/null" and fds[1].startswith("pipe:"), fds


def test_rlimits(run_cell, base_spec):
    res = run_cell(sb_spec(base_spec, limits={"nofile": 64},
                           argv=["/bin/sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout.split() == [b"64", b"64", b"0"], res


def test_double_forked_setsid_escapee_dies_with_the_cell(run_cell, base_spec, marker):
    res = run_cell(sb_spec(base_spec, argv=["/bin/sh", "-c",
                                            f"setsid sh -c 'sleep {marker} &' ; exit 0"]), args=SB)
    assert res.rc == 0, res
    assert procs_with_marker(marker) == [], res


def test_timeout_kills_the_whole_cell(run_cell, base_spec, marker):
    res = run_cell(sb_spec(base_spec, timeoutMs=300,
                           argv=["/bin/sh", "-c", f"sleep {marker} & sleep {marker}"]), args=SB)
    assert res.rc == 124, res
    assert "timed out" in res.event(COMPLETED)["data"]["spawnError"], res
    assert procs_with_marker(marker) == []


def test_runner_sigterm_is_forwarded_to_the_workload(start_cell, base_spec, marker):
    script = ("trap 'echo got-term; exit 0' TERM; echo ready; "
              f"sleep {marker} & wait")
    run = start_cell(sb_spec(base_spec, argv=["/bin/sh", "-c", script]), args=SB)
    run.wait_started()
    deadline = time.monotonic() + 10
    while not procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    run.proc.send_signal(signal.SIGTERM)
    res = run.wait()
    assert res.rc == 143, res
    assert b"got-term" in res.stdout, res
    assert procs_with_marker(marker) == []
    assert res.types()[-1] == DESTROYED


def test_cell_cgroup_exists_during_the_run_and_is_removed(start_cell, base_spec, marker):
    run = start_cell(sb_spec(base_spec, id="t-sbcg", argv=["/bin/sleep", marker],
                             limits={"memoryMaxBytes": 64 << 20, "pidsMax": 16}),
                     args=SB + ("--timeout", "3000"))
    run.wait_started()
    deadline = time.monotonic() + 10
    while not procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = procs_with_marker(marker)
    assert pids, "workload not running"
    cg = open(f"/proc/{pids[0]}/cgroup").read()
    leaf = [l for l in cg.splitlines() if "cellvisor-t-sbcg" in l]
    assert leaf, cg
    # Every hierarchy a limit needs, v1 on hybrid hosts, and the v2 tree for tracking.
    ctrls = {l.split(":", 2)[1] for l in leaf}
    for want in ("pids", "memory"):
        v2_has = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        assert v2_has or want in ctrls, (want, cg)
    run.proc.send_signal(signal.SIGINT)
    res = run.wait()
    assert res.rc == 130, res
    path = leaf[0].split(":", 2)[2]
    root = "/sys/fs/cgroup/unified" if leaf[0].startswith("0::") else None
    if root:
        assert not os.path.exists(root + path), path


INIT_PROBE = r"""
import errno, json, os
out = {}
for name in ("exe", "root", "cwd", "environ", "mem", "fd"):
    p = "/proc/1/" + name
    try:
        if name in ("exe", "root", "cwd"):
            os.readlink(p)
            fd = os.open(p, os.O_RDONLY)
            os.close(fd)
        elif name == "fd":
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(1)
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
try:
    fd = os.open("/proc/self/exe", os.O_WRONLY)
    out["self_exe_write"] = "ok"
except OSError as e:
    out["self_exe_write"] = errno.errorcode[e.errno]
print(json.dumps(out))
"""


def test_init_cannot_be_reached_through_proc(run_cell, base_spec, cellvisor_bin):
    # init is a fork of the runner: its /proc/1/exe would be the cellvisor binary on the
    # host (CVE-2019-5736). It stays non-dumpable, so none of its links open.
    import hashlib
    before = hashlib.sha256(open(cellvisor_bin, "rb").read()).hexdigest()
    res = run_cell(sb_spec(base_spec, argv=py(INIT_PROBE)), args=SB)
    assert res.rc == 0, res
    got = json.loads(res.stdout)
    for name in ("exe", "root", "cwd", "environ", "mem", "fd"):
        assert got[name] in ("EACCES", "EPERM"), got
    assert got["self_exe_write"] in ("ETXTBSY", "EROFS", "EACCES", "EPERM"), got
    assert hashlib.sha256(open(cellvisor_bin, "rb").read()).hexdigest() == before


def test_term_ignoring_workload_is_killed_after_grace(start_cell, base_spec, marker):
    run = start_cell(sb_spec(base_spec, argv=["/bin/sh", "-c",
                                              f"trap '' TERM; sleep {marker} & wait; wait"]),
                     args=SB + ("--grace", "300"))
    run.wait_started()
    deadline = time.monotonic() + 10
    while not procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    res = run.wait()
    assert res.rc == 143, res
    assert res.event(DESTROYED)["data"]["terminalState"] == "forced", res
    assert time.monotonic() - t0 < 5, res
    assert procs_with_marker(marker) == []


# What the workload leaves behind is stopped as on any backend (run.md): SIGTERM, the grace
# period, then SIGKILL; `forced` only when SIGKILL was needed.

def test_leftovers_get_sigterm_and_the_run_is_clean(run_cell, base_spec, tmp):
    rw = cell_rw_dir(tmp / "rw")
    script = (f"setsid sh -c 'trap \"echo term > {rw}/got; exit 0\" TERM; sleep 30 & wait' & "
              "sleep 0.3; echo top")
    t0 = time.monotonic()
    res = run_cell(base_spec(id="t-sbleft", argv=["/bin/sh", "-c", script],
                             filesystem={"readWrite": [str(rw)]}),
                   args=SB + ("--grace", "5000"))
    took = time.monotonic() - t0
    assert res.rc == 0 and res.stdout.strip() == b"top", res
    assert (rw / "got").read_text().strip() == "term"
    assert res.event(DESTROYED)["data"]["terminalState"] == "clean"
    assert took < 4, took  # it went on SIGTERM, not at the end of the grace period


def test_leftovers_that_ignore_sigterm_are_killed_after_the_grace(run_cell, base_spec, marker):
    script = f"setsid sh -c 'trap \"\" TERM; sleep {marker}' & sleep 0.3; echo top"
    t0 = time.monotonic()
    res = run_cell(base_spec(id="t-sbleft2", argv=["/bin/sh", "-c", script]),
                   args=SB + ("--grace", "1000"))
    took = time.monotonic() - t0
    assert res.rc == 0 and res.stdout.strip() == b"top", res
    data = res.event(DESTROYED)["data"]
    assert data["terminalState"] == "forced", data
    assert took >= 1.0, took
    # completed is written when the top process ends, before the leftovers are dealt with.
    types = res.types()
    assert types.index(COMPLETED) < types.index(DESTROYED)
    assert procs_with_marker(marker) == []


def test_bare_argv0_is_searched_in_the_default_path_of_run_md(run_cell, base_spec):
    """No PATH in run.env: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, as on
    the host backend (ldconfig lives in /usr/sbin)."""
    res = run_cell(base_spec(id="t-sbpath", argv=["ldconfig", "--version"]), args=SB)
    assert res.rc == 0, res
    assert res.stdout.startswith(b"ldconfig"), res
