"""smux interop: xsocket's smux layer against an independent Python peer (smux_peer.py,
written from the wire notes of the Go library yddeng/smux), both ways.

- The Python peer as client against smux_echo_server (xsocket, C): many streams with
  1 MiB+ each (windows and CFM), half-close, Go-style close, ids 0 and 65535, VRM
  probes, PIN (answered to a v2 peer, never sent to a v1 peer; XS_SMUX_PIN_INTERVAL;
  XS_SMUX_IDLE_TIMEOUT), over TCP, Unix and TLS; bad input (window violation,
  oversize PSH, unknown commands, over-confirming CFM) makes the server drop that
  session (EPROTO) and go on serving others.
- xsocket (the Python package over libxsocket) as client against the Python peer as
  server: many streams, Go-style immediate FIN answers, half-close against a peer
  that keeps the stream open, simultaneous open of the same id (one merged stream
  that neither side accepts), xs_smux_probe (right, wrong and no answer), the PIN
  read-back, and a stream nobody reads filling exactly its window.

The peer checks everything it receives (frame sizes, windows, CFM amounts, frames after
FIN, ...) and the tests assert that it found nothing (``Session.violations``).

smux_echo_server is built by the Makefile (build/smux_echo_server, or $SMUX_ECHO_SERVER).
Every wait is bounded. The one slow test (~11 s: the Go v2 PIN interval) is
test_pin_answered_to_v2_never_sent_to_v1.
"""

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "common"))
sys.path.insert(0, str(ROOT / "python-bindings"))
os.environ.setdefault("XSOCKET_LIB", str(ROOT / "target" / "release" / "libxsocket.so"))

import smux_peer as P  # noqa: E402
from server_process import ServerProcess  # noqa: E402
import xsocket  # noqa: E402

TIMEOUT = 10.0
START_TIMEOUT = 10.0
MIB = 1 << 20
SLOW = os.environ.get("XSOCKET_TEST_SLOW") == "1"
STREAMS = 4 if SLOW else 16
PER_STREAM = MIB + 4321  # more than two windows, not a multiple of a frame


# ----- the xsocket echo server -----


def server_binary():
    path = os.environ.get("SMUX_ECHO_SERVER") or str(ROOT / "build" / "smux_echo_server")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found or not executable: build it first (make smux-test), "
                    "or set SMUX_ECHO_SERVER")
    return path


class EchoServer(ServerProcess):
    """One smux_echo_server process; stopped by closing its stdin."""

    def __init__(self, args, tls=None):
        self.tls = tls  # an ssl.SSLContext for clients, with --tls
        self.sockets = []
        super().__init__(server_binary(), args, START_TIMEOUT)
        self.address = ("127.0.0.1", int(self.value)) if self.kind == "port" else self.value

    def raw(self):
        """A connected blocking socket (TLS-wrapped with --tls), for a Session."""
        sock = P.connect_tcp(self.address)
        self.sockets.append(sock)
        if self.tls is not None:
            sock.settimeout(TIMEOUT)  # bounds the handshake
            sock = P.TLSConnection(sock, self.tls, server_hostname="localhost")
            sock.sock.settimeout(None)
        return sock

    def session(self, **options):
        return P.Session(self.raw(), **options)

    def url(self):
        if isinstance(self.address, str):
            return f"smux+unix://{self.address}"
        scheme = "smux+tls" if self.tls is not None else "smux+tcp"
        return f"{scheme}://{self.address[0]}:{self.address[1]}"

    def wait_log(self, text, timeout=TIMEOUT):
        return super().wait_log(text, timeout)

    def stop(self):
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        rc = super().stop()
        assert rc == 0, f"smux_echo_server: rc {rc}: {self.stderr_text()}"


@pytest.fixture
def start_server():
    servers = []

    def start(*args, tls=None):
        server = EchoServer(args, tls)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def certs():
    """A self-signed certificate for 127.0.0.1/localhost (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed for the smux+tls tests")
    directory = Path(tempfile.mkdtemp(prefix="xs-smux-tls-"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=directory, check=True, timeout=60, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["tcp", "unix", "tls"])
def transport_server(request, start_server, certs):
    """An echo server over TCP, a Unix socket or TLS."""
    if request.param == "tcp":
        return start_server()
    if request.param == "unix":
        directory = tempfile.mkdtemp(prefix="xs-smux-")
        request.addfinalizer(lambda: shutil.rmtree(directory, ignore_errors=True))
        return start_server("--unix", os.path.join(directory, "sock"))
    context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    return start_server("--tls", str(certs / "cert.pem"), str(certs / "key.pem"), tls=context)


# ----- helpers -----


def pattern(seed, size):
    """``size`` reproducible pseudo-random bytes."""
    out, block, counter = bytearray(), hashlib.sha256(str(seed).encode()).digest(), 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(4, "little")).digest() * 64
        counter += 1
    return bytes(out[:size])


class Runner:
    """Runs calls in threads and joins them with a bound; re-raises their errors."""

    def __init__(self):
        self.threads, self.errors = [], []

    def spawn(self, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 (reported by join)
                self.errors.append(exc)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0))
        assert not any(t.is_alive() for t in self.threads), "a worker thread did not finish"
        if self.errors:
            raise self.errors[0]


def echo_through(stream, data, chunk=200_000):
    """Write ``data`` on a Python-peer stream in a thread while reading the echo."""
    runner = Runner()
    runner.spawn(lambda: [stream.write(data[i:i + chunk]) for i in range(0, len(data), chunk)])
    got = stream.read_exact(len(data), 15)
    runner.join()
    return got


def assert_clean(session):
    assert session.violations == [], session.violations
    assert session.unknown_cmd is None


def wait_until(predicate, timeout=TIMEOUT, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def xs_wait(session, predicate, timeout=TIMEOUT):
    """``wait_until`` for an xsocket session's read-backs: an xs_poll on the session
    moves it on (reads what came); a getsockopt does not, and a session nobody calls
    into is only looked at by the event thread every 5 s."""
    def check():
        xsocket.poll([(session, xsocket.POLLIN)], 0)
        return predicate()
    return wait_until(check, timeout)


class PyServer:
    """A Python-peer server: accepts TCP connections and runs a Session on each."""

    def __init__(self, **options):
        self.options = options
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(TIMEOUT)
        self.address = self.listener.getsockname()
        self.sessions = []

    def url(self):
        return f"smux+tcp://127.0.0.1:{self.address[1]}"

    def accept(self, **overrides):
        conn, _ = self.listener.accept()
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = P.Session(conn, **{**self.options, **overrides})
        self.sessions.append(session)
        return session

    def close(self):
        for session in self.sessions:
            session.close()
        self.listener.close()


@pytest.fixture
def py_server():
    servers = []

    def make(**options):
        server = PyServer(**options)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


def xs_client(server, **kw):
    """An xsocket session (the Python package) to a PyServer, and the server's Session."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("s", server.accept(**kw)), daemon=True)
    thread.start()
    client = xsocket.dial(server.url(), timeout=TIMEOUT)
    thread.join(TIMEOUT)
    assert "s" in result, "the Python server did not accept"
    return client, result["s"]


# ----- the Python peer as client, xsocket as server -----


def test_round_trip_and_one_fin_each_way(start_server):
    server = start_server()
    with server.session() as s:
        st = s.open()
        assert st.id == 1
        st.write(b"hello smux")
        st.close_write()  # FIN; xsocket's echo reads the end, answers, closes
        assert st.read_all(TIMEOUT) == b"hello smux"
        assert s.wait_for(lambda: st.released, TIMEOUT)
        assert s.count(P.FIN) == 1 and s.fins_out == 1
        assert s.count(P.SYN) == 0  # nothing opened from the server side
        assert s.streams == {}
        st2 = s.open()
        assert st2.id == 2  # ids go up
        assert echo_through(st2, b"again") == b"again"
        st2.close()
        assert s.wait_for(lambda: st2.released, TIMEOUT)
        assert_clean(s)


def test_many_streams_large_transfers(transport_server):
    """STREAMS streams at once, each 1 MiB+ both ways: the windows fill and CFMs flow."""
    with transport_server.session() as s:
        streams = [s.open() for _ in range(STREAMS)]
        results = {}

        def run(i, st):
            data = pattern(i, PER_STREAM)
            got = echo_through(st, data)
            results[i] = got == data
            st.close()

        runner = Runner()
        for i, st in enumerate(streams):
            runner.spawn(run, i, st)
        runner.join(20)
        assert results == {i: True for i in range(STREAMS)}
        assert s.wait_for(lambda: not s.streams, TIMEOUT), s.streams
        for st in streams:
            # 1 MiB through a 512 KiB window needs CFMs each way (after 256 KiB read).
            assert st.bytes_in == st.bytes_out == PER_STREAM
            assert st.cfm_in >= 2 and st.cfm_out >= 2, st
            assert PER_STREAM - P.WINDOW <= st.confirmed_in <= PER_STREAM, st
            assert PER_STREAM - P.WINDOW // 2 <= st.confirmed_out <= PER_STREAM, st
        assert_clean(s)


def test_half_close_then_read_the_echo(transport_server):
    """Our FIN first (half-close): xsocket still echoes 1.5 MiB back, taking our CFMs after
    our FIN, and sends its FIN after the data."""
    with transport_server.session() as s:
        st = s.open()
        data = pattern("half", 3 * MIB // 2)
        runner = Runner()
        runner.spawn(lambda: (st.write(data), st.close_write()))
        got = st.read_all(30)
        runner.join()
        assert got == data
        assert st.peer_fin and st.released
        assert_clean(s)


def test_go_style_close_drops_the_echo(start_server):
    """Go's Close: FIN and drop whatever still comes. The server echoes into the closed
    stream, then closes it; nothing arrives after its FIN."""
    server = start_server()
    with server.session() as s:
        st = s.open()
        st.write(pattern("go", 100_000))
        st.close()
        assert s.wait_for(lambda: st.released, TIMEOUT)
        # The session still works.
        st2 = s.open()
        assert echo_through(st2, b"still here") == b"still here"
        st2.close()
        assert s.wait_for(lambda: st2.released, TIMEOUT)
        time.sleep(0.2)
        assert_clean(s)


@pytest.mark.parametrize("sid", [0, 65535, 4660])
def test_any_stream_id_is_accepted(start_server, sid):
    server = start_server()
    with server.session() as s:
        st = s.open_id(sid)
        data = pattern(sid, 300_000)
        assert echo_through(st, data) == data
        st.close()
        assert s.wait_for(lambda: st.released, TIMEOUT)
        assert_clean(s)


def test_python_probes_xsocket(start_server):
    server = start_server()
    # Go's IsSmux: on a fresh connection, before anything else.
    raw = P.connect_tcp(server.address)
    try:
        assert P.is_smux(raw, 2.0)
    finally:
        raw.close()
    with server.session() as s:
        assert all(s.probe(2.0) for _ in range(3))
        time.sleep(0.3)
        # xsocket answered each probe once and did not probe back or answer our answers.
        assert s.vrm_in == 3 and s.probe_answers == 3 and s.vrm_answered == 0
        # Test vectors of verifyCode travel as they are.
        assert s.probe(2.0, v1=0x1234, v2=0x11223344)
        assert s.probe(2.0, v1=0xFFFF, v2=0xFFFFFFFF)
        assert s.probe(2.0, v1=0, v2=0)
        assert echo_through(s.open(), b"after probes") == b"after probes"
        assert_clean(s)


def test_pin_interval_option(start_server):
    """XS_SMUX_PIN_INTERVAL: PIN from the start, to a peer that never sent one."""
    server = start_server("--pin", "200")
    with server.session() as s:
        assert s.wait_for(lambda: s.pins_in >= 3, 3.0), s.pins_in
        assert_clean(s)  # PIN frames carry id 0 and length 0


def test_idle_timeout(start_server):
    """XS_SMUX_IDLE_TIMEOUT: a silent peer is cut (ETIMEDOUT); PINs keep a peer alive."""
    server = start_server("--idle", "600")
    lively = server.session()
    lively.start_pinger(0.15)
    silent = server.session()
    try:
        started = time.monotonic()
        assert silent.wait_closed(5.0), "the silent session was not cut"
        assert 0.5 <= time.monotonic() - started < 4.0
        assert silent.eof
        assert server.wait_log(" ended: errno 110 (ETIMEDOUT)"), server.stderr_text()
        time.sleep(0.8)
        assert not lively.dead, lively.dead
        assert echo_through(lively.open(), b"alive") == b"alive"
        assert_clean(lively)
    finally:
        lively.close()
        silent.close()


def test_pin_answered_to_v2_never_sent_to_v1(start_server):
    """Slow (~11 s): a v2 peer that sent one PIN gets PINs back (every 10 s, as Go's v2);
    a v1 peer (cmd 5 is unknown to it) is never sent one."""
    server = start_server()
    v2 = server.session(version=2)
    v1 = server.session(version=1)
    try:
        assert echo_through(v1.open(), b"v1") == b"v1"
        v2.send_pin()
        started = time.monotonic()
        assert v2.wait_for(lambda: v2.pins_in >= 1, 12.0), "no PIN back within 12 s"
        elapsed = time.monotonic() - started
        assert elapsed < 11.5
        if elapsed < 10.5:
            time.sleep(10.5 - elapsed)  # the v1 session has seen one whole interval
        assert v1.pins_in == 0 and v1.unknown_cmd is None and not v1.dead
        assert echo_through(v1.open(), b"v1 still") == b"v1 still"
        assert echo_through(v2.open(), b"v2 still") == b"v2 still"
        assert_clean(v1)
        assert_clean(v2)
    finally:
        v1.close()
        v2.close()


def test_unknown_ids_are_ignored(start_server):
    server = start_server()
    with server.session() as s:
        st = s.open()
        s.send_frame(P.PSH, 999, 5, b"stray")
        s.send_frame(P.CFM, 999, 12345)
        s.send_frame(P.FIN, 998)
        s.send_frame(P.PSH, st.id, 0)  # an empty PSH is harmless
        assert echo_through(st, b"fine") == b"fine"
        time.sleep(0.2)
        assert [c for _, c, i, _ in s.control if i in (998, 999)] == []
        assert_clean(s)


def test_refused_open_beyond_max_streams(start_server):
    """XS_SMUX_MAX_STREAMS: an extra SYN is answered with FIN (the stream ends at once)."""
    server = start_server("--max-streams", "2")
    with server.session() as s:
        a, b = s.open(), s.open()
        assert echo_through(a, b"a") == b"a"
        c = s.open()
        assert c.read_all(TIMEOUT) == b""  # refused: FIN
        assert echo_through(b, b"b") == b"b"
        for st in (a, b):
            st.close()
        assert s.wait_for(lambda: not s.streams, TIMEOUT)
        assert_clean(s)


def test_reads_on_while_its_output_is_backed_up(start_server):
    """The server must go on reading input that the windows allow even while its own
    output waits for us: 4 streams x 512 KiB (each exactly one window, so no CFM is
    needed) while we read nothing; the echoes of the first three (1.5 MiB) are queued
    at the server before the fourth goes out. Then we read, and every echo arrives.

    A server that stops reading while it has output queued deadlocks a Go-style peer
    whose read loop writes (FIN answers, VRM answers) under the write lock its
    application writers hold while they wait for the server to read."""
    directory = tempfile.mkdtemp(prefix="xs-smux-")
    try:
        server = start_server("--unix", os.path.join(directory, "sock"))
        sock = P.connect_tcp(server.address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        s = P.Session(sock, start=False, send_timeout=3.0)
        try:
            streams = [s.open() for _ in range(4)]
            data = [pattern(("backlog", i), P.WINDOW) for i in range(4)]
            try:
                for i, (st, payload) in enumerate(zip(streams, data)):
                    if i == 3:
                        time.sleep(0.5)  # the echoes of the first three fill its output
                    st.write(payload, timeout=3.0)  # within the window: no CFM needed
            except OSError as exc:
                written = sum(st.bytes_out for st in streams)
                pytest.fail(f"the server stopped reading after {written} of {4 * P.WINDOW} bytes "
                            f"within the windows while we did not read ({exc})")
            s.start()
            for st, payload in zip(streams, data):
                assert st.read_exact(len(payload), 20) == payload
                st.close()
            assert s.wait_for(lambda: not s.streams, TIMEOUT)
            assert_clean(s)
        finally:
            s.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


BAD_INPUTS = {
    "window_violation": lambda s, st: s.send_raw(b"".join(
        P.frame(P.PSH, st.id, bytes(P.MAX_FRAME)) for _ in range(48))),  # 3 MiB unconfirmed
    "psh_65537": lambda s, st: s.send_raw(P.frame(P.PSH, st.id, bytes(65537))),
    "psh_huge_header_only": lambda s, st: s.send_frame(P.PSH, st.id, 0xFFFFFFF0),
    "unknown_cmd_0xee": lambda s, st: s.send_frame(0xEE, st.id, 0),
    "unknown_cmd_6": lambda s, st: s.send_frame(6, 0, 0),
    "cfm_over_confirm_huge": lambda s, st: s.send_frame(P.CFM, st.id, 0x80000000),
    "cfm_over_confirm_one": lambda s, st: s.send_frame(P.CFM, s.open().id, 1),  # nothing sent
}


BAD_INPUT_REASONS = {  # a word of xs_last_error's reason, as the server logs it
    "window_violation": "window", "psh_65537": "65536", "psh_huge_header_only": "65536",
    "unknown_cmd_0xee": "unknown command", "unknown_cmd_6": "unknown command",
    "cfm_over_confirm_huge": "CFM", "cfm_over_confirm_one": "CFM",
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_drops_only_that_session(start_server, case):
    server = start_server()
    good = server.session()
    bad = server.session(enforce=False)
    try:
        keep = good.open()
        assert echo_through(keep, b"before") == b"before"
        st = bad.open()
        assert echo_through(st, b"x") == b"x"
        try:
            BAD_INPUTS[case](bad, st)
        except OSError:
            pass  # the server may close while we still write
        assert bad.wait_closed(TIMEOUT), f"{case}: the session was not dropped"
        assert bad.eof or "reset" in str(bad.dead).lower(), bad.dead
        assert server.wait_log(" ended: errno 71 (EPROTO)"), server.stderr_text()
        ended = [line for line in server.stderr_text().splitlines() if " ended: " in line]
        assert len(ended) == 1 and BAD_INPUT_REASONS[case] in ended[0], ended
        # Other sessions go on, old and new.
        assert echo_through(keep, b"after") == b"after"
        with server.session() as fresh:
            assert echo_through(fresh.open(), b"new") == b"new"
            assert_clean(fresh)
        assert_clean(good)
        assert server.proc.poll() is None
    finally:
        good.close()
        bad.close()


# ----- xsocket as client (the Python package), the Python peer as server -----


def xs_echo(stream, data, chunk=200_000):
    """Send ``data`` on an xsocket stream in a thread while reading the echo."""
    runner = Runner()
    runner.spawn(lambda: stream.sendall(data))
    got = bytearray()
    while len(got) < len(data):
        piece = stream.recv(1 << 20)
        if not piece:
            break
        got += piece
    runner.join()
    return bytes(got)


def test_xsocket_client_many_streams(py_server):
    server = py_server()
    client, s = xs_client(server)
    with client:
        P.serve_echo(s)
        results = {}

        def run(i):
            with client.open_stream() as st:
                st.settimeout(15)
                data = pattern(("xs", i), PER_STREAM)
                results[i] = xs_echo(st, data) == data

        runner = Runner()
        for i in range(STREAMS):
            runner.spawn(run, i)
        runner.join(20)
        assert results == {i: True for i in range(STREAMS)}
        # xsocket closed each stream; the Go-style peer answered each FIN at once.
        assert xs_wait(client, lambda: client.smux_streams() == 0), client.smux_streams()
        assert s.wait_for(lambda: not s.streams, TIMEOUT)
        assert s.count(P.FIN) == STREAMS and s.fins_out == STREAMS
        ids = sorted(i for _, c, i, _ in s.control if c == P.SYN)
        assert len(ids) == STREAMS and len(set(ids)) == STREAMS and 0 not in ids
    assert_clean(s)


def test_xsocket_sees_immediate_fin_answer(py_server):
    """Go answers a FIN at once: xsocket's half-close then ends the stream both ways."""
    server = py_server(answer_fin=True)
    client, s = xs_client(server)
    with client:
        st = client.open_stream()
        st.settimeout(TIMEOUT)
        peer = s.accept(TIMEOUT)
        st.sendall(b"ping")
        assert peer.read(10) == b"ping"
        peer.write(b"pong")
        assert st.recv(10) == b"pong"
        assert st.smux_stream_id() == peer.id
        st.shutdown(xsocket.SHUT_WR)
        assert peer.read(10) == b""
        assert st.recv(10) == b""  # the answer FIN: the end
        assert xs_wait(client, lambda: st.smux_stream_id() == 0)  # closed both ways
        st.close()
        assert xs_wait(client, lambda: client.smux_streams() == 0)
        time.sleep(0.2)
        assert s.count(P.FIN) == 1  # close() after that sends no second FIN
        # The peer closes first: xsocket reads the end, its close answers.
        st2 = client.open_stream()
        st2.settimeout(TIMEOUT)
        peer2 = s.accept(TIMEOUT)
        peer2.write(b"bye")
        peer2.close()
        assert st2.recv(10) == b"bye"
        assert st2.recv(10) == b""
        st2.close()
        assert s.wait_for(lambda: peer2.released, TIMEOUT)
        time.sleep(0.2)
        assert s.count(P.FIN) == 2
    assert_clean(s)


def test_xsocket_half_close_with_a_peer_that_keeps_writing(py_server):
    """xsocket's FIN first; the peer (not answering at once) reads to the end, then
    sends it all back: 1 MiB+ after xsocket's FIN, which needs xsocket's CFMs."""
    server = py_server(answer_fin=False)
    client, s = xs_client(server)
    with client:
        st = client.open_stream()
        st.settimeout(30)
        data = pattern("xs-half", PER_STREAM)
        runner = Runner()
        runner.spawn(lambda: (st.sendall(data), st.shutdown(xsocket.SHUT_WR)))
        peer = s.accept(TIMEOUT)
        assert peer.read_all(30) == data
        runner.join()
        runner.spawn(lambda: (peer.write(data), peer.close()))
        got = bytearray()
        while True:
            piece = st.recv(1 << 20)
            if not piece:
                break
            got += piece
        runner.join()
        assert bytes(got) == data
        st.close()
        assert s.wait_for(lambda: not s.streams, TIMEOUT)
        assert s.late_cfm >= 1  # confirmations after its FIN, as half-close needs
    assert_clean(s)


def test_simultaneous_open_merges_the_stream(py_server):
    """Both sides open id 1 at once: one stream, which neither side's accept returns."""
    server = py_server()
    result = {}

    def accept_and_open():
        conn, _ = server.listener.accept()
        conn.settimeout(None)
        # Wait until xsocket's SYN 1 is here (without reading it), then open id 1 too.
        deadline = time.monotonic() + TIMEOUT
        while len(conn.recv(7, socket.MSG_PEEK)) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        session = P.Session(conn, start=False)
        server.sessions.append(session)
        result["stream"] = session.open()
        session.start()
        result["session"] = session

    thread = threading.Thread(target=accept_and_open, daemon=True)
    thread.start()
    with xsocket.dial(server.url(), timeout=TIMEOUT) as client:
        st = client.open_stream()
        st.settimeout(TIMEOUT)
        thread.join(TIMEOUT)
        s, peer = result["session"], result["stream"]
        assert peer.id == 1 and st.smux_stream_id() == 1
        st.sendall(b"from xsocket")
        assert peer.read_exact(12, TIMEOUT) == b"from xsocket"
        peer.write(b"from python")
        assert st.recv(100) == b"from python"
        assert s.accept(0.3) is None
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.accept()
        assert s.dup_syns == 1
        assert client.smux_streams() == 1
        st.close()
        assert s.wait_for(lambda: peer.released, TIMEOUT)
        assert xs_wait(client, lambda: client.smux_streams() == 0)
        assert_clean(s)


def test_xsocket_probes_python(py_server):
    server = py_server()
    client, s = xs_client(server)
    with client:
        assert all(client.probe_smux(2.0) for _ in range(3))
        time.sleep(0.3)
        # Three probes, each answered once; our answers were not answered back.
        assert s.vrm_in == 3 and s.vrm_answered == 3
        assert s.count(P.VRM) == 3
        assert_clean(s)

    # A wrong answer, and no answer: 0, and the session still works.
    answered = []

    def wrong(v1, v2):
        if answered:
            return None  # answer once only, else the two sides would ping-pong
        answered.append(1)
        a, b = P.verify_code(v1, v2)
        return a ^ 0x10, b

    server2 = py_server(vrm_answer=wrong)
    client2, s2 = xs_client(server2)
    with client2:
        assert client2.probe_smux(0.5) is False
        s2.answer_vrm = False
        started = time.monotonic()
        assert client2.probe_smux(0.5) is False
        assert time.monotonic() - started >= 0.45
        P.serve_echo(s2)
        with client2.open_stream() as st:
            st.settimeout(TIMEOUT)
            assert xs_echo(st, b"still fine") == b"still fine"
        assert_clean(s2)


def test_xsocket_peer_pins_readback(py_server):
    server = py_server()
    client, s = xs_client(server)
    with client:
        assert client.smux_peer_pins() is False
        s.send_pin()
        assert xs_wait(client, client.smux_peer_pins)


def test_unread_stream_fills_exactly_its_window(py_server):
    """A stream nobody reads takes exactly one window (512 KiB) and blocks; another
    stream goes on; SO_SNDTIMEO bounds the blocked send."""
    server = py_server()
    client, s = xs_client(server)
    with client:
        stuck = client.open_stream()
        stuck.settimeout(0.5)
        peer_stuck = s.accept(TIMEOUT)
        with pytest.raises(TimeoutError):
            stuck.sendall(bytes(2 * MIB))
        assert s.wait_for(lambda: peer_stuck.recv_pending == P.WINDOW, TIMEOUT), peer_stuck
        time.sleep(0.2)
        assert peer_stuck.recv_pending == P.WINDOW
        other = client.open_stream()
        other.settimeout(TIMEOUT)
        peer_other = s.accept(TIMEOUT)
        other.sendall(b"other stream")
        assert peer_other.read_exact(12, TIMEOUT) == b"other stream"
        # Reading the stuck stream frees the window again.
        assert len(peer_stuck.read_exact(P.WINDOW, TIMEOUT)) == P.WINDOW
        stuck.settimeout(TIMEOUT)
        stuck.sendall(b"more")
        assert peer_stuck.read_exact(4, TIMEOUT) == b"more"
        assert_clean(s)
