"""WebSocket (XS_PROTO_WS, XS_PROTO_WS_RAW) through the package: the `websockets` package
(its sync API, with threads) as client of an xsocket server and as server of an xsocket
client, with and without TLS; Raw-WS between xsocket sockets in SOCK_SEQPACKET and
SOCK_STREAM modes; MSG_TRUNC; close codes and reasons both ways; pings and heartbeats;
handshake refusals and protocol errors from a hand-made peer. Loopback only; every wait
is bounded (WAIT); certificates are made at test time with the openssl command line."""

import base64
import errno
import hashlib
import logging
import os
import queue
import re
import shutil
import socket as std
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import xsocket
from helpers import WAIT, Background
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

HEADER = Path(__file__).resolve().parent.parent.parent / "include" / "xsocket.h"
SIZES = [0, 125, 126, 65535, 65536, 1 << 20]  # around the 7-bit, 16-bit and 64-bit length forms
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def binary(n):
    """``n`` bytes of every value."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def text(n):
    """A str of exactly ``n`` bytes of UTF-8, mostly two-byte characters."""
    return "ü" * (n // 2) + "a" * (n % 2)


PAYLOADS = [binary(n) for n in SIZES] + [text(n) for n in SIZES]
PAYLOAD_IDS = [f"binary-{n}" for n in SIZES] + [f"text-{n}" for n in SIZES]


def check_same(got, expected):
    """``got`` is ``expected``, of the same type (str for text, bytes for binary); the
    message says what differs without printing megabytes."""
    assert type(got) is type(expected), f"{type(got).__name__} received, {type(expected).__name__} sent"
    assert len(got) == len(expected), f"{len(got)} received, {len(expected)} sent"
    assert got == expected, f"same length ({len(got)}), different content"


# ----- an xsocket WebSocket server -----

@pytest.fixture
def xs_listen():
    """``make(url="ws://127.0.0.1:0", **listen_options)``: an xsocket listener with the
    WAIT timeout, closed after the test."""
    listeners = []

    def make(url="ws://127.0.0.1:0", **options):
        listener = xsocket.listen(url, **options)
        listener.settimeout(WAIT)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.close()


def url_of(listener, scheme="ws", path="/"):
    return f"{scheme}://127.0.0.1:{listener.getsockname()[1]}{path}"


def _tls_version(sock):
    try:
        return sock.tls_version()
    except OSError:
        return None


def xs_echo(listener):
    """Accept one client and echo its messages (text as text, binary as binary) until it
    closes; "close-me" makes the server close with 4002 "server done" instead. Returns
    what the server saw."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(WAIT)
        seen = {"subprotocol": conn.ws_subprotocol(), "path": conn.ws_request_path(),
                "origin": conn.ws_request_origin(), "tls": _tls_version(conn), "messages": 0}
        while True:
            message = conn.recv_message()
            if message is None:
                seen["close"] = (conn.ws_close_code(), conn.ws_close_reason())
                return seen
            if message == "close-me":
                conn.ws_close(4002, "server done")
                return seen
            conn.send_message(message)
            seen["messages"] += 1


def ws_client(uri, **options):
    """A `websockets` client with bounded waits and no message size limit."""
    return ws_connect(uri, open_timeout=WAIT, close_timeout=WAIT, max_size=None, **options)


def echo_all(ws, payloads=PAYLOADS):
    for payload in payloads:
        ws.send(payload)
        check_same(ws.recv(timeout=WAIT), payload)


# ----- (a) websockets as client, xsocket as server -----

def test_websockets_client_echo(xs_listen):
    listener = xs_listen()
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener, path="/echo?room=1")) as ws:
        assert ws.subprotocol is None
        echo_all(ws)
    seen = server.result()
    assert seen["messages"] == len(PAYLOADS)
    assert seen["path"] == "/echo?room=1"
    assert seen["subprotocol"] is None and seen["origin"] is None and seen["tls"] is None
    assert seen["close"] == (1000, "")


def test_websockets_client_fragmented_messages_and_fragmenting_server(xs_listen):
    """websockets sends messages in several frames (an iterable); the xsocket server
    joins them, and sends its replies in 1000-byte frames that websockets joins."""
    listener = xs_listen(ws=xsocket.WSConfig(fragment_size=1000))
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener)) as ws:
        ws.send([b"ab", b"cd", b"ef"])
        check_same(ws.recv(timeout=WAIT), b"abcdef")
        ws.send(["hé", "llo ", "wörld"])
        check_same(ws.recv(timeout=WAIT), "héllo wörld")
        ws.send([binary(70000), binary(70000)])
        check_same(ws.recv(timeout=WAIT), binary(70000) * 2)
        echo_all(ws, [binary(1 << 20), text(1 << 20), binary(1001), text(999)])
    assert server.result()["messages"] == 7


def test_websockets_client_subprotocol_negotiation(xs_listen):
    """The server speaks "superchat" and "chat" (in that order of preference) and picks
    the first of its own the client offered; no common one: none."""
    listener = xs_listen(ws=xsocket.WSConfig(subprotocols=["superchat", "chat"]))
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener), subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "superchat"
        echo_all(ws, ["hi"])
    assert server.result()["subprotocol"] == "superchat"

    server = Background(xs_echo, listener)
    with ws_client(url_of(listener), subprotocols=["v2.chat", "chat"]) as ws:
        assert ws.subprotocol == "chat"
    assert server.result()["subprotocol"] == "chat"

    server = Background(xs_echo, listener)
    with ws_client(url_of(listener), subprotocols=["nope"]) as ws:
        assert ws.subprotocol is None
        echo_all(ws, [b"still works"])
    assert server.result()["subprotocol"] is None


def test_websockets_client_close_code_reaches_xsocket(xs_listen):
    listener = xs_listen()
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener)) as ws:
        echo_all(ws, ["one"])
        ws.close(4001, "client bye")
    assert server.result()["close"] == (4001, "client bye")


def test_xsocket_server_close_code_reaches_websockets(xs_listen):
    listener = xs_listen()
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener)) as ws:
        ws.send("close-me")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT)
    assert closed.value.rcvd is not None, "no close frame from the xsocket server"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4002, "server done")
    server.result()


def test_websockets_ping_is_answered(xs_listen):
    listener = xs_listen()
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener)) as ws:
        pongs = [ws.ping(b"ping %d" % i) for i in range(5)] + [ws.ping(binary(125)), ws.ping(b"")]
        for i, pong in enumerate(pongs):
            assert pong.wait(WAIT), f"no pong for ping {i}"
        echo_all(ws, [b"after pings"])
    server.result()


def test_websockets_ping_is_answered_while_the_application_is_not_reading(xs_listen):
    """Pings are answered by the library, not only inside a receive call."""
    listener = xs_listen()
    accepting = Background(listener.accept)
    with ws_client(url_of(listener)) as ws:
        conn, _ = accepting.result()
        with conn:
            assert ws.ping(b"nobody reads").wait(WAIT), "no pong while the server is idle"
            conn.settimeout(WAIT)
            ws.send(b"then a message")
            assert conn.recv_message() == b"then a message"


def test_websockets_client_many_messages_in_a_row(xs_listen):
    listener = xs_listen()
    server = Background(xs_echo, listener)
    messages = [f"message {i} é" if i % 2 else f"message {i}".encode() * (i % 7) for i in range(2000)]
    with ws_client(url_of(listener)) as ws:
        sender = Background(lambda: [ws.send(message) for message in messages])
        for i, message in enumerate(messages):
            got = ws.recv(timeout=WAIT)
            assert type(got) is type(message) and got == message, f"message {i}"
        sender.result()
    assert server.result()["messages"] == len(messages)


def test_message_over_max_message_is_refused_with_1009(xs_listen):
    listener = xs_listen(ws=xsocket.WSConfig(max_message=1000))

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            assert conn.recv_message() == binary(1000)
            with pytest.raises(OSError) as refused:
                conn.recv_message()
            return refused.value.errno

    server = Background(serve)
    with ws_client(url_of(listener)) as ws:
        ws.send(binary(1000))
        ws.send(binary(1001))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT)
    assert server.result() == errno.EPROTO
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_handshake_refusals(xs_listen):
    """Wrong path: 404; disallowed Origin: 403; the listener then serves a good client."""
    listener = xs_listen(ws=xsocket.WSConfig(path="/only", allowed_origins="https://good.test,https://also.test"))
    for path, origin, status in (("/wrong", None, 404), ("/only", "https://evil.test", 403)):
        server = Background(listener.accept)
        with pytest.raises(InvalidStatus) as refused:
            ws_client(url_of(listener, path=path), origin=origin)
        assert refused.value.response.status_code == status
        with pytest.raises(ConnectionAbortedError):
            server.result()
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener, path="/only"), origin="https://also.test") as ws:
        echo_all(ws, ["welcome"])
    seen = server.result()
    assert seen["path"] == "/only" and seen["origin"] == "https://also.test"


def http_exchange(port, request):
    """Send ``request`` to 127.0.0.1:``port`` with a stdlib socket; return the response head."""
    with std.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
        return response.split(b"\r\n\r\n")[0]


def upgrade_request(version=b"13", upgrade=True):
    key = base64.b64encode(os.urandom(16))
    lines = [b"GET / HTTP/1.1", b"Host: 127.0.0.1"]
    if upgrade:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade"]
    lines += [b"Sec-WebSocket-Key: " + key, b"Sec-WebSocket-Version: " + version]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_bad_requests_get_http_errors(xs_listen):
    listener = xs_listen()
    port = listener.getsockname()[1]
    # A GET without Upgrade is told to upgrade (426), as is a wrong version.
    for request, status in ((upgrade_request(version=b"8"), b"426"), (upgrade_request(upgrade=False), b"426"),
                            (b"hello\r\n\r\n", b"400")):
        server = Background(listener.accept)
        head = http_exchange(port, request)
        assert head.split(b" ")[1:2] == [status], head
        if status == b"426":
            assert re.search(rb"(?im)^sec-websocket-version:\s*13\s*$", head), head
        with pytest.raises(ConnectionAbortedError):
            server.result()


# ----- (b) websockets as server, xsocket as client -----

class Recorder:
    """A `websockets` handler: echoes messages, records the request and how the
    connection ended (``seen.get(timeout=WAIT)``). "close-me" makes it close with 4003
    "handler done"; "ping-me" makes it ping and say "pinged" when the pong came."""

    def __init__(self):
        self.seen = queue.Queue()

    def __call__(self, ws):
        info = {"path": ws.request.path, "host": ws.request.headers.get("Host"),
                "origin": ws.request.headers.get("Origin"), "subprotocol": ws.subprotocol,
                "messages": 0, "rcvd": None}
        try:
            while True:
                message = ws.recv(timeout=WAIT)
                if message == "close-me":
                    ws.close(4003, "handler done")
                    break
                if message == "ping-me":
                    ws.send("pinged" if ws.ping(b"from server").wait(WAIT) else "no pong")
                    continue
                ws.send(message)
                info["messages"] += 1
        except ConnectionClosed as exc:
            info["rcvd"] = None if exc.rcvd is None else (exc.rcvd.code, exc.rcvd.reason)
        except TimeoutError:
            info["rcvd"] = "timed out"
        self.seen.put(info)


@pytest.fixture
def ws_server():
    """``make(**serve_options)``: a `websockets` server on 127.0.0.1 serving a new
    Recorder from a thread; returns ``(port, recorder)``. Shut down after the test."""
    servers = []

    def make(**options):
        recorder = Recorder()
        options.setdefault("max_size", None)
        server = ws_serve(recorder, "127.0.0.1", 0, open_timeout=WAIT, close_timeout=WAIT, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server.socket.getsockname()[1], recorder

    yield make
    for server, thread in servers:
        server.shutdown()
        thread.join(WAIT)


def xs_echo_all(sock, payloads=PAYLOADS):
    for payload in payloads:
        sock.send_message(payload)
        check_same(sock.recv_message(), payload)


def test_xsocket_client_echo_with_websockets_server(ws_server):
    port, recorder = ws_server()
    with xsocket.dial(f"ws://127.0.0.1:{port}/chat/room?x=1", timeout=WAIT) as sock:
        assert sock.type == xsocket.SOCK_SEQPACKET
        assert sock.ws_subprotocol() is None and sock.ws_close_code() is None
        xs_echo_all(sock)
        sock.ws_close(4004, "client bye")
    info = recorder.seen.get(timeout=WAIT)
    assert info["path"] == "/chat/room?x=1"
    assert info["host"] == f"127.0.0.1:{port}"
    assert info["origin"] is None
    assert info["messages"] == len(PAYLOADS)
    assert info["rcvd"] == (4004, "client bye")


def test_xsocket_client_plain_close_sends_1000(ws_server):
    port, recorder = ws_server()
    sock = xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT)
    xs_echo_all(sock, ["x"])
    sock.close()
    assert recorder.seen.get(timeout=WAIT)["rcvd"] == (1000, "")


def test_xsocket_client_path_host_origin_options(ws_server):
    port, recorder = ws_server()
    config = xsocket.WSConfig(path="/other?y=2", host="example.test:8080", origin="https://app.example.test")
    with xsocket.dial(f"ws://127.0.0.1:{port}/from-url", timeout=WAIT, ws=config) as sock:
        xs_echo_all(sock, ["hello"])
    info = recorder.seen.get(timeout=WAIT)
    assert (info["path"], info["host"], info["origin"]) == ("/other?y=2", "example.test:8080", "https://app.example.test")


def test_xsocket_client_raw_options_and_connect(ws_server):
    """ws_socket + setsockopt with str and bytes values + connect((host, port)) under a
    timeout: the default path is "/" and the default Host "127.0.0.1:PORT"."""
    port, recorder = ws_server()
    with xsocket.ws_socket() as sock:
        sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_ORIGIN, "http://localhost")
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port))
        xs_echo_all(sock, [b"raw options"])
    info = recorder.seen.get(timeout=WAIT)
    assert (info["path"], info["host"], info["origin"]) == ("/", f"127.0.0.1:{port}", "http://localhost")
    with xsocket.ws_socket() as sock:
        sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PATH, b"/bytes?q")
        sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_HOST, "localhost")
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port))
        xs_echo_all(sock, [b"bytes options"])
    info = recorder.seen.get(timeout=WAIT)
    assert (info["path"], info["host"], info["origin"]) == ("/bytes?q", "localhost", None)


def test_xsocket_client_subprotocol_with_websockets_server(ws_server):
    port, recorder = ws_server(subprotocols=["chat", "superchat"])
    config = xsocket.WSConfig(subprotocols=["superchat", "chat"])
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT, ws=config) as sock:
        assert sock.ws_subprotocol() == "chat"  # websockets picks by its own preference
        xs_echo_all(sock, ["x"])
    assert recorder.seen.get(timeout=WAIT)["subprotocol"] == "chat"


def test_websockets_server_close_code_seen_after_recv_returns_empty(ws_server):
    port, recorder = ws_server()
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT) as sock:
        sock.send_message("close-me")
        assert sock.recv(65536) == b""
        assert sock.ws_close_code() == 4003
        assert sock.ws_close_reason() == "handler done"
        assert sock.getsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PEER_CLOSE_CODE) == 4003
        assert sock.recv_message() is None
    assert recorder.seen.get(timeout=WAIT)["rcvd"] is None  # the handler closed first


def test_websockets_server_ping_is_answered(ws_server):
    port, recorder = ws_server()
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT) as sock:
        sock.send_message("ping-me")
        assert sock.recv_message() == "pinged"
        xs_echo_all(sock, [b"after ping"])


def test_xsocket_client_many_messages_in_a_row(ws_server):
    port, recorder = ws_server()
    messages = [f"message {i} é" if i % 2 else f"message {i}".encode() * (i % 7) for i in range(2000)]
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT) as sock:
        sender = Background(lambda: [sock.send_message(message) for message in messages])
        for i, message in enumerate(messages):
            got = sock.recv_message()
            assert type(got) is type(message) and got == message, f"message {i}"
        sender.result()
    assert recorder.seen.get(timeout=WAIT)["messages"] == len(messages)


def test_xsocket_client_text_flags(ws_server):
    """recvmsg reports XS_MSG_TEXT for text only; XS_WS_RECV_TEXT follows recv; invalid
    UTF-8 sent as text is EINVAL and sends nothing."""
    port, recorder = ws_server()
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT) as sock:
        sock.send(b"bin\xff", 0)
        data, ancdata, flags, _ = sock.recvmsg(1024)
        assert (data, ancdata, flags & (xsocket.XS_MSG_TEXT | xsocket.MSG_TRUNC)) == (b"bin\xff", [], 0)
        sock.send("tëxt".encode(), xsocket.XS_MSG_TEXT)
        data, _, flags, _ = sock.recvmsg(1024)
        assert data == "tëxt".encode() and flags & xsocket.XS_MSG_TEXT
        sock.send(b"t", xsocket.XS_MSG_TEXT)
        assert sock.recv(1024) == b"t" and sock.ws_recv_text()
        assert sock.getsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_RECV_TEXT) == 1
        sock.send(b"b")
        assert sock.recv(1024) == b"b" and not sock.ws_recv_text()
        with pytest.raises(OSError) as invalid:
            sock.send(b"\xc3\x28", xsocket.XS_MSG_TEXT)
        assert invalid.value.errno == errno.EINVAL
        xs_echo_all(sock, ["still open"])
    assert recorder.seen.get(timeout=WAIT)["messages"] == 5


def test_dial_refused_and_timeout():
    with xsocket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT)
        holder.listen()  # accepts TCP but never answers the upgrade request
        start = time.monotonic()
        with pytest.raises(OSError) as timed_out:
            xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=0.3)
        assert timed_out.value.errno == errno.ETIMEDOUT
        assert time.monotonic() - start < 0.3 + 1.0


# ----- (c) wss both ways -----

def _openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def certs():
    """A CA (ca.pem) and a server certificate (server.pem, server.key) for
    127.0.0.1/localhost signed by it."""
    assert shutil.which("openssl"), "the wss tests need the openssl command"
    directory = Path(tempfile.mkdtemp(prefix="xs-py-ws-"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(directory, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=xsocket-ws-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem")
    _openssl(directory, "req", *ec, "-subj", "/CN=server", "-keyout", "server.key", "-out", "server.csr")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def server_tls(certs):
    return xsocket.TLSConfig(certfile=certs / "server.pem", keyfile=certs / "server.key")


def test_websockets_wss_client_to_xsocket_server(xs_listen, certs):
    listener = xs_listen("wss://127.0.0.1:0", tls=server_tls(certs))
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    server = Background(xs_echo, listener)
    with ws_client(url_of(listener, "wss", "/secure"), ssl=context) as ws:
        echo_all(ws)
        assert ws.ping(b"secure ping").wait(WAIT)
        ws.close(4005, "secure bye")
    seen = server.result()
    assert seen["path"] == "/secure" and seen["tls"] in ("TLSv1.3", "TLSv1.2")
    assert seen["messages"] == len(PAYLOADS) and seen["close"] == (4005, "secure bye")


def test_xsocket_wss_client_to_websockets_server(ws_server, certs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    port, recorder = ws_server(ssl=context)
    tls = xsocket.TLSConfig(cafile=str(certs / "ca.pem"))
    with xsocket.dial(f"wss://127.0.0.1:{port}/secure", timeout=WAIT, tls=tls) as sock:
        assert sock.tls_version() in ("TLSv1.3", "TLSv1.2")
        xs_echo_all(sock)
        sock.send_message("close-me")
        assert sock.recv_message() is None
        assert (sock.ws_close_code(), sock.ws_close_reason()) == (4003, "handler done")
    info = recorder.seen.get(timeout=WAIT)
    assert info["path"] == "/secure" and info["messages"] == len(PAYLOADS)


def test_xsocket_wss_client_checks_the_certificate(ws_server, certs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    port, _ = ws_server(ssl=context)
    with pytest.raises(OSError) as refused:  # the system's CAs do not know the test CA
        xsocket.dial(f"wss://127.0.0.1:{port}/", timeout=WAIT, tls=xsocket.TLSConfig())
    assert refused.value.errno == errno.EPROTO
    wrong_name = xsocket.TLSConfig(cafile=str(certs / "ca.pem"), server_hostname="wrong.example")
    with pytest.raises(OSError) as refused:
        xsocket.dial(f"wss://127.0.0.1:{port}/", timeout=WAIT, tls=wrong_name)
    assert refused.value.errno == errno.EPROTO


# ----- xsocket against itself: Full-WS URLs, Raw-WS in both modes -----

@pytest.mark.parametrize("scheme", ["ws-ipv4", "ws-ipv6", "ws+unix", "wsraw"])
def test_xsocket_to_xsocket_urls(scheme, unix_path):
    listen_url = {"ws-ipv4": "ws://127.0.0.1:0/x", "ws-ipv6": "ws://[::1]:0/x",
                  "ws+unix": f"ws+unix://{unix_path}", "wsraw": "wsraw://127.0.0.1:0"}[scheme]
    with xsocket.listen(listen_url) as listener:
        listener.settimeout(WAIT)
        address = listener.getsockname()
        dial_url = {"ws-ipv4": f"ws://127.0.0.1:{address[1]}/x", "ws-ipv6": f"ws://[::1]:{address[1]}/x",
                    "ws+unix": f"ws+unix://{unix_path}", "wsraw": f"wsraw://127.0.0.1:{address[1]}"}[scheme]
        accepting = Background(listener.accept)
        with xsocket.dial(dial_url, timeout=WAIT) as client:
            server, _ = accepting.result()
            with server:
                server.settimeout(WAIT)
                assert client.type == server.type == xsocket.SOCK_SEQPACKET
                for payload in PAYLOADS:
                    sending = Background(client.send_message, payload)
                    check_same(server.recv_message(), payload)
                    sending.result()
                    sending = Background(server.send_message, payload)
                    check_same(client.recv_message(), payload)
                    sending.result()
                server.ws_close(4010, "done")
                assert client.recv_message() is None
                assert (client.ws_close_code(), client.ws_close_reason()) == (4010, "done")


def raw_pair(family, address, stream=False, client_tls=None, listener_tls=None):
    """A connected Raw-WS ``(client, server)`` pair of ``ws_socket``s with the WAIT timeout."""
    with xsocket.ws_socket(family, raw=True, stream=stream, tls=listener_tls) as listener:
        listener.bind(address)
        listener.listen()
        listener.settimeout(WAIT)
        client = xsocket.ws_socket(family, raw=True, stream=stream, tls=client_tls)
        try:
            client.settimeout(WAIT)
            accepting = Background(listener.accept)
            client.connect(listener.getsockname())
            server, _ = accepting.result()
        except BaseException:
            client.close()
            raise
    server.settimeout(WAIT)
    return client, server


@pytest.fixture(params=["plain", "tls"])
def raw_tls(request, certs):
    """``(client TLSConfig, listener TLSConfig)`` for Raw-WS, or ``(None, None)``."""
    if request.param == "plain":
        return None, None
    return xsocket.TLSConfig(cafile=str(certs / "ca.pem"), server_hostname="localhost"), server_tls(certs)


def test_raw_seqpacket_messages(family_addr, raw_tls):
    family, address = family_addr
    client, server = raw_pair(family, address, client_tls=raw_tls[0], listener_tls=raw_tls[1])
    with client, server:
        assert client.type == server.type == xsocket.SOCK_SEQPACKET
        assert client.proto & xsocket.XS_PROTO_WS_RAW
        if raw_tls[0] is not None:  # connect and accept return after the TLS handshake
            assert client.tls_version() in ("TLSv1.3", "TLSv1.2")
            assert server.tls_version() in ("TLSv1.3", "TLSv1.2")
        for sender, receiver in ((client, server), (server, client)):
            for payload in PAYLOADS:
                sending = Background(sender.send_message, payload)
                check_same(receiver.recv_message(), payload)
                sending.result()
            # One recv, one whole message, whatever its size (an empty one included).
            for message in (b"one", b"", binary(70000), "four"):
                sender.send_message(message)
            assert receiver.recv(1 << 20) == b"one"
            assert receiver.recv(1 << 20) == b"" and receiver.ws_close_code() is None
            assert receiver.recv(1 << 20) == binary(70000)
            assert receiver.recv(1 << 20) == b"four" and receiver.ws_recv_text()
        client.ws_close(4011, "raw done")
        assert server.recv(1024) == b""
        assert (server.ws_close_code(), server.ws_close_reason()) == (4011, "raw done")


def test_raw_tls_client_checks_the_certificate(certs):
    """A Raw-WS client over TLS that does not trust the server's certificate is refused
    in connect (EPROTO), as a TLS or wss client is, and the server's accept fails."""
    with xsocket.ws_socket(raw=True, tls=server_tls(certs)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(WAIT)
        accepting = Background(listener.accept)
        with xsocket.ws_socket(raw=True, tls=xsocket.TLSConfig()) as client:  # the system's CAs
            client.settimeout(WAIT)
            with pytest.raises(OSError) as refused:
                client.connect(listener.getsockname())
            assert refused.value.errno == errno.EPROTO
        with pytest.raises(ConnectionAbortedError):
            accepting.result()


def test_raw_stream_mode_pieces(family_addr):
    """SOCK_STREAM: a 1 MiB message arrives in pieces of at most bufsize that end exactly
    at the end of the message (MSG_EOR on the last one only); recv_message joins them."""
    family, address = family_addr
    client, server = raw_pair(family, address, stream=True)
    with client, server:
        assert client.type == server.type == xsocket.SOCK_STREAM
        message = binary(1 << 20)
        sending = Background(lambda: (client.send_message(message), client.send_message(b"tail"),
                                      client.send_message("text end")))
        pieces, eors = [], []
        while sum(map(len, pieces)) < len(message):
            data, _, flags, _ = server.recvmsg(100_000)
            assert data, f"end of stream after {sum(map(len, pieces))} bytes"
            assert len(data) <= 100_000
            pieces.append(data)
            eors.append(bool(flags & xsocket.MSG_EOR))
        assert sum(map(len, pieces)) == len(message), "a piece went past the end of the message"
        assert b"".join(pieces) == message
        assert len(pieces) > 1
        assert eors[-1] and not any(eors[:-1]), eors
        data, _, flags, _ = server.recvmsg(100_000)
        assert data == b"tail" and flags & xsocket.MSG_EOR and not flags & xsocket.XS_MSG_TEXT
        assert server.recv(4) == "text".encode() and server.ws_recv_text()
        data, _, flags, _ = server.recvmsg(100_000)
        assert data == b" end" and flags & xsocket.XS_MSG_TEXT and flags & xsocket.MSG_EOR
        sending.result()

        sending = Background(server.send_message, text(1 << 20))
        check_same(client.recv_message(), text(1 << 20))
        sending.result()
        sending = Background(server.send_message, message)
        check_same(client.recv_message(8192), message)
        sending.result()
        server.close()
        assert client.recv(1024) == b""
        assert client.ws_close_code() == 1000


# ----- (e) MSG_TRUNC on SEQPACKET -----

@pytest.fixture(params=["wsraw", "ws"])
def seqpacket_pair(request):
    """A connected ``(client, server)`` pair of SEQPACKET WebSockets (Raw-WS or Full-WS)."""
    with xsocket.listen(f"{request.param}://127.0.0.1:0") as listener:
        listener.settimeout(WAIT)
        accepting = Background(listener.accept)
        client = xsocket.dial(f"{request.param}://127.0.0.1:{listener.getsockname()[1]}", timeout=WAIT)
        server, _ = accepting.result()
    server.settimeout(WAIT)
    with client, server:
        yield client, server


def test_msg_trunc_on_seqpacket(seqpacket_pair):
    client, server = seqpacket_pair
    client.send_message(b"0123456789")
    data, _, flags, _ = server.recvmsg(4)
    assert data == b"0123" and flags & xsocket.MSG_TRUNC
    client.send_message(b"next")  # the rest of the truncated message is gone
    data, _, flags, _ = server.recvmsg(1024)
    assert data == b"next" and not flags & xsocket.MSG_TRUNC

    buffer = bytearray(4)
    client.send_message(b"0123456789")
    assert server.recv_into(buffer, 4, xsocket.MSG_TRUNC) == 10  # MSG_TRUNC: the real length
    assert buffer == b"0123"
    client.send_message(b"abcdefghij")
    assert server.recv_into(buffer, 4) == 4 and buffer == b"abcd"  # without: the truncated one
    client.send_message(b"0123456789")
    assert server.recv(4) == b"0123"
    client.send_message(b"whole")
    assert server.recv(5) == b"whole"

    client.send_message("héllo wörld")
    data, _, flags, _ = server.recvmsg(5)
    assert data == "héllo wörld".encode()[:5] and flags & xsocket.MSG_TRUNC and flags & xsocket.XS_MSG_TEXT

    client.send_message(b"0123456789")
    with pytest.raises(OSError) as too_long:
        server.recv_message(4)
    assert too_long.value.errno == errno.EMSGSIZE
    client.send_message(b"after")
    assert server.recv_message() == b"after"


# ----- (f) heartbeat -----

def accept_key(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_only(listener):
    """Accept one client on a stdlib listener, answer its upgrade request with 101, and
    return the connection (which is never read again)."""
    conn, _ = listener.accept()
    conn.settimeout(WAIT)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        assert chunk, "the client closed during the handshake"
        request += chunk
    key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", request).group(1)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
    return conn


@pytest.fixture(params=["connect-blocking", "connect-with-timeout"])
def heartbeat_socket(request):
    """A Full-WS client pinging every 100 ms that allows one missed pong (100 ms);
    ``connect(address)`` connects it blocking (bounded by XS_SO_CONNECT_TIMEOUT) or
    non-blocking under a timeout (the handshake then finishes in xs_poll), then sets
    the WAIT timeout."""
    sock = xsocket.ws_socket()
    sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PING_INTERVAL, 100)
    sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PONG_TIMEOUT, 100)
    sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_MISSED_PONGS, 1)
    if request.param == "connect-blocking":
        sock.setsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT, int(WAIT * 1000))
    else:
        sock.settimeout(WAIT)

    def connect(address):
        sock.connect(address)
        sock.settimeout(WAIT)
        return sock

    with sock:
        yield connect


def test_heartbeat_fails_a_silent_peer_with_etimedout(heartbeat_socket):
    with std.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        server = Background(handshake_only, listener)
        sock = heartbeat_socket(listener.getsockname())
        start = time.monotonic()
        with server.result() as conn:
            with pytest.raises(OSError) as failed:
                sock.recv_message()
            elapsed = time.monotonic() - start
            assert failed.value.errno == errno.ETIMEDOUT, failed.value
            assert 0.1 <= elapsed < 1.5, elapsed
            header = conn.recv(2)  # what the client sent after the handshake: its pings
            assert len(header) == 2 and header[0] == 0x89 and header[1] & 0x80, header


@pytest.fixture
def ping_log():
    """``(logger, pings)``: a logger for `websockets` that appends the time of every
    ping it receives to ``pings``."""
    pings = []

    class Count(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("< PING"):
                pings.append(record.created)

    logger = logging.getLogger("xsocket-test-ws-heartbeat")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Count()
    logger.addHandler(handler)
    yield logger, pings
    logger.removeHandler(handler)


def stays_up_for_a_second(sock):
    """``sock`` receives nothing for 1 s without failing (the timeout is its own)."""
    sock.settimeout(1.0)
    with pytest.raises(TimeoutError) as idle:
        sock.recv_message()
    assert idle.value.errno is None, f"the connection failed: {idle.value}"
    sock.settimeout(WAIT)
    assert sock.ws_close_code() is None


def test_heartbeat_keeps_an_answering_peer(ws_server, heartbeat_socket, ping_log):
    logger, pings = ping_log
    port, recorder = ws_server(logger=logger, ping_interval=None)
    with heartbeat_socket(("127.0.0.1", port)) as sock:
        stays_up_for_a_second(sock)
        xs_echo_all(sock, ["still up"])
    assert len(pings) >= 4, f"{len(pings)} pings in 1 s at a 100 ms interval"
    assert recorder.seen.get(timeout=WAIT)["rcvd"] == (1000, "")


@pytest.fixture(params=["accept-blocking", "accept-with-timeout"])
def heartbeat_listener(request, xs_listen):
    """An xsocket listener whose accepted sockets ping every 100 ms and allow one missed
    pong (100 ms); ``accept`` runs blocking (the handshake inside xs_accept) or under a
    timeout (the handshake then finishes in xs_poll). Start it before the client."""
    listener = xs_listen(ws=xsocket.WSConfig(ping_interval=0.1, pong_timeout=0.1, missed_pongs=1))
    if request.param == "accept-blocking":
        listener.settimeout(None)  # bounded all the same: accept runs in a Background thread
    return listener


def test_server_heartbeat_fails_a_silent_client(heartbeat_listener):
    accepting = Background(heartbeat_listener.accept)
    with raw_client(heartbeat_listener.getsockname()[1]) as client:
        conn, _ = accepting.result()
        start = time.monotonic()
        with conn:
            conn.settimeout(WAIT)
            with pytest.raises(OSError) as failed:
                conn.recv_message()
            elapsed = time.monotonic() - start
            assert failed.value.errno == errno.ETIMEDOUT, failed.value
            assert elapsed < 1.5, elapsed
            header = client.recv(2)  # what the server sent after the handshake: pings, unmasked
            assert len(header) == 2 and header[0] == 0x89 and not header[1] & 0x80, header


def test_server_heartbeat_keeps_an_answering_client(heartbeat_listener, ping_log):
    logger, pings = ping_log
    accepting = Background(heartbeat_listener.accept)
    with ws_client(url_of(heartbeat_listener), logger=logger, ping_interval=None) as ws:
        conn, _ = accepting.result()
        with conn:
            stays_up_for_a_second(conn)
            ws.send("still up")
            assert conn.recv_message() == "still up"
    assert len(pings) >= 4, f"{len(pings)} pings in 1 s at a 100 ms interval"


# ----- hand-made peers: protocol errors, fragments, close without a code, lost connections -----

def frame(opcode, payload, fin=True, mask=True):
    """One WebSocket frame (masked, as a client sends them, unless ``mask`` is False)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit, n = (0x80 if mask else 0), len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def raw_client(port):
    """A stdlib socket that has done the opening handshake with 127.0.0.1:``port``."""
    sock = std.create_connection(("127.0.0.1", port), timeout=WAIT)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, response
        response += chunk
    head, rest = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert re.search(rb"(?im)^sec-websocket-accept:\s*" + re.escape(accept_key(key)) + rb"\s*$", head), head
    assert rest == b"", rest  # nothing is due from the server yet
    return sock


class FrameReader:
    """Reads whole frames from a stdlib socket: ``next()`` is ``(opcode, fin, masked,
    payload)`` (unmasked)."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""

    def _need(self, n):
        while len(self.data) < n:
            chunk = self.sock.recv(65536)
            assert chunk, f"the stream ended inside a frame ({self.data[:16]!r}...)"
            self.data += chunk

    def next(self):
        self._need(2)
        first, second = self.data[0], self.data[1]
        length, at = second & 0x7F, 2
        if length == 126:
            self._need(4)
            length, at = int.from_bytes(self.data[2:4], "big"), 4
        elif length == 127:
            self._need(10)
            length, at = int.from_bytes(self.data[2:10], "big"), 10
        key = b""
        if second & 0x80:
            self._need(at + 4)
            key, at = self.data[at:at + 4], at + 4
        self._need(at + length)
        payload, self.data = self.data[at:at + length], self.data[at + length:]
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, bool(first & 0x80), bool(key), payload

    def until(self, opcode):
        """The frames up to and including the first with ``opcode``."""
        frames = []
        while not frames or frames[-1][0] != opcode:
            frames.append(self.next())
        return frames


def read_close(sock):
    """The code of the close frame the server sends (skipping frames before it)."""
    _, _, masked, payload = FrameReader(sock).until(0x8)[-1]
    assert not masked, "a server's frames are not masked"
    return int.from_bytes(payload[:2], "big")


@pytest.mark.parametrize("bad, code", [
    (frame(0x1, b"\xc3\x28"), 1007),                      # invalid UTF-8 in text
    (frame(0x2, b"unmasked", mask=False), 1002),          # a client frame must be masked
    (frame(0x9, b"pi", fin=False) + frame(0x0, b"ng"), 1002),  # fragmented control frame
], ids=["bad-utf8", "unmasked", "fragmented-ping"])
def test_protocol_errors_from_the_peer(xs_listen, bad, code):
    listener = xs_listen()

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            assert conn.recv_message() == b"fine"
            with pytest.raises(OSError) as failed:
                conn.recv_message()
            return failed.value.errno, xsocket.last_error()

    server = Background(serve)
    with raw_client(listener.getsockname()[1]) as sock:
        sock.sendall(frame(0x2, b"fine") + bad)
        assert read_close(sock) == code
    err, reason = server.result()
    assert err == errno.EPROTO and reason, reason


def test_control_frames_between_fragments_and_split_characters(xs_listen):
    """A ping between the fragments of a text message is answered at once (same
    payload) and the message arrives whole; a character split across fragments is fine;
    a close frame without a code reads as 1005."""
    listener = xs_listen()
    accepting = Background(listener.accept)
    with raw_client(listener.getsockname()[1]) as sock:
        conn, _ = accepting.result()
        with conn:
            conn.settimeout(WAIT)
            frames = FrameReader(sock)
            receiving = Background(conn.recv_message)  # waits for the rest of the message
            sock.sendall(frame(0x1, b"hel", fin=False) + frame(0x9, b"between"))
            assert frames.next() == (0xA, True, False, b"between")
            sock.sendall(frame(0x0, "lo é".encode()[:-1], fin=False) + frame(0x0, "é".encode()[1:]))
            assert receiving.result() == "hello é"
            sock.sendall(frame(0x2, b"bin", fin=False) + frame(0xA, b"unasked pong") + frame(0x0, b"ary"))
            assert conn.recv_message() == b"binary"
            sock.sendall(frame(0x8, b""))
            assert conn.recv_message() is None
            assert (conn.ws_close_code(), conn.ws_close_reason()) == (1005, "")
            opcode, _, masked, payload = frames.next()
            assert (opcode, masked) == (0x8, False)  # the close reply
            assert payload[:2] in (b"", (1000).to_bytes(2, "big")), payload


def test_connection_lost_without_close_is_econnreset_and_1006():
    with std.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        server = Background(handshake_only, listener)
        with xsocket.dial(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=WAIT) as sock:
            conn = server.result()
            conn.sendall(frame(0x1, "before the end".encode(), mask=False))
            conn.close()
            assert sock.recv_message() == "before the end"
            with pytest.raises(ConnectionResetError):
                sock.recv_message()
            assert sock.ws_close_code() == 1006


def test_masked_frame_from_a_server_is_refused_with_1002():
    with std.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        server = Background(handshake_only, listener)
        with xsocket.dial(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=WAIT) as sock:
            with server.result() as conn:
                conn.sendall(frame(0x2, b"masked by a server", mask=True))
                with pytest.raises(OSError) as failed:
                    sock.recv_message()
                assert failed.value.errno == errno.EPROTO
                opcode, _, masked, payload = FrameReader(conn).until(0x8)[-1]
                assert masked and int.from_bytes(payload[:2], "big") == 1002


def test_client_refuses_a_message_over_its_max_message(ws_server):
    port, recorder = ws_server()
    config = xsocket.WSConfig(max_message=1000)
    with xsocket.dial(f"ws://127.0.0.1:{port}/", timeout=WAIT, ws=config) as sock:
        xs_echo_all(sock, [binary(1000)])
        sock.send_message(binary(1001))
        with pytest.raises(OSError) as refused:
            sock.recv_message()
        assert refused.value.errno == errno.EPROTO
    rcvd = recorder.seen.get(timeout=WAIT)["rcvd"]
    assert rcvd is not None and rcvd[0] == 1009, rcvd


def test_shutdown_write_sends_close_and_reads_on():
    """shutdown(SHUT_WR) sends the close frame (XS_WS_CLOSE_CODE, XS_WS_CLOSE_REASON);
    what the peer sends before its own close is still received, then the end and the
    peer's code and reason."""
    with std.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        server = Background(handshake_only, listener)
        with xsocket.dial(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=WAIT) as sock:
            sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_CLOSE_CODE, 4006)
            sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_CLOSE_REASON, "half")
            with server.result() as conn:
                sock.shutdown(xsocket.SHUT_WR)
                opcode, _, masked, payload = FrameReader(conn).next()
                assert (opcode, masked, payload) == (0x8, True, (4006).to_bytes(2, "big") + b"half")
                with pytest.raises(OSError):
                    sock.send_message("after shutdown")
                conn.sendall(frame(0x1, b"after your close", mask=False)
                             + frame(0x8, (4007).to_bytes(2, "big") + b"me too", mask=False))
                assert sock.recv_message() == "after your close"
                assert sock.recv_message() is None
                assert (sock.ws_close_code(), sock.ws_close_reason()) == (4007, "me too")


def test_peek_and_nonblocking_receive(seqpacket_pair):
    client, server = seqpacket_pair
    server.settimeout(0)
    with pytest.raises(BlockingIOError):
        server.recv_message()
    client.send_message("peek at me")
    server.settimeout(WAIT)
    assert xsocket.poll([(server, xsocket.POLLIN)], WAIT) == [(server, xsocket.POLLIN)]
    assert server.recv(4, xsocket.MSG_PEEK) == b"peek"
    assert server.recv(1024, xsocket.MSG_PEEK) == b"peek at me"
    assert server.recv_message() == "peek at me"
    assert xsocket.poll([(server, xsocket.POLLIN)], 0) == []


# ----- the package's surface -----

def test_ws_constants_are_exported():
    defines = dict(re.findall(r"^#define (XS_\w+) (\d+)\s*$", HEADER.read_text(), flags=re.M))
    names = {name for name in defines if name.startswith("XS_WS_")}
    names |= {"XS_PROTO_WS", "XS_PROTO_WS_RAW", "XS_MSG_TEXT", "XS_SOL_WS"}
    assert len(names) > 20
    for name in names:
        assert getattr(xsocket, name) == int(defines[name]), name
        assert name in xsocket.__all__, name
    for name in ("WSConfig", "ws_socket"):
        assert name in xsocket.__all__


def test_wsconfig_options():
    config = xsocket.WSConfig(path="/p", host="h:1", origin="https://o", subprotocols=["a", "b"],
                              allowed_origins="https://o", ping_interval=0.25, pong_timeout=0.1,
                              missed_pongs=3, close_timeout=2, fragment_size=4096,
                              max_message=1 << 20, close_code=4000, close_reason="bye")
    assert config.options() == [
        (xsocket.XS_WS_PATH, "/p"), (xsocket.XS_WS_HOST, "h:1"), (xsocket.XS_WS_ORIGIN, "https://o"),
        (xsocket.XS_WS_SUBPROTOCOLS, "a,b"), (xsocket.XS_WS_ALLOWED_ORIGINS, "https://o"),
        (xsocket.XS_WS_CLOSE_REASON, "bye"), (xsocket.XS_WS_PING_INTERVAL, 250),
        (xsocket.XS_WS_PONG_TIMEOUT, 100), (xsocket.XS_WS_CLOSE_TIMEOUT, 2000),
        (xsocket.XS_WS_MISSED_PONGS, 3), (xsocket.XS_WS_FRAGMENT_SIZE, 4096),
        (xsocket.XS_WS_MAX_MESSAGE, 1 << 20), (xsocket.XS_WS_CLOSE_CODE, 4000)]
    assert xsocket.WSConfig().options() == []
    assert "subprotocols=['a', 'b']" in repr(config)
    with pytest.raises(ValueError):
        xsocket.WSConfig(ping_interval=-1).options()


def test_ws_options_read_back():
    with xsocket.ws_socket(xsocket.AF_INET, xsocket.WSConfig(ping_interval=0.5, max_message=5000)) as sock:
        assert sock.type == xsocket.SOCK_SEQPACKET and sock.proto == xsocket.XS_PROTO_WS
        assert sock.getsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PING_INTERVAL) == 500
        assert sock.getsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_MAX_MESSAGE) == 5000
        assert sock.getsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_CLOSE_CODE) == 1000
        with pytest.raises(ValueError):
            sock.setsockopt(xsocket.XS_SOL_WS, xsocket.XS_WS_PATH, "/a\0b")
    with xsocket.ws_socket(xsocket.AF_INET6, raw=True, stream=True) as sock:
        assert sock.type == xsocket.SOCK_STREAM and sock.proto == xsocket.XS_PROTO_WS_RAW
    with xsocket.socket() as plain:
        with pytest.raises(OSError) as no_ws:
            plain.ws_close_code()
        assert no_ws.value.errno == errno.ENOPROTOOPT
