"""WebSocket settings for ``XS_PROTO_WS`` / ``XS_PROTO_WS_RAW`` sockets, and ``ws_socket``."""

import socket as _std

from ._lib import (XS_PROTO_TLS, XS_PROTO_WS, XS_PROTO_WS_RAW, XS_SOL_WS, XS_WS_ALLOWED_ORIGINS,
                   XS_WS_CLOSE_CODE, XS_WS_CLOSE_REASON, XS_WS_CLOSE_TIMEOUT,
                   XS_WS_FRAGMENT_SIZE, XS_WS_HOST, XS_WS_MAX_MESSAGE, XS_WS_MISSED_PONGS,
                   XS_WS_ORIGIN, XS_WS_PATH, XS_WS_PING_INTERVAL, XS_WS_PONG_TIMEOUT,
                   XS_WS_SUBPROTOCOLS)
from ._options import apply_options, config_repr, configured_socket, int_options, ms_options
from ._tls import TLSConfig


def _names(value):
    """A list of names (or one comma-separated string) as the comma-separated text."""
    return value if isinstance(value, (str, bytes)) else ",".join(value)


class WSConfig:
    """The WebSocket options of a socket, set on it with ``apply(sock)`` (level
    ``XS_SOL_WS``); None leaves an option at the library's default.

    Client: ``path`` (the request path; default: the URL's, else ``/``), ``host`` (the
    ``Host`` header; default: the URL's host and port, else the address connected
    to), ``origin`` (the ``Origin`` header; default: none), ``subprotocols`` offered
    in order. Server (on the listening socket; accepted sockets inherit them):
    ``path`` (the only path accepted, others get 404), ``subprotocols`` spoken in
    preference order, ``allowed_origins`` (others get 403).

    Both: ``ping_interval``, ``pong_timeout`` and ``close_timeout`` in seconds,
    ``missed_pongs`` (pongs missed in a row before the connection fails with
    ``ETIMEDOUT``), ``fragment_size`` and ``max_message`` in bytes, and the
    ``close_code``/``close_reason`` that ``close()`` sends. Lists may also be given as
    one comma-separated string.
    """

    _TEXT = (("path", XS_WS_PATH), ("host", XS_WS_HOST), ("origin", XS_WS_ORIGIN),
             ("subprotocols", XS_WS_SUBPROTOCOLS), ("allowed_origins", XS_WS_ALLOWED_ORIGINS),
             ("close_reason", XS_WS_CLOSE_REASON))
    _SECONDS = (("ping_interval", XS_WS_PING_INTERVAL), ("pong_timeout", XS_WS_PONG_TIMEOUT),
                ("close_timeout", XS_WS_CLOSE_TIMEOUT))
    _INTS = (("missed_pongs", XS_WS_MISSED_PONGS), ("fragment_size", XS_WS_FRAGMENT_SIZE),
             ("max_message", XS_WS_MAX_MESSAGE), ("close_code", XS_WS_CLOSE_CODE))

    def __init__(self, path=None, host=None, origin=None, subprotocols=None, allowed_origins=None,
                 ping_interval=None, pong_timeout=None, missed_pongs=None, close_timeout=None,
                 fragment_size=None, max_message=None, close_code=None, close_reason=None):
        self.path = path
        self.host = host
        self.origin = origin
        self.subprotocols = subprotocols
        self.allowed_origins = allowed_origins
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.missed_pongs = missed_pongs
        self.close_timeout = close_timeout
        self.fragment_size = fragment_size
        self.max_message = max_message
        self.close_code = close_code
        self.close_reason = close_reason

    def __repr__(self):
        return config_repr("WSConfig", self)

    def options(self):
        """The ``(optname, value)`` pairs ``apply`` sets, in order."""
        result = []
        for name, optname in self._TEXT:
            value = getattr(self, name)
            if value is not None:
                if name in ("subprotocols", "allowed_origins"):
                    value = _names(value)
                if not isinstance(value, (str, bytes)):
                    raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
                result.append((optname, value))
        return result + ms_options(self, self._SECONDS) + int_options(self, self._INTS)

    def apply(self, sock):
        """Set these options on ``sock``, a WebSocket socket, before it connects (client)
        or accepts (server). Returns ``sock``."""
        return apply_options(sock, XS_SOL_WS, self.options())


def ws_socket(family=_std.AF_INET, config=None, *, raw=False, stream=False, tls=None):
    """A new WebSocket socket with ``config`` (a ``WSConfig``) applied: ``connect`` makes
    it a client (the HTTP Upgrade handshake runs inside ``connect``), ``bind`` +
    ``listen`` + ``accept`` a server (``accept`` returns sockets whose handshake is
    done).

    ``raw=True``: Raw-WS (``XS_PROTO_WS_RAW``), frames with no HTTP handshake.
    ``stream=True``: ``SOCK_STREAM``, where ``recv`` returns a message's bytes as they
    arrive (``recv_message`` still joins them); otherwise ``SOCK_SEQPACKET``, one
    message per ``recv``. ``tls``: a ``TLSConfig`` (True: the defaults) for wss
    (``| XS_PROTO_TLS``). ``family`` may be ``AF_INET``, ``AF_INET6`` or ``AF_UNIX``."""
    tls = TLSConfig() if tls is True else None if tls is None or tls is False else tls
    proto = (XS_PROTO_WS_RAW if raw else XS_PROTO_WS) | (XS_PROTO_TLS if tls is not None else 0)
    return configured_socket(family, _std.SOCK_STREAM if stream else _std.SOCK_SEQPACKET, proto,
                             tls, config)
