"""Tests for xscat (build/xscat), driven through subprocess over loopback.

Run from the repository root after building: python3 -m pytest -q tools/tests
XSCAT=/path/to/xscat overrides the binary.
"""

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


@pytest.mark.parametrize("scheme", ["ws", "wss", "ftp"])
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
