"""Tests for xscat (build/xscat), driven through subprocess over loopback.

Run from the repository root after building: python3 -m pytest -q tools/tests
XSCAT=/path/to/xscat overrides the binary.
"""

import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.sync.client import unix_connect as ws_unix_connect
from websockets.sync.server import serve as ws_serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
XSCAT = os.environ.get("XSCAT", os.path.join(ROOT, "build", "xscat"))
TIMEOUT = 20  # seconds, for any single wait in these tests

if not os.access(XSCAT, os.X_OK):
    raise RuntimeError(f"{XSCAT} not built (run make first)")


@pytest.fixture
def procs():
    """Starts xscat processes and kills whatever is still running at teardown."""
    started = []

    def start(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=None):
        p = subprocess.Popen(
            [XSCAT, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
        )
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        try:
            wait_exit(p)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass


def read_line(stream, timeout=TIMEOUT):
    """One line from a pipe, waiting at most `timeout` seconds."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    out = b""
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no full line within {timeout}s, got {out!r}")
        b = os.read(fd, 1)
        if not b:
            raise AssertionError(f"EOF before a full line, got {out!r}")
        out += b
    return out.decode()


def listening(p):
    """Parses xscat's first stderr line, 'listening on URL', and returns the URL."""
    line = read_line(p.stderr)
    m = re.fullmatch(r"listening on (\S+)\n", line)
    assert m, f"first stderr line is {line!r}"
    return m.group(1)


def tcp_port(url):
    m = re.fullmatch(r"(?:tcp|udp)://127\.0\.0\.1:(\d+)", url)
    assert m, url
    port = int(m.group(1))
    assert 0 < port < 65536
    return port


def read_exactly(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def read_to_eof(s):
    buf = bytearray()
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            return bytes(buf)
        buf += chunk


def echo_roundtrip(family, addr, payload):
    """Sends payload while reading concurrently; returns what came back before EOF."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(addr)
    got = []

    def reader():
        got.append(read_to_eof(s))

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    t.join(TIMEOUT)
    s.close()
    assert not t.is_alive(), "echo did not finish"
    return got[0]


def wait_exit(p, timeout=TIMEOUT):
    if p.stdin is not None and p.stdin.closed:
        p.stdin = None  # communicate() would flush it
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err.decode()


def free_port():
    """A loopback TCP port with nothing listening (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ----- usage -----


def test_help_lists_options_and_schemes():
    r = subprocess.run([XSCAT, "--help"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0
    text = r.stdout.decode()
    for word in ["-l", "-k", "--echo", "-v", "tcp://", "udp://", "unix:///", "listening on"]:
        assert word in text, word


@pytest.mark.parametrize(
    "args",
    [[], ["-k", "tcp://127.0.0.1:1"], ["--echo", "tcp://127.0.0.1:1"], ["-x", "tcp://h:1"],
     ["--bogus", "tcp://h:1"], ["tcp://h:1", "tcp://h:2"]],
)
def test_usage_errors_exit_2(args):
    r = subprocess.run([XSCAT, *args], capture_output=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stderr.decode().startswith("xscat: ")
    assert "usage" in r.stderr.decode()


# ----- failures: non-zero with a one-line reason -----


def check_failure(args, *expected):
    r = subprocess.run([XSCAT, *args], capture_output=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert err.count("\n") == 1 and err.startswith("xscat: "), err
    for word in expected:
        assert word in err, err
    return err


def test_connection_refused():
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    err = check_failure([url])
    assert err == f"xscat: connect {url}: Connection refused\n"


def test_bad_urls():
    check_failure(["tcp://127.0.0.1"], "HOST:PORT")
    check_failure(["tcp://127.0.0.1:70000"], "port")
    check_failure(["127.0.0.1:80"], "scheme")
    check_failure(["-l", "unix://relative"], "unix:///PATH")


@pytest.mark.parametrize("scheme", ["wsx", "ftp"])
def test_unknown_scheme(scheme):
    check_failure([f"{scheme}://127.0.0.1:1"], f"scheme '{scheme}'", "not supported")


def test_missing_unix_path(tmp_path):
    check_failure([f"unix://{tmp_path}/nothing"], "No such file")


def test_listen_address_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        url = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        check_failure(["-l", url], f"listen {url}", "Address already in use")
    finally:
        s.close()


# ----- listening line -----


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_port_zero_prints_listening_url_first(procs, scheme):
    p = procs("-l", "--echo", f"{scheme}://127.0.0.1:0")
    url = listening(p)
    assert url.startswith(f"{scheme}://127.0.0.1:")
    tcp_port(url)


def test_listening_line_first_even_with_library_log(procs):
    p = procs("-l", "--echo", "-vv", "tcp://127.0.0.1:0", env={"XSOCKET_LOG": "trace"})
    port = tcp_port(listening(p))
    assert echo_roundtrip(socket.AF_INET, ("127.0.0.1", port), b"log") == b"log"
    p.terminate()
    _, _, err = wait_exit(p)
    assert "xsocket[debug]" in err and "accepted 127.0.0.1:" in err, err


def test_listening_line_ipv6(procs):
    p = procs("-l", "--echo", "tcp://[::1]:0")
    url = listening(p)
    m = re.fullmatch(r"tcp://\[::1\]:(\d+)", url)
    assert m and int(m.group(1)) > 0, url
    assert echo_roundtrip(socket.AF_INET6, ("::1", int(m.group(1))), b"v6") == b"v6"


# ----- echo server -----


def test_echo_serves_nc(procs):
    """The issue's done-when: `xscat -l --echo tcp://127.0.0.1:0` serves nc."""
    nc = shutil.which("nc")
    assert nc is not None, "nc missing: apt-get install -y netcat-openbsd"
    p = procs("-l", "--echo", "tcp://127.0.0.1:0")
    port = tcp_port(listening(p))
    data = b"hello from nc\n" + os.urandom(200_000)
    r = subprocess.run([nc, "-N", "127.0.0.1", str(port)], input=data, capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    # and again: the server keeps serving
    r = subprocess.run([nc, "-N", "127.0.0.1", str(port)], input=b"again\n",
                       capture_output=True, timeout=TIMEOUT)
    assert r.stdout == b"again\n"
    assert p.poll() is None


def test_echo_concurrent_clients_large_payloads(procs):
    p = procs("-l", "--echo", "-v", "tcp://127.0.0.1:0")
    port = tcp_port(listening(p))
    payloads = [os.urandom(1 << 20) for _ in range(4)]
    results = [None] * len(payloads)

    def client(i):
        results[i] = echo_roundtrip(socket.AF_INET, ("127.0.0.1", port), payloads[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    for i, payload in enumerate(payloads):
        assert results[i] == payload, f"client {i}: {len(results[i] or b'')} bytes back"
    p.terminate()
    _, _, err = wait_exit(p)
    assert err.count("accepted 127.0.0.1:") == 4
    assert err.count(f"({1 << 20} bytes in, {1 << 20} out)") == 4


def test_echo_client_that_does_not_read_blocks_nobody(procs):
    """A client that sends without reading fills its own bounded buffer only."""
    p = procs("-l", "--echo", "tcp://127.0.0.1:0")
    port = tcp_port(listening(p))
    hog = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    hog.setblocking(False)
    sent = 0
    stream = os.urandom(64 << 20)
    deadline = time.monotonic() + 5
    # send until the server stops reading from us (it must, within a few MiB)
    stalled_since = None
    while time.monotonic() < deadline and sent < len(stream):
        try:
            sent += hog.send(stream[sent:sent + (1 << 16)])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)
    assert stalled_since is not None, f"server kept reading {sent} bytes from a non-reader"
    # meanwhile another client is served
    assert echo_roundtrip(socket.AF_INET, ("127.0.0.1", port), b"still here") == b"still here"
    # now drain the hog: everything comes back intact, in order
    hog.setblocking(True)
    hog.settimeout(TIMEOUT)
    back = read_exactly(hog, sent)
    assert len(back) == sent
    assert back == stream[:sent]
    hog.close()


def test_udp_echo_keeps_datagram_boundaries(procs):
    p = procs("-l", "--echo", "udp://127.0.0.1:0")
    port = tcp_port(listening(p))
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            c.settimeout(TIMEOUT)
            for msg in [b"a", b"bb" * (i + 1), os.urandom(60000), b""]:
                c.sendto(msg, ("127.0.0.1", port))
                data, addr = c.recvfrom(65536)
                assert data == msg
                assert addr == ("127.0.0.1", port)
    finally:
        for c in clients:
            c.close()


def test_unix_echo_and_socket_file_removed(procs, tmp_path):
    path = str(tmp_path / "echo.sock")
    p = procs("-l", "--echo", f"unix://{path}")
    assert listening(p) == f"unix://{path}"
    payload = os.urandom(300_000)
    assert echo_roundtrip(socket.AF_UNIX, path, payload) == payload
    assert echo_roundtrip(socket.AF_UNIX, path, b"x") == b"x"
    p.terminate()
    wait_exit(p)
    assert not os.path.exists(path)


def test_unix_abstract_echo(procs):
    name = f"xscat-test-{uuid.uuid4().hex}"
    p = procs("-l", "--echo", f"unix://@{name}")
    assert listening(p) == f"unix://@{name}"
    assert echo_roundtrip(socket.AF_UNIX, "\0" + name, b"abstract") == b"abstract"


# ----- client mode -----


def test_client_pipes_both_ways(procs):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(TIMEOUT)
    port = srv.getsockname()[1]
    request = os.urandom(1 << 20)
    reply = b"reply:" + os.urandom(500_000)
    received = []

    def server():
        conn, _ = srv.accept()
        conn.settimeout(TIMEOUT)
        conn.sendall(reply[:1000])  # the server speaks first too
        received.append(read_to_eof(conn))  # ends at xscat's stdin EOF (shutdown)
        conn.sendall(reply[1000:])
        conn.close()

    t = threading.Thread(target=server)
    t.start()
    p = procs(f"tcp://127.0.0.1:{port}", stdin=subprocess.PIPE)
    out, err = p.communicate(request, timeout=TIMEOUT)
    t.join(TIMEOUT)
    srv.close()
    assert p.returncode == 0, err
    assert received == [request]
    assert out == reply


def test_client_waits_for_stdin_after_peer_eof(procs):
    """EOF both ways: the server half-closes first, stdin still reaches it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(TIMEOUT)
    port = srv.getsockname()[1]
    p = procs("-v", f"tcp://127.0.0.1:{port}", stdin=subprocess.PIPE)
    conn, _ = srv.accept()
    conn.settimeout(TIMEOUT)
    conn.sendall(b"greeting\n")
    conn.shutdown(socket.SHUT_WR)
    assert read_line(p.stdout) == "greeting\n"
    time.sleep(0.2)
    assert p.poll() is None  # still waiting for stdin
    p.stdin.write(b"late data")
    p.stdin.close()
    assert read_to_eof(conn) == b"late data"
    conn.close()
    srv.close()
    rc, _, err = wait_exit(p)
    assert rc == 0, err
    assert "connected to" in err and "closed sid" in err


def test_client_udp(procs):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(TIMEOUT)
    port = srv.getsockname()[1]
    p = procs(f"udp://127.0.0.1:{port}", stdin=subprocess.PIPE)
    p.stdin.write(b"ping")
    p.stdin.flush()
    data, addr = srv.recvfrom(65536)
    assert data == b"ping"
    srv.sendto(b"PONG", addr)
    srv.sendto(b"!", addr)
    start = time.monotonic()
    p.stdin.close()
    rc, out, err = wait_exit(p)
    srv.close()
    assert rc == 0, err
    assert out == b"PONG!"
    assert time.monotonic() - start < 5  # ends about a second after stdin's EOF


def test_client_udp_refused():
    port = free_port()
    r = subprocess.run([XSCAT, f"udp://127.0.0.1:{port}"], input=b"x", capture_output=True,
                       timeout=TIMEOUT)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and "Connection refused" in err


def test_client_stdout_closed_is_clean(procs):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(TIMEOUT)
    port = srv.getsockname()[1]
    r, w = os.pipe()
    p = procs(f"tcp://127.0.0.1:{port}", stdout=w)
    os.close(w)
    conn, _ = srv.accept()
    conn.settimeout(TIMEOUT)
    conn.sendall(b"first")
    assert os.read(r, 1) == b"f"
    os.close(r)  # the reader goes away, like `| head -c1`
    try:
        for _ in range(100):
            conn.sendall(b"y" * 65536)
    except OSError:
        pass
    rc, _, err = wait_exit(p)
    conn.close()
    srv.close()
    assert rc == 0, err
    assert err == ""


# ----- listen modes -----


def test_listen_one_shot_pipes_and_exits(procs):
    p = procs("-l", "-v", "tcp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = tcp_port(listening(p))
    c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    c.sendall(b"hello from client\n")
    c.shutdown(socket.SHUT_WR)
    assert read_line(p.stdout) == "hello from client\n"
    p.stdin.write(b"reply from server\n")
    p.stdin.close()
    assert read_to_eof(c) == b"reply from server\n"
    c.close()
    rc, out, err = wait_exit(p)
    assert rc == 0, err
    assert out == b""
    assert re.search(r"accepted 127\.0\.0\.1:\d+ \(sid \d+\)", err), err
    assert "(18 bytes in, 18 out)" in err
    # one connection only: the listener is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_listen_unix_one_shot(procs, tmp_path):
    path = str(tmp_path / "s")
    p = procs("-l", f"unix://{path}", stdin=subprocess.PIPE)
    assert listening(p) == f"unix://{path}"
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(TIMEOUT)
    c.connect(path)
    c.sendall(b"over unix")
    c.shutdown(socket.SHUT_WR)
    p.stdin.write(b"back")
    p.stdin.close()
    assert read_to_eof(c) == b"back"
    c.close()
    rc, out, err = wait_exit(p)
    assert rc == 0, err
    assert out == b"over unix"
    assert not os.path.exists(path)


def test_listen_keep_accepts_sequential_connections(procs):
    p = procs("-l", "-k", "-v", "tcp://127.0.0.1:0")
    port = tcp_port(listening(p))
    for i in range(3):
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        c.sendall(f"message {i}\n".encode())
        c.shutdown(socket.SHUT_WR)
        assert read_to_eof(c) == b""  # stdin is /dev/null: xscat half-closes at once
        c.close()
        assert read_line(p.stdout) == f"message {i}\n"
    events = "".join(read_line(p.stderr) for _ in range(6))
    assert events.count("accepted 127.0.0.1:") == 3, events
    assert events.count("(10 bytes in, 0 out)") == 3, events
    assert p.poll() is None


def test_listen_keep_stdin_goes_to_current_connection(procs):
    p = procs("-l", "-k", "-v", "tcp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = tcp_port(listening(p))
    c1 = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    assert read_line(p.stderr).startswith("accepted ")
    p.stdin.write(b"to first\n")
    p.stdin.flush()
    assert read_exactly(c1, 9) == b"to first\n"
    c1.close()
    assert read_line(p.stderr).startswith("closed sid ")  # xscat moved on
    c2 = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    p.stdin.write(b"to second\n")
    p.stdin.close()
    assert read_to_eof(c2) == b"to second\n"
    c2.close()


def test_listen_udp_pipes_and_replies_to_sender(procs):
    p = procs("-l", "udp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = tcp_port(listening(p))
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(TIMEOUT)
    c.sendto(b"dgram one", ("127.0.0.1", port))
    assert os.read(p.stdout.fileno(), 100) == b"dgram one"
    p.stdin.write(b"answer")
    p.stdin.flush()
    assert c.recvfrom(100) == (b"answer", ("127.0.0.1", port))
    p.stdin.close()
    rc, _, err = wait_exit(p)
    c.close()
    assert rc == 0, err


def test_stdin_to_socket_large_via_listen(procs):
    """1 MiB from stdin reaches a client intact while the client sends 1 MiB in."""
    p = procs("-l", "tcp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = tcp_port(listening(p))
    down = os.urandom(1 << 20)
    up = os.urandom(1 << 20)
    c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    got = []
    t = threading.Thread(target=lambda: got.append(read_to_eof(c)))
    t.start()

    def feed():
        p.stdin.write(down)
        p.stdin.close()

    f = threading.Thread(target=feed)
    f.start()
    c.sendall(up)
    c.shutdown(socket.SHUT_WR)
    out = p.stdout.read()
    t.join(TIMEOUT)
    f.join(TIMEOUT)
    c.close()
    assert p.wait(TIMEOUT) == 0
    assert out == up
    assert got == [down]


# ----- TLS -----


@pytest.fixture
def cert(tmp_path):
    """A self-signed certificate for localhost/127.0.0.1, made with openssl."""
    key, pem = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-keyout", str(key), "-out", str(pem)],
        check=True, capture_output=True, timeout=TIMEOUT)
    return str(pem), str(key)


def test_tls_echo_server_and_client(procs, cert):
    pem, key = cert
    p = procs("-l", "--echo", "--cert", pem, "--key", key, "tls://127.0.0.1:0")
    url = listening(p)
    m = re.fullmatch(r"tls://127\.0\.0\.1:(\d+)", url)
    assert m, url
    port = m.group(1)
    # xscat as the client, trusting the certificate as its CA, checking "localhost".
    r = subprocess.run([XSCAT, "--ca", pem, f"tls://localhost:{port}"], input=b"over tls\n",
                       capture_output=True, timeout=TIMEOUT)
    assert (r.returncode, r.stdout) == (0, b"over tls\n"), r.stderr
    # The stdlib's ssl module as the client.
    ctx = ssl.create_default_context(cafile=pem)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"stdlib")
            assert t.recv(100) == b"stdlib"
    # Without the CA the client refuses the certificate, and says why in one line.
    check_failure([f"tls://localhost:{port}"], "not signed by a trusted CA")
    check_failure(["--sni", "example.com", "--ca", pem, f"tls://127.0.0.1:{port}"],
                  "not valid for name 'example.com'")


def test_tls_options_need_a_tls_url():
    check_failure(["--ca", "/dev/null", "tcp://127.0.0.1:1"], "--ca needs a tls://")


# ----- WebSocket (ws://, wss://, wsraw://, wsraw+tls://, ws+unix://) -----
#
# xscat's WebSocket mode: each stdin line is one text message (--binary: each stdin
# read is one binary message), each message received is written out followed by a
# newline (--binary: as it is). At stdin's EOF xscat sends a close frame; it ends at
# the peer's close.


def ws_port(url, scheme="ws"):
    """The port of a 'listening on' URL such as ws://127.0.0.1:40000."""
    m = re.fullmatch(rf"{re.escape(scheme)}://127\.0\.0\.1:(\d+)", url)
    assert m, url
    port = int(m.group(1))
    assert 0 < port < 65536
    return port


def run_xscat(args, data=b"", timeout=TIMEOUT):
    return subprocess.run([XSCAT, *args], input=data, capture_output=True, timeout=timeout)


def run_until_peer_closes(args, timeout=TIMEOUT):
    """Runs xscat with stdin held open (no EOF, so xscat sends no close frame of its own)
    until the server ends the session; returns (returncode, stdout, stderr)."""
    p = subprocess.Popen([XSCAT, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        p.wait(timeout)
        return p.returncode, p.stdout.read(), p.stderr.read().decode()  # small outputs only
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout)
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()


def read_n(stream, n, timeout=TIMEOUT):
    """Exactly n bytes from a pipe, waiting at most `timeout` seconds in all."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"only {len(out)} of {n} bytes within {timeout}s")
        b = os.read(fd, n - len(out))
        if not b:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes")
        out += b
    return bytes(out)


class LogLines(logging.Handler):
    """Collects the websockets library's log (with DEBUG: every frame, '< PING ...')."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.lines = []
        self.logger = logging.getLogger(f"xscat-test.{name}.{uuid.uuid4().hex}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record):
        self.lines.append(record.getMessage())

    def wait_for(self, prefix, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in list(self.lines)):
                return
            time.sleep(0.02)
        raise AssertionError(f"no log line starting {prefix!r} within {timeout}s: {self.lines}")


@contextlib.contextmanager
def py_ws_server(handler, **kw):
    """A websockets (sync API) server on 127.0.0.1 in a thread; yields its port."""
    kw.setdefault("close_timeout", 2)
    server = ws_serve(handler, "127.0.0.1", 0, **kw)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(TIMEOUT)
        t.join(TIMEOUT)
        assert not t.is_alive() and not stopper.is_alive(), "websockets server did not stop"


def ws_frame(opcode, payload, mask=True, fin=True):
    """One RFC 6455 frame (a client's frames are masked)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def read_frame(s):
    """(fin, opcode, masked, payload) of the next frame on socket s."""
    head = read_exactly(s, 2)
    assert len(head) == 2, f"EOF instead of a frame header ({head!r})"
    fin, opcode, masked, n = head[0] >> 7, head[0] & 0x0F, head[1] >> 7, head[1] & 0x7F
    assert head[0] & 0x70 == 0, f"RSV bits set: {head!r}"
    if n == 126:
        n = int.from_bytes(read_exactly(s, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exactly(s, 8), "big")
    key = read_exactly(s, 4) if masked else None
    payload = read_exactly(s, n)
    assert len(payload) == n, f"EOF inside a frame ({len(payload)} of {n} bytes)"
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return fin, opcode, masked, payload


TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def test_ws_help_lists_schemes_and_options():
    r = subprocess.run([XSCAT, "--help"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0
    text = r.stdout.decode()
    for word in ["ws://", "wss://", "ws+unix://", "wsraw://", "wsraw+tls://", "--binary",
                 "--subprotocol", "--origin", "--ping", "--fragment"]:
        assert word in text, word


@pytest.mark.parametrize(
    "args",
    [["--ping", "-1", "ws://127.0.0.1:1"], ["--ping", "soon", "ws://127.0.0.1:1"],
     ["--fragment", "0", "ws://127.0.0.1:1"], ["--origin"], ["--subprotocol"]],
)
def test_ws_option_usage_errors_exit_2(args):
    r = subprocess.run([XSCAT, *args], capture_output=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    assert r.stderr.decode().startswith("xscat: ") and "usage" in r.stderr.decode()


def test_ws_options_need_a_ws_url():
    for opt in [["--binary"], ["--subprotocol", "chat"], ["--origin", "http://a.test"],
                ["--ping", "100"], ["--fragment", "10"]]:
        check_failure([*opt, "tcp://127.0.0.1:1"], f"{opt[0]} needs a WebSocket URL")


def test_ws_bad_urls():
    check_failure(["ws://127.0.0.1:70000/"], "port")
    check_failure(["wsraw://127.0.0.1:70000"], "port")
    check_failure(["wsx://127.0.0.1:1"], "scheme 'wsx'", "not supported")
    check_failure(["-l", "ws+unix://relative"], "listen ws+unix://relative")
    port = free_port()
    check_failure([f"ws://127.0.0.1:{port}/"], f"connect ws://127.0.0.1:{port}/",
                  "Connection refused")
    # TLS options want a TLS URL: wss:// yes, ws:// no
    check_failure(["--ca", "/dev/null", "ws://127.0.0.1:1/"], "--ca needs a tls://")


# --- xscat against xscat ---


def test_ws_text_lines_round_trip_through_echo(procs):
    """`printf 'hello\\n...' | xscat ws://...` against `xscat -l --echo ws://...`."""
    srv = procs("-l", "--echo", "-v", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    long_line = "x" * 100_000
    lines = ["hello", "wörld ✓", "", long_line, "last"]
    data = "\n".join(lines).encode()  # the last line has no newline: still a message
    r = run_xscat([f"ws://127.0.0.1:{port}/echo"], data)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    assert r.stdout == ("\n".join(lines) + "\n").encode()
    srv.terminate()
    _, _, err = wait_exit(srv)
    nbytes = sum(len(line.encode()) for line in lines)
    assert re.search(r"accepted 127\.0\.0\.1:\d+ \(sid \d+\)", err), err
    assert "websocket, path /echo" in err, err
    assert (f"(5 messages, {nbytes} bytes in; 5 messages, {nbytes} bytes out; "
            "peer closed with code 1000)") in err, err


def test_ws_interactive_lines(procs):
    """Each line comes back as it is sent; stdin's EOF ends the session cleanly."""
    srv = procs("-l", "--echo", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    c = procs("-v", f"ws://127.0.0.1:{port}/", stdin=subprocess.PIPE)
    for line in ["one", "two two", "", "three"]:
        c.stdin.write(line.encode() + b"\n")
        c.stdin.flush()
        assert read_line(c.stdout) == line + "\n"
    c.stdin.close()
    rc, out, err = wait_exit(c)
    assert rc == 0, err
    assert out == b""
    assert f"connected to ws://127.0.0.1:{port}/" in err, err
    assert ("(4 messages, 15 bytes in; 4 messages, 15 bytes out; peer closed with code 1000)"
            in err), err


@pytest.mark.parametrize("fragment", [None, 1000])
def test_ws_binary_round_trip(procs, fragment):
    frag = [] if fragment is None else ["--fragment", str(fragment)]
    srv = procs("-l", "--echo", *frag, "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    data = os.urandom(1 << 20) + b"\n\0\xff"  # not UTF-8, newlines: binary mode keeps all
    r = run_xscat(["--binary", *frag, f"ws://127.0.0.1:{port}/"], data)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data)
    assert r.stdout == data


def test_ws_invalid_utf8_line_fails_in_text_mode(procs):
    srv = procs("-l", "--echo", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    r = run_xscat([f"ws://127.0.0.1:{port}/"], b"fine\n\xff\xfe not utf-8\n")
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("xscat: "), err
    assert "not valid UTF-8" in err and "--binary" in err, err
    assert srv.poll() is None  # the echo server is unharmed


def test_wsraw_both_ways(procs):
    srv = procs("-l", "-v", "wsraw://127.0.0.1:0", stdin=subprocess.PIPE)
    port = ws_port(listening(srv), "wsraw")
    cli = procs(f"wsraw://127.0.0.1:{port}", stdin=subprocess.PIPE)
    cli.stdin.write(b"from client\n")
    cli.stdin.flush()
    assert read_line(srv.stdout) == "from client\n"
    srv.stdin.write(b"from server\n")
    srv.stdin.flush()
    assert read_line(cli.stdout) == "from server\n"
    cli.stdin.close()  # the client's close frame ends both
    rc, out, err = wait_exit(cli)
    assert (rc, out, err) == (0, b"", "")
    rc, out, err = wait_exit(srv)
    assert rc == 0, err
    assert out == b""
    assert ("(1 message, 11 bytes in; 1 message, 11 bytes out; peer closed with code 1000)"
            in err), err


def test_wsraw_echo_text_and_binary(procs):
    srv = procs("-l", "--echo", "wsraw://127.0.0.1:0")
    port = ws_port(listening(srv), "wsraw")
    r = run_xscat([f"wsraw://127.0.0.1:{port}"], b"raw one\nraw two\n")
    assert (r.returncode, r.stdout) == (0, b"raw one\nraw two\n"), r.stderr
    data = os.urandom(300_000)
    r = run_xscat(["--binary", f"wsraw://127.0.0.1:{port}"], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_wsraw_server_wire_format(procs):
    """A hand-made Raw-WS client: unmasked replies, opcodes kept, pong, close answered."""
    srv = procs("-l", "--echo", "wsraw://127.0.0.1:0")
    port = ws_port(listening(srv), "wsraw")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(ws_frame(TEXT, b"hi"))
        assert read_frame(s) == (1, TEXT, 0, b"hi")
        s.sendall(ws_frame(BINARY, b"\x00\xff"))
        assert read_frame(s) == (1, BINARY, 0, b"\x00\xff")
        # a fragmented text message with a ping between its fragments
        s.sendall(ws_frame(TEXT, b"frag", fin=False) + ws_frame(PING, b"p?") +
                  ws_frame(CONT, b"mented"))
        assert read_frame(s) == (1, PONG, 0, b"p?")
        assert read_frame(s) == (1, TEXT, 0, b"fragmented")
        big = os.urandom(70_000)  # a 64-bit length
        s.sendall(ws_frame(BINARY, big))
        assert read_frame(s) == (1, BINARY, 0, big)
        s.sendall(ws_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye"))
        fin, opcode, masked, payload = read_frame(s)
        assert (fin, opcode, masked) == (1, CLOSE, 0)
        assert payload[:2] == (1000).to_bytes(2, "big"), payload
        assert s.recv(1) == b""  # then the server closes the connection


def test_wsraw_echo_client_that_reads_late_gets_everything(procs):
    """10 MiB of messages and a close sent before reading anything: every echo comes
    back, in order, before the close answer (xscat reads no further while an echo
    waits, so the close is not taken while echoes are still to go)."""
    srv = procs("-l", "--echo", "-v", "wsraw://127.0.0.1:0")
    port = ws_port(listening(srv), "wsraw")
    msgs = [os.urandom(256 * 1024) for _ in range(40)]
    frames = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        def reader():
            time.sleep(0.5)  # let the echoes back up first
            while True:
                f = read_frame(s)
                frames.append(f)
                if f[1] == CLOSE:
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(b"".join(ws_frame(BINARY, m) for m in msgs) +
                  ws_frame(CLOSE, (1000).to_bytes(2, "big")))
        t.join(TIMEOUT)
        assert not t.is_alive(), f"only {len(frames)} frames back"
    srv.terminate()
    _, _, err = wait_exit(srv)
    assert len(frames) == len(msgs) + 1, (len(frames), [f[:2] for f in frames[-3:]], err)
    assert [f[3] for f in frames[:-1]] == msgs
    assert frames[-1][:3] == (1, CLOSE, 0) and frames[-1][3][:2] == (1000).to_bytes(2, "big")
    n = 40 * 256 * 1024
    assert (f"(40 messages, {n} bytes in; 40 messages, {n} bytes out; peer closed with code "
            "1000)") in err, err


def test_wsraw_too_big_frame_gets_close_1009(procs):
    """A frame header over XS_WS_MAX_MESSAGE (16 MiB) is refused at once with close 1009."""
    srv = procs("-l", "--echo", "-v", "wsraw://127.0.0.1:0")
    port = ws_port(listening(srv), "wsraw")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(ws_frame(TEXT, b"before"))
        assert read_frame(s) == (1, TEXT, 0, b"before")
        n = 16 * 1024 * 1024 + 1
        s.sendall(bytes([0x80 | BINARY, 0x80 | 127]) + n.to_bytes(8, "big") + os.urandom(4))
        fin, opcode, masked, payload = read_frame(s)  # no payload sent: none needed
        assert (fin, opcode, masked) == (1, CLOSE, 0)
        assert payload[:2] == (1009).to_bytes(2, "big"), payload
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(ws_frame(TEXT, b"next"))
        assert read_frame(s) == (1, TEXT, 0, b"next")
    srv.terminate()
    _, _, err = wait_exit(srv)
    assert "after error:" in err and "1009" in err, err


def test_wsraw_client_wire_format():
    """A hand-made Raw-WS server: xscat masks, fragments with --fragment, closes 1000."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    lst.settimeout(TIMEOUT)
    port = lst.getsockname()[1]
    p = subprocess.Popen([XSCAT, "--fragment", "2", f"wsraw://127.0.0.1:{port}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = lst.accept()
        conn.settimeout(TIMEOUT)
        p.stdin.write(b"hello\n")
        p.stdin.flush()
        assert read_frame(conn) == (0, TEXT, 1, b"he")
        assert read_frame(conn) == (0, CONT, 1, b"ll")
        assert read_frame(conn) == (1, CONT, 1, b"o")
        conn.sendall(ws_frame(TEXT, b"yo", mask=False))
        assert read_line(p.stdout) == "yo\n"
        conn.sendall(ws_frame(PING, b"ping!", mask=False))
        assert read_frame(conn) == (1, PONG, 1, b"ping!")
        p.stdin.close()
        fin, opcode, masked, payload = read_frame(conn)
        assert (fin, opcode, masked) == (1, CLOSE, 1)
        assert payload[:2] == (1000).to_bytes(2, "big"), payload
        conn.sendall(ws_frame(CLOSE, (1000).to_bytes(2, "big"), mask=False))
        p.stdin = None
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err
        assert out == b""
        conn.close()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(TIMEOUT)
        lst.close()


def test_wss_echo(procs, cert):
    pem, key = cert
    srv = procs("-l", "--echo", "--cert", pem, "--key", key, "wss://127.0.0.1:0")
    port = ws_port(listening(srv), "wss")
    r = run_xscat(["--ca", pem, f"wss://localhost:{port}/secure"], b"over wss\nline 2\n")
    assert (r.returncode, r.stdout) == (0, b"over wss\nline 2\n"), r.stderr
    data = os.urandom(200_000)
    r = run_xscat(["--binary", "--ca", pem, f"wss://localhost:{port}/"], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    # websockets with the stdlib's ssl as the client
    ctx = ssl.create_default_context(cafile=pem)
    with ws_connect(f"wss://localhost:{port}/", ssl=ctx, open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT) as c:
        c.send("text over wss")
        assert c.recv(timeout=TIMEOUT) == "text over wss"
        c.send(b"bytes over wss")
        assert c.recv(timeout=TIMEOUT) == b"bytes over wss"
    # without the CA the client refuses the certificate, and says why in one line
    check_failure([f"wss://localhost:{port}/"], "not signed by a trusted CA")


def test_wsraw_tls_echo(procs, cert):
    pem, key = cert
    srv = procs("-l", "--echo", "--cert", pem, "--key", key, "wsraw+tls://127.0.0.1:0")
    port = ws_port(listening(srv), "wsraw+tls")
    r = run_xscat(["--ca", pem, f"wsraw+tls://localhost:{port}"], b"raw over tls\n")
    assert (r.returncode, r.stdout) == (0, b"raw over tls\n"), r.stderr
    r = run_xscat(["--insecure", f"wsraw+tls://127.0.0.1:{port}"], b"insecure\n")
    assert (r.returncode, r.stdout) == (0, b"insecure\n"), r.stderr


def test_wsraw_unix_echo_and_abstract_name(procs, tmp_path):
    path = str(tmp_path / "wsraw.sock")
    srv = procs("-l", "--echo", f"wsraw+unix://{path}")
    assert listening(srv) == f"wsraw+unix://{path}"
    r = run_xscat([f"wsraw+unix://{path}"], b"raw over unix\n")
    assert (r.returncode, r.stdout) == (0, b"raw over unix\n"), r.stderr
    name = f"xscat-ws-{uuid.uuid4().hex}"
    srv2 = procs("-l", "--echo", f"ws+unix://@{name}")
    assert listening(srv2) == f"ws+unix://@{name}"
    r = run_xscat(["--binary", f"ws+unix://@{name}"], b"\x00abstract")
    assert (r.returncode, r.stdout) == (0, b"\x00abstract"), r.stderr


def test_ws_unix_echo_and_socket_file_removed(procs, tmp_path):
    path = str(tmp_path / "ws.sock")
    srv = procs("-l", "--echo", f"ws+unix://{path}")
    assert listening(srv) == f"ws+unix://{path}"
    r = run_xscat([f"ws+unix://{path}"], b"over unix\n")
    assert (r.returncode, r.stdout) == (0, b"over unix\n"), r.stderr
    with ws_unix_connect(path, uri="ws://localhost/", open_timeout=TIMEOUT,
                         close_timeout=TIMEOUT) as c:
        c.send("python over unix")
        assert c.recv(timeout=TIMEOUT) == "python over unix"
        c.send(b"\x01\x02")
        assert c.recv(timeout=TIMEOUT) == b"\x01\x02"
    srv.terminate()
    wait_exit(srv)
    assert not os.path.exists(path)


# --- xscat as the client of a Python websockets server ---


def test_ws_client_against_python_server():
    seen, got = [], []

    def handler(conn):
        seen.append((conn.request.path, conn.request.headers.get("Origin"), conn.subprotocol))
        for msg in conn:
            got.append(msg)
            conn.send(msg)

    with py_ws_server(handler, subprotocols=["chat", "superchat"]) as port:
        p = subprocess.Popen(
            [XSCAT, "-v", "--subprotocol", "superchat,other", "--origin", "http://example.test",
             f"ws://127.0.0.1:{port}/room?x=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for line in ["héllo", "second line", ""]:
                p.stdin.write(line.encode() + b"\n")
                p.stdin.flush()
                assert read_line(p.stdout) == line + "\n"
            p.stdin.close()
            p.stdin = None
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(TIMEOUT)
    err = err.decode()
    assert p.returncode == 0, err
    assert out == b""
    assert seen == [("/room?x=1", "http://example.test", "superchat")]
    assert got == ["héllo", "second line", ""]  # text messages (str), not bytes
    assert "websocket, subprotocol superchat" in err, err
    assert "peer closed with code 1000" in err, err


def test_ws_binary_client_against_python_server():
    got = []

    def handler(conn):
        for msg in conn:
            got.append(msg)
            conn.send(msg)

    with py_ws_server(handler) as port:
        p = subprocess.Popen([XSCAT, "--binary", f"ws://127.0.0.1:{port}/"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            chunk = os.urandom(5000)
            p.stdin.write(chunk)
            p.stdin.flush()
            assert read_n(p.stdout, len(chunk)) == chunk
            p.stdin.close()
            p.stdin = None
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(TIMEOUT)
    assert p.returncode == 0, err
    assert out == b""
    assert got and all(type(m) is bytes for m in got), [type(m) for m in got]
    assert b"".join(got) == chunk


def test_ws_client_prints_each_server_message_on_a_line():
    pongs = []

    def handler(conn):
        pongs.append(conn.ping(b"idle client?").wait(5))  # xscat waits in xs_recv
        conn.send("first")
        conn.send(b"second")
        conn.send("")
        conn.send(b"")
        conn.send("third\nline")
        conn.send(b"\xff binary")
        conn.close(1000, "done")

    with py_ws_server(handler) as port:
        rc, out, err = run_until_peer_closes(["-v", f"ws://127.0.0.1:{port}/"])
    assert rc == 0, err
    assert out == b"first\nsecond\n\n\nthird\nline\n\xff binary\n"
    assert "peer closed with code 1000 (done)" in err, err
    assert pongs == [True], "xscat's side did not answer the ping within 5 s"


def test_ws_client_binary_output_is_raw():
    def handler(conn):
        conn.send(b"ab")
        conn.send("cd")
        conn.send(b"\n\x00")
        conn.close()

    with py_ws_server(handler) as port:
        rc, out, err = run_until_peer_closes(["--binary", f"ws://127.0.0.1:{port}/"])
    assert rc == 0, err
    assert out == b"abcd\n\x00"


def test_ws_client_fails_on_error_close_code():
    def handler(conn):
        conn.close(1008, "policy says no")

    with py_ws_server(handler) as port:
        rc, out, err = run_until_peer_closes([f"ws://127.0.0.1:{port}/"])
    assert rc == 1, err
    assert out == b""
    assert err == f"xscat: ws://127.0.0.1:{port}/: the peer closed with code 1008 (policy says no)\n"


def test_ws_client_handshake_refused_by_server():
    def process_request(conn, request):
        if request.path != "/ok":
            return conn.respond(404, "no such endpoint\n")
        return None

    with py_ws_server(lambda conn: None, process_request=process_request) as port:
        err = check_failure([f"ws://127.0.0.1:{port}/missing"],
                            f"connect ws://127.0.0.1:{port}/missing")
        assert "404" in err, err


def test_ws_client_ping_and_fragment_options():
    log = LogLines("server")

    def handler(conn):
        for msg in conn:
            conn.send(msg)

    with py_ws_server(handler, logger=log.logger) as port:
        p = subprocess.Popen([XSCAT, "--ping", "50", "--fragment", "4",
                              f"ws://127.0.0.1:{port}/"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            log.wait_for("< PING")  # xscat pings by itself
            p.stdin.write(b"abcdefghij\n")
            p.stdin.flush()
            assert read_line(p.stdout) == "abcdefghij\n"
            p.stdin.close()
            p.stdin = None
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(TIMEOUT)
    assert p.returncode == 0, err
    frames = [line for line in log.lines if line.startswith(("< TEXT", "< CONT"))]
    assert frames == ["< TEXT 'abcd' [4 bytes, continued]",
                      "< CONT 'efgh' [text, 4 bytes, continued]",
                      "< CONT 'ij' [text, 2 bytes]"], frames


# --- Python websockets clients against xscat ---


def test_python_client_against_xscat_echo(procs):
    srv = procs("-l", "--echo", "-v", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    msgs = ["text", "", "ünïcödé ✓", b"\x00\xffbinary", b"", os.urandom(1 << 20),
            "t" * 200_000]
    with ws_connect(f"ws://127.0.0.1:{port}/room?x=1", origin="http://origin.test",
                    open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None) as c:
        for msg in msgs:
            c.send(msg)
            back = c.recv(timeout=TIMEOUT)
            assert type(back) is type(msg) and back == msg, (type(msg), len(msg))
        # fragmented by the client: one message back, of the same kind
        c.send(["frag", "mented"])
        assert c.recv(timeout=TIMEOUT) == "fragmented"
        c.send([b"ab", b"cd"])
        assert c.recv(timeout=TIMEOUT) == b"abcd"
        # pipelined, in order
        for i in range(200):
            c.send(f"m{i}" if i % 2 else f"m{i}".encode())
        for i in range(200):
            assert c.recv(timeout=TIMEOUT) == (f"m{i}" if i % 2 else f"m{i}".encode())
        # answered by xsocket while xscat waits in xs_poll; loopback: well within 5 s
        assert c.ping(b"are you there").wait(5), "no pong within 5 s"
    assert c.close_code == 1000  # xscat answered the close
    srv.terminate()
    _, _, err = wait_exit(srv)
    assert "websocket, path /room?x=1, origin http://origin.test" in err, err
    assert "peer closed with code 1000" in err, err


def test_python_clients_concurrent_on_xscat_echo(procs):
    srv = procs("-l", "--echo", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    errors = []

    def client(i):
        try:
            with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT,
                            close_timeout=TIMEOUT) as c:
                for j in range(50):
                    msg = f"client {i} message {j}" if j % 2 else os.urandom(j * 100)
                    c.send(msg)
                    assert c.recv(timeout=TIMEOUT) == msg
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "clients did not finish"
    assert errors == []


def test_python_client_subprotocol_and_origin_on_xscat(procs):
    srv = procs("-l", "--echo", "--subprotocol", "chat,superchat",
                "--origin", "http://good.test,http://also.test", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    url = f"ws://127.0.0.1:{port}/"
    kw = {"open_timeout": TIMEOUT, "close_timeout": TIMEOUT}
    with ws_connect(url, subprotocols=["superchat"], origin="http://good.test", **kw) as c:
        assert c.subprotocol == "superchat"
        c.send("hi")
        assert c.recv(timeout=TIMEOUT) == "hi"
    with ws_connect(url, subprotocols=["other"], origin="http://also.test", **kw) as c:
        assert c.subprotocol is None  # no match: none
    with ws_connect(url, **kw) as c:  # no Origin: a program, allowed
        c.send(b"no origin")
        assert c.recv(timeout=TIMEOUT) == b"no origin"
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url, origin="http://evil.test", **kw)
    assert refused.value.response.status_code == 403
    # the echo server carries on after the refusal
    with ws_connect(url, origin="http://good.test", **kw) as c:
        c.send("still here")
        assert c.recv(timeout=TIMEOUT) == "still here"
    assert srv.poll() is None


@pytest.mark.parametrize("echo", [True, False], ids=["echo", "one-shot"])
def test_python_client_sees_xscat_server_pings(procs, echo):
    """--ping on a listener: the echo server accepts without blocking (the handshake
    finishes later), the one-shot listener with a blocking accept."""
    srv = procs("-l", *(["--echo"] if echo else []), "--ping", "50", "ws://127.0.0.1:0",
                stdin=subprocess.PIPE)
    port = ws_port(listening(srv))
    log = LogLines("client")
    with ws_connect(f"ws://127.0.0.1:{port}/", logger=log.logger, open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT) as c:
        log.wait_for("< PING", timeout=5)  # every 50 ms
        if echo:
            c.send("after pings")
            assert c.recv(timeout=TIMEOUT) == "after pings"


def test_python_client_too_big_message_gets_1009(procs):
    srv = procs("-l", "--echo", "-v", "ws://127.0.0.1:0")
    port = ws_port(listening(srv))
    url = f"ws://127.0.0.1:{port}/"
    with ws_connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None) as c:
        with pytest.raises(ConnectionClosedError):
            # one byte over XS_WS_MAX_MESSAGE's default: refused, whether or not the
            # server reads the rest of it first
            c.send(b"\0" * (16 * 1024 * 1024 + 1))
            c.recv(timeout=TIMEOUT)
    # xscat sends close 1009 (test_wsraw_too_big_frame_gets_close_1009 checks the frame
    # itself) and, closing, reads and drops what this client still sends until its
    # close reply: no reset, so the client sees the 1009 itself.
    assert c.close_code == 1009, (c.close_code, c.close_reason)
    with ws_connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as c:
        c.send("next client")
        assert c.recv(timeout=TIMEOUT) == "next client"
    srv.terminate()
    _, _, err = wait_exit(srv)
    assert "after error:" in err and "1009" in err, err


def test_python_client_with_xscat_listen_one_shot(procs):
    srv = procs("-l", "-v", "ws://127.0.0.1:0", stdin=subprocess.PIPE)
    port = ws_port(listening(srv))
    with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT) as c:
        c.send("to xscat")
        assert read_line(srv.stdout) == "to xscat\n"
        c.send(b"bytes to xscat")
        assert read_line(srv.stdout) == "bytes to xscat\n"
        srv.stdin.write(b"to python\n")
        srv.stdin.flush()
        assert c.recv(timeout=TIMEOUT) == "to python"  # a stdin line is a text message
    assert c.close_code == 1000  # xscat answered the close before it exited
    rc, out, err = wait_exit(srv)
    assert rc == 0, err
    assert out == b""
    assert ("(2 messages, 22 bytes in; 1 message, 9 bytes out; peer closed with code 1000)"
            in err), err
    # one connection only: the listener is gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def test_python_client_with_xscat_listen_binary(procs):
    srv = procs("-l", "--binary", "ws://127.0.0.1:0", stdin=subprocess.PIPE)
    port = ws_port(listening(srv))
    with ws_connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT,
                    close_timeout=TIMEOUT) as c:
        c.send(b"\x00raw\n")
        c.send("text")
        assert read_n(srv.stdout, 9) == b"\x00raw\ntext"
        srv.stdin.write(b"\xffbinary back")
        srv.stdin.flush()
        assert c.recv(timeout=TIMEOUT) == b"\xffbinary back"  # binary mode: bytes
    rc, out, err = wait_exit(srv)
    assert rc == 0, err


def test_python_clients_one_after_another_with_listen_keep(procs):
    # stdin stays open: at its EOF xscat would greet each new connection with a close
    srv = procs("-l", "-k", "-v", "ws://127.0.0.1:0", stdin=subprocess.PIPE)
    port = ws_port(listening(srv))
    for i in range(3):
        with ws_connect(f"ws://127.0.0.1:{port}/n{i}", open_timeout=TIMEOUT,
                        close_timeout=TIMEOUT) as c:
            c.send(f"client {i}")
            assert read_line(srv.stdout) == f"client {i}\n"
        assert c.close_code == 1000
    events = "".join(read_line(srv.stderr) for _ in range(9))
    assert events.count("accepted 127.0.0.1:") == 3, events
    assert "websocket, path /n2" in events, events
    assert events.count("1 message, 8 bytes in; 0 messages, 0 bytes out; peer closed with "
                        "code 1000") == 3, events
    assert srv.poll() is None


# ----- smux (smux+tcp://, smux+tls://, smux+unix://) -----
#
# A client pipes one stream of a session (stdin -> stream, stream -> stdout, FIN at
# stdin's EOF), or with --streams N runs N streams at once, each sending --bytes B and
# checking the echo. `-l --echo` echoes every stream of every session; `-l` alone writes
# each stream's bytes to stdout and sends stdin on the session's first stream. The
# Python peers below speak the wire format themselves (smux-wire.md: a 7-byte header,
# cmd u8, stream id u16 LE, length u32 LE; SYN 0, FIN 1, PSH 2, CFM 3, VRM 4).

SYN, FIN, PSH, CFM, VRM = 0, 1, 2, 3, 4
SMUX_SUMMARY = re.compile(
    r"smux: (\d+) streams? x (\d+) bytes on one session: (\d+) bytes sent, (\d+) echoed and "
    r"checked in ([\d.]+) s \(([\d.]+) MB/s each way\), (\d+) failed\n")


def smux_port(url, scheme="smux+tcp"):
    m = re.fullmatch(rf"{re.escape(scheme)}://127\.0\.0\.1:(\d+)", url)
    assert m, url
    port = int(m.group(1))
    assert 0 < port < 65536
    return port


def smux_frame(cmd, sid, payload=b"", length=None):
    n = len(payload) if length is None else length
    return bytes([cmd]) + sid.to_bytes(2, "little") + n.to_bytes(4, "little") + payload


def smux_read_frame(s):
    """(cmd, id, length, payload) of the next frame, or None at the end of the connection."""
    h = read_exactly(s, 7)
    if len(h) < 7:
        assert not h, f"a frame header cut short: {h!r}"
        return None
    cmd, sid, n = h[0], int.from_bytes(h[1:3], "little"), int.from_bytes(h[3:7], "little")
    payload = read_exactly(s, n) if cmd == PSH else b""
    assert len(payload) == (n if cmd == PSH else 0)
    return cmd, sid, n, payload


def log_until(p, text, times=1):
    """The -v log lines of p up to the `times`-th that contains `text` (each line waited
    for at most TIMEOUT): the server logs a session's end after its client has exited."""
    lines = []
    while sum(text in line for line in lines) < times:
        lines.append(read_line(p.stderr))
    return "".join(lines)


def run_load(url, *args, timeout=60):
    r = run_xscat([*args, url], timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_smux_help_lists_schemes_and_options():
    r = subprocess.run([XSCAT, "--help"], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0
    text = r.stdout.decode()
    for word in ["smux+tcp://", "smux+tls://", "smux+unix://", "--streams", "--bytes"]:
        assert word in text, word


@pytest.mark.parametrize(
    "args",
    [["--streams", "0", "smux+tcp://127.0.0.1:1"], ["--streams", "65536", "smux+tcp://h:1"],
     ["--streams", "many", "smux+tcp://h:1"], ["--streams"],
     ["--bytes", "-1", "--streams", "2", "smux+tcp://h:1"],
     ["--bytes", "2X", "--streams", "2", "smux+tcp://h:1"],
     ["--bytes", "10", "smux+tcp://127.0.0.1:1"],
     ["-l", "--streams", "2", "smux+tcp://127.0.0.1:0"]],
)
def test_smux_option_usage_errors_exit_2(args):
    r = subprocess.run([XSCAT, *args], capture_output=True, timeout=TIMEOUT,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stderr
    assert r.stderr.decode().startswith("xscat: ") and "usage" in r.stderr.decode()


def test_smux_bad_urls():
    check_failure(["smux+tcp://127.0.0.1"], "HOST:PORT")
    check_failure(["smux+tcp://127.0.0.1:70000"], "port")
    check_failure(["smux+udp://127.0.0.1:1"], "scheme 'smux+udp'", "not supported")
    check_failure(["-l", "smux+unix://relative"], "listen smux+unix://relative")
    port = free_port()
    err = check_failure([f"smux+tcp://127.0.0.1:{port}"])
    assert err == f"xscat: connect smux+tcp://127.0.0.1:{port}: Connection refused\n"
    check_failure(["--streams", "4", "tcp://127.0.0.1:1"], "--streams needs an smux URL")
    check_failure(["--ca", "/dev/null", "smux+tcp://127.0.0.1:1"], "--ca needs a tls://")
    check_failure(["--binary", "smux+tcp://127.0.0.1:1"], "--binary needs a WebSocket URL")


def test_smux_round_trip_through_echo(procs):
    """`xscat smux+tcp://...` pipes one stream through `xscat -l --echo smux+tcp://...`."""
    srv = procs("-l", "--echo", "-v", "smux+tcp://127.0.0.1:0")
    port = smux_port(listening(srv))
    data = b"hello smux\n" + os.urandom(300_000)  # more than half a window: CFMs flow
    r = run_xscat(["-v", f"smux+tcp://127.0.0.1:{port}"], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    err = r.stderr.decode()
    assert f"connected to smux+tcp://127.0.0.1:{port} (session sid" in err, err
    assert re.search(r"stream 1 \(sid \d+\) on session sid \d+", err), err
    # and a second session on the same server, at once
    r = run_xscat([f"smux+tcp://127.0.0.1:{port}"], b"again\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"again\n", b"")
    assert srv.poll() is None
    log = log_until(srv, "closed session sid ", 2)
    srv.terminate()
    log += wait_exit(srv)[2]
    assert log.count("accepted 127.0.0.1:") == 2, log
    assert re.search(rf"closed stream 1 \(sid \d+\) \({len(data)} bytes in, {len(data)} out\)",
                     log), log
    assert log.count("closed session sid ") == 2, log
    assert "smux: the peer closed the connection (1 stream)" in log, log


def test_smux_listen_prints_stream_and_sends_stdin_back(procs):
    """`xscat -l smux+tcp://` writes the stream to stdout and answers with its stdin;
    both ends half-close at their stdin's EOF and exit once both ways are done."""
    srv = procs("-l", "smux+tcp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = smux_port(listening(srv))
    cli = subprocess.Popen([XSCAT, f"smux+tcp://127.0.0.1:{port}"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        cli.stdin.write(b"from the client\n")
        cli.stdin.flush()
        assert read_line(srv.stdout) == "from the client\n"
        srv.stdin.write(b"from the server\n")
        srv.stdin.flush()
        assert read_line(cli.stdout) == "from the server\n"
        big = os.urandom(700_000)  # beyond one window: the server must read and confirm

        def feed():  # in a thread: a pipe write blocks until xscat reads it
            try:
                cli.stdin.write(big)
                cli.stdin.close()  # FIN from the client; the server still sends
            except OSError:
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        assert read_n(srv.stdout, len(big)) == big
        writer.join(TIMEOUT)
        assert not writer.is_alive()
        srv.stdin.write(b"after your FIN\n")
        srv.stdin.close()
        rc, out, err = wait_exit(cli)
        assert (rc, out, err) == (0, b"after your FIN\n", ""), (rc, out, err)
        rc, out, err = wait_exit(srv)
        assert (rc, out) == (0, b""), err
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(TIMEOUT)


def test_smux_listen_keep_serves_sessions_one_after_another(procs):
    """With -k each session is served in turn; as for TCP, a stream ends at the peer's
    FIN even while stdin stays open."""
    srv = procs("-l", "-k", "smux+tcp://127.0.0.1:0", stdin=subprocess.PIPE)
    port = smux_port(listening(srv))
    for i in range(3):
        r = run_xscat([f"smux+tcp://127.0.0.1:{port}"], b"session %d\n" % i)
        assert (r.returncode, r.stdout) == (0, b""), r.stderr
        assert read_line(srv.stdout) == f"session {i}\n"
    assert srv.poll() is None


def test_smux_streams_50_against_echo(procs):
    """The load test: 50 streams x 1 MiB (the default) on one session, every byte checked."""
    srv = procs("-l", "--echo", "-v", "smux+tcp://127.0.0.1:0")
    port = smux_port(listening(srv))
    rc, out, err = run_load(f"smux+tcp://127.0.0.1:{port}", "--streams", "50")
    assert rc == 0, err
    assert err == ""
    m = SMUX_SUMMARY.fullmatch(out)
    assert m, out
    n, each, sent, echoed, secs, mbs, failed = m.groups()
    assert (int(n), int(each), int(failed)) == (50, 1 << 20, 0), out
    assert int(sent) == int(echoed) == 50 << 20, out
    assert float(secs) > 0 and float(mbs) > 0, out
    log = log_until(srv, "closed session sid ")
    srv.terminate()
    log += wait_exit(srv)[2]
    assert log.count(f"({1 << 20} bytes in, {1 << 20} out)") == 50, log
    assert "(50 streams)" in log, log
    assert len(set(re.findall(r"stream (\d+) \(sid \d+\) on session", log))) == 50, log


def test_smux_streams_sizes_and_one_stream(procs):
    srv = procs("-l", "--echo", "smux+tcp://127.0.0.1:0")
    url = f"smux+tcp://127.0.0.1:{smux_port(listening(srv))}"
    rc, out, err = run_load(url, "--streams", "3", "--bytes", "100K")
    assert rc == 0, err
    m = SMUX_SUMMARY.fullmatch(out)
    assert m and m.group(1, 2, 3, 4, 7) == ("3", "102400", "307200", "307200", "0"), out
    rc, out, err = run_load(url, "--streams", "1", "--bytes", "3M")
    assert rc == 0, err
    assert out.startswith("smux: 1 stream x 3145728 bytes on one session: 3145728 bytes sent, "
                          "3145728 echoed"), out
    rc, out, err = run_load(url, "--streams", "2", "--bytes", "0")
    assert rc == 0, err
    assert ", 0 failed\n" in out


class SmuxPeer:
    """A Python smux peer over TCP, from the wire notes: `serve` answers each frame of
    one connection with what `on_frame(cmd, id, payload)` returns (bytes to send)."""

    def __init__(self, on_frame):
        self.on_frame = on_frame
        self.lst = socket.create_server(("127.0.0.1", 0))
        self.lst.settimeout(TIMEOUT)
        self.port = self.lst.getsockname()[1]
        self.error = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.lst.accept()
            conn.settimeout(TIMEOUT)
            with conn:
                while (frame := smux_read_frame(conn)) is not None:
                    cmd, sid, _, payload = frame
                    out = self.on_frame(cmd, sid, payload)
                    if out is None:
                        return
                    conn.sendall(out)
        except (OSError, AssertionError) as e:  # ends the session: the test sees it
            self.error = e

    def close(self):
        self.lst.close()
        self.thread.join(TIMEOUT)


def echo_frames(corrupt_stream=None, cut_stream=None):
    """An echo peer's answers: PSH back (one byte flipped on `corrupt_stream`, once),
    FIN back; `cut_stream` gets a FIN after its first PSH instead of the echo."""
    state = {"corrupted": False, "cut": set()}

    def on_frame(cmd, sid, payload):
        if cmd == PSH:
            if sid == cut_stream and sid not in state["cut"]:
                state["cut"].add(sid)
                return smux_frame(FIN, sid)
            if sid in state["cut"]:
                return b""
            if sid == corrupt_stream and not state["corrupted"] and len(payload) > 10:
                state["corrupted"] = True
                payload = payload[:10] + bytes([payload[10] ^ 1]) + payload[11:]
            return smux_frame(PSH, sid, payload)
        if cmd == FIN:
            return b"" if sid in state["cut"] else smux_frame(FIN, sid)
        return b""  # SYN, CFM: nothing to answer (windows are not exceeded here)

    return on_frame


@pytest.mark.parametrize("fault", ["none", "corrupt", "cut"])
def test_smux_streams_check_the_echo(fault):
    """--streams fails (exit 1, one line) when an echo differs or ends early; against
    an honest Python echo peer it passes. 4 streams x 200 KiB: within the windows."""
    peer = SmuxPeer(echo_frames(corrupt_stream=3 if fault == "corrupt" else None,
                                cut_stream=2 if fault == "cut" else None))
    try:
        rc, out, err = run_load(f"smux+tcp://127.0.0.1:{peer.port}", "--streams", "4",
                                "--bytes", "200K")
    finally:
        peer.close()
    m = SMUX_SUMMARY.fullmatch(out)
    assert m, (out, err)
    if fault == "none":
        assert (rc, err, m.group(7)) == (0, "", "0"), (out, err)
        return
    assert rc == 1, (out, err)
    assert m.group(7) == "1", out
    assert err.count("\n") == 1 and err.startswith("xscat: 1 of 4 streams failed; first: "), err
    if fault == "corrupt":
        assert "stream 3: the echo differs at byte 10" in err, err
    else:
        assert "stream 2: the echo ended after 0 of 204800 bytes" in err, err


def test_smux_echo_speaks_the_wire_format(procs):
    """A Python peer opens streams on `xscat -l --echo` by hand (ids 0, 7 and 65535: any
    id from the peer is taken): each echo comes back on its own stream id, then the FIN;
    a VRM probe gets verifyCode's answer."""
    srv = procs("-l", "--echo", "smux+tcp://127.0.0.1:0")
    port = smux_port(listening(srv))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(smux_frame(VRM, 0x1234, length=0x11223344))
        assert smux_read_frame(s) == (VRM, 0x3420, 0x11442233, b"")
        s.sendall(smux_frame(SYN, 7) + smux_frame(SYN, 65535) + smux_frame(SYN, 0)
                  + smux_frame(PSH, 7, b"seven") + smux_frame(PSH, 65535, b"last id")
                  + smux_frame(PSH, 0, b"zero") + smux_frame(FIN, 7) + smux_frame(FIN, 0))
        got = {}
        fins = set()
        while len(fins) < 2 or got.get(65535) != b"last id":
            cmd, sid, _, payload = smux_read_frame(s)
            if cmd == PSH:
                got[sid] = got.get(sid, b"") + payload
            elif cmd == FIN:
                fins.add(sid)
        assert got == {7: b"seven", 65535: b"last id", 0: b"zero"}
        assert fins == {7, 0}  # stream 65535 is still open: no FIN for it
        s.sendall(smux_frame(FIN, 65535))
        assert smux_read_frame(s) == (FIN, 65535, 0, b"")


def test_smux_bad_peer_ends_the_session_not_the_server(procs):
    """Garbage on one session (an unknown command) closes that session with the reason;
    the echo server goes on serving others. A client facing such a peer fails in a line."""
    srv = procs("-l", "--echo", "-v", "smux+tcp://127.0.0.1:0")
    port = smux_port(listening(srv))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(bytes([0xEE, 0, 0, 0, 0, 0, 0]))
        assert read_to_eof(s) == b""  # the server closed the connection
    r = run_xscat([f"smux+tcp://127.0.0.1:{port}"], b"still served\n")
    assert (r.returncode, r.stdout) == (0, b"still served\n"), r.stderr
    log = log_until(srv, "closed session sid ", 2)
    srv.terminate()
    log += wait_exit(srv)[2]
    assert "after error: smux: unknown command from the peer; session closed" in log, log

    peer = SmuxPeer(lambda cmd, sid, payload: bytes([0xEE]) + bytes(6))
    try:
        r = run_xscat([f"smux+tcp://127.0.0.1:{peer.port}"], b"hi\n")
    finally:
        peer.close()
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith(f"xscat: recv smux+tcp://127.0.0.1:{peer.port}: smux: unknown "
                          "command"), err


def test_smux_tls(procs, cert):
    pem, key = cert
    srv = procs("-l", "--echo", "--cert", pem, "--key", key, "smux+tls://127.0.0.1:0")
    port = smux_port(listening(srv), "smux+tls")
    data = os.urandom(200_000)
    r = run_xscat(["--ca", pem, f"smux+tls://localhost:{port}"], data)
    assert (r.returncode, r.stdout == data) == (0, True), r.stderr
    rc, out, err = run_load(f"smux+tls://127.0.0.1:{port}", "--insecure", "--streams", "10",
                            "--bytes", "256K")
    assert rc == 0, err
    m = SMUX_SUMMARY.fullmatch(out)
    assert m and m.group(1, 3, 4, 7) == ("10", "2621440", "2621440", "0"), out
    # without the CA the client refuses the certificate, and says why in one line
    check_failure([f"smux+tls://localhost:{port}"], "not signed by a trusted CA")
    # a plain smux client gets no smux from a TLS server: it fails, not hangs
    r = run_xscat([f"smux+tcp://127.0.0.1:{port}"], b"plain\n")
    assert r.returncode == 1 and r.stdout == b"", r.stderr
    assert srv.poll() is None


def test_smux_tls_connects_one_after_another(procs, cert):
    """20 smux+tls clients in a row, each a new process: every TLS handshake completes
    (a blocking connect must not wait for handshake bytes the session already took)."""
    pem, key = cert
    srv = procs("-l", "--echo", "--cert", pem, "--key", key, "smux+tls://127.0.0.1:0")
    port = smux_port(listening(srv), "smux+tls")
    for i in range(20):
        r = run_xscat(["--ca", pem, f"smux+tls://localhost:{port}"], b"client %d\n" % i,
                      timeout=10)
        assert (r.returncode, r.stdout) == (0, b"client %d\n" % i), (i, r.stderr)


def test_smux_unix_and_abstract_name(procs, tmp_path):
    path = str(tmp_path / "smux.sock")
    srv = procs("-l", "--echo", f"smux+unix://{path}")
    assert listening(srv) == f"smux+unix://{path}"
    r = run_xscat([f"smux+unix://{path}"], b"over unix\n")
    assert (r.returncode, r.stdout) == (0, b"over unix\n"), r.stderr
    rc, out, err = run_load(f"smux+unix://{path}", "--streams", "8", "--bytes", "512K")
    assert rc == 0, err
    assert SMUX_SUMMARY.fullmatch(out) and out.endswith(", 0 failed\n"), out
    srv.terminate()
    wait_exit(srv)
    assert not os.path.exists(path)
    name = f"xscat-smux-{uuid.uuid4().hex}"
    srv2 = procs("-l", "--echo", f"smux+unix://@{name}")
    assert listening(srv2) == f"smux+unix://@{name}"
    r = run_xscat([f"smux+unix://@{name}"], b"\x00abstract")
    assert (r.returncode, r.stdout) == (0, b"\x00abstract"), r.stderr
