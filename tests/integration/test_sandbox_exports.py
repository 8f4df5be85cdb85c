"""Exports from the sandbox (issue 3, deliverable 7; reliability.md I9): artifacts are read
after the run from inside the cell's view (its tmpfs included, kept alive until the cell is
destroyed), regular files only, no symlink anywhere on the way, nothing the workload itself
could not read; each gives export.v2.completed with bytes and sha256, or export.v2.failed."""

import hashlib
import json
import os

import pytest

from conftest import COMPLETED, DESTROYED, cell_rw_dir

SB = ("--backend", "sandbox")
EXPORTED = "dev.cellos.events.cell.export.v2.completed"
FAILED = "dev.cellos.events.cell.export.v2.failed"


def run_export(run_cell, base_spec, tmp, script, artifacts, **kw):
    outdir = tmp / "exports"
    outdir.mkdir(exist_ok=True)
    spec = base_spec(id="t-sbexp", argv=["/bin/sh", "-c", script],
                     export={"artifacts": [{"name": n, "path": p} for n, p in artifacts]}, **kw)
    res = run_cell(spec, args=SB + ("--export-dir", str(outdir)))
    assert res.rc == 0, res
    return res, outdir / "t-sbexp"


def by_name(res):
    out = {}
    for e in res.events:
        if e["type"] in (EXPORTED, FAILED):
            out[e["data"]["name"]] = e
    return out


def test_export_from_the_cells_tmpfs_after_the_run(run_cell, base_spec, tmp):
    res, outdir = run_export(run_cell, base_spec, tmp,
                             "printf 'report-data' > /tmp/report.txt",
                             [("report.txt", "/tmp/report.txt")])
    ev = by_name(res)["report.txt"]
    assert ev["type"] == EXPORTED, res
    assert ev["data"]["bytes"] == 11
    assert ev["data"]["sha256"] == hashlib.sha256(b"report-data").hexdigest()
    assert (outdir / "report.txt").read_bytes() == b"report-data"
    types = res.types()
    assert types.index(COMPLETED) < types.index(EXPORTED) < types.index(DESTROYED), types


def test_export_from_a_readwrite_path(run_cell, base_spec, tmp):
    rw = cell_rw_dir(tmp / "rw")
    res, outdir = run_export(run_cell, base_spec, tmp, f"echo built > {rw}/out.bin",
                             [("out.bin", f"{rw}/out.bin")], filesystem={"readWrite": [str(rw)]})
    assert by_name(res)["out.bin"]["type"] == EXPORTED, res
    assert (outdir / "out.bin").read_text() == "built\n"


@pytest.mark.parametrize("name, script, path", [
    # A symlink to a host file (it exists on the host, not in the cell).
    ("host-link", "ln -s {host} /tmp/a", "/tmp/a"),
    # A symlink to a file of the view (the host's /etc/passwd, bound read-only).
    ("view-link", "ln -s /etc/passwd /tmp/b", "/tmp/b"),
    # A symlinked directory on the way.
    ("dir-link", "mkdir /tmp/d; echo x > /tmp/d/f; ln -s /tmp/d /tmp/e", "/tmp/e/f"),
    # Not a regular file.
    ("fifo", "mkfifo /tmp/p", "/tmp/p"),
    ("dir", "mkdir /tmp/dd", "/tmp/dd"),
    ("device", "true", "/dev/zero"),
    # Something the workload itself cannot read (root's file, 0640 root:shadow).
    ("unreadable", "true", "/etc/shadow"),
    ("missing", "true", "/tmp/nope"),
    # A magic link (the runner's own fds must not be reachable).
    ("magic", "true", "/proc/self/fd/0"),
])
def test_unsafe_exports_are_refused(run_cell, base_spec, tmp, name, script, path):
    host_file = tmp / "host-secret"
    host_file.write_text("host only\n")
    res, outdir = run_export(run_cell, base_spec, tmp, script.format(host=host_file),
                             [(name, path)])
    ev = by_name(res)[name]
    assert ev["type"] == FAILED, res
    assert ev["data"]["error"], ev
    assert not (outdir / name).exists()
    if "link" in name:
        assert "symlink" in ev["data"]["error"], ev
    if name in ("fifo", "dir", "device"):
        # The words of the host backend and events.md, whichever backend looked.
        assert ev["data"]["error"] == f"{path}: not a regular file", ev
    for f in (outdir.iterdir() if outdir.exists() else []):
        assert b"host only" not in f.read_bytes()
        assert b"root:" not in f.read_bytes()


def test_a_failed_export_does_not_stop_the_others(run_cell, base_spec, tmp):
    res, outdir = run_export(run_cell, base_spec, tmp,
                             "echo one > /tmp/one; ln -s /etc/hostname /tmp/two",
                             [("one", "/tmp/one"), ("two", "/tmp/two")])
    got = by_name(res)
    assert got["one"]["type"] == EXPORTED and got["two"]["type"] == FAILED, res
    assert (outdir / "one").read_text() == "one\n"
    assert res.rc == 0
    assert json.dumps(res.event(COMPLETED)["data"])


def test_export_behind_a_directory_the_workload_cannot_search_is_refused(run_cell, base_spec,
                                                                         tmp):
    ro = tmp / "ro"
    (ro / "private").mkdir(parents=True)
    os.chmod(ro, 0o755)
    os.chmod(ro / "private", 0o700)  # root's: the cell's user cannot search it
    (ro / "private" / "f").write_text("root only\n")
    os.chmod(ro / "private" / "f", 0o644)
    (ro / "open.txt").write_text("readable\n")
    os.chmod(ro / "open.txt", 0o644)
    res, outdir = run_export(run_cell, base_spec, tmp, "true",
                             [("f", f"{ro}/private/f"), ("open", f"{ro}/open.txt")],
                             filesystem={"readOnly": [str(ro)]})
    got = by_name(res)
    assert got["f"]["type"] == FAILED, res
    assert "Permission denied" in got["f"]["data"]["error"], got["f"]
    assert got["open"]["type"] == EXPORTED, res
    assert (outdir / "open").read_text() == "readable\n"


# ------------------------------------------------ issue 7 item 2: what the cell can plant

# A root-owned tree is no longer granted readWrite under hardened (docs/sandbox.md), so only
# trees of other owners are left for the cell to plant in.
@pytest.mark.parametrize("owner", [4242, 2147483646], ids=["user-tree", "rw-owner-tree"])
def test_export_dir_the_cell_swapped_for_a_symlink_receives_nothing(run_cell, base_spec, tmp,
                                                                     owner):
    # --export-dir inside a readWrite tree: the cell replaces it with a symlink to a 0700 root
    # directory it cannot even see. The runner, as root, must not write there.
    rw = tmp / "rw"
    (rw / "out").mkdir(parents=True)
    for d in (rw, rw / "out"):
        os.chown(d, owner, owner)
        os.chmod(d, 0o755)
    private = tmp / "private"
    private.mkdir(mode=0o700)
    script = (f"rm -rf {rw}/out && ln -s {private} {rw}/out && "
              "printf report-data > /tmp/report.txt")
    spec = base_spec(id="t-sbswap", argv=["/bin/sh", "-c", script],
                     filesystem={"readWrite": [str(rw)]},
                     export={"artifacts": [{"name": "report.txt", "path": "/tmp/report.txt"}]})
    res = run_cell(spec, args=SB + ("--export-dir", str(rw / "out")))
    assert res.rc == 0, res
    assert (rw / "out").is_symlink(), "the cell did not make its swap"
    ev = by_name(res)["report.txt"]
    assert ev["type"] == FAILED, res
    why = f"{rw} is owned by uid {owner}, neither root nor cellvisor's uid 0"
    assert ev["data"]["error"] == f"export directory {rw / 'out'}: {why}", ev
    assert os.listdir(private) == []
