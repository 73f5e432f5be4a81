"""The socket object's methods, with xsocket on both ends."""

import array
import errno
import os
import signal
import socket as std
import struct
import threading
import time

import pytest
import xsocket
from helpers import WAIT, Background, recv_all, xs_pair


def test_stream_roundtrip_every_family(family_addr):
    family, address = family_addr
    with xsocket.socket(family, xsocket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen(5)
        listener.settimeout(WAIT)
        with xsocket.socket(family, xsocket.SOCK_STREAM) as client:
            client.settimeout(WAIT)
            client.connect(listener.getsockname())
            conn, peer = listener.accept()
            with conn:
                assert isinstance(conn, xsocket.socket)
                assert peer == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                assert client.getpeername() == listener.getsockname() == conn.getsockname()
                assert conn.family == client.family == family
                assert conn.type == xsocket.SOCK_STREAM
                client.sendall(b"ping")
                assert conn.recv(10) == b"ping"
                assert conn.send(b"pong") == 4
                assert client.recv(10) == b"pong"


def test_addresses_have_the_stdlib_shapes(unix_path):
    client, server = xs_pair(xsocket.AF_INET6, ("::1", 0))
    with client, server:
        host, port, flowinfo, scope_id = server.getpeername()
        assert (host, flowinfo, scope_id) == ("::1", 0, 0) and isinstance(port, int)
    with xsocket.socket(xsocket.AF_UNIX) as listener:
        listener.bind(unix_path)
        assert listener.getsockname() == unix_path  # a str
        listener.listen()
        with xsocket.socket(xsocket.AF_UNIX) as client:
            client.connect(unix_path)
            conn, peer = listener.accept()
            with conn:
                assert peer == "" and client.getsockname() == ""  # unbound client
                assert client.getpeername() == unix_path
    with xsocket.socket(xsocket.AF_UNIX) as abstract:
        abstract.bind("\0xsocket-py-shapes")
        assert abstract.getsockname() == b"\0xsocket-py-shapes"  # bytes, like the stdlib
        abstract.listen()
        with xsocket.socket(xsocket.AF_UNIX) as client:
            client.connect(b"\0xsocket-py-shapes")
            assert client.getpeername() == b"\0xsocket-py-shapes"
            abstract.accept()[0].close()


def test_hostnames_are_resolved():
    with xsocket.socket() as listener:
        listener.bind(("localhost", 0))
        listener.listen()
        host, port = listener.getsockname()
        assert host == "127.0.0.1"
        with xsocket.socket() as client:
            client.settimeout(WAIT)
            client.connect(("localhost", port))
            listener.accept()[0].close()
    with xsocket.socket(xsocket.AF_INET, xsocket.SOCK_DGRAM) as udp:
        udp.bind(("", 0))
        assert udp.getsockname()[0] == "0.0.0.0"


def test_recv_into_and_bytes_like_data():
    client, server = xs_pair()
    with client, server:
        client.sendall(bytearray(b"abc"))
        client.sendall(memoryview(b"--defgh--")[2:7])
        client.sendall(array.array("B", b"ij"))
        buffer = bytearray(20)
        got = 0
        while got < 10:
            got += server.recv_into(memoryview(buffer)[got:], 10 - got)
        assert buffer[:10] == b"abcdefghij"
        with pytest.raises(TypeError):
            server.recv_into(b"read-only")
        with pytest.raises(ValueError):
            server.recv_into(bytearray(2), 3)
        with pytest.raises(ValueError):
            server.recv(-1)
        client.send(array.array("i", [1, 2]))
        ints = array.array("i", [0, 0])
        assert server.recv_into(ints) == 8 and list(ints) == [1, 2]


@pytest.mark.parametrize("timeout", [None, WAIT])
def test_sendall_large_data(timeout):
    data = bytes(range(256)) * 16384  # 4 MiB: many partial sends
    client, server = xs_pair()
    with client, server:
        client.settimeout(timeout)
        reader = Background(recv_all, server)
        client.sendall(data)
        client.shutdown(xsocket.SHUT_WR)
        assert reader.result() == data


def test_shutdown_half_close():
    client, server = xs_pair()
    with client, server:
        client.shutdown(xsocket.SHUT_WR)
        assert server.recv(10) == b""
        server.sendall(b"still open")
        assert client.recv(20) == b"still open"
        with pytest.raises(BrokenPipeError):
            client.send(b"after shutdown")


def test_recv_flags_pass_through():
    client, server = xs_pair()
    with client, server:
        client.sendall(b"peek")
        assert server.recv(10, xsocket.MSG_PEEK) == b"peek"
        assert server.recv(10) == b"peek"
        client.sendall(b"0123456789")
        assert server.recv(10, xsocket.MSG_WAITALL) == b"0123456789"
        server.settimeout(None)  # with a timeout, recv waits for data first (as the stdlib's)
        with pytest.raises(BlockingIOError):
            server.recv(10, xsocket.MSG_DONTWAIT)


def test_close_context_manager_and_fileno():
    with xsocket.socket() as sock:
        sid = sock.fileno()
        assert isinstance(sid, int) and sid > 0
        assert f"sid={sid}" in repr(sock)
    assert sock.fileno() == -1
    assert "[closed]" in repr(sock)
    sock.close()  # closing again does nothing
    with pytest.raises(OSError) as info:
        sock.getsockname()
    assert info.value.errno == errno.EBADF
    with xsocket.socket() as other:
        assert other.fileno() > sid  # sids are not reused


def test_detach_and_adopt_a_sid():
    with xsocket.socket(xsocket.AF_INET6, xsocket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        address = sock.getsockname()
        sid = sock.detach()
        assert sock.fileno() == -1
    with xsocket.socket(fileno=sid) as adopted:  # family and type read from the sid
        assert adopted.fileno() == sid
        assert (adopted.family, adopted.type, adopted.proto) == (xsocket.AF_INET6, xsocket.SOCK_DGRAM, std.IPPROTO_UDP)
        assert adopted.getsockname() == address
    with pytest.raises(ValueError):
        xsocket.socket(fileno=-1)


def test_family_type_proto_and_nonblock_flag():
    with xsocket.socket(xsocket.AF_INET, xsocket.SOCK_STREAM | xsocket.SOCK_NONBLOCK) as sock:
        assert sock.family is xsocket.AF_INET
        assert sock.type is xsocket.SOCK_STREAM  # the flags are not part of the type
        assert sock.proto == 0
        assert sock.gettimeout() == 0.0 and not sock.getblocking()
    with xsocket.socket() as sock:
        assert (sock.family, sock.type, sock.gettimeout()) == (xsocket.AF_INET, xsocket.SOCK_STREAM, None)


def test_settimeout_gettimeout_setblocking():
    with xsocket.socket() as sock:
        assert sock.gettimeout() is None and sock.timeout is None and sock.getblocking()
        sock.settimeout(1.5)
        assert sock.gettimeout() == 1.5 and sock.getblocking()
        sock.settimeout(0)
        assert sock.gettimeout() == 0.0 and not sock.getblocking()
        sock.setblocking(True)
        assert sock.gettimeout() is None
        sock.setblocking(False)
        assert sock.gettimeout() == 0.0
        with pytest.raises(ValueError):
            sock.settimeout(-1)
        with pytest.raises(ValueError):
            sock.settimeout(float("nan"))
        with pytest.raises(TypeError):
            sock.settimeout("1")


def test_default_timeout_applies_to_new_and_accepted_sockets():
    assert xsocket.getdefaulttimeout() is None
    xsocket.setdefaulttimeout(3.5)
    try:
        client, server = xs_pair()
        with client, server, xsocket.socket() as fresh:
            assert fresh.gettimeout() == 3.5
        xsocket.setdefaulttimeout(None)
        with xsocket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.settimeout(WAIT)
            with xsocket.create_connection(listener.getsockname(), timeout=WAIT):
                conn, _ = listener.accept()
                with conn:
                    assert conn.gettimeout() is None  # accepted: blocking, as in the stdlib
    finally:
        xsocket.setdefaulttimeout(None)


def test_setsockopt_getsockopt():
    with xsocket.socket() as sock:
        assert sock.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR) == 0
        sock.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR, 1)
        assert sock.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR) == 1
        assert sock.getsockopt(xsocket.IPPROTO_TCP, xsocket.TCP_NODELAY) == 1  # xsocket's default
        sock.setsockopt(xsocket.IPPROTO_TCP, xsocket.TCP_NODELAY, False)
        assert sock.getsockopt(xsocket.IPPROTO_TCP, xsocket.TCP_NODELAY) == 0
        assert sock.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_TYPE) == xsocket.SOCK_STREAM
        sock.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_LINGER, struct.pack("ii", 1, 7))
        assert struct.unpack("ii", sock.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_LINGER, 8)) == (1, 7)
        sock.setsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT, 250)
        assert sock.getsockopt(xsocket.XS_SOL_XSOCKET, xsocket.XS_SO_CONNECT_TIMEOUT) == 250
        with pytest.raises(OSError) as info:
            sock.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR, None, 4)  # NULL value
        assert info.value.errno == errno.EFAULT
        with pytest.raises(OSError) as info:
            sock.setsockopt(xsocket.XS_SOL_XSOCKET, 999, 1)
        assert info.value.errno == errno.ENOPROTOOPT
        with pytest.raises(OSError):
            sock.getsockopt(xsocket.SOL_SOCKET, xsocket.SO_LINGER, 2000)
        with pytest.raises(TypeError):
            sock.setsockopt(xsocket.SOL_SOCKET, xsocket.SO_REUSEADDR, 1, 4)


def test_udp_sendto_recvfrom_and_connected_udp():
    with xsocket.socket(xsocket.AF_INET, xsocket.SOCK_DGRAM) as a, \
            xsocket.socket(xsocket.AF_INET, xsocket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.settimeout(WAIT)
        b.settimeout(WAIT)
        assert b.sendto(b"one", a.getsockname()) == 3
        assert b.sendto(b"two", 0, a.getsockname()) == 3
        assert a.recvfrom(100) == (b"one", b.getsockname())
        assert a.recvfrom(100, xsocket.MSG_PEEK) == (b"two", b.getsockname())
        assert a.recvfrom(2) == (b"tw", b.getsockname())  # truncated datagram
        b.connect(a.getsockname())
        b.send(b"three")
        assert a.recv(100) == b"three"
        with pytest.raises(TypeError):
            b.sendto(b"x", 0, a.getsockname(), "extra")


def test_recvfrom_on_a_stream_has_no_address():
    client, server = xs_pair()
    with client, server:
        client.sendall(b"data")
        assert server.recvfrom(10) == (b"data", None)


def test_notify_fd_is_an_eventfd_owned_by_the_socket():
    with xsocket.socket() as sock:
        fd = sock.notify_fd()
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
        assert sock.notify_fd() == fd  # made once
    deadline = time.monotonic() + WAIT  # closed with the sid (by xsocket's event thread)
    while os.path.exists(f"/proc/self/fd/{fd}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/self/fd/{fd}")


def test_blocking_recv_retries_after_a_signal():
    """PEP 475: a signal whose handler returns does not end a blocking call."""
    client, server = xs_pair()
    handled = []
    previous = signal.signal(signal.SIGALRM, lambda *_: handled.append(1))
    try:
        with client, server:
            server.settimeout(None)
            sender = threading.Timer(0.3, client.sendall, [b"late"])
            sender.start()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert server.recv(10) == b"late"
            sender.join(WAIT)
            assert handled
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_signal_handler_exception_ends_a_blocking_recv():
    class Interrupted(Exception):
        pass

    def handler(*_):
        raise Interrupted

    client, server = xs_pair()
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        with client, server:
            server.settimeout(None)
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(Interrupted):
                server.recv(10)
            assert time.monotonic() - start < WAIT
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
