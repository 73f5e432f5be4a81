"""xsocket on one end, the standard library's socket on the other."""

import socket as std

import pytest
import xsocket
from helpers import WAIT, Background, recv_all

DATA = bytes(range(256)) * 4096  # 1 MiB


def echo_once(listener):
    """Accept one connection on ``listener`` (either module) and echo it until EOF."""
    conn, peer = listener.accept()
    with conn:
        conn.settimeout(WAIT)
        conn.sendall(recv_all(conn))
        return peer


@pytest.mark.parametrize("server_mod, client_mod", [(std, xsocket), (xsocket, std)],
                         ids=["stdlib-server", "xsocket-server"])
def test_stream_echo(family_addr, server_mod, client_mod):
    family, address = family_addr
    with server_mod.socket(family, server_mod.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen()
        listener.settimeout(WAIT)
        server = Background(echo_once, listener)
        with client_mod.socket(family, client_mod.SOCK_STREAM) as client:
            client.settimeout(WAIT)
            client.connect(listener.getsockname())
            assert client.getpeername() == listener.getsockname()
            client.sendall(DATA)
            client.shutdown(client_mod.SHUT_WR)
            assert recv_all(client) == DATA
            assert server.result() == client.getsockname()  # same address shape both sides


@pytest.mark.parametrize("family, host", [(std.AF_INET, "127.0.0.1"), (std.AF_INET6, "::1")])
@pytest.mark.parametrize("a_mod, b_mod", [(std, xsocket), (xsocket, std)], ids=["stdlib-a", "xsocket-a"])
def test_udp_exchange(family, host, a_mod, b_mod):
    with a_mod.socket(family, a_mod.SOCK_DGRAM) as a, b_mod.socket(family, b_mod.SOCK_DGRAM) as b:
        a.bind((host, 0))
        b.bind((host, 0))
        a.settimeout(WAIT)
        b.settimeout(WAIT)
        b.sendto(b"request", a.getsockname())
        data, sender = a.recvfrom(100)
        assert (data, sender) == (b"request", b.getsockname())
        a.sendto(b"reply", sender)
        assert b.recvfrom(100) == (b"reply", a.getsockname())


@pytest.mark.parametrize("a_mod, b_mod", [(std, xsocket), (xsocket, std)], ids=["stdlib-a", "xsocket-a"])
def test_unix_datagram_exchange(unix_path, a_mod, b_mod):
    with a_mod.socket(a_mod.AF_UNIX, a_mod.SOCK_DGRAM) as a, \
            b_mod.socket(b_mod.AF_UNIX, b_mod.SOCK_DGRAM) as b, \
            b_mod.socket(b_mod.AF_UNIX, b_mod.SOCK_DGRAM) as unbound:
        a.bind(unix_path)
        b.bind(b"\0xsocket-py-dgram")
        a.settimeout(WAIT)
        b.settimeout(WAIT)
        b.sendto(b"from abstract", unix_path)
        assert a.recvfrom(100) == (b"from abstract", b"\0xsocket-py-dgram")
        a.sendto(b"to abstract", "\0xsocket-py-dgram")
        assert b.recvfrom(100) == (b"to abstract", unix_path)
        unbound.sendto(b"anonymous", unix_path)
        assert a.recvfrom(100) == (b"anonymous", None)


def test_dual_stack_v4_client_seen_as_mapped_address():
    with xsocket.create_server(("::", 0), family=xsocket.AF_INET6, dualstack_ipv6=True) as listener:
        listener.settimeout(WAIT)
        with std.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=WAIT) as client:
            conn, peer = listener.accept()
            with conn:
                assert peer == ("::ffff:127.0.0.1", client.getsockname()[1], 0, 0)
