"""Module functions: create_connection, create_server, dial/listen URLs, poll, last_error."""

import errno
import socket as std
import sys

import pytest
import xsocket
from helpers import WAIT, Background, closed_port, xs_pair


@pytest.fixture
def std_listener():
    with std.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(WAIT)
        yield listener


def test_create_connection(std_listener):
    host, port = std_listener.getsockname()
    with xsocket.create_connection((host, port)) as sock:
        assert isinstance(sock, xsocket.socket) and sock.gettimeout() is None
        conn, peer = std_listener.accept()
        with conn:
            assert peer == sock.getsockname()
    with xsocket.create_connection(("localhost", port), timeout=2.5, source_address=("127.0.0.1", 0)) as sock:
        assert sock.gettimeout() == 2.5
        std_listener.accept()[0].close()


def test_create_connection_errors():
    with pytest.raises(ConnectionRefusedError):
        xsocket.create_connection(("127.0.0.1", closed_port()), timeout=WAIT)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="all_errors needs ExceptionGroup (3.11)")
def test_create_connection_all_errors():
    with pytest.raises(ExceptionGroup) as info:  # noqa: F821
        xsocket.create_connection(("127.0.0.1", closed_port()), all_errors=True)
    assert all(isinstance(exc, ConnectionRefusedError) for exc in info.value.exceptions)


def test_create_server_options():
    with xsocket.create_server(("127.0.0.1", 0), backlog=4) as server:
        assert server.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR) == 1
        assert server.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_ACCEPTCONN) == 1
        with pytest.raises(OSError, match="while attempting to bind"):
            xsocket.create_server(server.getsockname())
    with xsocket.create_server(("127.0.0.1", 0), reuse_port=True) as first:
        assert first.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEPORT) == 1
        with xsocket.create_server(first.getsockname(), reuse_port=True) as second:
            assert second.getsockname() == first.getsockname()
    with xsocket.create_server(("::1", 0), family=xsocket.AF_INET6) as v6only:
        assert v6only.getsockopt(xsocket.IPPROTO_IPV6, xsocket.IPV6_V6ONLY) == 1
    with xsocket.create_server(("::", 0), family=xsocket.AF_INET6, dualstack_ipv6=True) as dual:
        assert dual.getsockopt(xsocket.IPPROTO_IPV6, xsocket.IPV6_V6ONLY) == 0
        dual.settimeout(WAIT)
        with xsocket.create_connection(("127.0.0.1", dual.getsockname()[1]), timeout=WAIT):
            dual.accept()[0].close()
    with pytest.raises(ValueError):
        xsocket.create_server(("127.0.0.1", 0), dualstack_ipv6=True)


def test_create_server_unix(unix_path):
    with xsocket.create_server(unix_path, family=xsocket.AF_UNIX) as server:
        server.settimeout(WAIT)
        with std.socket(std.AF_UNIX) as client:
            client.settimeout(WAIT)
            client.connect(unix_path)
            server.accept()[0].close()


@pytest.mark.parametrize("scheme, host", [("tcp", "127.0.0.1"), ("tcp", "[::1]"), ("tcp", "localhost")])
def test_dial_and_listen_tcp(scheme, host):
    with xsocket.listen(f"{scheme}://{host}:0", backlog=8) as listener:
        assert listener.type == xsocket.SOCK_STREAM
        port = listener.getsockname()[1]
        listener.settimeout(WAIT)
        with xsocket.dial(f"{scheme}://{host}:{port}") as client:
            assert client.gettimeout() is None
            conn, peer = listener.accept()
            with conn:
                assert peer == client.getsockname()
                client.sendall(b"over a url")
                assert conn.recv(20) == b"over a url"


def test_dial_and_listen_udp():
    with xsocket.listen("udp://127.0.0.1:0") as server:
        assert server.type == xsocket.SOCK_DGRAM
        server.settimeout(WAIT)
        with xsocket.dial(f"udp://127.0.0.1:{server.getsockname()[1]}") as client:
            client.settimeout(WAIT)
            client.send(b"datagram")
            data, sender = server.recvfrom(100)
            assert (data, sender) == (b"datagram", client.getsockname())
            server.sendto(b"back", sender)
            assert client.recv(100) == b"back"


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_dial_and_listen_unix(unix_path, abstract):
    url, address = ("unix://@xsocket-py-url", b"\0xsocket-py-url") if abstract else ("unix://" + unix_path, unix_path)
    with xsocket.listen(url) as listener:
        assert listener.family == xsocket.AF_UNIX and listener.getsockname() == address
        listener.settimeout(WAIT)
        with std.socket(std.AF_UNIX) as stdlib_client, xsocket.dial(url) as client:
            stdlib_client.connect(address)
            listener.accept()[0].close()
            listener.accept()[0].close()
            assert client.getpeername() == address


def test_dial_and_listen_errors():
    with pytest.raises(ConnectionRefusedError):
        xsocket.dial(f"tcp://127.0.0.1:{closed_port()}")
    with pytest.raises(OSError) as info:
        xsocket.dial("gopher://127.0.0.1:70")
    assert info.value.errno == errno.EINVAL and "gopher" in str(info.value)
    with pytest.raises(ValueError):
        xsocket.listen("tcp://127.0.0.1:0\0")
    with xsocket.listen("tcp://127.0.0.1:0") as taken:
        with pytest.raises(OSError) as info:
            xsocket.listen(f"tcp://127.0.0.1:{taken.getsockname()[1]}")
        assert info.value.errno == errno.EADDRINUSE


def test_poll():
    client, server = xs_pair()
    with client, server:
        assert xsocket.poll([(server, xsocket.POLLIN)], 0.05) == []
        assert xsocket.poll([(server, xsocket.POLLIN), (client, xsocket.POLLOUT)], 0) == [(client, xsocket.POLLOUT)]
        waiter = Background(xsocket.poll, [(server, xsocket.POLLIN)], WAIT)
        client.sendall(b"wake")
        assert waiter.result() == [(server, xsocket.POLLIN)]
        assert xsocket.poll([(server.fileno(), xsocket.POLLIN)]) == [(server.fileno(), xsocket.POLLIN)]
        sid = client.fileno()
    assert xsocket.poll([(sid, xsocket.POLLIN)], 0) == [(sid, xsocket.POLLNVAL)]  # closed sid
    with pytest.raises(ValueError):
        xsocket.poll([], -1)


def test_last_error():
    with pytest.raises(OSError) as info:
        xsocket.socket(fileno=2**31 - 1)  # not an open sid
    assert info.value.errno == errno.EBADF
    assert xsocket.last_error().startswith("xs_getsockopt") and xsocket.last_error() in str(info.value)
