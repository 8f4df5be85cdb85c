"""The root runner's own files (issue 7, items 2 and 7; docs/run.md "Files cellvisor writes").

The `--events` file, the CELL_OS_JSONL_EVENTS mirror, `--export-dir`, `<export-dir>/<cellId>/`
and the files written there are reached without following a symlink anywhere, through
directories owned by root or the runner (not writable by others unless sticky), and must be
regular files the runner owns: a FIFO is refused at once, never waited on. The "attacker" is
a local user (uid USER, files chowned to it) or whatever a cell could leave in a tree it
writes."""

import hashlib
import os

import pytest

from conftest import COMPLETED, DESTROYED, RW_OWNER, STARTED, cell_rw_dir

USER = 4242  # the hostile local user
EXPORTED = "dev.cellos.events.cell.export.v2.completed"
FAILED = "dev.cellos.events.cell.export.v2.failed"


def private_dir(tmp):
    """A 0700 root directory the attacker wants root to write into."""
    d = tmp / "private"
    d.mkdir(mode=0o700)
    return d


def user_dir(path, mode=0o755):
    path.mkdir()
    os.chown(path, USER, USER)
    os.chmod(path, mode)
    return path


def sticky_dir(path):
    path.mkdir()
    os.chmod(path, 0o1777)
    return path


def events_args(how, path):
    """--events PATH, or the CELL_OS_JSONL_EVENTS mirror."""
    if how == "flag":
        return {"args": ["--events", str(path)], "events": None}
    return {"env": {"CELL_OS_JSONL_EVENTS": str(path)}}


def refused(res, *needles):
    assert res.rc == 125, res
    for needle in needles:
        assert needle in res.stderr, (needle, res)


# ------------------------------------------------------------------------- events files

@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_fifo_at_the_events_path_is_refused_at_once(cli, write_spec, base_spec, tmp, how):
    fifo = tmp / "events.jsonl"
    os.mkfifo(fifo)
    spec = write_spec(base_spec(argv=["/bin/touch", str(tmp / "ran")]))
    if how == "flag":
        res = cli("run", "--events", fifo, spec, timeout=15)
    else:
        res = cli("run", spec, env={"CELL_OS_JSONL_EVENTS": str(fifo)}, timeout=15)
    refused(res, f"{fifo} is a FIFO, not a regular file")
    assert not (tmp / "ran").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_events_behind_a_parent_swapped_for_a_symlink_are_refused(run_cell, base_spec, tmp,
                                                                  how):
    private = private_dir(tmp)
    (tmp / "logs").symlink_to(private)  # was the directory of the events
    res = run_cell(base_spec(), **events_args(how, tmp / "logs" / "events.jsonl"))
    refused(res, f"{tmp / 'logs'} is a symlink, which is refused")
    assert os.listdir(private) == []


def test_events_dir_a_sandbox_cell_swapped_for_a_symlink_gets_nothing(run_cell, base_spec, tmp):
    # The next run's --events lies in a tree an earlier cell could write (readWrite): the cell
    # replaced the directory with a symlink to a root-only place.
    # A readWrite tree is owned by a non-root user (root's are refused under hardened).
    rw = cell_rw_dir(tmp / "rw")
    cell_rw_dir(rw / "logs")
    private = private_dir(tmp)
    swap = base_spec(id="t-swapper", argv=["/bin/sh", "-c",
                                           f"rm -rf {rw}/logs && ln -s {private} {rw}/logs"],
                     filesystem={"readWrite": [str(rw)]})
    res = run_cell(swap, args=["--backend", "sandbox"])
    assert res.rc == 0 and (rw / "logs").is_symlink(), res
    res = run_cell(base_spec(), args=["--events", str(rw / "logs" / "events.jsonl")],
                   events=None)
    # The first breach on the path: the tree the cell could write is not the runner's.
    refused(res, f"{rw} is owned by uid {RW_OWNER}")
    assert os.listdir(private) == []


def test_events_behind_a_symlink_anywhere_on_the_path_are_refused(run_cell, base_spec, tmp):
    private = private_dir(tmp)
    (private / "deep").mkdir()
    (tmp / "via").symlink_to(private)
    res = run_cell(base_spec(), args=["--events", str(tmp / "via" / "deep" / "ev.jsonl")],
                   events=None)
    refused(res, f"{tmp / 'via'} is a symlink")
    assert os.listdir(private / "deep") == []


def test_a_user_precreated_events_file_is_refused(run_cell, base_spec, tmp):
    # In a sticky shared directory, a user made the file before root's run: they could read,
    # forge or truncate what root appends.
    shared = sticky_dir(tmp / "shared")
    ev = shared / "events.jsonl"
    ev.write_text("forged\n")
    os.chown(ev, USER, USER)
    os.chmod(ev, 0o600)
    res = run_cell(base_spec(), args=["--events", str(ev)], events=None)
    refused(res, f"cannot open events file {ev}: {ev} is owned by uid {USER}, "
                 "not by cellvisor's uid 0")
    assert ev.read_text() == "forged\n"


def test_an_events_file_others_can_write_is_refused(run_cell, base_spec, tmp):
    ev = tmp / "events.jsonl"
    ev.write_text("")
    os.chmod(ev, 0o666)
    res = run_cell(base_spec(), args=["--events", str(ev)], events=None)
    refused(res, f"{ev} is writable by group or others (mode 0666)")
    assert ev.read_text() == ""


def test_an_events_name_hard_linked_to_a_root_file_is_refused(run_cell, base_spec, tmp):
    private = private_dir(tmp)
    (private / "precious").write_text("root's data\n")
    shared = sticky_dir(tmp / "shared")
    os.link(private / "precious", shared / "events.jsonl")
    res = run_cell(base_spec(), args=["--events", str(shared / "events.jsonl")], events=None)
    refused(res, "has 2 hard links")
    assert (private / "precious").read_text() == "root's data\n"


@pytest.mark.parametrize("kind", ["user-owned", "world-writable"])
def test_events_in_a_directory_others_can_write_are_refused(run_cell, base_spec, tmp, kind):
    d = user_dir(tmp / "d") if kind == "user-owned" else tmp / "d"
    if kind == "world-writable":
        d.mkdir()
        os.chmod(d, 0o777)
    res = run_cell(base_spec(), args=["--events", str(d / "events.jsonl")], events=None)
    if kind == "user-owned":
        refused(res, f"{d} is owned by uid {USER}, neither root nor cellvisor's uid 0")
    else:
        refused(res, f"{d} is writable by group or others (mode 0777) and not sticky")
    assert not (d / "events.jsonl").exists()


def test_relative_events_path_from_a_working_directory_a_user_owns_is_refused(
        run_cell, base_spec, tmp):
    wd = user_dir(tmp / "wd")
    res = run_cell(base_spec(), args=["--events", "events.jsonl"], events=None, cwd=wd)
    refused(res, f"{wd} is owned by uid {USER}")
    assert not (wd / "events.jsonl").exists()


def test_events_where_the_rule_allows_them(run_cell, base_spec, tmp):
    # Created by the runner in a sticky directory, then appended to by the next run; a
    # relative path from a working directory root owns; a directory root owns.
    shared = sticky_dir(tmp / "shared")
    for i in range(2):
        res = run_cell(base_spec(id=f"t-ok{i}"), args=["--events", str(shared / "ev.jsonl")],
                       events=None)
        assert res.rc == 0, res
    st = os.stat(shared / "ev.jsonl")
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o600)
    assert len((shared / "ev.jsonl").read_text().splitlines()) == 8
    (tmp / "wd").mkdir()
    res = run_cell(base_spec(), args=["--events", "rel.jsonl"], events=None, cwd=tmp / "wd")
    assert res.rc == 0, res
    assert len((tmp / "wd" / "rel.jsonl").read_text().splitlines()) == 4


# ------------------------------------------------------------------------------ exports

def export_spec(base_spec, tmp, cell_id="t-exp", script=None):
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    return base_spec(id=cell_id,
                     argv=["/bin/sh", "-c", script or f"printf report-data > {work}/report.txt"],
                     export={"artifacts": [{"name": "report.txt",
                                            "path": str(work / "report.txt")}]})


def export_event(res):
    evs = [e for e in res.events if e["type"] in (EXPORTED, FAILED)]
    assert len(evs) == 1, res
    return evs[0]


def test_export_dir_swapped_for_a_symlink_is_refused(run_cell, base_spec, tmp):
    private = private_dir(tmp)
    (tmp / "out").symlink_to(private)
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(tmp / "out")])
    assert res.rc == 0, res
    ev = export_event(res)
    assert ev["type"] == FAILED, res
    assert ev["data"]["error"] == (f"export directory {tmp / 'out'}: {tmp / 'out'} is a "
                                   "symlink, which is refused"), ev
    assert os.listdir(private) == []
    assert res.types().index(FAILED) < res.types().index(DESTROYED)


def test_export_dir_with_a_symlinked_parent_is_refused(run_cell, base_spec, tmp):
    private = private_dir(tmp)
    (private / "exports").mkdir()
    (tmp / "base").symlink_to(private)
    res = run_cell(export_spec(base_spec, tmp),
                   args=["--export-dir", str(tmp / "base" / "exports")])
    ev = export_event(res)
    assert ev["type"] == FAILED and f"{tmp / 'base'} is a symlink" in ev["data"]["error"], ev
    assert os.listdir(private / "exports") == []


def test_export_dir_a_user_owns_is_refused(run_cell, base_spec, tmp):
    out = user_dir(tmp / "out")
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(out)])
    ev = export_event(res)
    assert ev["type"] == FAILED, res
    assert f"{out} is owned by uid {USER}" in ev["data"]["error"], ev
    assert os.listdir(out) == []


@pytest.mark.parametrize("owner, mode, needle", [
    (USER, 0o700, f"is owned by uid {USER}, not by cellvisor's uid 0"),
    (USER, 0o777, f"is owned by uid {USER}, not by cellvisor's uid 0"),
    (0, 0o777, "is writable by group or others (mode 0777)"),
], ids=["user-0700", "user-0777", "root-0777"])
def test_a_precreated_cell_export_dir_is_not_used(run_cell, base_spec, tmp, owner, mode,
                                                  needle):
    # A shared export directory (sticky, like /tmp) where a user made <cellId>/ first.
    out = sticky_dir(tmp / "out")
    cell_dir = out / "t-exp"
    cell_dir.mkdir()
    os.chown(cell_dir, owner, owner)
    os.chmod(cell_dir, mode)
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(out)])
    ev = export_event(res)
    assert ev["type"] == FAILED, res
    assert ev["data"]["error"] == f"export directory {out}: {cell_dir} {needle}", ev
    assert os.listdir(cell_dir) == []


def test_cell_export_dir_swapped_for_a_symlink_is_refused(run_cell, base_spec, tmp):
    private = private_dir(tmp)
    out = tmp / "out"
    out.mkdir()
    (out / "t-exp").symlink_to(private)
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(out)])
    ev = export_event(res)
    assert ev["type"] == FAILED, res
    assert f"{out / 't-exp'} is a symlink, which is refused" in ev["data"]["error"], ev
    assert os.listdir(private) == []


def test_exports_into_a_sticky_shared_dir_are_made_private(run_cell, base_spec, tmp):
    out = sticky_dir(tmp / "out")
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(out)])
    ev = export_event(res)
    assert ev["type"] == EXPORTED, res
    st = os.stat(out / "t-exp")
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
    assert (out / "t-exp" / "report.txt").read_bytes() == b"report-data"
    assert os.listdir(out / "t-exp") == ["report.txt"]


def test_a_squatted_partial_name_neither_breaks_nor_redirects_the_export(start_cell, base_spec,
                                                                          tmp):
    # The old temporary name was .<name>.<runId8>.partial, predictable from the run id in the
    # world-readable cgroup name. Plant it (and the same as a symlink to a root-only place)
    # while the cell runs: the export must still be whole and nothing followed.
    private = private_dir(tmp)
    out = tmp / "out"
    (out / "t-exp").mkdir(parents=True, mode=0o700)
    go = tmp / "go"
    work = tmp / "work"
    script = (f"while [ ! -e {go} ]; do sleep 0.05; done; "
              f"printf report-data > {work}/report.txt")
    run = start_cell(export_spec(base_spec, tmp, script=script),
                     args=["--export-dir", str(out)])
    run.wait_started()
    run_id = [e for e in run.current_events() if e["type"] == STARTED][0]["data"]["runId"]
    squat = out / "t-exp" / f".report.txt.{run_id[:8]}.partial"
    squat.symlink_to(private / "stolen")
    (out / "t-exp" / f".report.txt.{run_id[:8]}.partial.x").write_text("decoy")
    go.touch()
    res = run.wait()
    assert res.rc == 0, res
    ev = export_event(res)
    assert ev["type"] == EXPORTED, res
    assert ev["data"]["sha256"] == hashlib.sha256(b"report-data").hexdigest()
    assert (out / "t-exp" / "report.txt").read_bytes() == b"report-data"
    assert os.readlink(squat) == str(private / "stolen")
    assert os.listdir(private) == []
    leftovers = [n for n in os.listdir(out / "t-exp") if n.startswith(".cellvisor-")]
    assert leftovers == [], leftovers


def test_an_existing_export_is_replaced_and_a_symlink_there_is_not_followed(run_cell,
                                                                             base_spec, tmp):
    private = private_dir(tmp)
    (private / "precious").write_text("root's data\n")
    out = tmp / "out"
    (out / "t-exp").mkdir(parents=True, mode=0o700)
    (out / "t-exp" / "report.txt").symlink_to(private / "precious")
    res = run_cell(export_spec(base_spec, tmp), args=["--export-dir", str(out)])
    assert export_event(res)["type"] == EXPORTED, res
    assert not (out / "t-exp" / "report.txt").is_symlink()
    assert (out / "t-exp" / "report.txt").read_bytes() == b"report-data"
    assert (private / "precious").read_text() == "root's data\n"
    res = run_cell(export_spec(base_spec, tmp, script=f"printf v2 > {tmp}/work/report.txt"),
                   args=["--export-dir", str(out)])
    assert export_event(res)["type"] == EXPORTED, res
    assert (out / "t-exp" / "report.txt").read_bytes() == b"v2"
    assert COMPLETED in res.types()
