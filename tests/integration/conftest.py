"""Black-box fixtures for `cellvisor` (pytest, stdlib only).

Every test drives the real binary in a temporary directory and checks what a user sees: the
exit status, stdout (bytes), stderr (text), the JSONL event file, files on disk.

The binary is `$CELLVISOR_BIN` or `<repo>/build/cellvisor`. The runner gets a minimal, explicit
environment (BASE_ENV, plus the sanitizer option variables when set for the test run), never
pytest's own: a test adds what it needs through `env=`, and a value of None removes a key.

Fixtures:
  cellvisor_bin  path of the binary (the session skips if it is not built)
  tmp            a fresh directory per test (pathlib.Path, symlinks resolved)
  write_spec     write_spec(dict | bytes | str, name="spec.json") -> Path
  base_spec      base_spec(**overrides) -> dict, a valid minimal ExecutionCell (see base_spec)
  cli            cli(*argv, env=None, stdin=None, timeout=30) -> Result, any command
  run_cell       run_cell(spec, args=(), env=None, timeout=30, stdin=None, events="env") -> Result
  start_cell     like run_cell but returns a Running handle (.proc, .wait_started(), .wait())
  marker         a unique `sleep` argument ("1000.NNNNNN"); processes carrying it are killed
                 by pid at teardown (see procs_with_marker)

Tests import the constants and helpers with `from conftest import ...`.
"""

import json
import os
import pathlib
import random
import re
import signal
import subprocess
import time
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.path.abspath(os.environ.get("CELLVISOR_BIN") or REPO / "build/cellvisor"))

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
}
# Passed through unchanged so `make check` can run the suite against a sanitizer build.
PASSTHROUGH_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MSAN_OPTIONS",
                   "CELLVISOR_SANDBOX_ASSEMBLE")

# Event types (DESIGN.md §6).
STARTED = "dev.cellos.events.cell.lifecycle.v1.started"
COMPLETED = "dev.cellos.events.cell.command.v1.completed"
SUMMARY = "dev.cellos.events.cell.compliance.v1.summary"
DESTROYED = "dev.cellos.events.cell.lifecycle.v1.destroyed"
REVOKED = "dev.cellos.events.cell.identity.v1.revoked"
DEGRADED = "dev.cellvisor.events.cell.authority.v1.degraded"
REJECTED = "dev.cellvisor.events.cell.v1.rejected"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def base_spec(**overrides):
    """A valid minimal ExecutionCell, shaped like CellOS's test specs.

    Keyword shortcuts land where they belong:
      run fields       argv, env, cwd, timeoutMs, secretDelivery, limits, user
      lifetime         ttlSeconds
      authority        secretRefs, egressRules, network, filesystem
      spec fields      id, export, correlation; run=/authority=/lifetime= dicts are merged
      document         apiVersion, kind
    A value of None removes the key (e.g. lifetime=None drops the TTL).
    """
    doc = {
        "apiVersion": "cellos.io/v1",
        "kind": "ExecutionCell",
        "spec": {
            "id": "t-cell",
            "authority": {"secretRefs": []},
            "lifetime": {"ttlSeconds": 60},
            "run": {"secretDelivery": "env", "argv": ["/bin/true"]},
        },
    }
    spec = doc["spec"]
    sections = {
        "run": ("argv", "env", "cwd", "timeoutMs", "secretDelivery", "limits", "user"),
        "lifetime": ("ttlSeconds",),
        "authority": ("secretRefs", "egressRules", "network", "filesystem"),
    }
    for key, value in overrides.items():
        if key in ("apiVersion", "kind"):
            target, name = doc, key
        elif key in sections and isinstance(value, dict):
            spec.setdefault(key, {}).update(value)
            continue
        else:
            section = next((s for s, keys in sections.items() if key in keys), None)
            target = spec.setdefault(section, {}) if section else spec
            name = key
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return doc


class Result:
    """What one cellvisor invocation left behind."""

    def __init__(self, argv, rc, stdout, stderr, elapsed, events_path=None, wall=(None, None)):
        self.argv = argv
        self.wall0, self.wall1 = wall  # time.time() at start and end
        self.rc = rc  # negative: killed by that signal
        self.stdout = stdout  # bytes
        self.stderr_bytes = stderr
        self.stderr = stderr.decode("utf-8", "replace")
        self.elapsed = elapsed  # seconds, wall clock
        self.events_path = events_path
        self.events_raw = ""
        self.events = []
        if events_path is not None and os.path.exists(events_path):
            self.events_raw = pathlib.Path(events_path).read_text()
            self.events = parse_jsonl(self.events_raw)

    def types(self):
        return [e.get("type") for e in self.events]

    def event(self, etype):
        """The one event of this type (asserts there is exactly one)."""
        found = [e for e in self.events if e.get("type") == etype]
        assert len(found) == 1, f"expected one {etype}, got {len(found)}: {self.types()}\n{self}"
        return found[0]

    def __repr__(self):
        return (
            f"<cellvisor {self.argv[1:]} rc={self.rc} elapsed={self.elapsed:.3f}s\n"
            f" stdout={self.stdout[:400]!r}\n stderr={self.stderr[:2000]!r}\n"
            f" events={self.types()}>"
        )


def parse_jsonl(text):
    """Each line one whole JSON object; a malformed line fails the test."""
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except ValueError as e:
            raise AssertionError(f"events line {n} is not JSON ({e}): {line[:300]!r}")
    return events


def make_env(env):
    out = dict(BASE_ENV)
    out.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out


class Running:
    """A runner started in the background (for interrupt tests)."""

    def __init__(self, argv, env, stdin, events_path, cwd, pass_fds):
        self.argv = argv
        self.events_path = events_path
        if stdin is None:
            stdin_arg = subprocess.DEVNULL
        elif isinstance(stdin, int):  # an fd the runner inherits as its stdin
            stdin_arg, stdin = stdin, None
        else:
            stdin_arg = subprocess.PIPE
        self.wall0 = time.time()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=stdin_arg,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,
        )
        self.stdin = stdin

    def current_events(self):
        try:
            text = pathlib.Path(self.events_path).read_text()
        except (OSError, TypeError):
            return []
        # Only whole lines: the runner may be writing the last one.
        lines = text.split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def wait_started(self, timeout=10):
        """Wait for the lifecycle `started` event; fails if the runner exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("type") == STARTED for e in self.current_events()):
                return
            if self.proc.poll() is not None:
                res = self.wait()
                raise AssertionError(f"runner exited before the cell started: {res}")
            time.sleep(0.02)
        raise AssertionError("no started event within %ss" % timeout)

    def wait(self, timeout=30):
        try:
            out, err = self.proc.communicate(self.stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_runner(self.proc)
            out, err = self.proc.communicate()
            res = self._result(out, err)
            raise AssertionError(f"cellvisor did not finish within {timeout}s: {res}")
        return self._result(out, err)

    def _result(self, out, err):
        elapsed = time.monotonic() - self.t0
        wall = (self.wall0, time.time())
        return Result(self.argv, self.proc.returncode, out, err, elapsed, self.events_path, wall)


def kill_runner(proc):
    """SIGKILL a runner we started (its own session, so its process group too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# The v2 tree (hybrid hosts mount it at /sys/fs/cgroup/unified), or None.
V2_ROOT = next((p for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                if os.path.exists(os.path.join(p, "cgroup.procs"))), None)


def cell_cgroups(cell_id):
    """The directories of cell cgroups named after cell_id, anywhere under /sys/fs/cgroup."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if d.startswith(f"cellvisor-{cell_id}-"):
                found.append(os.path.join(root, d))
    return found


def procs_with_marker(marker):
    """Pids of live (non-zombie) processes whose argv contains `marker` exactly."""
    want = marker.encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if want in args and state not in (b"Z", b"X"):
            pids.append(int(name))
    return pids


# The owner of the tests' readWrite directories: a sandbox cell is granted a readWrite tree
# only when a non-root user and group own it (docs/sandbox.md, "Who owns what a cell
# writes"); this id is no host account's.
RW_OWNER = 2147483646


def cell_rw_dir(path, mode=0o755, owner=RW_OWNER):
    """A directory a sandbox cell may be granted readWrite: owned by owner:owner."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def events_between(events, first, last):
    return events[events.index(first) : events.index(last) + 1]


@pytest.fixture(scope="session")
def cellvisor_bin():
    if not os.access(BIN, os.X_OK):
        pytest.skip(f"{BIN} is not built (run `make`), or set CELLVISOR_BIN")
    return BIN


@pytest.fixture
def v2_parent():
    """A parent cgroup of the test's own in the v2 tree: (name, path). Whatever is left in it
    afterwards is killed and removed with it."""
    if V2_ROOT is None:
        pytest.skip("no cgroup v2 tree")
    name = f"cvtest-{uuid.uuid4().hex[:8]}"
    path = os.path.join(V2_ROOT, name)
    os.mkdir(path)
    yield name, path
    for d in os.listdir(path):
        full = os.path.join(path, d)
        if not os.path.isdir(full):
            continue
        try:
            with open(os.path.join(full, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
        for _ in range(100):
            try:
                os.rmdir(full)
                break
            except OSError:
                time.sleep(0.02)
    os.rmdir(path)


@pytest.fixture
def tmp(tmp_path):
    return pathlib.Path(os.path.realpath(tmp_path))


@pytest.fixture
def write_spec(tmp):
    counter = [0]

    def write(spec, name=None):
        counter[0] += 1
        path = tmp / (name or f"spec{counter[0]}.json")
        if isinstance(spec, dict):
            data = json.dumps(spec).encode()
        elif isinstance(spec, str):
            data = spec.encode()
        else:
            data = bytes(spec)
        path.write_bytes(data)
        return path

    return write


@pytest.fixture(name="base_spec")
def base_spec_fixture():
    return base_spec


@pytest.fixture
def cli(cellvisor_bin, tmp):
    """cli(*argv) runs `cellvisor ARGV...` to completion in tmp."""

    def run(*argv, env=None, stdin=None, timeout=30, events_path=None):
        full = [str(cellvisor_bin), *map(str, argv)]
        r = Running(full, make_env(env), stdin, events_path, tmp, ())
        return r.wait(timeout)

    return run


@pytest.fixture
def start_cell(cellvisor_bin, tmp, write_spec):
    """start_cell(spec, ...) -> Running: `cellvisor run [args] SPEC` in the background.

    spec: a dict or bytes (written to a file), a Path/str path, or "-" (read from stdin=).
    events: "env" (default) sets CELL_OS_JSONL_EVENTS to a fresh file, "flag" passes
    `--events FILE` instead, None neither. If env= sets CELL_OS_JSONL_EVENTS, that file is read.
    """
    started = []
    counter = [0]

    def start(spec, args=(), env=None, stdin=None, events="env", pass_fds=(), cwd=None):
        counter[0] += 1
        if isinstance(spec, (dict, bytes)):
            spec_arg = str(write_spec(spec))
        else:
            spec_arg = str(spec)
        env = dict(env or {})
        events_path = env.get("CELL_OS_JSONL_EVENTS")
        opts = [str(a) for a in args]
        if events_path is None and events is not None:
            events_path = str(tmp / f"events{counter[0]}.jsonl")
            if events == "env":
                env["CELL_OS_JSONL_EVENTS"] = events_path
            elif events == "flag":
                opts = ["--events", events_path, *opts]
            else:
                raise ValueError(events)
        argv = [str(cellvisor_bin), "run", *opts, spec_arg]
        r = Running(argv, make_env(env), stdin, events_path, cwd or tmp, pass_fds)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            kill_runner(r.proc)
            r.proc.wait()


@pytest.fixture
def run_cell(start_cell):
    """run_cell(spec, args=(), env=None, timeout=30, stdin=None, ...) -> Result."""

    def run(spec, args=(), env=None, timeout=30, stdin=None, **kw):
        return start_cell(spec, args=args, env=env, stdin=stdin, **kw).wait(timeout)

    return run


@pytest.fixture
def marker():
    """A unique `sleep` duration; survivors carrying it are SIGKILLed by pid at teardown."""
    m = "1000.%06d" % random.randrange(10**6)
    yield m
    for pid in procs_with_marker(m):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_envelope(ev, cell_id, t_lo=None, t_hi=None):
    """CloudEvents 1.0 envelope per DESIGN.md §6."""
    import socket
    from datetime import datetime, timezone

    assert ev.get("specversion") == "1.0", ev
    assert isinstance(ev.get("id"), str) and UUID_RE.match(ev["id"]), ev
    assert ev.get("source") == f"/cellvisor/{socket.gethostname()}", ev
    assert ev.get("subject") == f"cell:{cell_id}", ev
    assert ev.get("datacontenttype") == "application/json", ev
    assert isinstance(ev.get("data"), dict), ev
    t = ev.get("time")
    assert isinstance(t, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t), ev
    when = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    if t_lo is not None:
        assert t_lo - 2 <= when.timestamp() <= t_hi + 2, (t, t_lo, t_hi)
