"""smux (XS_PROTO_SMUX) through the package: sessions from dial/listen URLs and from
smux_socket, streams from open_stream/accept, round trips, half-close, timeouts and
non-blocking calls, poll, many streams, the window, session end, probes, options
(SmuxConfig) and smux over TLS (certificates made with the openssl command line).
Loopback only; every wait is bounded (helpers.WAIT)."""

import contextlib
import errno
import os
import shutil
import socket as std
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import xsocket
from helpers import WAIT, Background, recv_all

WINDOW = 512 * 1024
SLOW = os.environ.get("XSOCKET_TEST_SLOW") == "1"


class Server:
    """An xsocket smux server in threads: accepts sessions on ``listener`` and streams
    on them, and runs ``handler(stream)`` for each stream in its own thread. A thread
    always waits in the session's ``accept``, as a real server's would (a session
    nobody calls into is only looked at every few seconds)."""

    def __init__(self, listener, handler):
        self.listener = listener
        self.handler = handler
        self.sessions = []
        self.errors = []
        self.stop = threading.Event()
        listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept_sessions, daemon=True)
        self.thread.start()

    def _accept_sessions(self):
        while not self.stop.is_set():
            try:
                session, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self.stop.is_set():
                    self.errors.append(exc)
                return
            self.sessions.append(session)
            threading.Thread(target=self._accept_streams, args=(session,), daemon=True).start()

    def _accept_streams(self, session):
        session.settimeout(0.2)
        while not self.stop.is_set():
            try:
                stream, _ = session.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the session ended
            stream.settimeout(WAIT)
            threading.Thread(target=self._run, args=(stream,), daemon=True).start()

    def _run(self, stream):
        try:
            with stream:
                self.handler(stream)
        except OSError as exc:
            if not self.stop.is_set():
                self.errors.append(exc)

    def close(self):
        self.stop.set()
        self.thread.join(WAIT)
        for session in self.sessions:
            session.close()
        self.listener.close()


def echo(stream):
    while True:
        data = stream.recv(1 << 20)
        if not data:
            return
        stream.sendall(data)


@pytest.fixture
def serve():
    """``serve(handler, url, **listen_options)`` starts a Server; all are closed after
    the test."""
    servers = []

    def start(handler=echo, url="smux+tcp://127.0.0.1:0", **kw):
        server = Server(xsocket.listen(url, **kw), handler)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


@pytest.fixture
def echo_server():
    server = Server(xsocket.listen("smux+tcp://127.0.0.1:0"), echo)
    yield server
    server.close()
    assert server.errors == [], server.errors


def url_of(server, scheme="smux+tcp"):
    host, port = server.listener.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


def pattern(seed, size):
    block = bytes((seed * 131 + i * 7) & 0xFF for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def echo_with(stream, data):
    """Send ``data`` in a thread while reading the echo back."""
    sender = Background(stream.sendall, data)
    got = bytearray()
    while len(got) < len(data):
        chunk = stream.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sender.result(WAIT * 2)
    return bytes(got)


def wait_until(predicate, session=None, timeout=WAIT):
    """Wait for ``predicate()``; an xs_poll on ``session`` moves it on meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session is not None:
            xsocket.poll([(session, xsocket.POLLIN)], 0)
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ----- sessions and streams -----


def test_constants_and_names():
    assert xsocket.XS_PROTO_SMUX == 2048
    assert xsocket.XS_SOL_SMUX == 0x5856
    assert (xsocket.XS_SMUX_WINDOW, xsocket.XS_SMUX_MAX_STREAMS, xsocket.XS_SMUX_ACCEPT_BACKLOG,
            xsocket.XS_SMUX_PIN_INTERVAL, xsocket.XS_SMUX_IDLE_TIMEOUT) == (1, 2, 3, 4, 5)
    assert (xsocket.XS_SMUX_STREAM_ID, xsocket.XS_SMUX_STREAMS, xsocket.XS_SMUX_PEER_PINS) == (20, 21, 22)
    for name in ("SmuxConfig", "smux_socket", "XS_PROTO_SMUX", "XS_SMUX_WINDOW"):
        assert name in xsocket.__all__


def test_round_trip_over_urls(echo_server):
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        assert session.proto == xsocket.XS_PROTO_SMUX
        assert session.type == xsocket.SOCK_STREAM
        assert session.smux_streams() == 0
        assert session.smux_peer_pins() is False
        with session.open_stream() as stream:
            assert stream.proto == xsocket.XS_PROTO_SMUX
            assert stream.type == xsocket.SOCK_STREAM
            assert stream.smux_stream_id() == 1
            assert session.smux_streams() == 1
            stream.settimeout(WAIT)
            stream.sendall(b"hello smux")
            stream.shutdown(xsocket.SHUT_WR)
            assert recv_all(stream) == b"hello smux"
            assert stream.getpeername() == session.getpeername()
        assert wait_until(lambda: session.smux_streams() == 0, session)
        with session.open_stream() as stream:
            assert stream.smux_stream_id() == 2
        with pytest.raises(OSError) as info:
            session.smux_stream_id()  # a session has no stream id
        assert info.value.errno == errno.ENOPROTOOPT


def test_families(family_addr):
    """smux_socket over TCP/IPv4, TCP/IPv6 and Unix: bind, listen, connect, accept."""
    family, address = family_addr
    listener = xsocket.smux_socket(family)
    listener.bind(address)
    listener.listen()
    server = Server(listener, echo)
    try:
        with xsocket.smux_socket(family) as session:
            session.settimeout(WAIT)
            session.connect(listener.getsockname())
            with session.open_stream() as stream:
                stream.settimeout(WAIT)
                assert echo_with(stream, pattern(1, 300_000)) == pattern(1, 300_000)
    finally:
        server.close()
    assert server.errors == []


def test_nonblocking_connect_then_poll(echo_server):
    """The stdlib pattern: a non-blocking connect (EINPROGRESS), then poll for POLLOUT,
    then SO_ERROR."""
    with xsocket.smux_socket() as session:
        session.setblocking(False)
        err = session.connect_ex(echo_server.listener.getsockname())
        assert err in (0, errno.EINPROGRESS)
        if err:
            assert xsocket.poll([(session, xsocket.POLLOUT)], WAIT) == [(session, xsocket.POLLOUT)]
            assert session.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_ERROR) == 0
        with session.open_stream() as stream:
            stream.settimeout(WAIT)
            assert echo_with(stream, b"non-blocking") == b"non-blocking"


def test_accept_on_session_returns_streams():
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        with xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT) as client:
            server, address = listener.accept()
            with server:
                assert server.proto == xsocket.XS_PROTO_SMUX
                assert address == client.getsockname()
                server.settimeout(WAIT)
                opened = [client.open_stream() for _ in range(3)]
                accepted = [server.accept()[0] for _ in range(3)]
                try:
                    assert [s.smux_stream_id() for s in accepted] == [1, 2, 3]
                    # Streams opened from the server side take the next free ids.
                    back = server.open_stream()
                    opened.append(back)
                    assert back.smux_stream_id() == 4
                    mine, _ = client.accept()
                    accepted.append(mine)
                    assert mine.smux_stream_id() == 4
                    for a, b in zip(opened, accepted):
                        a.settimeout(WAIT)
                        b.settimeout(WAIT)
                        a.sendall(b"id %d" % a.smux_stream_id())
                        assert b.recv(100) == b"id %d" % b.smux_stream_id()
                    # Adopting a sid finds out what it is.
                    adopted = xsocket.socket(fileno=accepted[0].detach())
                    accepted[0] = adopted
                    assert adopted.proto == xsocket.XS_PROTO_SMUX
                    assert adopted.smux_stream_id() == 1
                finally:
                    for s in opened + accepted:
                        s.close()


def test_half_close(echo_server):
    """SHUT_WR sends FIN: the peer reads the end and can still answer."""
    def reverse(stream):
        data = recv_all(stream)
        stream.sendall(data[::-1])
    echo_server.handler = reverse
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        with session.open_stream() as stream:
            stream.settimeout(WAIT)
            data = pattern(2, 3 * WINDOW)  # more than the window after our FIN
            sender = Background(lambda: (stream.sendall(data), stream.shutdown(xsocket.SHUT_WR)))
            assert recv_all(stream) == data[::-1]
            sender.result()
            with pytest.raises(OSError):
                stream.send(b"after FIN")


def test_timeouts_and_nonblocking(echo_server):
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        session.settimeout(0.2)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            session.accept()  # nobody opens a stream from the server side
        assert 0.15 <= time.monotonic() - started < 2
        session.setblocking(False)
        with pytest.raises(BlockingIOError):
            session.accept()
        with session.open_stream() as stream:
            stream.settimeout(0.2)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                stream.recv(10)
            assert 0.15 <= time.monotonic() - started < 2
            stream.setblocking(False)
            with pytest.raises(BlockingIOError):
                stream.recv(10)
            with pytest.raises(BlockingIOError):
                stream.recv(10, xsocket.MSG_DONTWAIT)
            stream.sendall(b"peek")
            stream.settimeout(WAIT)
            assert stream.recv(2, xsocket.MSG_PEEK) == b"pe"
            assert stream.recv(10) == b"peek"


def test_poll_on_streams_and_sessions():
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        with xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT) as client:
            server, _ = listener.accept()
            with server:
                assert xsocket.poll([(server, xsocket.POLLIN)], 0.1) == []
                stream = client.open_stream()
                with stream:
                    assert xsocket.poll([(server, xsocket.POLLIN)], WAIT) == [(server, xsocket.POLLIN)]
                    peer, _ = server.accept()
                    with peer:
                        assert xsocket.poll([(peer, xsocket.POLLIN)], 0.1) == []
                        assert xsocket.poll([(stream, xsocket.POLLOUT)], WAIT) == [(stream, xsocket.POLLOUT)]
                        stream.sendall(b"x")
                        assert xsocket.poll([(peer, xsocket.POLLIN)], WAIT) == [(peer, xsocket.POLLIN)]
                        assert peer.recv(10) == b"x"
                        stream.close()
                        ready = xsocket.poll([(peer, xsocket.POLLIN | xsocket.POLLHUP)], WAIT)
                        assert ready == [(peer, xsocket.POLLIN | xsocket.POLLHUP)]
                        peer.settimeout(WAIT)
                        assert peer.recv(10) == b""


def test_poll_reports_pollhup_unasked_when_the_session_is_lost():
    """As poll(2): POLLHUP is reported whether asked for or not; a stream whose
    session lost its connection shows it with POLLIN (the recv then fails)."""
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        client = xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT)
        server, _ = listener.accept()
        with server:
            server.settimeout(WAIT)
            stream = client.open_stream()
            peer, _ = server.accept()
            with peer:
                client.close()
                stream.close()
                ready = xsocket.poll([(peer, xsocket.POLLIN)], WAIT)
                assert ready and ready[0][1] & xsocket.POLLIN
                assert ready[0][1] & xsocket.POLLHUP, ready


@contextlib.contextmanager
def stream_pair():
    """A session pair over loopback TCP and one stream on it: (the stream, the peer's
    end of it); all closed after."""
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        with xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT) as client:
            server, _ = listener.accept()
            with server, client.open_stream() as stream:
                server.settimeout(WAIT)
                peer, _ = server.accept()
                with peer:
                    yield stream, peer


def test_poll_reports_no_pollout_while_the_window_is_full():
    """A stream whose window is used up is not writable: xs_poll must not report
    POLLOUT (else every poll-driven writer spins), and sendall with a timeout waits
    without burning the CPU."""
    with stream_pair() as (stream, peer):
        stream.setblocking(False)
        assert stream.send(bytes(2 * WINDOW)) == WINDOW  # one window, no more
        with pytest.raises(BlockingIOError):
            stream.send(b"x")
        assert xsocket.poll([(stream, xsocket.POLLOUT)], 0.2) == []
        stream.settimeout(0.5)
        cpu = time.process_time()
        with pytest.raises(TimeoutError):
            stream.sendall(b"more")
        assert time.process_time() - cpu < 0.25
        # Reading on the other side opens the window again.
        peer.settimeout(WAIT)
        got = 0
        while got < WINDOW:
            got += len(peer.recv(1 << 20))
        assert xsocket.poll([(stream, xsocket.POLLOUT)], WAIT) == [(stream, xsocket.POLLOUT)]


def test_send_timeout_returns_what_was_handed_over():
    """SO_SNDTIMEO-style: a blocking send bounded by the timeout returns the bytes that
    went out (one window), not an error."""
    with stream_pair() as (stream, peer):
        stream.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_SNDTIMEO,
                          struct.pack("@ll", 0, 300_000))
        started = time.monotonic()
        assert stream.send(bytes(2 * WINDOW)) == WINDOW
        assert time.monotonic() - started < 1.5


def test_many_streams(echo_server):
    count = 8 if SLOW else 64
    size = 64 * 1024 if SLOW else 256 * 1024
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        results = {}

        def run(i):
            with session.open_stream() as stream:
                stream.settimeout(WAIT * 2)
                data = pattern(i, size)
                results[i] = echo_with(stream, data) == data

        workers = [Background(run, i) for i in range(count)]
        for worker in workers:
            worker.result(WAIT * 4)
        assert results == {i: True for i in range(count)}
        assert wait_until(lambda: session.smux_streams() == 0, session)


def test_large_streams_both_ways(echo_server):
    """4 streams x 2 MiB at once: the windows fill and reopen many times."""
    size = (1 if SLOW else 2) << 20
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        def run(i):
            with session.open_stream() as stream:
                stream.settimeout(WAIT * 2)
                data = pattern(i + 100, size)
                return echo_with(stream, data) == data
        workers = [Background(run, i) for i in range(4)]
        assert [w.result(WAIT * 4) for w in workers] == [True] * 4


def test_session_close_sends_fin_for_its_streams():
    """Closing a session sends FIN for each of its streams (after what was queued):
    the peer's streams read the data, then the end; the closed session's own
    streams fail with ECONNRESET."""
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        client = xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT)
        server, _ = listener.accept()
        with server:
            server.settimeout(WAIT)
            stream = client.open_stream()
            stream.sendall(b"last words")
            peer, _ = server.accept()
            with peer:
                peer.settimeout(WAIT)
                client.close()
                assert recv_all(peer) == b"last words"
            with pytest.raises(ConnectionResetError):
                stream.send(b"x")  # its session is closed
            with pytest.raises(ConnectionResetError):
                stream.recv(10)
            stream.close()
            # The connection is gone: the server session ends too.
            with pytest.raises(ConnectionResetError):
                server.accept()
            with pytest.raises(ConnectionResetError):
                server.open_stream()


def test_connection_lost_resets_streams():
    """A connection lost without FINs (a raw peer that just hangs up): the streams
    return what came, then fail with ECONNRESET, and so do sends and the session."""
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        raw = std.create_connection(listener.getsockname()[:2], timeout=WAIT)
        server, _ = listener.accept()
        with server:
            server.settimeout(WAIT)
            # SYN 1, then PSH 1 "last words" (7-byte little-endian headers).
            raw.sendall(struct.pack("<BHI", 0, 1, 0) + struct.pack("<BHI", 2, 1, 10) + b"last words")
            peer, _ = server.accept()
            with peer:
                peer.settimeout(WAIT)
                assert peer.recv(100) == b"last words"
                raw.close()
                with pytest.raises(ConnectionResetError):
                    peer.recv(100)
                with pytest.raises(ConnectionResetError):
                    peer.send(b"x")
                with pytest.raises(ConnectionResetError):
                    server.accept()
                with pytest.raises(ConnectionResetError):
                    server.open_stream()


def test_probe(echo_server):
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        assert session.probe_smux(WAIT) is True
        assert session.probe_smux(WAIT) is True
        with session.open_stream() as stream:
            stream.settimeout(WAIT)
            assert echo_with(stream, b"after the probe") == b"after the probe"


def test_probe_of_a_silent_peer_is_false():
    """A plain TCP peer that says nothing: False after the timeout."""
    with std.create_server(("127.0.0.1", 0)) as plain:
        with xsocket.dial(f"smux+tcp://127.0.0.1:{plain.getsockname()[1]}", timeout=WAIT) as session:
            conn, _ = plain.accept()
            with conn:
                started = time.monotonic()
                assert session.probe_smux(0.3) is False
                assert 0.25 <= time.monotonic() - started < 2
                conn.settimeout(WAIT)
                assert len(conn.recv(100)) == 7  # one VRM header


def test_open_and_probe_need_a_connected_session():
    with xsocket.smux_socket() as unconnected:
        with pytest.raises(OSError) as info:
            unconnected.open_stream()
        assert info.value.errno == errno.EINVAL
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        with pytest.raises(OSError) as info:
            listener.open_stream()
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OSError) as info:
            listener.probe_smux(0.1)
        assert info.value.errno == errno.EINVAL
    with xsocket.socket() as plain:
        with pytest.raises(OSError) as info:
            plain.open_stream()
        assert info.value.errno in (errno.EINVAL, errno.EBADF)


def test_recvmsg_on_streams(echo_server):
    with xsocket.dial(url_of(echo_server), timeout=WAIT) as session:
        with session.open_stream() as stream:
            stream.sendall(b"hello")
            data, _ancillary, _flags, _address = stream.recvmsg(10)
            assert data == b"hello"[: len(data)] and data


# ----- options -----


def test_config_options():
    config = xsocket.SmuxConfig(window=1 << 20, max_streams=10, accept_backlog=5,
                                pin_interval=2.5, idle_timeout=0.0015)
    assert config.options() == [(xsocket.XS_SMUX_WINDOW, 1 << 20), (xsocket.XS_SMUX_MAX_STREAMS, 10),
                                (xsocket.XS_SMUX_ACCEPT_BACKLOG, 5),
                                (xsocket.XS_SMUX_PIN_INTERVAL, 2500),
                                (xsocket.XS_SMUX_IDLE_TIMEOUT, 2)]
    assert repr(xsocket.SmuxConfig(window=1)) == "SmuxConfig(window=1)"
    with pytest.raises(ValueError):
        xsocket.SmuxConfig(idle_timeout=-1).options()
    with xsocket.smux_socket(config=config) as sock:
        assert sock.getsockopt(xsocket.XS_SOL_SMUX, xsocket.XS_SMUX_MAX_STREAMS) == 10
        assert sock.getsockopt(xsocket.XS_SOL_SMUX, xsocket.XS_SMUX_PIN_INTERVAL) == 2500


def test_max_streams_is_emfile(echo_server):
    with xsocket.dial(url_of(echo_server), timeout=WAIT,
                      smux=xsocket.SmuxConfig(max_streams=2)) as session:
        first, second = session.open_stream(), session.open_stream()
        with first, second:
            with pytest.raises(OSError) as info:
                session.open_stream()
            assert info.value.errno == errno.EMFILE
        assert wait_until(lambda: session.smux_streams() == 0, session)
        with session.open_stream() as again:  # room again once both ends closed
            again.settimeout(WAIT)
            assert echo_with(again, b"ok") == b"ok"


def test_window_option_both_ends(serve):
    """A 64 KiB window on both ends: the sender stops at 64 KiB, then goes on."""
    config = xsocket.SmuxConfig(window=64 * 1024)
    server = serve(lambda stream: None, smux=config)  # streams nobody reads
    echoes = serve(echo, smux=config)
    with xsocket.dial(url_of(server), timeout=WAIT, smux=config) as session:
        assert session.getsockopt(xsocket.XS_SOL_SMUX, xsocket.XS_SMUX_WINDOW) == 64 * 1024
        with session.open_stream() as stream:
            stream.setblocking(False)
            assert stream.send(bytes(300_000)) == 64 * 1024
    with xsocket.dial(url_of(echoes), timeout=WAIT, smux=config) as session:
        with session.open_stream() as stream:
            stream.settimeout(WAIT)
            data = pattern(7, 700_000)
            assert echo_with(stream, data) == data
    assert server.errors == [] and echoes.errors == []


def test_idle_timeout_ends_a_silent_session(serve):
    server = serve(echo, smux=xsocket.SmuxConfig(idle_timeout=0.3))
    with std.create_connection(server.listener.getsockname()[:2], timeout=WAIT) as raw:
        started = time.monotonic()
        assert raw.recv(100) == b""  # the server ended the session: EOF
        assert 0.25 <= time.monotonic() - started < 3


def test_pin_interval_makes_peer_pins_visible():
    with xsocket.listen("smux+tcp://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        with xsocket.dial(f"smux+tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT,
                          smux=xsocket.SmuxConfig(pin_interval=0.1)) as client:
            server, _ = listener.accept()
            with server:
                assert wait_until(server.smux_peer_pins, server)


# ----- smux over TLS -----


def _openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def certs():
    """Two self-signed certificates for 127.0.0.1/localhost: good.pem and other.pem."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed for the smux+tls tests")
    directory = Path(tempfile.mkdtemp(prefix="xs-py-smux-"))
    for name in ("good", "other"):
        _openssl(directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-days", "2", "-subj", f"/CN={name}",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-addext", "basicConstraints=critical,CA:FALSE",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tls_server(certs):
    server = Server(xsocket.listen("smux+tls://127.0.0.1:0", tls=xsocket.TLSConfig(
        certfile=certs / "good.pem", keyfile=certs / "good.key")), echo)
    yield server
    server.close()


def test_smux_over_tls(tls_server, certs):
    url = url_of(tls_server, "smux+tls")
    with xsocket.dial(url, timeout=WAIT, tls=xsocket.TLSConfig(cafile=certs / "good.pem")) as session:
        assert session.proto == xsocket.XS_PROTO_SMUX | xsocket.XS_PROTO_TLS
        def run(i):
            with session.open_stream() as stream:
                stream.settimeout(WAIT * 2)
                data = pattern(i + 50, 1 << 20)
                return echo_with(stream, data) == data
        workers = [Background(run, i) for i in range(4)]
        assert [w.result(WAIT * 4) for w in workers] == [True] * 4
        assert session.tls_version() == "TLSv1.3"
        assert session.probe_smux(WAIT)
    # smux_socket with tls=
    sock = xsocket.smux_socket(tls=xsocket.TLSConfig(cafile=certs / "good.pem", server_hostname="localhost"))
    with sock:
        sock.settimeout(WAIT)
        sock.connect(tls_server.listener.getsockname())
        with sock.open_stream() as stream:
            stream.settimeout(WAIT)
            assert echo_with(stream, b"tls stream") == b"tls stream"
    assert tls_server.errors == []


def test_smux_over_tls_refuses_an_unknown_certificate(tls_server, certs):
    """A client that does not trust the server's certificate fails with EPROTO, at
    once, every time (not a hang, not a time-out)."""
    url = url_of(tls_server, "smux+tls")
    for _ in range(5 if SLOW else 25):
        started = time.monotonic()
        with pytest.raises(OSError) as info:
            xsocket.dial(url, timeout=2, tls=xsocket.TLSConfig(cafile=certs / "other.pem"))
        assert info.value.errno == errno.EPROTO, info.value
        assert time.monotonic() - started < 1.5
