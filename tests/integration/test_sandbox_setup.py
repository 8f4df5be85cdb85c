"""How a sandbox cell is set up (issue 3): the runner clones the cell's setup process during
preparation, builds the view while the setup creates its namespaces, and hands over the
view's root, what is left to attach, the workload's stdio and the landlock ruleset with
"go". A preparation that fails after that clone, or a cell refused after it, leaves nothing
behind. On kernels before 6.15 the cell attaches every mount itself (many fds, sent in
several messages); CELLVISOR_SANDBOX_ASSEMBLE=0 takes that path on any kernel."""

import json
import os
import subprocess

import pytest

from conftest import COMPLETED, REJECTED, STARTED, cell_cgroups, make_env, parse_jsonl

SB = ("--backend", "sandbox")
N_MOUNTS = 200  # 400+ fds: more than one SCM_RIGHTS message without assembly


def setup_processes():
    """Pids of processes named cellvisor-init (a cell's setup or init) on the host."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() == "cellvisor-init":
                    pids.append(int(p))
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("assemble", ["1", "0"])
def test_many_mounts_are_all_attached(run_cell, base_spec, assemble):
    paths = [f"/t/m{i:03d}" for i in range(N_MOUNTS)]
    script = ("grep -c ' /t/m[0-9]* ' /proc/self/mountinfo;"
              " echo x > /t/m000/f && echo x > /t/m199/f && echo written")
    spec = base_spec(id=f"t-sbmany{assemble}", argv=["/bin/sh", "-c", script],
                     filesystem={"tmpfs": paths})
    res = run_cell(spec, args=SB, env={"CELLVISOR_SANDBOX_ASSEMBLE": assemble})
    assert res.rc == 0, res
    assert res.stdout.split() == [str(N_MOUNTS).encode(), b"written"], res


@pytest.mark.parametrize("assemble", ["1", "0"])
def test_stdio_and_view_arrive_with_go(run_cell, base_spec, assemble, tmp):
    """stdout and stderr are the runner's pipes, stdin the cell's /dev/null, the cwd is
    resolved inside the view: all of it handed over after the clone."""
    data = tmp / "ro"
    data.mkdir()
    (data / "f").write_text("from the host\n")
    script = ("import os, sys; sys.stdout.write(open('f').read());"
              " sys.stderr.write('err\\n'); print(os.readlink('/proc/self/fd/0'), os.getcwd())")
    spec = base_spec(id=f"t-sbgo{assemble}", argv=["/usr/bin/python3", "-I", "-S", "-c", script],
                     cwd=str(data), filesystem={"readOnly": [str(data)]})
    res = run_cell(spec, args=SB, env={"CELLVISOR_SANDBOX_ASSEMBLE": assemble})
    assert res.rc == 0, res
    assert res.stdout.decode().splitlines() == ["from the host", f"/dev/null {data}"], res
    assert "err" in res.stderr, res


def test_refused_after_preparation_leaves_nothing(run_cell, base_spec):
    """egressRules are refused under hardened once preparation (the clone included) is done."""
    before = set(setup_processes())
    res = run_cell(base_spec(id="t-sbrefuse", egressRules=[{"host": "example.org", "port": 443}]),
                   args=SB)
    assert res.rc == 125, res
    assert STARTED not in res.types(), res
    assert REJECTED in res.types(), res
    assert cell_cgroups("t-sbrefuse") == []
    assert set(setup_processes()) - before == set()


def test_failed_preparation_after_the_clone_leaves_nothing(run_cell, base_spec, tmp):
    """A readOnly path that does not exist fails while the view is built, after the clone."""
    before = set(setup_processes())
    res = run_cell(base_spec(id="t-sbprepfail",
                             filesystem={"readOnly": [str(tmp / "missing")]}), args=SB)
    assert res.rc == 125, res
    assert STARTED not in res.types() and COMPLETED not in res.types(), res
    reason = json.dumps(res.event(REJECTED)["data"])
    assert "spec.authority.filesystem.readOnly[0]" in reason, reason
    assert cell_cgroups("t-sbprepfail") == []
    assert set(setup_processes()) - before == set()


def test_failure_between_preparation_and_start_is_prompt(cellvisor_bin, write_spec, tmp):
    """The stdio pipes are made after preparation (the setup process already cloned and
    waiting for "go"): when they cannot be made, the cell ends at once, not after --grace
    spent signalling a process that blocks every signal. RLIMIT_NOFILE 300 and a growing
    number of tmpfs mounts walk the failure through preparation, the stdio and the start."""
    steps = []
    for k in range(100, 160):
        spec = write_spec({"apiVersion": "cellos.io/v1", "kind": "ExecutionCell",
                           "spec": {"id": "t-sbnofile", "run": {"argv": ["/bin/true"]},
                                    "authority": {"filesystem": {
                                        "tmpfs": [f"/t/m{i:03d}" for i in range(k)]}}}})
        events = tmp / f"ev{k}.jsonl"
        argv = ["prlimit", "--nofile=300:300", str(cellvisor_bin), "run", *SB,
                "--grace", "30000", "--events", str(events), str(spec)]
        p = subprocess.run(argv, capture_output=True, timeout=60, env=make_env({}))
        types = [e["type"] for e in parse_jsonl(events.read_text())]
        if p.returncode == 0:
            continue
        assert p.returncode == 125, (k, p)
        if REJECTED in types:
            break  # preparation itself ran out of fds: every count above fails there too
        completed = [e for e in parse_jsonl(events.read_text()) if e["type"] == COMPLETED]
        assert completed, (k, types)
        steps.append(completed[0]["data"].get("spawnError", ""))
        destroyed = parse_jsonl(events.read_text())[-1]
        assert destroyed["data"].get("terminalState") == "clean", (k, destroyed)
        assert cell_cgroups("t-sbnofile") == [], k
    assert any("stdio" in s for s in steps), steps
