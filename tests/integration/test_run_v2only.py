"""The host and sandbox backends on a cgroup-v2-only host.

This machine is hybrid (v1 controllers + a v2 tree). A v2-only host is simulated for one
runner: in a private mount namespace (`unshare -m`) the v1 hierarchies are hidden under a
tmpfs and the v2 tree is mounted at /sys/fs/cgroup, which is where cellvisor looks first.
The host's own mounts are untouched. The v2 tree here has no controllers to delegate, so
this covers tracking, kill and cleanup through cgroup v2 alone, and how limits that cannot
be enforced are handled (degraded under portable, refused under hardened).
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import (COMPLETED, DEGRADED, DESTROYED, STARTED, SUMMARY, make_env, parse_jsonl,
                      procs_with_marker)

V2_ROOT = "/sys/fs/cgroup/unified"
WRAP = ("mount --make-rprivate / && mount -t tmpfs cellvisor-test /sys/fs/cgroup && "
        "mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"")

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(V2_ROOT, "cgroup.procs")) or shutil.which("unshare") is None,
    reason="needs a v2 cgroup tree at /sys/fs/cgroup/unified and unshare(1)")


def run_v2only(cellvisor_bin, tmp, spec_path, *args, timeout=30):
    events = tmp / "events.jsonl"
    argv = ["unshare", "-m", "/bin/sh", "-c", WRAP, str(cellvisor_bin), "run", "--events",
            str(events), *args, str(spec_path)]
    p = subprocess.run(argv, env=make_env(None), capture_output=True, timeout=timeout)
    evs = parse_jsonl(events.read_text()) if events.exists() else []
    return p, evs


def leaf_dirs():
    return {d for d in os.listdir(V2_ROOT) if d.startswith("cellvisor-t-v2only-")}


def test_the_cell_lives_in_its_own_v2_cgroup_which_is_removed(cellvisor_bin, tmp, write_spec,
                                                              base_spec):
    before = leaf_dirs()
    spec = write_spec(base_spec(id="t-v2only-leaf", argv=["/bin/sh", "-c",
                                                          "grep '^0::' /proc/self/cgroup"]))
    p, evs = run_v2only(cellvisor_bin, tmp, spec)
    assert p.returncode == 0, p.stderr
    run_id = evs[0]["data"]["runId"]
    # Only the v2 line exists inside the simulated host, and it names the cell's leaf.
    assert p.stdout.decode().strip() == f"0::/cellvisor-t-v2only-leaf-{run_id[:8]}"
    # No controllers here: the default memory and pids bounds (issue 7) cannot be set, which
    # portable (the host backend's default) records, without refusing the cell.
    assert [e["type"] for e in evs] == [DEGRADED, DEGRADED, STARTED, COMPLETED, SUMMARY,
                                        DESTROYED]
    assert [e["data"]["item"] for e in evs[:2]] == ["run.limits.memoryMaxBytes",
                                                    "run.limits.pidsMax"]
    assert all("default bound" in e["data"]["reason"] for e in evs[:2]), evs[:2]
    assert leaf_dirs() == before


def test_escapees_are_killed_through_cgroup_kill(cellvisor_bin, tmp, write_spec, base_spec,
                                                 marker):
    script = f"setsid sh -c 'sleep {marker} & exit 0' & sleep 0.3; exit 0"
    spec = write_spec(base_spec(id="t-v2only-escape", argv=["/bin/sh", "-c", script]))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--grace", "200")
    assert p.returncode == 0, p.stderr
    assert evs[-1]["type"] == DESTROYED
    deadline = time.monotonic() + 2
    while procs_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with_marker(marker) == []


def test_timeout_stops_the_whole_cell(cellvisor_bin, tmp, write_spec, base_spec, marker):
    spec = write_spec(base_spec(id="t-v2only-timeout",
                                argv=["/bin/sh", "-c", f"sleep {marker} & sleep {marker}"]))
    t0 = time.monotonic()
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--timeout", "300")
    assert p.returncode == 124, p.stderr
    assert time.monotonic() - t0 < 5
    done = next(e for e in evs if e["type"] == COMPLETED)
    assert done["data"]["spawnError"] == "command timed out after 300 ms (--timeout)"
    assert procs_with_marker(marker) == []


def test_limits_without_a_controller_degrade_under_portable(cellvisor_bin, tmp, write_spec,
                                                            base_spec):
    spec = write_spec(base_spec(id="t-v2only-limits", limits={"pidsMax": 8}))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--profile", "portable")
    assert p.returncode == 0, p.stderr
    degraded = [e for e in evs if e["type"] == DEGRADED]
    # The declared pidsMax, and the default memory bound the spec left to the operator.
    assert [d["data"]["item"] for d in degraded] == ["run.limits.memoryMaxBytes",
                                                     "run.limits.pidsMax"]
    assert degraded[1]["data"]["reason"] == "no pids cgroup controller on this host"
    assert "default bound" in degraded[0]["data"]["reason"]
    assert evs.index(degraded[0]) < [e["type"] for e in evs].index(STARTED)


def test_limits_without_a_controller_are_refused_under_hardened(cellvisor_bin, tmp, write_spec,
                                                                base_spec):
    spec = write_spec(base_spec(id="t-v2only-hard", limits={"memoryMaxBytes": 64 << 20}))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--profile", "hardened")
    assert p.returncode == 125
    assert "run.limits.memoryMaxBytes" in p.stderr.decode()
    assert STARTED not in [e["type"] for e in evs]


# The sandbox backend on the same simulated v2-only host: CLONE_INTO_CGROUP into the v2 leaf,
# the cell's cgroup namespace rooted there, cgroup.kill, and the leaf removed.

def test_sandbox_cell_lives_in_its_v2_leaf_which_is_removed(cellvisor_bin, tmp, write_spec,
                                                             base_spec):
    before = leaf_dirs()
    spec = write_spec(base_spec(id="t-v2only-sb", argv=["/bin/grep", "^0::", "/proc/self/cgroup"]))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--backend", "sandbox")
    assert p.returncode == 0, p.stderr
    # Its own cgroup namespace, rooted at the cell's leaf: it sees itself at "/".
    assert p.stdout.decode().strip() == "0::/", p.stdout
    assert [e["type"] for e in evs] == [STARTED, COMPLETED, SUMMARY, DESTROYED]
    assert leaf_dirs() == before


def test_sandbox_cell_is_in_the_leaf_seen_from_the_host(cellvisor_bin, tmp, write_spec,
                                                         base_spec, marker):
    spec = write_spec(base_spec(id="t-v2only-sbhost", argv=["/bin/sleep", marker]))
    argv = ["unshare", "-m", "/bin/sh", "-c", WRAP, str(cellvisor_bin), "run", "--backend",
            "sandbox", str(spec)]
    runner = subprocess.Popen(argv, env=make_env(None), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not procs_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = procs_with_marker(marker)
        assert len(pids) == 1, pids
        with open(f"/proc/{pids[0]}/cgroup") as f:
            line = next(l for l in f if l.startswith("0::"))
        assert "/cellvisor-t-v2only-sbhost-" in line, line
    finally:
        runner.terminate()  # SIGTERM to unshare's sh, exec'd into cellvisor: stops the cell
        runner.wait(timeout=30)
    assert procs_with_marker(marker) == []


def test_sandbox_timeout_kills_the_cell(cellvisor_bin, tmp, write_spec, base_spec, marker):
    spec = write_spec(base_spec(id="t-v2only-sbto",
                                argv=["/bin/sh", "-c", f"sleep {marker} & sleep {marker}"]))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--backend", "sandbox", "--timeout", "300")
    assert p.returncode == 124, p.stderr
    assert evs[-1]["type"] == DESTROYED
    assert procs_with_marker(marker) == []


def test_sandbox_limits_without_a_controller_are_refused(cellvisor_bin, tmp, write_spec,
                                                         base_spec):
    """hardened is the sandbox's default profile."""
    before = leaf_dirs()
    spec = write_spec(base_spec(id="t-v2only-sblim", limits={"pidsMax": 16}))
    p, evs = run_v2only(cellvisor_bin, tmp, spec, "--backend", "sandbox")
    assert p.returncode == 125
    assert "run.limits.pidsMax" in p.stderr.decode()
    assert STARTED not in [e["type"] for e in evs]
    assert leaf_dirs() == before
