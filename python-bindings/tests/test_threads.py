"""Threads: close() wakes blocked calls; the notification fd; concurrent sockets."""

import errno
import os
import select
import time

import pytest
import xsocket
from helpers import WAIT, Background, recv_all, xs_pair


def blocked_until_closed(sock, call):
    """Start ``call(sock)`` in a thread, close ``sock`` from this one once the call is
    blocked, and return the exception the call raised and how long it took to wake."""
    blocked = Background(call, sock)
    time.sleep(0.2)  # let the call block
    assert blocked.is_alive()
    start = time.monotonic()
    sock.close()
    with pytest.raises(OSError) as info:
        blocked.result()
    return info.value, time.monotonic() - start


@pytest.mark.parametrize("timeout", [None, WAIT], ids=["blocking", "timeout"])
def test_close_wakes_a_blocked_recv(timeout):
    client, server = xs_pair()
    with client:
        server.settimeout(timeout)
        exc, waited = blocked_until_closed(server, lambda s: s.recv(10))
        assert exc.errno == errno.EBADF
        assert waited < 1.0


def test_close_wakes_a_blocked_accept():
    listener = xsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    exc, waited = blocked_until_closed(listener, lambda s: s.accept())
    assert exc.errno == errno.EBADF and waited < 1.0


def test_notify_fd_becomes_readable_when_data_arrives():
    client, server = xs_pair()
    with client, server:
        server.setblocking(False)
        fd = server.notify_fd()
        if select.select([fd], [], [], 0.1)[0]:
            os.read(fd, 8)  # the first report of the current state (edge-style)
        client.sendall(b"notify me")
        assert select.select([fd], [], [], WAIT)[0] == [fd]
        assert int.from_bytes(os.read(fd, 8), "little") >= 1  # an eventfd counter
        assert server.recv(100) == b"notify me"
        with pytest.raises(BlockingIOError):
            server.recv(100)


def test_many_threads_echo_at_once():
    def echo(server):
        server.sendall(recv_all(server))
        server.shutdown(xsocket.SHUT_WR)

    def echo_client(n):
        client, server = xs_pair()
        with client, server:
            echo_done = Background(echo, server)
            data = os.urandom(1000 + n * 5000)
            client.sendall(data)
            client.shutdown(xsocket.SHUT_WR)
            assert recv_all(client) == data
            echo_done.result()
        return n

    workers = [Background(echo_client, n) for n in range(16)]
    assert sorted(worker.result(WAIT * 2) for worker in workers) == list(range(16))
