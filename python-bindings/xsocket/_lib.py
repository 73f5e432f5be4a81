"""Finding and loading libxsocket, and the ctypes prototypes of its C ABI.

The library is searched, in order, at ``$XSOCKET_LIB``, next to this package
(``xsocket/libxsocket.so``, bundled by the package build), and at the repository's
build output (``../../target/release/libxsocket.so`` from this file).
"""

import ctypes
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_LIBNAME = "libxsocket.so"

# xsocket's own option level and options (include/xsocket.h).
XS_SOL_XSOCKET = 0x5853
XS_SO_CONNECT_TIMEOUT = 1
XS_SO_NOTIFY_FD = 2

# TLS (include/xsocket.h): the protocol for xs_socket, the option level and options.
XS_PROTO_TLS = 0x100
XS_SOL_TLS = 0x5854
XS_TLS_CA_FILE = 1              # text: PEM file of trusted CAs
XS_TLS_CA_PEM = 2               # bytes: the same, PEM in memory
XS_TLS_CERT_FILE = 3            # text: PEM file with our certificate chain
XS_TLS_CERT_PEM = 4             # bytes: our certificate chain
XS_TLS_KEY_FILE = 5             # text: PEM file with our private key
XS_TLS_KEY_PEM = 6              # bytes: our private key
XS_TLS_SERVER_NAME = 7          # text: SNI and the name the server certificate must match
XS_TLS_VERIFY = 8               # int: verify the peer's chain and name (1, default)
XS_TLS_PIN_SHA256 = 9           # 32 bytes or 64 hex digits: the peer certificate's SHA-256
XS_TLS_REQUIRE_CLIENT_CERT = 10  # int, server: mTLS
XS_TLS_ALPN = 11                # text: "h2,http/1.1"
XS_TLS_RESUMPTION = 12          # int: resume sessions (1, default)
XS_TLS_VERSION = 20             # int, read-only: 0x0303 or 0x0304
XS_TLS_CIPHER = 21              # text, read-only: the cipher suite
XS_TLS_ALPN_SELECTED = 22       # bytes, read-only: the ALPN protocol agreed on
XS_TLS_PEER_SHA256 = 23         # 32 bytes, read-only: SHA-256 of the peer's certificate
XS_TLS_HANDSHAKE_US = 24        # int64, read-only: handshake duration in microseconds
XS_TLS_RESUMED = 25             # int, read-only: 1 when the session was resumed

TLS_CONSTANTS = {name: value for name, value in dict(globals()).items()
                 if name.startswith(("XS_TLS_", "XS_PROTO_TLS", "XS_SOL_TLS"))}

# WebSocket (include/xsocket.h): the protocols for xs_socket, the send/recvmsg flag for
# text messages, the option level and options.
XS_PROTO_WS_RAW = 0x200         # RFC 6455 frames with no HTTP handshake ("Raw-WS")
XS_PROTO_WS = 0x400             # WebSocket with the HTTP Upgrade handshake; | XS_PROTO_TLS: wss
XS_MSG_TEXT = 0x10000000        # xs_send flag: a text message; set in recvmsg's msg_flags for text
XS_SOL_WS = 0x5855
XS_WS_PATH = 1                  # text: client: the request path; server: the only path accepted
XS_WS_HOST = 2                  # text, client: the Host header
XS_WS_ORIGIN = 3                # text, client: the Origin header
XS_WS_SUBPROTOCOLS = 4          # text: "chat,superchat", offered (client) or spoken (server)
XS_WS_ALLOWED_ORIGINS = 5       # text, server: the Origin values allowed (others get 403)
XS_WS_PING_INTERVAL = 6         # int, ms: send a ping this often (0: never)
XS_WS_PONG_TIMEOUT = 7          # int, ms: how long a pong may take
XS_WS_MISSED_PONGS = 8          # int: missed pongs allowed in a row; one more is ETIMEDOUT
XS_WS_CLOSE_TIMEOUT = 9         # int, ms: how long the close handshake waits for the peer
XS_WS_FRAGMENT_SIZE = 10        # int, bytes: split outgoing messages into frames this big
XS_WS_MAX_MESSAGE = 11          # int, bytes: the largest message accepted (default 16 MiB)
XS_WS_CLOSE_CODE = 12           # int: the close code close() sends (default 1000)
XS_WS_CLOSE_REASON = 13         # text: the close reason sent with it
XS_WS_SUBPROTOCOL = 20          # text, read-only: the subprotocol agreed on
XS_WS_PEER_CLOSE_CODE = 21      # int, read-only: the peer's close code (0 while open)
XS_WS_PEER_CLOSE_REASON = 22    # text, read-only: the reason in the peer's close frame
XS_WS_REQUEST_PATH = 23         # text, read-only, server: the path the client asked for
XS_WS_REQUEST_ORIGIN = 24       # text, read-only, server: the client's Origin header
XS_WS_RECV_TEXT = 25            # int, read-only: 1 when the last bytes received were text

WS_CONSTANTS = {name: value for name, value in dict(globals()).items()
                if name.startswith(("XS_WS_", "XS_PROTO_WS", "XS_SOL_WS", "XS_MSG_TEXT"))}

# smux (include/xsocket.h): stream multiplexing wire-compatible with the Go library
# yddeng/smux. A connected XS_PROTO_SMUX socket is a session; its streams are sids.
XS_PROTO_SMUX = 0x800           # | XS_PROTO_TLS: smux over TLS
XS_SOL_SMUX = 0x5856
XS_SMUX_WINDOW = 1              # int, bytes: each stream's window both ways (default 524288)
XS_SMUX_MAX_STREAMS = 2         # int: streams open at once on a session (default and most 65535)
XS_SMUX_ACCEPT_BACKLOG = 3      # int: peer-opened streams waiting for accept (default 1024)
XS_SMUX_PIN_INTERVAL = 4        # int, ms: send PIN this often from the start (0: only to a v2 peer)
XS_SMUX_IDLE_TIMEOUT = 5        # int, ms: ETIMEDOUT after this long with nothing from the peer
XS_SMUX_STREAM_ID = 20          # int, read-only, stream: its wire id (0 once closed both ways)
XS_SMUX_STREAMS = 21            # int, read-only, session: streams open (or waiting for a FIN)
XS_SMUX_PEER_PINS = 22          # int, read-only, session: 1 when the peer sends PIN (a v2 peer)

SMUX_CONSTANTS = {name: value for name, value in dict(globals()).items()
                  if name.startswith(("XS_SMUX_", "XS_PROTO_SMUX", "XS_SOL_SMUX"))}

socklen_t = ctypes.c_uint32
nfds_t = ctypes.c_ulong


class pollfd(ctypes.Structure):
    """``struct pollfd``; for ``xs_poll`` the ``fd`` is a sid."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class iovec(ctypes.Structure):
    """``struct iovec``."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    """``struct msghdr`` (Linux layout), for ``xs_recvmsg``."""

    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", socklen_t),
                ("msg_iov", ctypes.POINTER(iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


xs_log_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)

_c_int, _ssize_t, _ptr = ctypes.c_int, ctypes.c_ssize_t, ctypes.c_void_p
_socklen_p = ctypes.POINTER(socklen_t)

# name: (restype, argtypes), for every function of include/xsocket.h.
_PROTOTYPES = {
    "xs_strerror": (ctypes.c_char_p, [_c_int]),
    "xs_last_error": (ctypes.c_char_p, []),
    "xs_set_logger": (_c_int, [xs_log_fn, _ptr, _c_int]),
    "xs_send": (_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int]),
    "xs_recv": (_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int]),
    "xs_sendto": (_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int, _ptr, socklen_t]),
    "xs_recvfrom": (_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int, _ptr, _socklen_p]),
    "xs_sendmsg": (_ssize_t, [_c_int, _ptr, _c_int]),
    "xs_recvmsg": (_ssize_t, [_c_int, _ptr, _c_int]),
    "xs_setsockopt": (_c_int, [_c_int, _c_int, _c_int, _ptr, socklen_t]),
    "xs_getsockopt": (_c_int, [_c_int, _c_int, _c_int, _ptr, _socklen_p]),
    "xs_poll": (_c_int, [ctypes.POINTER(pollfd), nfds_t, _c_int]),
    "xs_socket": (_c_int, [_c_int, _c_int, _c_int]),
    "xs_bind": (_c_int, [_c_int, _ptr, socklen_t]),
    "xs_listen": (_c_int, [_c_int, _c_int]),
    "xs_accept": (_c_int, [_c_int, _ptr, _socklen_p]),
    "xs_accept4": (_c_int, [_c_int, _ptr, _socklen_p, _c_int]),
    "xs_connect": (_c_int, [_c_int, _ptr, socklen_t]),
    "xs_shutdown": (_c_int, [_c_int, _c_int]),
    "xs_close": (_c_int, [_c_int]),
    "xs_getsockname": (_c_int, [_c_int, _ptr, _socklen_p]),
    "xs_getpeername": (_c_int, [_c_int, _ptr, _socklen_p]),
    "xs_fcntl": (_c_int, [_c_int, _c_int, _c_int]),
    "xs_dial": (_c_int, [ctypes.c_char_p]),
    "xs_smux_open": (_c_int, [_c_int]),
    "xs_smux_probe": (_c_int, [_c_int, _c_int]),
    "xs_listen_url": (_c_int, [ctypes.c_char_p, _c_int]),
    "xs_socket_url": (_c_int, [ctypes.c_char_p]),
    "xs_connect_url": (_c_int, [_c_int, ctypes.c_char_p]),
    "xs_bind_url": (_c_int, [_c_int, ctypes.c_char_p]),
    "xs_tls_handshake_counts": (_c_int, [ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]),
}


def _candidates():
    """The places searched for the library, in order, as (description, path)."""
    env = os.environ.get("XSOCKET_LIB")
    if env:
        yield "$XSOCKET_LIB", Path(env)
    yield "next to the package", _HERE / _LIBNAME
    yield "the repository's build output", _HERE.parent.parent / "target" / "release" / _LIBNAME


def _load():
    """Load the first library found; raise ImportError saying what was searched."""
    searched = []
    for where, path in _candidates():
        searched.append(f"{where} ({path})")
        if not path.is_file():
            if where == "$XSOCKET_LIB":
                raise ImportError(f"xsocket: XSOCKET_LIB={path} is not a file")
            continue
        try:
            return ctypes.CDLL(str(path), use_errno=True)
        except OSError as exc:
            raise ImportError(f"xsocket: cannot load {path}: {exc}") from exc
    raise ImportError(
        "xsocket: libxsocket.so not found; searched " + ", ".join(searched)
        + ". Build it with `make` in the xsocket repository (then reinstall the package),"
        " or set XSOCKET_LIB to the library's path."
    )


lib = _load()
for _name, (_restype, _argtypes) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes
del _name, _restype, _argtypes, _fn


def strerror(err):
    """``xs_strerror(err)``: strerror plus xsocket's detail of this thread's last failure."""
    return lib.xs_strerror(err).decode("utf-8", "replace")


def last_error():
    """This thread's last failed xs_ call in words (``xs_last_error()``), or ``""``."""
    return lib.xs_last_error().decode("utf-8", "replace")


def error(err):
    """The OSError for errno ``err``; Python picks the subclass (ConnectionRefusedError, …)."""
    return OSError(err, strerror(err))


def failure():
    """The OSError for the errno the last xs_ call in this thread left."""
    return error(ctypes.get_errno())
