"""TLS (XS_PROTO_TLS) through the package: xsocket against Python's ssl module in both
directions and against itself, certificate checks (names, self-signed with pins, mTLS),
ALPN, resumption and a plaintext client at a TLS server. Loopback only; certificates
are made at test time with the openssl command line."""

import errno
import hashlib
import shutil
import socket as std
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
import xsocket
from helpers import WAIT, Background

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

LOCAL = ("127.0.0.1", 0)


def _openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def certs():
    """A directory with a CA (ca.pem), server and client certificates for
    127.0.0.1/localhost signed by it, and a self-signed certificate (self.pem)."""
    directory = Path(tempfile.mkdtemp(prefix="xs-py-tls-"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(directory, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=xsocket-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem")
    for who in ("server", "client"):
        _openssl(directory, "req", *ec, "-subj", f"/CN={who}", "-keyout", f"{who}.key", "-out", f"{who}.csr")
        (directory / f"{who}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl(directory, "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.pem")
    _openssl(directory, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=self",
             "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
             "-keyout", "self.key", "-out", "self.pem")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def fingerprint(pem_path):
    """SHA-256 of a PEM certificate's DER form (32 bytes)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())).digest()


def server_config(certs, name="server", **options):
    return xsocket.TLSConfig(certfile=certs / f"{name}.pem", keyfile=certs / f"{name}.key", **options)


def tls_server(certs, name="server", **options):
    server = xsocket.create_server(LOCAL, tls=server_config(certs, name, **options))
    server.settimeout(WAIT)
    return server


def accept_echo(server):
    """Accept one TLS client, echo one message, return the connection's read-backs."""
    conn, _ = server.accept()
    with conn:
        conn.settimeout(WAIT)
        conn.sendall(conn.recv(1024))
        return {"version": conn.tls_version(), "alpn": conn.selected_alpn_protocol(),
                "peer": conn.peer_fingerprint(), "resumed": conn.tls_resumed()}


def accept_result(server):
    """Accept one client; return the read-backs or the exception accept raised."""
    try:
        return accept_echo(server)
    except OSError as exc:
        return exc


def xs_client(port, config, host="127.0.0.1"):
    return xsocket.create_connection((host, port), timeout=WAIT, tls=config)


def echo(sock, data=b"hello tls"):
    sock.sendall(data)
    assert sock.recv(1024) == data


# ----- against Python's ssl module -----

def test_xsocket_client_to_stdlib_ssl_server(certs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    with std.create_server(LOCAL) as listener:
        listener.settimeout(WAIT)

        def serve():
            raw, _ = listener.accept()
            raw.settimeout(WAIT)
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(conn.recv(1024))
                return conn.version()

        server = Background(serve)
        with xs_client(listener.getsockname()[1], xsocket.TLSConfig(cafile=str(certs / "ca.pem"))) as sock:
            echo(sock)
            assert sock.tls_version() == server.result()
        assert sock.fileno() == -1
    assert server.result() in ("TLSv1.3", "TLSv1.2")


def test_stdlib_ssl_client_to_xsocket_server(certs):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def client(port):
        with std.create_connection(("127.0.0.1", port), timeout=WAIT) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"from stdlib")
            assert sock.recv(1024) == b"from stdlib"
            assert sock.recv(1024) == b""  # xsocket's close sends close_notify
            return sock.version()

    with tls_server(certs) as server:
        peer = Background(client, server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            conn.settimeout(WAIT)
            conn.sendall(conn.recv(1024))
            version = conn.tls_version()
        assert peer.result() == version == "TLSv1.3"


# ----- xsocket with itself -----

def test_xsocket_to_xsocket_read_backs_and_resumption(certs):
    with tls_server(certs) as server:
        port = server.getsockname()[1]
        for attempt in range(2):
            served = Background(accept_echo, server)
            with xs_client(port, xsocket.TLSConfig(cafile=certs / "ca.pem")) as sock:
                echo(sock)
                assert sock.tls_version() == "TLSv1.3"
                assert sock.getsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_VERSION) == 0x0304
                name, version, bits = sock.cipher()
                assert name.startswith("TLS13_") and version == "TLSv1.3" and bits in (128, 256)
                assert sock.getsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_CIPHER, 256) == name.encode()
                assert sock.peer_fingerprint() == fingerprint(certs / "server.pem")
                assert sock.getsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_PEER_SHA256, 64) == sock.peer_fingerprint()
                assert sock.selected_alpn_protocol() is None
                assert sock.handshake_us() > 0
                assert sock.tls_resumed() is (attempt == 1)
                assert sock.proto == xsocket.XS_PROTO_TLS
            seen = served.result()
            assert seen["version"] == "TLSv1.3" and seen["peer"] is None
            assert seen["resumed"] is (attempt == 1)


def test_read_backs_before_the_handshake_and_on_plain_sockets():
    with xsocket.tls_socket() as sock:
        assert sock.tls_version() is None and sock.cipher() is None and sock.handshake_us() is None
        with pytest.raises(OSError) as info:
            sock.getsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_VERSION)
        assert info.value.errno == errno.EINVAL
        sock.setsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_SERVER_NAME, "example.com")
        sock.setsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_ALPN, b"h2,http/1.1")
        sock.setsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_VERIFY, False)
        with pytest.raises(FileNotFoundError):
            sock.setsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_CA_FILE, "/no/such/ca.pem")
        with pytest.raises(OSError) as info:
            sock.setsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_PIN_SHA256, "abcd")
        assert info.value.errno == errno.EINVAL
    with xsocket.socket() as plain:
        with pytest.raises(OSError) as info:
            plain.tls_version()
        assert info.value.errno == errno.ENOPROTOOPT
        with pytest.raises(TypeError):
            plain.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR, "1")


# ----- certificate checks -----

@pytest.mark.parametrize("mode", ["timeout", "blocking"])
def test_wrong_host_name_is_refused(certs, mode):
    with tls_server(certs) as server:
        served = Background(accept_result, server)
        config = xsocket.TLSConfig(cafile=certs / "ca.pem", server_hostname="wrong.example")
        if mode == "timeout":
            with pytest.raises(OSError) as info:
                xs_client(server.getsockname()[1], config).close()
        else:  # a blocking socket: the library's connect runs the handshake
            with xsocket.tls_socket(config=config) as sock:
                sock.setsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT, int(WAIT * 1000))
                with pytest.raises(OSError) as info:
                    sock.connect(server.getsockname())
        assert info.value.errno == errno.EPROTO
        assert "wrong.example" in str(info.value)
        assert isinstance(served.result(), ConnectionAbortedError)


def test_self_signed_refused_without_pin_and_accepted_with_pin(certs):
    pin_hex = fingerprint(certs / "self.pem").hex(":").upper()
    with tls_server(certs, "self") as server:
        port = server.getsockname()[1]
        served = Background(accept_result, server)
        with pytest.raises(OSError) as info:
            xs_client(port, xsocket.TLSConfig(cafile=certs / "ca.pem")).close()
        assert info.value.errno == errno.EPROTO
        assert isinstance(served.result(), ConnectionAbortedError)

        for pin in (pin_hex, fingerprint(certs / "self.pem")):
            served = Background(accept_result, server)
            with xs_client(port, xsocket.TLSConfig(verify=False, pin_sha256=pin)) as sock:
                echo(sock)
                assert sock.peer_fingerprint() == fingerprint(certs / "self.pem")
            assert served.result()["version"] == "TLSv1.3"

        # A pin that does not match refuses even with verification off.
        served = Background(accept_result, server)
        with pytest.raises(OSError) as info:
            xs_client(port, xsocket.TLSConfig(verify=False, pin_sha256=bytes(32))).close()
        assert info.value.errno == errno.EPROTO
        assert isinstance(served.result(), ConnectionAbortedError)


def test_mutual_tls(certs):
    with tls_server(certs, cafile=certs / "ca.pem", require_client_cert=True) as server:
        port = server.getsockname()[1]
        served = Background(accept_result, server)
        config = xsocket.TLSConfig(cafile=certs / "ca.pem", certfile=certs / "client.pem",
                                   keyfile=certs / "client.key")
        with xs_client(port, config) as sock:
            echo(sock)
        assert served.result()["peer"] == fingerprint(certs / "client.pem")

        served = Background(accept_result, server)
        try:  # TLS 1.3: the client may learn of the refusal only when it reads
            with xs_client(port, xsocket.TLSConfig(cafile=certs / "ca.pem")) as sock:
                sock.sendall(b"no certificate")
                sock.recv(1024)
        except OSError:
            pass
        refused = served.result()
        assert isinstance(refused, ConnectionAbortedError), refused
        assert refused.errno == errno.ECONNABORTED and "certificate" in str(refused)


def test_alpn(certs):
    with tls_server(certs, alpn="h2") as server:
        served = Background(accept_echo, server)
        with xs_client(server.getsockname()[1],
                       xsocket.TLSConfig(cafile=certs / "ca.pem", alpn=["h2", "http/1.1"])) as sock:
            echo(sock)
            assert sock.selected_alpn_protocol() == "h2"
            assert sock.getsockopt(xsocket.XS_SOL_TLS, xsocket.XS_TLS_ALPN_SELECTED, 256) == b"h2"
        assert served.result()["alpn"] == "h2"


# ----- a client that does not speak TLS -----

@pytest.mark.parametrize("mode", ["timeout", "blocking"])
def test_plaintext_client_aborts_accept_and_the_server_goes_on(certs, mode):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def tls_client(port):
        with std.create_connection(("127.0.0.1", port), timeout=WAIT) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"second client")
            return sock.recv(1024)

    def accept(server):
        if mode == "blocking":  # the library's own accept runs the handshake
            assert xsocket.poll([(server, xsocket.POLLIN)], WAIT), "no client came"
        return server.accept()

    with tls_server(certs) as server:
        if mode == "blocking":
            server.settimeout(None)
            server.setsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT, int(WAIT * 1000))
        port = server.getsockname()[1]
        with std.create_connection(("127.0.0.1", port), timeout=WAIT) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionAbortedError) as info:
                accept(server)
            assert info.value.errno == errno.ECONNABORTED
        peer = Background(tls_client, port)
        conn, _ = accept(server)
        with conn:
            conn.settimeout(WAIT)
            conn.sendall(conn.recv(1024))
        assert peer.result() == b"second client"
