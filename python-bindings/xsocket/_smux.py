"""smux settings for ``XS_PROTO_SMUX`` sockets, and ``smux_socket``.

An smux socket (stream multiplexing, wire-compatible with the Go library
yddeng/smux) is a *session* once connected: ``open_stream()`` opens a stream on it
and ``accept()`` returns the streams the peer opened. On a listening smux socket
``accept()`` returns sessions. Streams are sockets that behave as TCP ones.
"""

import socket as _std

from ._lib import (XS_PROTO_SMUX, XS_PROTO_TLS, XS_SMUX_ACCEPT_BACKLOG, XS_SMUX_IDLE_TIMEOUT,
                   XS_SMUX_MAX_STREAMS, XS_SMUX_PIN_INTERVAL, XS_SMUX_WINDOW, XS_SOL_SMUX)
from ._options import apply_options, config_repr, configured_socket, int_options, ms_options
from ._tls import TLSConfig


class SmuxConfig:
    """The smux options of a socket, set on it with ``apply(sock)`` (level
    ``XS_SOL_SMUX``) before it connects, or on a listening socket (the sessions it
    accepts inherit them); None leaves an option at the library's default.

    ``window`` (bytes, each stream's window both ways; default 524288 as the Go
    library, and both ends must agree), ``max_streams`` (streams open at once on a
    session; default and most 65535), ``accept_backlog`` (streams the peer opened
    that wait for ``accept``; default 1024, more are refused), ``pin_interval``
    (seconds: send PIN keepalives this often from the start; default 0: only to a
    peer that sends PIN, every 10 s) and ``idle_timeout`` (seconds: the session fails
    with ``ETIMEDOUT`` when nothing came from the peer for this long; default 0:
    never)."""

    _INTS = (("window", XS_SMUX_WINDOW), ("max_streams", XS_SMUX_MAX_STREAMS),
             ("accept_backlog", XS_SMUX_ACCEPT_BACKLOG))
    _SECONDS = (("pin_interval", XS_SMUX_PIN_INTERVAL), ("idle_timeout", XS_SMUX_IDLE_TIMEOUT))

    def __init__(self, window=None, max_streams=None, accept_backlog=None, pin_interval=None,
                 idle_timeout=None):
        self.window = window
        self.max_streams = max_streams
        self.accept_backlog = accept_backlog
        self.pin_interval = pin_interval
        self.idle_timeout = idle_timeout

    def __repr__(self):
        return config_repr("SmuxConfig", self)

    def options(self):
        """The ``(optname, value)`` pairs ``apply`` sets, in order."""
        return int_options(self, self._INTS) + ms_options(self, self._SECONDS)

    def apply(self, sock):
        """Set these options on ``sock``, an smux socket, before it connects (client) or
        listens (server). Returns ``sock``."""
        return apply_options(sock, XS_SOL_SMUX, self.options())


def smux_socket(family=_std.AF_INET, config=None, *, tls=None):
    """A new smux socket (``XS_PROTO_SMUX``) with ``config`` (an ``SmuxConfig``)
    applied: ``connect`` makes it a session (client side), ``bind`` + ``listen`` +
    ``accept`` a server whose ``accept`` returns sessions. ``tls``: a ``TLSConfig``
    (True: the defaults) for smux over TLS (``| XS_PROTO_TLS``). ``family`` may be
    ``AF_INET``, ``AF_INET6`` or ``AF_UNIX``."""
    tls = TLSConfig() if tls is True else None if tls is None or tls is False else tls
    proto = XS_PROTO_SMUX | (XS_PROTO_TLS if tls is not None else 0)
    return configured_socket(family, _std.SOCK_STREAM, proto, tls, config)
