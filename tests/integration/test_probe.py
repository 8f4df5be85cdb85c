"""`cellvisor probe`: what each backend can enforce on this host, as text and as JSON."""

import ctypes
import json
import os


def test_probe_lists_every_backend_as_json(cli):
    res = cli("probe", "--json")
    assert res.rc == 0, res
    rows = [json.loads(line) for line in res.stdout.decode().splitlines()]
    assert [r["backend"] for r in rows] == ["host", "sandbox"]
    host, sandbox = rows
    assert host["defaultProfile"] == "portable" and sandbox["defaultProfile"] == "hardened"
    # This machine: a v2 tree for tracking, v1 controllers for limits, namespaces, seccomp.
    v2 = (os.path.exists("/sys/fs/cgroup/unified/cgroup.procs")
          or os.path.exists("/sys/fs/cgroup/cgroup.procs"))
    assert host["cgroupV2"] is v2
    assert sandbox["namespaces"] is True and sandbox["seccomp"] is True
    # The kernel's own answer: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    assert sandbox["landlockAbi"] == max(abi, 0)
    assert sandbox["containment"].startswith("pid namespace + ")


def test_probe_text_and_usage(cli):
    res = cli("probe")
    assert res.rc == 0, res
    text = res.stdout.decode()
    assert text.startswith("host (") and "\nsandbox (" in text
    assert "containment" in text
    bad = cli("probe", "extra")
    assert bad.rc == 125 and "probe: takes no arguments" in bad.stderr
    assert cli("help", "probe").rc == 0


def test_probe_as_an_unprivileged_user_says_what_it_cannot_do(cellvisor_bin):
    """Run as nobody: no cgroup it may create cells under, no sandbox (the runner needs
    CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID): probe must not claim either."""
    import subprocess
    from conftest import make_env
    p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        str(cellvisor_bin), "probe", "--json"], capture_output=True,
                       env=make_env({}), timeout=30)
    assert p.returncode == 0, p
    host, sandbox = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert host["cgroupLimits"] is False and host["cgroupV2"] is False, host
    assert host["containment"] == "none (process group)", host
    assert sandbox["namespaces"] is False, sandbox
    assert sandbox["containment"].startswith("none: cannot run here"), sandbox
