"""The sandbox's network authority (issue 3, deliverable 3): `none` (the default) is a new
network namespace with nothing up, `loopback` brings `lo` up, `host` shares the host's
network only when declared; egressRules cannot be enforced yet: refused under `hardened`
(the sandbox's default profile), a degraded event under `portable` (reliability.md I10,
I11; CVE-2020-15257: the host's abstract sockets are out of reach)."""

import json
import os
import socket
import threading

import pytest

from conftest import DEGRADED, REJECTED, STARTED

PY = "/usr/bin/python3"
SB = ("--backend", "sandbox")

CONNECT_PROBE = r"""
import errno, json, socket, sys
port, abstract = int(sys.argv[1]), sys.argv[2]
out = {}
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"hello")
    out["tcp"] = "connected"
except OSError as e:
    out["tcp"] = errno.errorcode.get(e.errno, str(e))
try:
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect("\0" + abstract)
    out["abstract"] = "connected"
except OSError as e:
    out["abstract"] = errno.errorcode.get(e.errno, str(e))
out["links"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:])
# A server of its own on the loopback.
try:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=2)
    out["self"] = "connected"
except OSError as e:
    out["self"] = errno.errorcode.get(e.errno, str(e))
print(json.dumps(out))
"""


class HostListeners:
    """A TCP listener on the host's 127.0.0.1 and an abstract unix socket, counting accepts."""

    def __init__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.port = self.tcp.getsockname()[1]
        self.abstract = "cellvisor-test-canary-%d-%s" % (os.getpid(), os.urandom(6).hex())
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen(8)
        self.accepted = []
        self.stop = False
        self.threads = []
        for s in (self.tcp, self.unix):
            s.settimeout(0.1)
            t = threading.Thread(target=self._accept, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    def _accept(self, s):
        while not self.stop:
            try:
                c, _ = s.accept()
                self.accepted.append(s.family)
                c.close()
            except (socket.timeout, OSError):
                continue

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join()
        self.tcp.close()
        self.unix.close()


@pytest.fixture
def host_listeners():
    h = HostListeners()
    yield h
    h.close()


def probe(run_cell, base_spec, h, network=None, env=None):
    kw = {"id": "t-sbnet", "argv": [PY, "-I", "-S", "-c", CONNECT_PROBE, str(h.port), h.abstract]}
    if network is not None:
        kw["network"] = network
    res = run_cell(base_spec(**kw), args=SB, env=env)
    assert res.rc == 0, res
    return json.loads(res.stdout)


@pytest.mark.parametrize("network", [None, "none"])
def test_network_none_reaches_nothing(run_cell, base_spec, host_listeners, network):
    got = probe(run_cell, base_spec, host_listeners, network)
    assert got["links"] == ["lo"], got
    assert got["tcp"] in ("ENETUNREACH", "ECONNREFUSED"), got
    assert got["abstract"] == "ECONNREFUSED", got
    assert got["self"] != "connected", got  # lo is down
    assert host_listeners.accepted == []


def test_network_loopback_has_lo_up_and_nothing_else(run_cell, base_spec, host_listeners):
    got = probe(run_cell, base_spec, host_listeners, "loopback")
    assert got["links"] == ["lo"], got
    assert got["self"] == "connected", got
    assert got["tcp"] == "ECONNREFUSED", got  # the cell's own 127.0.0.1, not the host's
    assert got["abstract"] == "ECONNREFUSED", got
    assert host_listeners.accepted == []


def test_network_host_when_declared(run_cell, base_spec, host_listeners):
    got = probe(run_cell, base_spec, host_listeners, "host")
    assert got["tcp"] == "connected", got
    assert len(got["links"]) >= 1, got


EGRESS = [{"host": "example.org", "port": 443}]


def test_egress_rules_are_refused_under_hardened(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbegress", egressRules=EGRESS), args=SB)
    assert res.rc == 125, res
    assert STARTED not in res.types(), res
    text = json.dumps(res.event(REJECTED)["data"])
    assert "authority.egressRules" in text, text
    assert "authority.egressRules" in res.stderr, res


def test_egress_rules_are_a_degradation_under_portable(run_cell, base_spec):
    res = run_cell(base_spec(id="t-sbegress", egressRules=EGRESS,
                             argv=["/bin/cat", "/proc/net/dev"]),
                   args=SB, env={"CELLOS_DEPLOYMENT_PROFILE": "portable"})
    assert res.rc == 0, res
    deg = res.event(DEGRADED)["data"]
    assert deg["item"] == "authority.egressRules", deg
    assert deg["backend"] == "sandbox" and deg["profile"] == "portable", deg
    assert res.types().index(DEGRADED) < res.types().index(STARTED), res
    # The cell still gets the declared network (none): no way out.
    ifaces = [l.split(":")[0].strip() for l in res.stdout.decode().splitlines()[2:]]
    assert ifaces == ["lo"], res
