"""The workload's stdout and stderr reach the runner's own, byte for byte."""

import hashlib
import random

from conftest import COMPLETED

PY = "/usr/bin/python3"

BINARY = bytes(range(256)) * 4 + b"\r\n\x00no newline at the end \xff\xfe"


def py(code):
    return [PY, "-I", "-S", "-c", code]


def test_binary_stdout_is_exact(run_cell, base_spec):
    code = "import os, sys\nsys.stdout.buffer.write(%r)\n" % BINARY
    res = run_cell(base_spec(id="t-bin", argv=py(code)))
    assert res.rc == 0, res
    assert res.stdout == BINARY


def test_binary_stderr_is_exact(run_cell, base_spec):
    code = "import os, sys\nsys.stderr.buffer.write(%r)\n" % BINARY
    res = run_cell(base_spec(id="t-binerr", argv=py(code)), args=["--quiet"])
    assert res.rc == 0, res
    assert res.stderr_bytes == BINARY
    assert res.stdout == b""


def test_stdout_and_stderr_are_kept_apart(run_cell, base_spec):
    spec = base_spec(id="t-apart",
                     argv=["/bin/sh", "-c", "echo o1; echo e1 >&2; echo o2; echo e2 >&2"])
    res = run_cell(spec, args=["--quiet"])
    assert res.rc == 0, res
    assert res.stdout == b"o1\no2\n"
    assert res.stderr == "e1\ne2\n"


def test_stdout_is_exact_without_quiet(run_cell, base_spec):
    res = run_cell(base_spec(id="t-plain", argv=["/usr/bin/printf", "a\\0b\\nc"]))
    assert res.rc == 0, res
    assert res.stdout == b"a\x00b\nc"


def test_empty_output(run_cell, base_spec):
    res = run_cell(base_spec(id="t-empty", argv=["/bin/true"]), args=["--quiet"])
    assert res.rc == 0, res
    assert res.stdout == b"" and res.stderr_bytes == b""
    assert res.event(COMPLETED)["data"]["exitCode"] == 0, res


SIZE = 5 * 1024 * 1024 + 12345
LARGE = (
    "import os, random\n"
    "out = random.Random(1).randbytes(%d)\n"
    "err = random.Random(2).randbytes(%d)\n"
    "step = 65536 + 7\n"
    "for i in range(0, len(out), step):\n"
    "    for fd, data in ((1, out), (2, err)):\n"
    "        view = memoryview(data)[i:i + step]\n"
    "        while view:\n"
    "            view = view[os.write(fd, view):]\n"
    % (SIZE, SIZE)
)


def test_large_interleaved_output_is_exact(run_cell, base_spec):
    res = run_cell(base_spec(id="t-large", argv=py(LARGE)), args=["--quiet"], timeout=60)
    assert res.rc == 0, res
    want_out = random.Random(1).randbytes(SIZE)
    want_err = random.Random(2).randbytes(SIZE)
    assert len(res.stdout) == SIZE, len(res.stdout)
    assert hashlib.sha256(res.stdout).digest() == hashlib.sha256(want_out).digest()
    assert len(res.stderr_bytes) == SIZE, len(res.stderr_bytes)
    assert hashlib.sha256(res.stderr_bytes).digest() == hashlib.sha256(want_err).digest()


def test_many_small_writes_keep_order(run_cell, base_spec):
    code = (
        "import os\n"
        "for i in range(20000):\n"
        "    os.write(1, b'%d\\n' % i)\n"
    )
    res = run_cell(base_spec(id="t-small", argv=py(code)), timeout=60)
    assert res.rc == 0, res
    assert res.stdout == b"".join(b"%d\n" % i for i in range(20000))


def test_output_written_just_before_exit_is_delivered(run_cell, base_spec):
    code = "import os\nos.write(1, b'x' * 200000)\nos._exit(3)\n"
    res = run_cell(base_spec(id="t-tail", argv=py(code)))
    assert res.rc == 3, res
    assert res.stdout == b"x" * 200000


def test_output_before_timeout_is_delivered(run_cell, base_spec):
    spec = base_spec(id="t-out-timeout",
                     argv=["/bin/sh", "-c", "echo started; exec /bin/sleep 5"], timeoutMs=300)
    res = run_cell(spec)
    assert res.rc == 124, res
    assert res.stdout == b"started\n"
