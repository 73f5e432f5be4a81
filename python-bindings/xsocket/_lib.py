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

socklen_t = ctypes.c_uint32
nfds_t = ctypes.c_ulong


class pollfd(ctypes.Structure):
    """``struct pollfd``; for ``xs_poll`` the ``fd`` is a sid."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


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
