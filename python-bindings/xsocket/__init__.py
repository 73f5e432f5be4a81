"""xsocket: BSD-socket calls over xsocket sids, with the standard library's socket API.

A program that uses only the calls below runs unchanged with ``import xsocket as
socket``::

    import xsocket as socket

    with socket.create_connection(("127.0.0.1", 8080), timeout=5) as sock:
        sock.sendall(b"hello")
        print(sock.recv(1024))

- ``socket(family, type, proto=0)`` with ``bind``, ``listen``, ``accept``, ``connect``,
  ``connect_ex``, ``send``, ``sendall``, ``recv``, ``recv_into``, ``sendto``,
  ``recvfrom``, ``shutdown``, ``close``, ``settimeout``/``gettimeout``,
  ``setblocking``, ``setsockopt``/``getsockopt``, ``getsockname``, ``getpeername``,
  ``fileno`` (the sid) and ``notify_fd``;
- ``create_connection``, ``create_server``, ``getdefaulttimeout``/``setdefaulttimeout``;
- ``dial(url)`` / ``listen(url)`` over xsocket's URLs (``tcp://``, ``udp://``, ``unix://``,
  ``tls://``, ``ws://``, ``wss://``, ``wsraw://``, …), with ``tls=``/``ws=`` options and a
  ``timeout``;
- ``poll([(sock, events), ...], timeout)`` over ``xs_poll``; ``last_error()``;
- the standard library's constants (``AF_*``, ``SOCK_*``, ``SO_*``, ``MSG_*``, …),
  resolver and conversion functions (``getaddrinfo``, ``inet_pton``, …) and
  exceptions (``error``, ``timeout``, ``gaierror``, ``herror``), and xsocket's own
  ``XS_SOL_XSOCKET``, ``XS_SO_CONNECT_TIMEOUT``, ``XS_SO_NOTIFY_FD``;
- TLS: ``XS_PROTO_TLS``, ``XS_SOL_TLS``, ``XS_TLS_*``; ``TLSConfig`` (a small
  ``ssl.SSLContext``), ``tls_socket(family, config)``, the ``tls=`` keyword of
  ``create_connection``/``create_server``, and the read-backs ``tls_version()``,
  ``cipher()``, ``selected_alpn_protocol()``, ``peer_fingerprint()``,
  ``tls_resumed()``, ``handshake_us()`` on sockets;
- WebSocket: ``XS_PROTO_WS`` (HTTP Upgrade, what browsers speak), ``XS_PROTO_WS_RAW``
  (frames only), ``XS_MSG_TEXT``, ``XS_SOL_WS``, ``XS_WS_*``; ``WSConfig``,
  ``ws_socket(family, config, *, raw=False, stream=False, tls=None)``, and on sockets
  ``send_message(bytes | str)``, ``recv_message() -> bytes | str | None``,
  ``ws_close(code, reason)``, ``ws_subprotocol()``, ``ws_close_code()``,
  ``ws_close_reason()``, ``ws_request_path()``, ``ws_request_origin()``,
  ``ws_recv_text()``; ``recvmsg`` for ``msg_flags`` (``MSG_TRUNC``, ``MSG_EOR``,
  ``XS_MSG_TEXT``). A WebSocket echo client::

      with socket.dial("ws://127.0.0.1:8080/chat", timeout=5,
                       ws=socket.WSConfig(subprotocols=["chat"])) as ws:
          ws.send_message("hi")          # str: a text message; bytes: binary
          print(ws.recv_message())       # "hi" (str for text, bytes for binary)
          ws.ws_close(1000, "bye")

- smux (stream multiplexing, wire-compatible with the Go library yddeng/smux):
  ``XS_PROTO_SMUX``, ``XS_SOL_SMUX``, ``XS_SMUX_*``; ``SmuxConfig``,
  ``smux_socket(family, config, *, tls=None)``, ``dial("smux+tcp://HOST:PORT")``,
  ``smux+tls://``, ``smux+unix:///PATH`` and ``listen(...)`` of the same. A connected
  smux socket is a *session*: ``open_stream()`` opens a stream (a socket that
  behaves as a TCP one: ``send``/``recv``, timeouts, ``poll``, ``shutdown(SHUT_WR)``
  sends FIN), ``accept()`` returns the streams the peer opened, ``probe_smux(timeout)``
  asks whether the peer speaks smux, and ``smux_streams()``, ``smux_peer_pins()``,
  ``smux_stream_id()`` read the state back. ``accept()`` on a listening smux socket
  returns sessions. A client::

      with socket.dial("smux+tcp://127.0.0.1:9000", timeout=5) as session:
          with session.open_stream() as stream:
              stream.settimeout(5)
              stream.sendall(b"hello")
              stream.shutdown(socket.SHUT_WR)     # FIN: the peer reads the end
              print(stream.recv(1024))

A sid is not a kernel descriptor: ``select``/``selectors`` cannot wait on
``fileno()``. Wait with ``poll``, or on the kernel eventfd from ``notify_fd()``.
The library is found at ``$XSOCKET_LIB``, next to this package, or in the
xsocket repository's ``target/release`` (see ``_lib``).
"""

import ctypes as _ctypes
import math as _math
import select as _select
import socket as _std
from errno import EINTR as _EINTR

from ._lib import XS_SO_CONNECT_TIMEOUT, XS_SO_NOTIFY_FD, XS_SOL_XSOCKET, failure as _failure
from ._lib import last_error, lib as _cdll, pollfd as _pollfd
from ._lib import TLS_CONSTANTS as _TLS_CONSTANTS, WS_CONSTANTS as _WS_CONSTANTS
from ._lib import SMUX_CONSTANTS as _SMUX_CONSTANTS
from ._lib import XS_SOL_TLS as _XS_SOL_TLS, XS_TLS_SERVER_NAME as _XS_TLS_SERVER_NAME
from ._socket import SocketType, getdefaulttimeout, setdefaulttimeout, socket, timeout
from ._socket import _check_timeout, _deadline, _poll_ms
from ._tls import TLSConfig, tls_socket
from ._ws import WSConfig, ws_socket
from ._smux import SmuxConfig, smux_socket

__version__ = "0.1.0"

error = OSError
herror = _std.herror
gaierror = _std.gaierror

# The standard library's constants (AF_*, SOCK_*, SOL_*, SO_*, IPPROTO_*, TCP_*, MSG_*,
# SHUT_*, IPV6_*, AI_*, ...) and their enums, so `import xsocket as socket` keeps them.
_CONSTANTS = {name: value for name, value in vars(_std).items() if name.isupper() and isinstance(value, int)}
globals().update(_CONSTANTS)
globals().update(_TLS_CONSTANTS)
globals().update(_WS_CONSTANTS)
globals().update(_SMUX_CONSTANTS)
AddressFamily, SocketKind, MsgFlag, AddressInfo = _std.AddressFamily, _std.SocketKind, _std.MsgFlag, _std.AddressInfo

# xs_poll's events.
POLLIN, POLLPRI, POLLOUT = _select.POLLIN, _select.POLLPRI, _select.POLLOUT
POLLERR, POLLHUP, POLLNVAL, POLLRDHUP = _select.POLLERR, _select.POLLHUP, _select.POLLNVAL, _select.POLLRDHUP

# Functions that do not touch a socket: the standard library's own.
_STDLIB_FUNCTIONS = (
    "getaddrinfo", "getnameinfo", "gethostname", "gethostbyname", "gethostbyname_ex",
    "gethostbyaddr", "getfqdn", "getservbyname", "getservbyport", "getprotobyname",
    "inet_aton", "inet_ntoa", "inet_pton", "inet_ntop", "htons", "htonl", "ntohs", "ntohl",
    "if_nameindex", "if_nametoindex", "if_indextoname", "has_dualstack_ipv6",
)
globals().update({name: getattr(_std, name) for name in _STDLIB_FUNCTIONS})
has_ipv6 = _std.has_ipv6


def _tls_config(tls):
    """``tls=`` as a TLSConfig (True: the defaults), or None for plain sockets."""
    if tls is None or tls is False:
        return None
    return TLSConfig() if tls is True else tls


def create_connection(address, timeout=_std._GLOBAL_DEFAULT_TIMEOUT, source_address=None, *,
                      all_errors=False, tls=None):
    """Connect to ``(host, port)``, trying every address ``getaddrinfo`` gives, and return
    the socket, as the stdlib's ``create_connection``. ``timeout`` is set before
    connecting; ``source_address`` is bound first. The last error is raised, or with
    ``all_errors`` (Python 3.11+) an ``ExceptionGroup`` of them all.

    ``tls``: a ``TLSConfig`` (or True for the defaults) makes a TLS client
    (``XS_PROTO_TLS``) whose handshake is done when this returns; the certificate is
    checked against ``host`` unless the config gives ``server_hostname``."""
    host, port = address
    config = _tls_config(tls)
    exceptions = []
    for family, type_, proto, _, sockaddr in _std.getaddrinfo(host, port, 0, _std.SOCK_STREAM):
        sock = None
        try:
            if config is None:
                sock = socket(family, type_, proto)
            else:
                sock = tls_socket(family, config)
                if config.server_hostname is None and host:
                    name = host.decode() if isinstance(host, bytes) else host
                    sock.setsockopt(_XS_SOL_TLS, _XS_TLS_SERVER_NAME, name)
            if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            exceptions.clear()
            return sock
        except OSError as exc:
            if not all_errors:
                exceptions.clear()
            exceptions.append(exc)
            if sock is not None:
                sock.close()
    if not exceptions:
        raise OSError("getaddrinfo returns an empty list")
    try:
        if not all_errors:
            raise exceptions[0]
        raise ExceptionGroup("create_connection failed", exceptions)  # noqa: F821 (3.11+)
    finally:
        exceptions.clear()


def create_server(address, *, family=_std.AF_INET, backlog=None, reuse_port=False,
                  dualstack_ipv6=False, tls=None):
    """Return a listening socket bound to ``address``, as the stdlib's ``create_server``:
    ``SO_REUSEADDR`` set (not for AF_UNIX), ``SO_REUSEPORT`` with ``reuse_port``,
    ``IPV6_V6ONLY`` off with ``dualstack_ipv6`` (``family=AF_INET6``) and on otherwise.

    ``tls``: a ``TLSConfig`` with ``certfile`` (and ``keyfile``) makes a TLS server:
    ``accept`` returns sockets whose handshake is done, and raises
    ``ConnectionAbortedError`` for a client whose handshake fails."""
    config = _tls_config(tls)
    if reuse_port and not hasattr(_std, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        if not _std.has_dualstack_ipv6():
            raise ValueError("dualstack_ipv6 not supported on this platform")
        if family != _std.AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, _std.SOCK_STREAM) if config is None else tls_socket(family)
    try:
        if config is not None:
            config.apply(sock)
        if family != _std.AF_UNIX:
            sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEPORT, 1)
        if family == _std.AF_INET6:
            sock.setsockopt(_std.IPPROTO_IPV6, _std.IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror} (while attempting to bind on address {address!r})") from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def _url(url):
    data = url.encode() if isinstance(url, str) else bytes(url)
    if b"\0" in data:
        raise ValueError("embedded null byte")
    return data


def _url_socket(data, tls, ws, smux=None):
    """A socket of the kind URL ``data`` needs (``xs_socket_url``), blocking, with the
    ``tls``, ``ws`` and ``smux`` configurations applied."""
    sid = _cdll.xs_socket_url(data)
    if sid < 0:
        raise _failure()
    sock = socket(fileno=sid)
    try:
        sock.settimeout(None)
        config = _tls_config(tls)
        if config is not None:
            config.apply(sock)
        if ws is not None:
            ws.apply(sock)
        if smux is not None:
            smux.apply(sock)
        return sock
    except BaseException:
        sock.close()
        raise


def dial(url, timeout=None, *, tls=None, ws=None, smux=None):
    """Return a socket connected to ``url`` (``xs_dial``, blocking): ``tcp://HOST:PORT``,
    ``udp://HOST:PORT`` (connected UDP), ``unix:///PATH`` or ``unix://@NAME`` (abstract),
    ``tls://HOST:PORT``, and WebSocket ``ws://HOST:PORT/PATH``, ``wss://HOST:PORT/PATH``,
    ``wsraw://HOST:PORT``, ``ws+unix:///PATH`` (``SOCK_SEQPACKET``: one message per
    ``recv``), and smux sessions ``smux+tcp://HOST:PORT``, ``smux+tls://HOST:PORT``,
    ``smux+unix:///PATH`` (``open_stream``/``accept`` give streams). IPv6 hosts are bracketed (``tcp://[::1]:80``); every address of a name
    is tried.

    ``timeout`` (seconds) bounds the connection with its TLS and WebSocket handshakes
    (``XS_SO_CONNECT_TIMEOUT``; ``TimeoutError`` when it runs out) and is then the
    socket's timeout. ``tls`` (a ``TLSConfig``; TLS URLs otherwise trust the system's
    CAs and check the URL's host), ``ws`` (a ``WSConfig``) and ``smux`` (an
    ``SmuxConfig``) are set before connecting (``xs_socket_url`` + ``xs_connect_url``)."""
    data = _url(url)
    if timeout is None and tls is None and ws is None and smux is None:
        sid = _cdll.xs_dial(data)
        if sid < 0:
            raise _failure()
        return socket(fileno=sid)
    timeout = _check_timeout(timeout)
    sock = _url_socket(data, tls, ws, smux)
    try:
        if timeout is not None:
            sock.setsockopt(XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, max(_math.ceil(timeout * 1000), 1))
        if _cdll.xs_connect_url(sock.fileno(), data) < 0:
            raise _failure()
        sock.settimeout(timeout)
        return sock
    except BaseException:
        sock.close()
        raise


def listen(url, backlog=128, *, tls=None, ws=None, smux=None):
    """Return a socket bound to ``url`` (``xs_listen_url``): listening for ``tcp://``,
    ``unix://``, ``tls://``, the WebSocket and the smux schemes (``accept`` returns
    sessions), bound for ``udp://``. Port 0 picks a free port (see ``getsockname``).
    ``tls`` (a ``TLSConfig`` with the server's certificate, needed for ``tls://``,
    ``wss://`` and ``smux+tls://``), ``ws`` (a ``WSConfig``) and ``smux`` (an
    ``SmuxConfig``) are set on the listener, and accepted sockets inherit them."""
    data = _url(url)
    if tls is None and ws is None and smux is None:
        sid = _cdll.xs_listen_url(data, backlog)
        if sid < 0:
            raise _failure()
        return socket(fileno=sid)
    sock = _url_socket(data, tls, ws, smux)
    try:
        if _cdll.xs_bind_url(sock.fileno(), data) < 0:
            raise _failure()
        sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def poll(entries, timeout=None):
    """Wait until some of ``entries``, pairs ``(sock, events)`` of an xsocket socket (or
    a sid) and a mask of ``POLLIN``, ``POLLOUT``, …, are ready, or ``timeout`` seconds
    have passed (None: no limit; 0: check only). Returns the ready pairs as ``(sock,
    revents)`` in the given order, ``[]`` on time-out. A sid that is not open reports
    ``POLLNVAL``; a closed socket object (``fileno() == -1``) is ignored, as ``poll(2)``
    ignores negative descriptors."""
    entries = list(entries)
    fds = (_pollfd * len(entries))(*(
        _pollfd(sock if isinstance(sock, int) else sock.fileno(), events, 0) for sock, events in entries))
    deadline = _deadline(_check_timeout(timeout))
    while _cdll.xs_poll(fds, len(fds), _poll_ms(deadline)) < 0:
        if _ctypes.get_errno() != _EINTR:
            raise _failure()
    return [(sock, fd.revents) for (sock, _), fd in zip(entries, fds) if fd.revents]


__all__ = [
    "socket", "SocketType", "create_connection", "create_server", "dial", "listen", "poll",
    "last_error", "getdefaulttimeout", "setdefaulttimeout", "error", "timeout", "herror",
    "gaierror", "has_ipv6", "AddressFamily", "SocketKind", "MsgFlag", "AddressInfo",
    "XS_SOL_XSOCKET", "XS_SO_CONNECT_TIMEOUT", "XS_SO_NOTIFY_FD", *_TLS_CONSTANTS,
    "TLSConfig", "tls_socket", *_WS_CONSTANTS, "WSConfig", "ws_socket",
    *_SMUX_CONSTANTS, "SmuxConfig", "smux_socket",
    "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDHUP",
    *_STDLIB_FUNCTIONS, *_CONSTANTS,
]
