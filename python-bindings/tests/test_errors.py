"""Errors: OSError subclasses with the library's errno and detail, timeouts, non-blocking."""

import contextlib
import errno
import select
import socket as std
import sys
import time

import pytest
import xsocket
from helpers import WAIT, closed_port, xs_pair


@contextlib.contextmanager
def full_listener():
    """A loopback TCP listener (stdlib) whose accept queue is full: a new SYN is dropped,
    so a connect to it waits."""
    listener = std.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fill = []
    try:
        for _ in range(16):
            sock = std.socket()
            sock.setblocking(False)
            fill.append(sock)
            if sock.connect_ex(listener.getsockname()) == errno.EINPROGRESS:
                if not select.select([], [sock], [], 0.2)[1]:
                    break
        else:
            pytest.fail("could not fill the accept queue")
        yield listener.getsockname()
    finally:
        for sock in fill:
            sock.close()
        listener.close()


def test_connection_refused():
    address = ("127.0.0.1", closed_port())
    with xsocket.socket() as sock:
        with pytest.raises(ConnectionRefusedError) as info:
            sock.connect(address)
    assert info.value.errno == errno.ECONNREFUSED
    assert "xs_connect" in str(info.value)  # xs_last_error's detail is in the message
    assert "xs_connect" in xsocket.last_error()
    with xsocket.socket() as sock:
        assert sock.connect_ex(address) == errno.ECONNREFUSED
    with xsocket.socket() as sock:
        sock.settimeout(WAIT)
        with pytest.raises(ConnectionRefusedError):
            sock.connect(address)  # through the non-blocking connect + poll + SO_ERROR path


def test_recv_and_accept_time_out():
    client, server = xs_pair()
    with client, server:
        server.settimeout(0.2)
        start = time.monotonic()
        with pytest.raises(xsocket.timeout) as info:
            server.recv(10)
        assert 0.15 < time.monotonic() - start < WAIT
        assert str(info.value) == "timed out"
        assert isinstance(info.value, TimeoutError) or sys.version_info < (3, 10)  # as the stdlib
        client.sendall(b"after")  # the socket still works after a time-out
        assert server.recv(10) == b"after"
    with xsocket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        with pytest.raises(xsocket.timeout):
            listener.accept()


def test_send_times_out_when_the_peer_does_not_read():
    client, server = xs_pair()
    with client, server:
        client.settimeout(0.2)
        with pytest.raises(xsocket.timeout):
            client.sendall(b"x" * (64 << 20))


def test_connect_with_a_timeout_times_out():
    with full_listener() as address:
        with xsocket.socket() as sock:
            sock.settimeout(0.2)
            start = time.monotonic()
            with pytest.raises(xsocket.timeout, match="timed out"):
                sock.connect(address)
            assert 0.15 < time.monotonic() - start < WAIT
        with xsocket.socket() as sock:
            sock.settimeout(0.1)
            assert sock.connect_ex(address) == errno.EWOULDBLOCK  # as the stdlib's connect_ex


def test_connect_timeout_option_gives_etimedout():
    with full_listener() as address:
        with xsocket.socket() as sock:
            sock.setsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT, 150)
            with pytest.raises(TimeoutError) as info:
                sock.connect(address)
            assert info.value.errno == errno.ETIMEDOUT


def test_non_blocking_calls_raise_blocking_io_error():
    with xsocket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        with xsocket.socket() as client:
            client.setblocking(False)
            with pytest.raises(BlockingIOError) as info:
                client.connect(listener.getsockname())
            assert info.value.errno == errno.EINPROGRESS
            assert xsocket.poll([(client, xsocket.POLLOUT)], WAIT) == [(client, xsocket.POLLOUT)]
            assert client.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_ERROR) == 0
            with pytest.raises(BlockingIOError) as info:
                client.recv(10)
            assert info.value.errno == errno.EAGAIN
        with xsocket.socket() as client:
            client.setblocking(False)
            assert client.connect_ex(listener.getsockname()) == errno.EINPROGRESS


@pytest.mark.parametrize("call", [
    lambda s: s.recv(1),
    lambda s: s.recv_into(bytearray(1)),
    lambda s: s.recvfrom(1),
    lambda s: s.send(b"x"),
    lambda s: s.sendall(b"x"),
    lambda s: s.sendto(b"x", ("127.0.0.1", 9)),
    lambda s: s.bind(("127.0.0.1", 0)),
    lambda s: s.listen(),
    lambda s: s.accept(),
    lambda s: s.connect(("127.0.0.1", 9)),
    lambda s: s.shutdown(xsocket.SHUT_RDWR),
    lambda s: s.getsockname(),
    lambda s: s.getpeername(),
    lambda s: s.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR, 1),
    lambda s: s.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR),
    lambda s: s.settimeout(1),
    lambda s: s.notify_fd(),
])
@pytest.mark.parametrize("timeout", [None, 1.0])
def test_calls_on_a_closed_socket_raise_ebadf(call, timeout):
    sock = xsocket.socket()
    sock.settimeout(timeout)
    sock.close()
    with pytest.raises(OSError) as info:
        call(sock)
    assert info.value.errno == errno.EBADF
    assert sock.connect_ex(("127.0.0.1", 9)) == errno.EBADF


def test_address_in_use():
    with xsocket.socket() as first, xsocket.socket() as second:
        first.bind(("127.0.0.1", 0))
        first.listen()
        with pytest.raises(OSError) as info:
            second.bind(first.getsockname())
        assert info.value.errno == errno.EADDRINUSE


def test_errno_subclasses(unix_path):
    with xsocket.socket(xsocket.AF_UNIX) as sock:
        with pytest.raises(FileNotFoundError):
            sock.connect(unix_path)
    with xsocket.socket() as sock:
        with pytest.raises(OSError) as info:
            sock.getpeername()
        assert info.value.errno == errno.ENOTCONN
    client, server = xs_pair()
    with client:
        server.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # reset on close
        server.close()
        with pytest.raises(ConnectionResetError):
            client.recv(10)


def test_bad_addresses():
    with xsocket.socket() as sock:
        with pytest.raises(TypeError):
            sock.connect("127.0.0.1:80")
        with pytest.raises(TypeError):
            sock.bind(("127.0.0.1",))
        with pytest.raises(OverflowError):
            sock.bind(("127.0.0.1", 70000))
        with pytest.raises(TypeError):
            sock.bind(("127.0.0.1", 1.5))
    with xsocket.socket(xsocket.AF_INET6) as sock:
        with pytest.raises(OverflowError):
            sock.bind(("::1", 0, 1 << 20))
    with xsocket.socket(xsocket.AF_UNIX) as sock:
        with pytest.raises(OSError, match="too long"):
            sock.bind("/tmp/" + "x" * 200)


def test_socket_creation_errors():
    with pytest.raises(OSError) as info:
        xsocket.socket(xsocket.AF_INET, 12345)
    assert info.value.errno == errno.ESOCKTNOSUPPORT
    with pytest.raises(OSError) as info:
        xsocket.socket(xsocket.AF_PACKET, xsocket.SOCK_DGRAM)
    assert info.value.errno == errno.EAFNOSUPPORT
