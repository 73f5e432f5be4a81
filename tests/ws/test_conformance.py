"""WebSocket conformance of xsocket as a server: ws_echo_server against a client on raw sockets.

The cases follow the Autobahn|Testsuite groups 1-7 and 9 (framing, ping/pong, reserved
bits, opcodes, fragmentation, UTF-8, close handling, limits), plus the HTTP handshake,
frame-encoding violations, Raw-WS, SOCK_STREAM, Unix and TLS servers. The client below
is written from RFC 6455: it masks its frames, checks every frame the server sends, and
every case asserts the exact close code and that the server then closes the TCP
connection.

ws_echo_server is built by the Makefile (build/ws_echo_server, or $WS_ECHO_SERVER).
Every wait has a timeout: socket operations TIMEOUT seconds, server start START_TIMEOUT.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "common"))

from server_process import ServerProcess  # noqa: E402
TIMEOUT = 5.0
START_TIMEOUT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


# ----- ws_echo_server -----


def server_binary():
    path = os.environ.get("WS_ECHO_SERVER") or str(ROOT / "build" / "ws_echo_server")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} not found or not executable: build it first (make), "
                    "or set WS_ECHO_SERVER")
    return path


# Client sockets of the running case; closed after it (fixture close_client_sockets).
OPEN_SOCKETS = []


class EchoServer(ServerProcess):
    """One ws_echo_server process; stopped by closing its stdin."""

    def __init__(self, args):
        super().__init__(server_binary(), args, START_TIMEOUT)
        if self.kind == "port":
            self.family, self.address = socket.AF_INET, ("127.0.0.1", int(self.value))
            self.port = int(self.value)
        else:
            self.family, self.address = socket.AF_UNIX, self.value
            self.port = None

    def connect_tcp(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        OPEN_SOCKETS.append(s)
        s.settimeout(TIMEOUT)
        s.connect(self.address)
        if self.family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stderr_text(self, limit=4000):
        return super().stderr_text(limit)

    def stop(self):
        super().stop()
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass


# ----- frames -----


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    reps = key * (n // 4 + 1)
    x = int.from_bytes(data, "big") ^ int.from_bytes(reps[:n], "big")
    return x.to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length_form=None, key=None):
    """One frame as a client sends it (masked unless mask=False).

    length_form forces the length encoding: "7", "16" or "64" (non-minimal ones are
    protocol errors)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    m = 0x80 if mask else 0
    form = length_form or ("7" if n < 126 else "16" if n < 65536 else "64")
    if form == "7":
        assert n < 126
        head = bytes([b0, m | n])
    elif form == "16":
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask:
        key = key if key is not None else os.urandom(4)
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (f"Frame({OP_NAMES.get(self.opcode, hex(self.opcode))}, fin={int(self.fin)}, "
                f"rsv={self.rsv}, len={len(self.payload)}, {p!r})")

    def close_code(self):
        assert self.opcode == OP_CLOSE
        if not self.payload:
            return None
        assert len(self.payload) >= 2, f"server sent a close payload of 1 byte: {self.payload!r}"
        return struct.unpack("!H", self.payload[:2])[0]

    def close_reason(self):
        return self.payload[2:].decode("utf-8")  # raises on invalid UTF-8: server bug


class ConnectionClosed(AssertionError):
    pass


class Conn:
    """A client connection (after the handshake, or raw)."""

    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)

    # -- sending --
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_chopped(self, data, chunk=1, delay=0.0, may_fail=False):
        """Sends data in pieces; may_fail: the server may close before the end (a
        protocol error it detects early), so stop quietly when it does."""
        for i in range(0, len(data), chunk):
            try:
                self.sock.sendall(data[i:i + chunk])
            except (BrokenPipeError, ConnectionResetError):
                if not may_fail:
                    raise
                return
            if delay:
                time.sleep(delay)

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send(OP_TEXT, text.encode() if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b""):
        self.send(OP_CLOSE, close_payload(code, reason))

    # -- receiving --
    def _fill(self, n, what):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                raise AssertionError(f"timed out ({TIMEOUT} s) waiting for {what} "
                                     f"(have {len(self.buf)} of {n} bytes)") from None
            except ConnectionResetError:
                raise ConnectionClosed(f"connection reset while waiting for {what} "
                                       f"(have {len(self.buf)} of {n} bytes)") from None
            if not chunk:
                raise ConnectionClosed(f"connection closed by the server while waiting for "
                                       f"{what} (have {len(self.buf)} of {n} bytes)")
            self.buf += chunk

    def _take(self, n, what):
        self._fill(n, what)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self):
        b0, b1 = self._take(2, "a frame header")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, "a 16-bit length"))[0]
            assert n >= 126, f"server used a non-minimal 16-bit length ({n})"
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, "a 64-bit length"))[0]
            assert n >= 65536 and n < (1 << 63), f"server sent a bad 64-bit length ({n})"
        assert not (b1 & 0x80), "server sent a masked frame"
        payload = self._take(n, f"a {n}-byte payload") if n else b""
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)
        assert f.rsv == 0, f"server set RSV bits: {f}"
        assert f.opcode in OP_NAMES, f"server sent reserved opcode: {f}"
        if f.opcode >= 8:
            assert f.fin and len(payload) <= 125, f"server sent a bad control frame: {f}"
        return f

    def recv_message_frames(self):
        """Frames of the next data message; any control frame on the way fails."""
        frames = []
        while True:
            f = self.recv_frame()
            if f.opcode >= 8:
                raise AssertionError(f"expected a data frame, got {f} (after {frames})")
            if not frames:
                assert f.opcode in (OP_TEXT, OP_BINARY), f"message starts with {f}"
            else:
                assert f.opcode == OP_CONT, f"expected a continuation, got {f}"
            frames.append(f)
            if f.fin:
                return frames

    def recv_message(self):
        frames = self.recv_message_frames()
        return frames[0].opcode, b"".join(f.payload for f in frames)

    def expect_echo(self, opcode, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        op, got = self.recv_message()
        assert op == opcode, f"echo has opcode {OP_NAMES[op]}, expected {OP_NAMES[opcode]}"
        if got != payload:
            first = next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b),
                         min(len(got), len(payload)))
            raise AssertionError(f"echo differs: got {len(got)} bytes, expected {len(payload)}, "
                                 f"first difference at {first}")

    def expect_pong(self, payload):
        f = self.recv_frame()
        assert f.opcode == OP_PONG, f"expected a pong, got {f}"
        assert f.payload == payload, f"pong payload {f.payload!r} != ping payload {payload!r}"

    def expect_close(self, codes, reply=True):
        """The next frame is a close with a code in `codes` (None = no code); then the
        server closes the TCP connection (after our close reply when reply=True)."""
        if isinstance(codes, int) or codes is None:
            codes = (codes,)
        try:
            f = self.recv_frame()
        except AssertionError as e:
            raise AssertionError(f"expected a close frame with code {codes}: {e}") from None
        assert f.opcode == OP_CLOSE, f"expected a close frame with code {codes}, got {f}"
        code = f.close_code()
        reason = f.close_reason()
        assert code in codes, f"close code {code} (reason {reason!r}), expected one of {codes}"
        if reply:
            try:
                self.send_close(code if code not in (None, 1005, 1006) else None)
            except (BrokenPipeError, ConnectionResetError):
                pass
        self.expect_tcp_close()
        return code, reason

    def expect_tcp_close(self):
        """The server closes the connection within TIMEOUT and sends nothing more."""
        deadline = time.monotonic() + TIMEOUT
        extra = bytes(self.buf)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not close the TCP connection within {TIMEOUT} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            extra += chunk
        self.sock.settimeout(TIMEOUT)
        assert not extra, f"server sent {len(extra)} bytes after its close frame: {extra[:40]!r}"

    def expect_silence(self, seconds=0.3):
        """Nothing arrives within `seconds` (the connection may stay open)."""
        if self.buf:
            raise AssertionError(f"unexpected bytes: {bytes(self.buf[:40])!r}")
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            chunk = None
        finally:
            self.sock.settimeout(TIMEOUT)
        assert chunk is None, f"unexpected data: {chunk[:40]!r}"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ----- HTTP handshake (client side) -----


def make_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def build_request(path="/", host="127.0.0.1", key=None, version="13", extra=(), omit=(),
                  method="GET", upgrade="websocket", connection="Upgrade"):
    """An Upgrade request; omit drops headers by lower-case name."""
    headers = [("Host", host), ("Upgrade", upgrade), ("Connection", connection),
               ("Sec-WebSocket-Key", key if key is not None else make_key()),
               ("Sec-WebSocket-Version", version)]
    headers = [(k, v) for k, v in headers if k.lower() not in omit]
    headers += list(extra)
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Response:
    status: int
    reason: str
    headers: dict  # lower-case name -> value (repeated headers joined with ", ")
    rest: bytes


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no complete HTTP response within {TIMEOUT} s: {data!r}") from None
        except ConnectionResetError:
            raise AssertionError(f"connection reset during the HTTP response: {data!r}") from None
        if not chunk:
            raise AssertionError(f"connection closed before a complete HTTP response: {data!r}")
        data += chunk
        assert len(data) < 65536, "HTTP response header too long"
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
    assert version == "HTTP/1.1", f"status line {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        assert sep, f"bad header line {line!r}"
        k, v = k.strip().lower(), v.strip()
        headers[k] = headers[k] + ", " + v if k in headers else v
    return Response(int(status), reason, headers, rest)


def has_token(value, token):
    return token.lower() in [t.strip().lower() for t in (value or "").split(",")]


def check_101(resp, key):
    assert resp.status == 101, f"expected 101, got {resp.status} {resp.reason} {resp.headers}"
    assert resp.headers.get("upgrade", "").lower() == "websocket", resp.headers
    assert has_token(resp.headers.get("connection"), "upgrade"), resp.headers
    assert resp.headers.get("sec-websocket-accept") == accept_for(key), \
        f"Sec-WebSocket-Accept {resp.headers.get('sec-websocket-accept')!r}, expected {accept_for(key)!r}"
    assert "sec-websocket-extensions" not in resp.headers, \
        f"server chose an extension nobody offered: {resp.headers}"


def ws_connect(server, path="/", extra=(), raw=False, tls=False, chopped=False, check=True):
    """Opens a connection; returns (Conn, Response or None)."""
    sock = server.connect_tcp()
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        OPEN_SOCKETS.append(sock)
    if raw:
        return Conn(sock), None
    key = make_key()
    req = build_request(path=path, key=key, extra=extra)
    if chopped:
        for i in range(len(req)):
            sock.sendall(req[i:i + 1])
    else:
        sock.sendall(req)
    resp = read_response(sock)
    if check:
        check_101(resp, key)
    return Conn(sock, resp.rest), resp


# ----- fixtures -----


@pytest.fixture(scope="module")
def servers():
    """servers(*args) -> the EchoServer started with those arguments (one per set)."""
    started = {}

    def get(*args):
        if args not in started:
            started[args] = EchoServer(args)
        srv = started[args]
        assert srv.alive(), f"ws_echo_server {args} died (rc {srv.proc.returncode}); " \
                            f"stderr: {srv.stderr_text()}"
        return srv

    get.started = started
    yield get
    for srv in started.values():
        srv.stop()


@pytest.fixture(autouse=True)
def close_client_sockets():
    yield
    while OPEN_SOCKETS:
        OPEN_SOCKETS.pop().close()


@pytest.fixture(autouse=True)
def servers_survive(servers):
    """After each case every server still runs; its stderr shows on failure."""
    yield
    for args, srv in servers.started.items():
        print(f"--- ws_echo_server {list(args)} stderr (tail):\n{srv.stderr_text()[-1500:]}")
        assert srv.alive(), f"ws_echo_server {list(args)} exited (rc {srv.proc.returncode})"


@pytest.fixture(scope="module")
def server(servers):
    return servers()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, f"openssl failed: {r.stderr.decode(errors='replace')}"
    return str(cert), str(key)


# ----- payloads -----

ASCII = b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ!"
MIXED = "aé中𝄞".encode()  # 1 + 2 + 3 + 4 bytes


def ascii_bytes(n):
    return (ASCII * (n // len(ASCII) + 1))[:n]


def mixed_utf8(n):
    """Exactly n bytes of valid UTF-8 with 1- to 4-byte sequences."""
    body = MIXED * (n // len(MIXED))
    return body + ascii_bytes(n - len(body))


def payload_for(opcode, n):
    return mixed_utf8(n) if opcode == OP_TEXT else os.urandom(n)


def connect(server, **kw):
    c, _ = ws_connect(server, **kw)
    return c


def normal_close(c, code=1000):
    """Client-initiated close: the server answers with the same code and closes TCP."""
    c.send_close(code)
    c.expect_close(code, reply=False)


TYPES = [pytest.param(OP_TEXT, id="text"), pytest.param(OP_BINARY, id="binary")]
MiB = 1 << 20


# ----- 1. framing -----


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 128, 65535, 65536, MiB])
@pytest.mark.parametrize("opcode", TYPES)
def test_1_echo_one_write(server, opcode, n):
    c = connect(server)
    data = payload_for(opcode, n)
    c.send(opcode, data)
    c.expect_echo(opcode, data)
    normal_close(c)


@pytest.mark.parametrize("opcode,n,chunk,delay", [
    (OP_TEXT, 125, 1, 0.001), (OP_BINARY, 125, 1, 0.001), (OP_TEXT, 126, 1, 0.001),
    (OP_BINARY, 128, 1, 0.001), (OP_TEXT, 65535, 997, 0), (OP_BINARY, 65536, 997, 0),
    (OP_BINARY, 4 * MiB, 65521, 0)],
    ids=["text125-bytewise", "binary125-bytewise", "text126-bytewise", "binary128-bytewise",
         "text65535-chunks", "binary65536-chunks", "binary4MiB-chunks"])
def test_1_echo_chopped(server, opcode, n, chunk, delay):
    c = connect(server)
    data = payload_for(opcode, n)
    c.send_chopped(encode_frame(opcode, data), chunk, delay)
    c.expect_echo(opcode, data)
    normal_close(c)


def test_1_many_messages_one_write(server):
    c = connect(server)
    msgs = [(OP_TEXT if i % 2 else OP_BINARY, payload_for(OP_TEXT if i % 2 else OP_BINARY, i * 37))
            for i in range(100)]
    c.send_raw(b"".join(encode_frame(op, d) for op, d in msgs))
    for op, d in msgs:
        c.expect_echo(op, d)
    normal_close(c)


def test_1_echo_16MiB_minus_1(server):
    c = connect(server)
    data = os.urandom(16 * MiB - 1)
    c.send_binary(data)
    c.expect_echo(OP_BINARY, data)
    normal_close(c)


# ----- 2. ping / pong -----


@pytest.mark.parametrize("n", [0, 1, 124, 125])
def test_2_ping_answered(server, n):
    c = connect(server)
    data = bytes(i % 256 for i in range(200, 200 + n))
    c.send(OP_PING, data)
    c.expect_pong(data)
    normal_close(c)


def test_2_ping_bytewise(server):
    c = connect(server)
    data = os.urandom(125)
    c.send_chopped(encode_frame(OP_PING, data), 1, 0.001)
    c.expect_pong(data)
    normal_close(c)


def test_2_ping_126_bytes(server):
    c = connect(server)
    c.send(OP_PING, b"x" * 126)
    c.expect_close(1002)


def test_2_pong_126_bytes(server):
    c = connect(server)
    c.send(OP_PONG, b"x" * 126)
    c.expect_close(1002)


def test_2_unsolicited_pong_ignored(server):
    c = connect(server)
    c.send(OP_PONG, b"unsolicited")
    c.send_text("after the pong")
    c.expect_echo(OP_TEXT, "after the pong")
    normal_close(c)


def test_2_unsolicited_pong_then_ping(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_PONG, b"unsolicited") + encode_frame(OP_PING, b"the ping"))
    c.expect_pong(b"the ping")
    normal_close(c)


def test_2_ten_pings_in_a_row(server):
    c = connect(server)
    pings = [f"ping {i}".encode() * (i + 1) for i in range(10)]
    c.send_raw(b"".join(encode_frame(OP_PING, p) for p in pings))
    for p in pings:
        c.expect_pong(p)
    normal_close(c)


def test_2_ping_then_close(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_PING, b"last") + encode_frame(OP_CLOSE, close_payload(1000)))
    c.expect_pong(b"last")
    c.expect_close(1000, reply=False)


# ----- 3. reserved bits -----


def bad_frame_after_message(c, bad):
    """A text message, the bad frame and a ping in one write: the echo arrives, then
    close 1002 and no pong."""
    c.send_raw(encode_frame(OP_TEXT, b"hello") + bad + encode_frame(OP_PING, b"P"))
    c.expect_echo(OP_TEXT, b"hello")
    c.expect_close(1002)


@pytest.mark.parametrize("rsv,opcode", [(1, OP_TEXT), (2, OP_TEXT), (3, OP_TEXT), (4, OP_TEXT),
                                        (5, OP_BINARY), (6, OP_PING), (7, OP_CLOSE)],
                         ids=["rsv1-text", "rsv2-text", "rsv3-text", "rsv4-text", "rsv5-binary",
                              "rsv6-ping", "rsv7-close"])
def test_3_reserved_bits(server, rsv, opcode):
    c = connect(server)
    payload = close_payload(1000) if opcode == OP_CLOSE else b"reserved bits"
    bad_frame_after_message(c, encode_frame(opcode, payload, rsv=rsv))


def test_3_reserved_bit_after_echo(server):
    c = connect(server)
    c.send_text("first")
    c.expect_echo(OP_TEXT, "first")
    c.send_text("second", rsv=1)
    c.expect_close(1002)


def test_3_reserved_bit_bytewise(server):
    c = connect(server)
    c.send_chopped(encode_frame(OP_TEXT, b"chopped", rsv=3), 1, 0.001, may_fail=True)
    c.expect_close(1002)


# ----- 4. opcodes -----


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF],
                         ids=lambda o: f"opcode{o:X}")
def test_4_reserved_opcode(server, opcode):
    c = connect(server)
    bad_frame_after_message(c, encode_frame(opcode, b"reserved"))


def test_4_reserved_opcode_empty(server):
    c = connect(server)
    c.send(0xB, b"")
    c.expect_close(1002)


# ----- 5. fragmentation -----


def fragments(opcode, parts, last_fin=True):
    out = b""
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        out += encode_frame(opcode if i == 0 else OP_CONT, p, fin=last and last_fin)
    return out


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_5_fragmented_control(server, opcode):
    c = connect(server)
    first = close_payload(1000) if opcode == OP_CLOSE else b"frag"
    c.send_raw(encode_frame(opcode, first, fin=False) + encode_frame(OP_CONT, b"ment"))
    c.expect_close(1002)


@pytest.mark.parametrize("opcode", TYPES)
def test_5_two_fragments(server, opcode):
    c = connect(server)
    c.send_raw(fragments(opcode, [b"fragment1", b"fragment2"]))
    c.expect_echo(opcode, b"fragment1fragment2")
    normal_close(c)


@pytest.mark.parametrize("opcode", TYPES)
def test_5_fragments_bytewise(server, opcode):
    c = connect(server)
    c.send_chopped(fragments(opcode, [b"frag1", b"frag2", b"frag3"]), 1, 0.001)
    c.expect_echo(opcode, b"frag1frag2frag3")
    normal_close(c)


@pytest.mark.parametrize("opcode", TYPES)
def test_5_ping_between_fragments(server, opcode):
    c = connect(server)
    c.send_raw(encode_frame(opcode, b"fragment1", fin=False) + encode_frame(OP_PING, b"in between")
               + encode_frame(OP_CONT, b"fragment2"))
    c.expect_pong(b"in between")
    c.expect_echo(opcode, b"fragment1fragment2")
    normal_close(c)


def test_5_ping_between_fragments_waits(server):
    """The pong comes while the message is still open."""
    c = connect(server)
    c.send_text("fragment1", fin=False)
    c.send(OP_PING, b"in between")
    c.expect_pong(b"in between")
    c.send(OP_CONT, b"fragment2")
    c.expect_echo(OP_TEXT, "fragment1fragment2")
    normal_close(c)


def test_5_ping_between_fragments_bytewise(server):
    c = connect(server)
    data = (encode_frame(OP_TEXT, b"fragment1", fin=False) + encode_frame(OP_PING, b"in between")
            + encode_frame(OP_CONT, b"fragment2"))
    c.send_chopped(data, 1, 0.001)
    c.expect_pong(b"in between")
    c.expect_echo(OP_TEXT, "fragment1fragment2")
    normal_close(c)


def test_5_pong_between_fragments_ignored(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_BINARY, b"fragment1", fin=False) + encode_frame(OP_PONG, b"x")
               + encode_frame(OP_CONT, b"fragment2"))
    c.expect_echo(OP_BINARY, b"fragment1fragment2")
    normal_close(c)


def test_5_thousand_one_byte_fragments(server):
    c = connect(server)
    data = ascii_bytes(1000)
    c.send_raw(fragments(OP_TEXT, [data[i:i + 1] for i in range(1000)]))
    c.expect_echo(OP_TEXT, data)
    normal_close(c)


@pytest.mark.parametrize("opcode", TYPES)
def test_5_empty_fragments(server, opcode):
    c = connect(server)
    c.send_raw(fragments(opcode, [b"", b"", b"middle", b"", b""]))
    c.expect_echo(opcode, b"middle")
    c.send_raw(fragments(opcode, [b"", b""]))
    c.expect_echo(opcode, b"")
    normal_close(c)


@pytest.mark.parametrize("frames", [
    [(OP_CONT, b"fragment1", True)],
    [(OP_CONT, b"fragment1", False), (OP_CONT, b"fragment2", True)],
    [(OP_CONT, b"fragment1", False), (OP_TEXT, b"fragment2", True)],
    [(OP_CONT, b"", True)],
], ids=["cont-fin", "cont-cont", "cont-text", "empty-cont"])
def test_5_continuation_without_start(server, frames):
    c = connect(server)
    c.send_raw(b"".join(encode_frame(op, p, fin=fin) for op, p, fin in frames))
    c.expect_close(1002)


def test_5_continuation_after_complete_message(server):
    c = connect(server)
    bad_frame_after_message(c, encode_frame(OP_CONT, b"late"))


@pytest.mark.parametrize("first,second,fin", [
    (OP_TEXT, OP_TEXT, True), (OP_TEXT, OP_BINARY, False), (OP_BINARY, OP_TEXT, True),
    (OP_BINARY, OP_BINARY, False)],
    ids=["text-text", "text-binary", "binary-text", "binary-binary"])
def test_5_data_frame_inside_fragmented_message(server, first, second, fin):
    c = connect(server)
    c.send_raw(encode_frame(first, b"fragment1", fin=False) + encode_frame(second, b"new", fin=fin))
    c.expect_close(1002)


# ----- 6. UTF-8 -----

VALID_TEXTS = [
    "Hello-µ@ßöäüàá-UTF-8!!",
    "κόσμε",
    "\u0080 \u07ff \u0800 \uffff",  # 2- and 3-byte boundaries
    "\U00010000 \U0010ffff",  # 4-byte boundaries
    "\ud7ff \ue000 \ufffd",  # around the surrogates
    "\ufffe \uffff \U0001fffe \U0010fffe",  # noncharacters are valid UTF-8
    "日本語のテキスト 中文 한국어 עברית العربية",
    "🎉🙂👍🏽 emoji",
    "\x00 \x7f NUL and DEL",
]


@pytest.mark.parametrize("text", VALID_TEXTS, ids=lambda t: t.encode().hex()[:24])
def test_6_valid_text(server, text):
    c = connect(server)
    c.send_text(text)
    c.expect_echo(OP_TEXT, text)
    normal_close(c)


@pytest.mark.parametrize("text", ["κόσμε", "a\U0010ffffb€c"], ids=["kosme", "mixed"])
def test_6_split_at_every_byte(server, text):
    """Two fragments split at every byte, including inside a code point."""
    c = connect(server)
    data = text.encode()
    for i in range(len(data) + 1):
        c.send_raw(fragments(OP_TEXT, [data[:i], data[i:]]))
        c.expect_echo(OP_TEXT, data)
    normal_close(c)


def test_6_one_byte_per_fragment(server):
    c = connect(server)
    data = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞".encode()
    c.send_raw(fragments(OP_TEXT, [data[i:i + 1] for i in range(len(data))]))
    c.expect_echo(OP_TEXT, data)
    normal_close(c)


def test_6_valid_text_bytewise(server):
    c = connect(server)
    data = "κόσμε 𝄞 中".encode()
    c.send_chopped(encode_frame(OP_TEXT, data), 1, 0.001)
    c.expect_echo(OP_TEXT, data)
    normal_close(c)


KOSME = "κόσμε".encode()
INVALID_UTF8 = {
    "surrogate-in-kosme": KOSME + b"\xed\xa0\x80edited",
    "lone-continuation-80": b"\x80",
    "lone-continuation-bf": b"ab\xbfcd",
    "overlong-2-c0af": b"\xc0\xaf",
    "overlong-2-c1bf": b"\xc1\xbf",
    "overlong-3-e080af": b"\xe0\x80\xaf",
    "overlong-3-e09f80": b"abc\xe0\x9f\x80",
    "overlong-4-f08080af": b"\xf0\x80\x80\xaf",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f5-lead": b"\xf5\x80\x80\x80",
    "5-byte": b"\xf8\x88\x80\x80\x80",
    "fe": b"\xfe",
    "ff": b"\xff",
    "truncated-2-at-end": "κόσμ".encode() + b"\xce",
    "truncated-3-at-end": b"abc\xe2\x82",
    "lead-then-ascii": b"\xc2\x41",
}


@pytest.mark.parametrize("data", INVALID_UTF8.values(), ids=INVALID_UTF8.keys())
def test_6_invalid_utf8(server, data):
    c = connect(server)
    c.send_text(data)
    c.expect_close(1007)


def test_6_invalid_utf8_after_valid_message(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_TEXT, KOSME) + encode_frame(OP_TEXT, b"\xff")
               + encode_frame(OP_TEXT, b"never echoed"))
    c.expect_echo(OP_TEXT, KOSME)
    c.expect_close(1007)


FIRST_FRAGMENT_INVALID = {
    "surrogate-in-kosme": KOSME + b"\xed\xa0\x80edited",
    "above-10ffff": b"hello\xf4\x90\x80\x80",
    "overlong": b"\xc0\xaf",
    "ff": b"\xff",
    "lone-continuation": b"ok\x80more",
    "f5-at-end": b"abc\xf5",
}


@pytest.mark.parametrize("data", FIRST_FRAGMENT_INVALID.values(), ids=FIRST_FRAGMENT_INVALID.keys())
def test_6_fail_fast_first_fragment(server, data):
    """Invalid UTF-8 in a first fragment: close 1007 comes before the message ends
    (the rest is never sent)."""
    c = connect(server)
    c.send_text(data, fin=False)
    c.expect_close(1007)


def test_6_fail_fast_later_fragment(server):
    """Autobahn 6.4.2: κόσμε\\xf4 | \\x90 | (never sent): \\xf4\\x90 can never be valid."""
    c = connect(server)
    c.send_raw(encode_frame(OP_TEXT, KOSME + b"\xf4", fin=False) + encode_frame(OP_CONT, b"\x90", fin=False))
    c.expect_close(1007)


def test_6_fail_fast_inside_frame(server):
    """Autobahn 6.4.3: one text frame, sent only up to its invalid bytes: close 1007
    comes although the frame is incomplete."""
    c = connect(server)
    frame = encode_frame(OP_TEXT, KOSME + b"\xf4\x90\x80\x80" + b"edited" * 20)
    c.send_raw(frame[:6 + len(KOSME) + 4])
    c.expect_close(1007)


def test_6_invalid_across_fragments(server):
    c = connect(server)
    c.send_raw(fragments(OP_TEXT, [b"abc\xed", b"\xa0\x80def"]))
    c.expect_close(1007)


def test_6_incomplete_at_end_of_fragmented_message(server):
    c = connect(server)
    c.send_raw(fragments(OP_TEXT, [b"abc\xe2\x82", b""]))
    c.expect_close(1007)


def test_6_invalid_utf8_in_binary_is_fine(server):
    c = connect(server)
    data = b"\xff\xfe\xed\xa0\x80\xc0\xaf"
    c.send_binary(data)
    c.expect_echo(OP_BINARY, data)
    normal_close(c)


# ----- 7. close handling -----


def test_7_close_with_reason(server):
    c = connect(server)
    c.send_close(1000, "bye, κόσμε")
    code, _ = c.expect_close(1000, reply=False)
    assert code == 1000


def test_7_close_without_payload(server):
    c = connect(server)
    c.send_close()
    c.expect_close((None, 1000), reply=False)


def test_7_close_one_byte_payload(server):
    c = connect(server)
    c.send(OP_CLOSE, b"\x03")
    c.expect_close(1002)


def test_7_close_max_reason(server):
    c = connect(server)
    c.send_close(1000, "r" * 123)
    c.expect_close(1000, reply=False)


def test_7_close_reason_too_long(server):
    c = connect(server)
    c.send_close(1000, "r" * 124)  # 126-byte control frame
    c.expect_close(1002)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999])
def test_7_invalid_close_code(server, code):
    c = connect(server)
    c.send_close(code)
    c.expect_close(1002)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  3000, 3999, 4000, 4999])
def test_7_valid_close_code(server, code):
    c = connect(server)
    c.send_close(code, "reason")
    c.expect_close(code, reply=False)


def test_7_close_reason_invalid_utf8(server):
    c = connect(server)
    c.send(OP_CLOSE, close_payload(1000) + b"\xce\xba\xed\xa0\x80")
    c.expect_close((1002, 1007))


def test_7_data_after_close_ignored(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_CLOSE, close_payload(1000)) + encode_frame(OP_TEXT, b"after close")
               + encode_frame(OP_PING, b"after close"))
    c.expect_close(1000, reply=False)


def test_7_message_then_close(server):
    c = connect(server)
    c.send_raw(encode_frame(OP_TEXT, b"last words") + encode_frame(OP_CLOSE, close_payload(1000)))
    c.expect_echo(OP_TEXT, "last words")
    c.expect_close(1000, reply=False)


def test_7_close_between_fragments(server):
    """A close inside a fragmented message is answered; the message is dropped."""
    c = connect(server)
    c.send_raw(encode_frame(OP_TEXT, b"fragment1", fin=False) + encode_frame(OP_CLOSE, close_payload(1000)))
    c.expect_close(1000, reply=False)


def test_7_close_bytewise(server):
    c = connect(server)
    c.send_chopped(encode_frame(OP_CLOSE, close_payload(1001, "going away")), 1, 0.001)
    c.expect_close(1001, reply=False)


def test_7_tcp_eof_without_close(server):
    """The client shuts its side without a close frame: the server closes the
    connection, sending at most a close frame (never 1005 or 1006, which must not
    appear on the wire)."""
    c = connect(server)
    c.send_text("x")
    c.expect_echo(OP_TEXT, "x")
    c.sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            f = c.recv_frame()
        except ConnectionClosed:
            break
        assert f.opcode == OP_CLOSE and f.close_code() not in (1005, 1006), f"server sent {f}"
        assert time.monotonic() < deadline
    assert not c.buf


# ----- framing violations -----


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE],
                         ids=["text", "binary", "ping", "close"])
def test_unmasked_frame(server, opcode):
    c = connect(server)
    payload = close_payload(1000) if opcode == OP_CLOSE else b"not masked"
    c.send(opcode, payload, mask=False)
    c.expect_close(1002)


@pytest.mark.parametrize("n,form", [(0, "16"), (5, "16"), (125, "16"), (200, "64"), (65535, "64")],
                         ids=["0-in-16", "5-in-16", "125-in-16", "200-in-64", "65535-in-64"])
def test_non_minimal_length(server, n, form):
    c = connect(server)
    c.send_binary(b"x" * n, length_form=form)
    c.expect_close(1002)


def test_64bit_length_top_bit(server):
    c = connect(server)
    c.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", (1 << 63) | 5) + os.urandom(4) + b"hello")
    c.expect_close(1002)


# ----- 9. limits and performance -----


@pytest.mark.parametrize("size", [64 * 1024, MiB, 4 * MiB], ids=["64KiB", "1MiB", "4MiB"])
@pytest.mark.parametrize("split", [False, True], ids=["one-frame", "64KiB-frames"])
@pytest.mark.parametrize("opcode", TYPES)
def test_9_large_message(server, opcode, size, split):
    c = connect(server)
    data = payload_for(opcode, size)
    if split:
        step = 64 * 1024
        c.send_raw(fragments(opcode, [data[i:i + step] for i in range(0, size, step)]))
    else:
        c.send(opcode, data)
    c.expect_echo(opcode, data)
    normal_close(c)


def test_9_many_large_messages(server):
    c = connect(server)
    t0 = time.monotonic()
    for i in range(16):
        data = os.urandom(MiB)
        c.send_binary(data)
        c.expect_echo(OP_BINARY, data)
    assert time.monotonic() - t0 < 30
    normal_close(c)


def test_9_pipelined_large_messages(server):
    """8 x 4 MiB sent back to back while a second thread reads the echoes."""
    c = connect(server)
    msgs = [os.urandom(4 * MiB) for _ in range(8)]
    errors = []

    def reader():
        try:
            for m in msgs:
                c.expect_echo(OP_BINARY, m)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for m in msgs:
        c.send_binary(m)
    t.join(60)
    assert not t.is_alive(), "echoes not read within 60 s"
    assert not errors, errors
    normal_close(c)


@pytest.fixture(scope="module")
def small_server(servers):
    return servers("--max-message", str(MiB))


def test_9_max_message_exactly(small_server):
    c = connect(small_server)
    data = os.urandom(MiB)
    c.send_binary(data)
    c.expect_echo(OP_BINARY, data)
    normal_close(c)


def test_9_max_message_exactly_fragmented(small_server):
    c = connect(small_server)
    data = mixed_utf8(MiB)
    step = 100000
    c.send_raw(fragments(OP_TEXT, [data[i:i + step] for i in range(0, MiB, step)]))
    c.expect_echo(OP_TEXT, data)
    normal_close(c)


@pytest.mark.parametrize("opcode", TYPES)
def test_9_too_big_one_frame(small_server, opcode):
    """The header alone announces MiB+1 bytes: close 1009 before the payload is sent."""
    c = connect(small_server)
    c.send_raw(encode_frame(opcode, payload_for(opcode, MiB + 1))[:14 + 65536])
    c.expect_close(1009)


def test_9_too_big_fragmented(small_server):
    c = connect(small_server)
    step = 64 * 1024
    sent = []

    def sender():
        try:
            for i in range(MiB // step + 4):
                c.sock.sendall(encode_frame(OP_BINARY if i == 0 else OP_CONT, os.urandom(step), fin=False))
                sent.append(i)
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    c.expect_close(1009)
    t.join(TIMEOUT)


def test_9_default_limit(server):
    """Without --max-message the limit is 16 MiB: 16 MiB passes, one byte more is 1009."""
    c = connect(server)
    data = os.urandom(16 * MiB)
    c.send_binary(data)
    c.expect_echo(OP_BINARY, data)
    c.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 16 * MiB + 1) + os.urandom(4) + b"\0" * 1000)
    c.expect_close(1009)


@pytest.fixture(scope="module")
def frag_server(servers):
    return servers("--fragment", "1000")


@pytest.mark.parametrize("opcode", TYPES)
def test_9_server_fragments(frag_server, opcode):
    c = connect(frag_server)
    data = payload_for(opcode, 5500)
    c.send(opcode, data)
    frames = c.recv_message_frames()
    assert len(frames) >= 6, f"expected at least 6 frames of <= 1000 bytes, got {frames}"
    assert all(len(f.payload) <= 1000 for f in frames), f"frame over 1000 bytes: {frames}"
    assert frames[0].opcode == opcode and all(f.opcode == OP_CONT for f in frames[1:])
    assert b"".join(f.payload for f in frames) == data
    normal_close(c)


def test_9_server_fragments_small_message_one_frame(frag_server):
    c = connect(frag_server)
    c.send_text("short")
    frames = c.recv_message_frames()
    assert len(frames) == 1 and frames[0].payload == b"short", frames
    c.send(OP_PING, b"p" * 125)
    c.expect_pong(b"p" * 125)
    normal_close(c)


# ----- HTTP handshake cases -----


def http_exchange(server, request):
    sock = server.connect_tcp()
    sock.sendall(request)
    return sock, read_response(sock)


def expect_http_error(server, request, statuses):
    sock, resp = http_exchange(server, request)
    try:
        assert resp.status in statuses, f"got {resp.status} {resp.reason}, expected {statuses}"
        deadline = time.monotonic() + TIMEOUT
        while True:  # the body, if any, then the server closes
            assert time.monotonic() < deadline, "server did not close after the HTTP error"
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"server did not close within {TIMEOUT} s after "
                                     f"HTTP {resp.status}") from None
            except ConnectionResetError:
                break
            if not chunk:
                break
        return resp
    finally:
        sock.close()


def test_h_plain_get(server):
    expect_http_error(server, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", (400, 426))


def test_h_wrong_version(server):
    resp = expect_http_error(server, build_request(version="8"), (426,))
    assert has_token(resp.headers.get("sec-websocket-version"), "13"), resp.headers


def test_h_missing_version(server):
    expect_http_error(server, build_request(omit=("sec-websocket-version",)), (400, 426))


def test_h_missing_key(server):
    expect_http_error(server, build_request(omit=("sec-websocket-key",)), (400,))


@pytest.mark.parametrize("key", ["not base64!", base64.b64encode(b"12345678").decode()],
                         ids=["not-base64", "8-bytes"])
def test_h_bad_key(server, key):
    expect_http_error(server, build_request(key=key), (400,))


def test_h_missing_upgrade(server):
    expect_http_error(server, build_request(omit=("upgrade",)), (400, 426))


def test_h_missing_connection(server):
    expect_http_error(server, build_request(omit=("connection",)), (400, 426))


def test_h_missing_host(server):
    expect_http_error(server, build_request(omit=("host",)), (400,))


def test_h_post(server):
    resp = expect_http_error(server, build_request(method="POST"), range(400, 500))
    assert resp.status in (400, 405), resp.status


def test_h_not_http(server):
    expect_http_error(server, b"HELLO THERE\r\n\r\n", (400,))


def test_h_huge_header(server):
    expect_http_error(server, build_request(extra=[("X-Big", "a" * 100000)]), (400, 431))


def test_h_idle_client_does_not_block_others():
    """Clients that connect and send no request, or half of one, must not hold up the
    handshake of the next client (a server accepting in one thread)."""
    srv = EchoServer(())
    idle = half = None
    try:
        idle = srv.connect_tcp()
        half = srv.connect_tcp()
        half.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        c = connect(srv)
        c.send_text("not blocked")
        c.expect_echo(OP_TEXT, "not blocked")
        normal_close(c)
        assert time.monotonic() - t0 < TIMEOUT
    finally:
        for s in (idle, half):
            if s is not None:
                s.close()
        print(srv.stderr_text())
        srv.stop()


def test_h_header_case_and_tokens(server):
    """Lower-case names, "WebSocket" and a Connection list (as Firefox sends)."""
    key = make_key()
    req = (f"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {key}\r\n"
           f"sec-websocket-version: 13\r\nuser-agent: test\r\n\r\n").encode()
    sock, resp = http_exchange(server, req)
    check_101(resp, key)
    c = Conn(sock, resp.rest)
    c.send_text("ok")
    c.expect_echo(OP_TEXT, "ok")
    normal_close(c)


def test_h_request_bytewise(server):
    c = connect(server, chopped=True)
    c.send_text("chopped request")
    c.expect_echo(OP_TEXT, "chopped request")
    normal_close(c)


def test_h_frames_with_request(server):
    """Frames in the same write as the request are kept for after the handshake."""
    sock = server.connect_tcp()
    key = make_key()
    sock.sendall(build_request(key=key) + encode_frame(OP_TEXT, b"early") + encode_frame(OP_PING, b"p"))
    resp = read_response(sock)
    check_101(resp, key)
    c = Conn(sock, resp.rest)
    c.expect_echo(OP_TEXT, "early")
    c.expect_pong(b"p")
    normal_close(c)


def test_h_extension_offer_declined(server):
    c, resp = ws_connect(server, extra=[("Sec-WebSocket-Extensions",
                                         "permessage-deflate; client_max_window_bits")])
    c.send_text("uncompressed")
    c.expect_echo(OP_TEXT, "uncompressed")
    normal_close(c)


def test_h_no_subprotocol_when_none_configured(server):
    c, resp = ws_connect(server, extra=[("Sec-WebSocket-Protocol", "chat")])
    assert "sec-websocket-protocol" not in resp.headers, resp.headers
    normal_close(c)


@pytest.fixture(scope="module")
def origin_server(servers):
    return servers("--origins", "http://ok.example")


def test_h_origin_refused(origin_server):
    expect_http_error(origin_server, build_request(extra=[("Origin", "http://evil.example")]), (403,))


def test_h_origin_allowed(origin_server):
    c, _ = ws_connect(origin_server, extra=[("Origin", "http://ok.example")])
    c.send_text("hi")
    c.expect_echo(OP_TEXT, "hi")
    normal_close(c)


def test_h_origin_absent_allowed(origin_server):
    c = connect(origin_server)
    normal_close(c)


@pytest.fixture(scope="module")
def path_server(servers):
    return servers("--path", "/echo")


@pytest.mark.parametrize("path", ["/", "/other", "/echo/more"])
def test_h_wrong_path(path_server, path):
    expect_http_error(path_server, build_request(path=path), (404,))


def test_h_right_path(path_server):
    c = connect(path_server, path="/echo")
    c.send_binary(b"\x00\x01")
    c.expect_echo(OP_BINARY, b"\x00\x01")
    normal_close(c)


@pytest.fixture(scope="module")
def proto_server(servers):
    return servers("--subprotocols", "chat,superchat")


@pytest.mark.parametrize("offer,chosen", [
    ("superchat", "superchat"), ("chat", "chat"), ("foo, chat", "chat"), ("foo", None), (None, None)],
    ids=["superchat", "chat", "foo-chat", "foo", "none"])
def test_h_subprotocol(proto_server, offer, chosen):
    extra = [("Sec-WebSocket-Protocol", offer)] if offer else []
    c, resp = ws_connect(proto_server, extra=extra)
    assert resp.headers.get("sec-websocket-protocol") == chosen, resp.headers
    c.send_text("proto")
    c.expect_echo(OP_TEXT, "proto")
    normal_close(c)


# ----- Raw-WS (no HTTP) -----


@pytest.fixture(scope="module")
def raw_server(servers):
    return servers("--raw")


@pytest.mark.parametrize("opcode,n", [(OP_TEXT, 11), (OP_BINARY, 0), (OP_BINARY, 65536), (OP_TEXT, MiB)],
                         ids=["text", "binary-empty", "binary-64KiB", "text-1MiB"])
def test_raw_echo(raw_server, opcode, n):
    c = connect(raw_server, raw=True)
    data = payload_for(opcode, n)
    c.send(opcode, data)
    c.expect_echo(opcode, data)
    normal_close(c)


def test_raw_ping_and_fragments(raw_server):
    c = connect(raw_server, raw=True)
    c.send_raw(encode_frame(OP_TEXT, KOSME[:3], fin=False) + encode_frame(OP_PING, b"raw")
               + encode_frame(OP_CONT, KOSME[3:]))
    c.expect_pong(b"raw")
    c.expect_echo(OP_TEXT, KOSME)
    normal_close(c, 4000)


def test_raw_reserved_opcode(raw_server):
    c = connect(raw_server, raw=True)
    c.send(0x3, b"x")
    c.expect_close(1002)


def test_raw_invalid_utf8(raw_server):
    c = connect(raw_server, raw=True)
    c.send_text(b"\xed\xa0\x80")
    c.expect_close(1007)


def test_raw_http_request_is_a_protocol_error(raw_server):
    """'G' (0x47) reads as FIN=0, RSV1, opcode 7: close 1002."""
    c = connect(raw_server, raw=True)
    c.send_raw(build_request())
    c.expect_close(1002)


# ----- SOCK_STREAM server -----


@pytest.fixture(scope="module")
def stream_server(servers):
    return servers("--stream")


@pytest.mark.parametrize("opcode,n", [(OP_TEXT, 20), (OP_BINARY, 65536), (OP_BINARY, 4 * MiB)],
                         ids=["text", "binary-64KiB", "binary-4MiB"])
def test_stream_echo(stream_server, opcode, n):
    c = connect(stream_server)
    data = payload_for(opcode, n)
    c.send(opcode, data)
    c.expect_echo(opcode, data)
    normal_close(c)


def test_stream_fragmented_and_ping(stream_server):
    c = connect(stream_server)
    data = mixed_utf8(200000)
    parts = [data[i:i + 9999] for i in range(0, len(data), 9999)]
    c.send_raw(encode_frame(OP_TEXT, parts[0], fin=False) + encode_frame(OP_PING, b"s")
               + fragments(OP_CONT, parts[1:]))
    c.expect_pong(b"s")
    c.expect_echo(OP_TEXT, data)
    normal_close(c, 3000)


def test_stream_message_sequence(stream_server):
    c = connect(stream_server)
    msgs = [(OP_BINARY, os.urandom(i * 1000 + 1)) for i in range(20)] + [(OP_TEXT, KOSME)]
    c.send_raw(b"".join(encode_frame(op, d) for op, d in msgs))
    for op, d in msgs:
        c.expect_echo(op, d)
    normal_close(c)


def test_stream_invalid_utf8(stream_server):
    c = connect(stream_server)
    c.send_text(b"ok" + b"\xff", fin=False)
    c.expect_close(1007)


# ----- Unix and TLS servers -----


@pytest.fixture(scope="module")
def unix_server(servers, tmp_path_factory):
    return servers("--unix", str(tmp_path_factory.mktemp("unix") / "ws.sock"))


def test_unix_echo(unix_server):
    c = connect(unix_server)
    data = os.urandom(100000)
    c.send_binary(data)
    c.expect_echo(OP_BINARY, data)
    c.send(OP_PING, b"unix")
    c.expect_pong(b"unix")
    normal_close(c)


def test_unix_protocol_error(unix_server):
    c = connect(unix_server)
    c.send(OP_TEXT, b"x", mask=False)
    c.expect_close(1002)


def test_tls_echo(servers, tls_files):
    srv = servers("--tls", *tls_files)
    c = connect(srv, tls=True)
    for opcode, n in [(OP_TEXT, 100), (OP_BINARY, MiB)]:
        data = payload_for(opcode, n)
        c.send(opcode, data)
        c.expect_echo(opcode, data)
    c.send_text(b"\xc0\xaf")
    c.expect_close(1007)


def test_tls_raw_echo(servers, tls_files):
    srv = servers("--raw", "--tls", *tls_files)
    c = connect(srv, raw=True, tls=True)
    c.send_text("raw over tls")
    c.expect_echo(OP_TEXT, "raw over tls")
    normal_close(c)


# ----- many clients at once -----


def test_concurrent_clients(server):
    errors = []

    def client(i):
        try:
            c = connect(server)
            for j in range(30):
                data = os.urandom((i * 7919 + j * 104729) % 70000)
                c.send_binary(data)
                c.expect_echo(OP_BINARY, data)
            normal_close(c)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "clients still running after 60 s"
    assert not errors, errors
