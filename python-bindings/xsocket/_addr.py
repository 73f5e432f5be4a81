"""Socket addresses: Python tuples and strings to ``struct sockaddr`` bytes and back,
in exactly the standard library's shapes.

- AF_INET: ``(host, port)``
- AF_INET6: ``(host, port[, flowinfo[, scope_id]])``; returned as a 4-tuple
- AF_UNIX: a path as ``str`` or bytes; a Linux abstract name starts with ``"\\0"``
  (returned as ``bytes``, like the standard library)

Host names are resolved with the standard library's ``socket.getaddrinfo``.
"""

import ctypes
import operator
import os
import socket as _std
import struct

from ._lib import socklen_t

SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
_SUN_PATH_MAX = 108  # sizeof(((struct sockaddr_un *)0)->sun_path)


def _host(host, family, caller):
    """The numeric address of ``host`` for ``family`` (resolving names like the stdlib)."""
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii")
    elif not isinstance(host, str):
        raise TypeError(f"{caller}(): host must be str, not {type(host).__name__}")
    if host == "":
        return "0.0.0.0" if family == _std.AF_INET else "::", 0
    if host == "<broadcast>" and family == _std.AF_INET:
        return "255.255.255.255", 0
    try:
        _std.inet_pton(family, host)
        return host, 0
    except OSError:
        pass
    sockaddr = _std.getaddrinfo(host, None, family)[0][4]
    return sockaddr[0], sockaddr[3] if family == _std.AF_INET6 else 0


def _port(port, caller):
    port = operator.index(port)
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    return port


def pack(family, address, caller):
    """``address`` as ``struct sockaddr`` bytes for a socket of ``family``."""
    if family == _std.AF_INET:
        if not isinstance(address, tuple) or len(address) != 2:
            raise TypeError(f"{caller}(): AF_INET address must be tuple, not {type(address).__name__}")
        host, _ = _host(address[0], family, caller)
        port = _port(address[1], caller)
        return struct.pack("=H", family) + struct.pack("!H4s8x", port, _std.inet_pton(family, host))
    if family == _std.AF_INET6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise TypeError(f"{caller}(): AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        host, resolved_scope = _host(address[0], family, caller)
        port = _port(address[1], caller)
        flowinfo = operator.index(address[2]) if len(address) > 2 else 0
        scope_id = operator.index(address[3]) if len(address) > 3 else resolved_scope
        if not 0 <= flowinfo <= 0xFFFFF:
            raise OverflowError(f"{caller}(): flowinfo must be 0-1048575.")
        return (struct.pack("=H", family) + struct.pack("!HI16s", port, flowinfo, _std.inet_pton(family, host))
                + struct.pack("=I", scope_id))
    if family == _std.AF_UNIX:
        path = os.fsencode(address) if isinstance(address, str) else bytes(memoryview(address))
        if path[:1] in (b"", b"\0"):  # abstract name (or empty: autobind)
            if len(path) > _SUN_PATH_MAX:
                raise OSError("AF_UNIX path too long")
            return struct.pack("=H", family) + path
        if len(path) >= _SUN_PATH_MAX:
            raise OSError("AF_UNIX path too long")
        return struct.pack("=H", family) + path + b"\0"
    raise OSError(f"{caller}(): bad family")


def unpack(buffer, length):
    """The Python address in the first ``length`` bytes of ``buffer`` (a ``struct sockaddr``);
    None for an empty address (e.g. a datagram from an unbound Unix socket)."""
    if length < 2:
        return None
    raw = ctypes.string_at(buffer, min(length, SOCKADDR_MAX))
    (family,) = struct.unpack_from("=H", raw)
    if family == _std.AF_INET:
        port, packed = struct.unpack_from("!H4s", raw, 2)
        return _std.inet_ntop(family, packed), port
    if family == _std.AF_INET6:
        port, flowinfo, packed = struct.unpack_from("!HI16s", raw, 2)
        (scope_id,) = struct.unpack_from("=I", raw, 24)
        return _std.inet_ntop(family, packed), port, flowinfo, scope_id
    if family == _std.AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":
            return path
        return os.fsdecode(path.split(b"\0", 1)[0])
    return family, raw[2:]


def out_buffer():
    """A ``struct sockaddr_storage``-sized buffer and its length, for calls that write an address."""
    return ctypes.create_string_buffer(SOCKADDR_MAX), socklen_t(SOCKADDR_MAX)
