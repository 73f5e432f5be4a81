"""The socket object: xsocket's calls shaped like the standard library's ``socket.socket``."""

import ctypes
import math
import operator
import select as _select
import socket as _std
import struct
import threading
import time
import warnings
from errno import (EAGAIN, ECONNABORTED, ECONNRESET, EINPROGRESS, EINTR, EINVAL, EISCONN, EMSGSIZE,
                   ETIMEDOUT, EWOULDBLOCK)
from fcntl import F_SETFL
from os import O_NONBLOCK

from . import _addr
from ._lib import (XS_MSG_TEXT, XS_PROTO_SMUX, XS_PROTO_TLS, XS_PROTO_WS, XS_PROTO_WS_RAW,
                   XS_SMUX_PEER_PINS, XS_SMUX_STREAM_ID, XS_SMUX_STREAMS, XS_SO_CONNECT_TIMEOUT,
                   XS_SO_NOTIFY_FD,
                   XS_SOL_SMUX, XS_SOL_TLS, XS_SOL_WS, XS_SOL_XSOCKET, XS_TLS_ALPN_SELECTED, XS_TLS_CIPHER,
                   XS_TLS_HANDSHAKE_US, XS_TLS_PEER_SHA256, XS_TLS_RESUMED, XS_TLS_VERSION,
                   XS_WS_CLOSE_CODE, XS_WS_CLOSE_REASON, XS_WS_MAX_MESSAGE,
                   XS_WS_PEER_CLOSE_CODE, XS_WS_PEER_CLOSE_REASON, XS_WS_RECV_TEXT,
                   XS_WS_REQUEST_ORIGIN, XS_WS_REQUEST_PATH, XS_WS_SUBPROTOCOL, error, failure,
                   iovec, lib, msghdr, pollfd, socklen_t)

timeout = _std.timeout  # TimeoutError on Python 3.10+, as in the standard library

_TYPE_FLAGS = _std.SOCK_NONBLOCK | _std.SOCK_CLOEXEC
_POLL_MAX_MS = 2**31 - 1
_HANDSHAKE_SLICE_MS = 20  # longest single wait while driving a TLS handshake (it may wait to write)
_NOTHING = ctypes.create_string_buffer(1)  # a valid buffer for zero-length sends
_TLS_VERSIONS = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_WS = XS_PROTO_WS | XS_PROTO_WS_RAW
_TEXT_OPTION_LEVELS = (XS_SOL_TLS, XS_SOL_WS)  # levels whose text options take a str
_MESSAGE_CACHE_MAX = 64 * 1024  # recv_message keeps its buffer after messages up to this size
_WS_TEXT_MAX = 16 * 1024  # longest WebSocket text read-back (a request path fills at most the HTTP head)
_CMSG_ALIGN = ctypes.sizeof(ctypes.c_size_t)
_CMSG_HEADER = struct.Struct("@Nii")  # struct cmsghdr: cmsg_len, cmsg_level, cmsg_type
_default_timeout = None


def _check_timeout(value):
    """``value`` as a timeout in seconds (a float >= 0) or None, as the stdlib checks it."""
    if value is None:
        return None
    value = value if isinstance(value, float) else float(operator.index(value))
    if math.isnan(value):
        raise ValueError("Invalid value NaN (not a number)")
    if value < 0:
        raise ValueError("Timeout value out of range")
    return value


def getdefaulttimeout():
    """The timeout new sockets start with (None, the default, means blocking)."""
    return _default_timeout


def setdefaulttimeout(value):
    """Set the timeout new sockets (including accepted ones) start with."""
    global _default_timeout
    _default_timeout = _check_timeout(value)


def _deadline(seconds):
    """The monotonic time ``seconds`` from now, or None for no limit."""
    return None if seconds is None else time.monotonic() + seconds


def _poll_ms(deadline):
    """Milliseconds left until ``deadline`` for xs_poll (-1: none; rounded up, capped)."""
    if deadline is None:
        return -1
    return min(max(math.ceil((deadline - time.monotonic()) * 1000), 0), _POLL_MAX_MS)


def _wait(sid, events, deadline):
    """Wait with xs_poll until ``sid`` has one of ``events`` (or an error, or is closed);
    raise ``timeout("timed out")`` when ``deadline`` passes first."""
    entry = pollfd(sid, events, 0)
    while True:
        ms = _poll_ms(deadline)
        if ms == 0:
            raise timeout("timed out")
        n = lib.xs_poll(ctypes.byref(entry), 1, ms)
        if n > 0:
            return
        if n < 0 and ctypes.get_errno() != EINTR:
            raise failure()


def _handshake(sid, deadline):
    """Drive the TLS handshake of ``sid`` until it is done: zero-length ``xs_send`` with
    ``MSG_DONTWAIT`` moves it on; wait for input between steps (in short slices, as the
    handshake may be waiting to write instead). Raise ``timeout`` when ``deadline``
    passes, the library's ``OSError`` (``EPROTO`` …) when the handshake fails."""
    entry = pollfd(sid, _select.POLLIN, 0)
    while True:
        if lib.xs_send(sid, _NOTHING, 0, _std.MSG_DONTWAIT) >= 0:
            return
        err = ctypes.get_errno()
        if err == EINTR:
            continue
        if err not in (EAGAIN, EWOULDBLOCK):
            raise failure()
        ms = _poll_ms(deadline)
        if ms == 0:
            raise timeout("timed out (TLS handshake)")
        ms = _HANDSHAKE_SLICE_MS if ms < 0 else min(ms, _HANDSHAKE_SLICE_MS)
        if lib.xs_poll(ctypes.byref(entry), 1, ms) < 0 and ctypes.get_errno() != EINTR:
            raise failure()


def _has_level(sid, level, optname):
    """Whether ``sid`` has the layer of option ``level`` (its read-back ``optname`` exists)."""
    length = socklen_t(8)
    value = ctypes.create_string_buffer(8)
    if lib.xs_getsockopt(sid, level, optname, value, ctypes.byref(length)) == 0:
        return True
    return ctypes.get_errno() == EINVAL  # the handshake has not finished


def _is_tls(sid):
    """Whether ``sid`` is an ``XS_PROTO_TLS`` socket (its TLS read-backs exist)."""
    return _has_level(sid, XS_SOL_TLS, XS_TLS_VERSION)


def _is_smux_stream(sid):
    """Whether ``sid`` is a stream of an smux session (its stream id reads back)."""
    return _has_level(sid, XS_SOL_SMUX, XS_SMUX_STREAM_ID)


def _layers(sid):
    """The ``XS_PROTO_*`` layers of an adopted ``sid`` (0 for a plain socket). A WebSocket
    reads as ``XS_PROTO_WS`` (the sid does not tell Raw-WS from Full-WS). An smux
    session or listener reads as ``XS_PROTO_SMUX`` (``| XS_PROTO_TLS`` over TLS), an
    smux stream as ``XS_PROTO_SMUX``."""
    if _is_smux_stream(sid):
        return XS_PROTO_SMUX
    proto = XS_PROTO_TLS if _is_tls(sid) else 0
    if _has_level(sid, XS_SOL_WS, XS_WS_RECV_TEXT):
        proto |= XS_PROTO_WS
    if _has_level(sid, XS_SOL_SMUX, XS_SMUX_STREAMS):
        proto |= XS_PROTO_SMUX
    return proto


def _established(sid, deadline):
    """Wait until the accepted WebSocket ``sid`` has finished its opening handshake
    (the library reports it writable then), within ``deadline``; raise the error that
    ended it (``SO_ERROR``, else ``ECONNABORTED``)."""
    entry = pollfd(sid, _select.POLLOUT, 0)
    while True:
        ms = _poll_ms(deadline)
        if ms == 0:
            raise timeout("timed out (WebSocket handshake)")
        n = lib.xs_poll(ctypes.byref(entry), 1, ms)
        if n < 0:
            if ctypes.get_errno() == EINTR:
                continue
            raise failure()
        if n > 0:
            break
    err = _sockopt_int(sid, _std.SO_ERROR)
    if err:
        raise error(err)
    if not entry.revents & _select.POLLOUT:
        raise error(ECONNABORTED)


def _cmsgs(control, length):
    """The ``[(level, type, data), ...]`` of ``length`` bytes of control messages."""
    raw, items, offset = ctypes.string_at(control, length), [], 0
    while offset + _CMSG_HEADER.size <= len(raw):
        cmsg_len, level, kind = _CMSG_HEADER.unpack_from(raw, offset)
        if cmsg_len < _CMSG_HEADER.size:
            break
        items.append((level, kind, raw[offset + _CMSG_HEADER.size:offset + cmsg_len]))
        offset += (cmsg_len + _CMSG_ALIGN - 1) // _CMSG_ALIGN * _CMSG_ALIGN
    return items


def _readable(data):
    """``(owner, address, length)`` of a bytes-like object for calls that read it;
    keep ``owner`` alive while the address is in use."""
    if type(data) is bytes:
        owner = data
    else:
        view = memoryview(data).cast("B")
        if not view.readonly:
            owner = (ctypes.c_char * view.nbytes).from_buffer(view)
            return owner, ctypes.addressof(owner), view.nbytes
        owner = view.tobytes()
    return owner, ctypes.cast(ctypes.c_char_p(owner), ctypes.c_void_p).value, len(owner)


def _writable(buffer, caller):
    """A ctypes array over a writable bytes-like object, for calls that fill it."""
    view = memoryview(buffer).cast("B")
    if view.readonly:
        raise TypeError(f"{caller}() argument 1 must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}")
    return (ctypes.c_char * view.nbytes).from_buffer(view)


def _enum(enum, value):
    """``value`` as a member of ``enum`` (AddressFamily, SocketKind) when it is one."""
    try:
        return enum(value)
    except ValueError:
        return value


class socket:
    """A socket over an xsocket sid, with the standard library's ``socket.socket`` API.

    ``socket(family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None)``; with ``fileno``
    (a sid, e.g. from C code) the object adopts that sid and reads its family, type and
    protocol when they are not given. Errors are ``OSError`` subclasses with the
    library's errno; timeouts raise ``timeout("timed out")`` as the stdlib does.

    ``fileno()`` is the sid, not a kernel descriptor: ``select``/``selectors`` cannot
    wait on it. Use ``xsocket.poll`` or ``notify_fd()`` instead.
    """

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None:
            family = _std.AF_INET if family == -1 else family
            type = _std.SOCK_STREAM if type == -1 else type
            proto = 0 if proto == -1 else proto
            sid = lib.xs_socket(family, type, proto)
            if sid < 0:
                raise failure()
        else:
            sid = operator.index(fileno)
            if sid < 0:
                raise ValueError("negative file descriptor")
            family = _sockopt_int(sid, _std.SO_DOMAIN) if family == -1 else family
            type = _sockopt_int(sid, _std.SO_TYPE) if type == -1 else type
            if proto == -1:
                proto = _layers(sid) or _sockopt_int(sid, _std.SO_PROTOCOL)
        self._sid = sid
        self._message_buffer = None  # recv_message's buffer (lazily zeroed pages), reused
        self._message_lock = threading.Lock()
        self._family = family
        self._type = type & ~_TYPE_FLAGS
        self._proto = proto
        self._timeout = None
        if type & _std.SOCK_NONBLOCK:
            self._timeout = 0.0
        elif fileno is not None or _default_timeout is not None:
            self.settimeout(_default_timeout)

    # --- attributes ---

    @property
    def family(self):
        """The address family (``AF_INET``, ``AF_INET6``, ``AF_UNIX``)."""
        return _enum(_std.AddressFamily, self._family)

    @property
    def type(self):
        """The socket type (``SOCK_STREAM``, ``SOCK_DGRAM``, ``SOCK_SEQPACKET``)."""
        return _enum(_std.SocketKind, self._type)

    @property
    def proto(self):
        """The protocol number given at creation."""
        return self._proto

    @property
    def timeout(self):
        """The timeout in seconds, or None (blocking); see ``settimeout``."""
        return self._timeout

    def fileno(self):
        """The sid (an int, -1 once closed). Not a kernel descriptor: see ``notify_fd()``."""
        return self._sid

    def notify_fd(self):
        """A kernel eventfd (``XS_SO_NOTIFY_FD``) that becomes readable when the socket may
        have events, for ``select``, ``selectors`` or asyncio's ``loop.add_reader``.

        Edge-style: read (drain) the eventfd, then call ``recv``/``accept``/``send``
        on a non-blocking socket until ``BlockingIOError``. Owned by the socket and
        closed with it: remove it from your event loop before closing.
        """
        return self.getsockopt(XS_SOL_XSOCKET, XS_SO_NOTIFY_FD)

    def __repr__(self):
        closed = " [closed]" if self._sid < 0 else ""
        text = (f"<xsocket.socket{closed} sid={self._sid}, family={int(self._family)}, "
                f"type={int(self._type)}, proto={self._proto}")
        for name, method in (("laddr", self.getsockname), ("raddr", self.getpeername)):
            if self._sid >= 0:
                try:
                    text += f", {name}={method()!r}"
                except OSError:
                    pass
        return text + ">"

    # --- lifetime ---

    def close(self):
        """Close the socket (xs_close). Calls blocked on it in other threads wake with
        ``OSError(EBADF)``. Closing a closed socket does nothing."""
        sid, self._sid = self._sid, -1
        if sid >= 0 and lib.xs_close(sid) < 0:
            raise failure()

    def detach(self):
        """Give up the sid without closing it and return it; the object is then closed."""
        sid, self._sid = self._sid, -1
        return sid

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        if getattr(self, "_sid", -1) >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
            try:
                self.close()
            except OSError:
                pass

    # --- blocking mode ---

    def settimeout(self, value):
        """None: blocking; 0: non-blocking (``BlockingIOError``); t > 0: each call waits at
        most t seconds, then raises ``timeout("timed out")``."""
        value = _check_timeout(value)
        if lib.xs_fcntl(self._sid, F_SETFL, 0 if value is None else O_NONBLOCK) < 0:
            raise failure()
        self._timeout = value

    def gettimeout(self):
        """The timeout in seconds, or None (blocking)."""
        return self._timeout

    def setblocking(self, flag):
        """``setblocking(True)`` is ``settimeout(None)``; ``False`` is ``settimeout(0)``."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self):
        """False for a non-blocking socket (timeout 0), else True."""
        return self._timeout != 0.0

    def _io_deadline(self):
        """The deadline of one call under this socket's timeout (None: no waiting here)."""
        return _deadline(self._timeout) if self._timeout else None

    def _call(self, events, deadline, fn, *args):
        """``fn(sid, *args)`` as CPython's sock_call does it: retry on EINTR (PEP 475); with a
        deadline, wait for ``events`` with xs_poll on EAGAIN. Returns fn's result."""
        while True:
            sid = self._sid
            result = fn(sid, *args)
            if result >= 0:
                return result
            err = ctypes.get_errno()
            if err == EINTR:
                continue
            if deadline is None or err not in (EAGAIN, EWOULDBLOCK):
                raise failure()
            _wait(sid, events, deadline)

    # --- connections ---

    def bind(self, address):
        """Bind to a local address (a host name is resolved)."""
        raw = _addr.pack(self._family, address, "bind")
        if lib.xs_bind(self._sid, raw, len(raw)) < 0:
            raise failure()

    def listen(self, backlog=min(_std.SOMAXCONN, 128)):
        """Accept connections, with at most ``backlog`` pending."""
        if lib.xs_listen(self._sid, max(backlog, 0)) < 0:
            raise failure()

    def accept(self):
        """Wait for a connection; return ``(socket, address)``. The new socket starts with
        the default timeout (``getdefaulttimeout()``), as in the stdlib.

        On a TLS listener (``XS_PROTO_TLS``) the returned socket has done its handshake,
        unless the listener is non-blocking (timeout 0: the handshake then moves on
        with later calls). A client whose handshake fails (or does not finish within
        the listener's timeout) raises ``ConnectionAbortedError`` with the reason; the
        listener keeps serving.

        smux (``XS_PROTO_SMUX``): on a listening socket ``accept`` returns sessions; on
        a session it returns the next stream the peer opened (and the session's peer
        address), waiting as the session's timeout says."""
        buffer, length = _addr.out_buffer()
        sid = self._call(_select.POLLIN, self._io_deadline(), lib.xs_accept4,
                         buffer, ctypes.byref(length), 0)
        address = _addr.unpack(buffer, length.value)
        if self._proto & XS_PROTO_SMUX:
            # A session or a stream: the new sid says which (and its layers).
            return socket(self._family, self._type, fileno=sid), address
        if self._proto == XS_PROTO_TLS and self._timeout:
            # A listener with a timeout is non-blocking for the library, so the handshake
            # was not run by xs_accept: run it here, bounded by the timeout.
            try:
                _handshake(sid, _deadline(self._timeout))
            except OSError as exc:
                lib.xs_close(sid)
                reason = exc.strerror or str(exc)
                raise ConnectionAbortedError(
                    ECONNABORTED, f"tls handshake with {address!r} failed ({reason})") from None
        if self._proto & _WS and self._timeout:
            # The same for a WebSocket listener: wait (bounded) for the opening handshake
            # (and the TLS one under wss) that the library drives.
            try:
                _established(sid, _deadline(self._timeout))
            except OSError as exc:
                lib.xs_close(sid)
                reason = exc.strerror or str(exc)
                raise ConnectionAbortedError(
                    ECONNABORTED, f"websocket handshake with {address!r} failed ({reason})") from None
        return socket(self._family, self._type, self._proto, fileno=sid), address

    def _connect(self, address):
        """Connect under the timeout; return 0 or the errno (raise ``timeout`` on time-out)."""
        raw = _addr.pack(self._family, address, "connect")
        sid = self._sid
        if self._proto & XS_PROTO_SMUX and self._timeout:
            return self._connect_bounded(raw)
        if lib.xs_connect(sid, raw, len(raw)) == 0:
            return 0
        err = ctypes.get_errno()
        if err == EINTR:  # the connection goes on: wait for it unless non-blocking
            wait = self._timeout != 0.0
        else:
            wait = err == EINPROGRESS and bool(self._timeout)
        if not wait:
            return err
        deadline = _deadline(self._timeout)
        _wait(sid, _select.POLLOUT, deadline)
        try:
            err = _sockopt_int(self._sid, _std.SO_ERROR)
        except OSError as exc:
            return exc.errno
        err = 0 if err == EISCONN else err
        if err and self._proto & (XS_PROTO_TLS | _WS):
            # xs_poll ran the handshake and it failed: any call now reports why, which
            # puts the reason into the message that error(err) builds.
            lib.xs_send(sid, _NOTHING, 0, _std.MSG_DONTWAIT)
        if err == 0 and self._proto == XS_PROTO_TLS:
            # The library runs the handshake inside a blocking connect only: do it here.
            try:
                _handshake(sid, deadline)
            except timeout:
                raise
            except OSError as exc:
                return exc.errno
        return err

    def _connect_bounded(self, raw):
        """An smux session with a timeout: a blocking connect (the TLS handshake of
        ``smux+tls`` included) bounded by ``XS_SO_CONNECT_TIMEOUT``, as ``dial`` does;
        raise ``timeout`` when it runs out, else return 0 or the errno."""
        sid = self._sid
        saved = _sockopt_int(sid, XS_SO_CONNECT_TIMEOUT, XS_SOL_XSOCKET)
        limit = ctypes.c_int(min(max(math.ceil(self._timeout * 1000), 1), _POLL_MAX_MS))
        if lib.xs_setsockopt(sid, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, ctypes.byref(limit),
                             ctypes.sizeof(limit)) < 0 or lib.xs_fcntl(sid, F_SETFL, 0) < 0:
            return ctypes.get_errno()
        try:
            while True:
                if lib.xs_connect(sid, raw, len(raw)) == 0:
                    return 0
                err = ctypes.get_errno()
                if err != EINTR:
                    break
        finally:
            lib.xs_fcntl(sid, F_SETFL, O_NONBLOCK)
            previous = ctypes.c_int(saved)
            lib.xs_setsockopt(sid, XS_SOL_XSOCKET, XS_SO_CONNECT_TIMEOUT, ctypes.byref(previous),
                              ctypes.sizeof(previous))
        if err == ETIMEDOUT:
            raise timeout("timed out")
        return err

    def connect(self, address):
        """Connect to a remote address. With a timeout, the connection attempt is bounded by
        it (``timeout``); ``XS_SO_CONNECT_TIMEOUT`` bounds a blocking one (``ETIMEDOUT``).

        On a TLS socket (``XS_PROTO_TLS``) ``connect`` also runs the handshake (unless
        the socket is non-blocking); a refused certificate, name or pin raises
        ``OSError(EPROTO)`` whose message says why. On a WebSocket (``XS_PROTO_WS``)
        it also runs the HTTP Upgrade handshake, within the same timeout. On an smux
        socket (``XS_PROTO_SMUX``) with a timeout ``connect`` waits inside the library
        (``XS_SO_CONNECT_TIMEOUT`` set to the timeout), the TLS handshake of smux over
        TLS included, as ``dial`` does."""
        err = self._connect(address)
        if err:
            raise error(err)

    def connect_ex(self, address):
        """As ``connect``, but return the errno instead of raising (0 on success)."""
        try:
            return self._connect(address)
        except timeout:
            return EWOULDBLOCK

    def shutdown(self, how):
        """Shut down reading (``SHUT_RD``), writing (``SHUT_WR``) or both (``SHUT_RDWR``)."""
        if lib.xs_shutdown(self._sid, how) < 0:
            raise failure()

    def getsockname(self):
        """The socket's own address."""
        return self._address(lib.xs_getsockname)

    def getpeername(self):
        """The connected peer's address."""
        return self._address(lib.xs_getpeername)

    def _address(self, fn):
        buffer, length = _addr.out_buffer()
        if fn(self._sid, buffer, ctypes.byref(length)) < 0:
            raise failure()
        return _addr.unpack(buffer, length.value)

    # --- data ---

    def send(self, data, flags=0):
        """Send bytes; return how many were sent (possibly fewer on a stream socket)."""
        owner, address, length = _readable(data)
        return self._call(_select.POLLOUT, self._io_deadline(), lib.xs_send, address, length, flags)

    def sendall(self, data, flags=0):
        """Send all of ``data``, looping over partial sends; the timeout bounds the whole call."""
        owner, address, length = _readable(data)
        deadline = self._io_deadline()
        sent = 0
        while True:
            sent += self._call(_select.POLLOUT, deadline, lib.xs_send, address + sent, length - sent, flags)
            if sent >= length:
                return

    def sendto(self, data, flags_or_address, *address):
        """``sendto(data, address)`` or ``sendto(data, flags, address)``: send a datagram."""
        if len(address) > 1:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({2 + len(address)} given)")
        flags, address = (flags_or_address, address[0]) if address else (0, flags_or_address)
        raw = _addr.pack(self._family, address, "sendto")
        owner, pointer, length = _readable(data)
        return self._call(_select.POLLOUT, self._io_deadline(), lib.xs_sendto,
                          pointer, length, flags, raw, len(raw))

    def recv(self, bufsize, flags=0):
        """Receive up to ``bufsize`` bytes; ``b""`` at end of stream. A message longer
        than ``bufsize`` (datagram, ``SOCK_SEQPACKET``) is truncated; with ``MSG_TRUNC``
        in ``flags`` the real length shows in ``recv_into``'s or ``recvmsg``'s result,
        while ``recv`` still returns at most ``bufsize`` bytes."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        buffer = ctypes.create_string_buffer(bufsize)
        n = self._call(_select.POLLIN, self._io_deadline(), lib.xs_recv, buffer, bufsize, flags)
        return ctypes.string_at(buffer, min(n, bufsize))

    def recv_into(self, buffer, nbytes=0, flags=0):
        """Receive into a writable buffer (at most ``nbytes``, 0 meaning all of it);
        return the number of bytes received."""
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        target = _writable(buffer, "recv_into")
        if nbytes == 0:
            nbytes = len(target)
        elif nbytes > len(target):
            raise ValueError("buffer too small for requested bytes")
        return self._call(_select.POLLIN, self._io_deadline(), lib.xs_recv, target, nbytes, flags)

    def recvfrom(self, bufsize, flags=0):
        """Receive up to ``bufsize`` bytes; return ``(bytes, address)`` (address None when
        the sender has none, e.g. on a stream socket)."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        buffer = ctypes.create_string_buffer(bufsize)
        address, length = _addr.out_buffer()
        n = self._call(_select.POLLIN, self._io_deadline(), lib.xs_recvfrom,
                       buffer, bufsize, flags, address, ctypes.byref(length))
        return ctypes.string_at(buffer, min(n, bufsize)), _addr.unpack(address, length.value)

    def recvmsg(self, bufsize, ancbufsize=0, flags=0):
        """Receive up to ``bufsize`` bytes with ``xs_recvmsg``; return ``(data, ancdata,
        msg_flags, address)`` as the stdlib's ``recvmsg``: ``ancdata`` is a list of
        ``(level, type, bytes)`` control messages (room for ``ancbufsize`` bytes of
        them), ``msg_flags`` has ``MSG_TRUNC`` for a truncated message, ``MSG_EOR`` at
        the end of a WebSocket message on ``SOCK_STREAM`` and ``XS_MSG_TEXT`` for
        text, and ``address`` is None when the sender has none."""
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg")
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg")
        buffer = ctypes.create_string_buffer(max(bufsize, 1))
        n, msg_flags, ancdata, address = self._recvmsg_into(buffer, bufsize, ancbufsize, flags,
                                                            self._io_deadline())
        return ctypes.string_at(buffer, min(n, bufsize)), ancdata, msg_flags, address

    def _recvmsg_into(self, buffer, nbytes, ancbufsize, flags, deadline):
        """One ``xs_recvmsg`` of at most ``nbytes`` into ``buffer`` (a ctypes array), waiting
        until ``deadline``; return ``(result, msg_flags, ancdata, address)``."""
        name, _ = _addr.out_buffer()
        control = ctypes.create_string_buffer(ancbufsize) if ancbufsize else None
        iov = iovec(ctypes.addressof(buffer), nbytes)
        msg = msghdr(ctypes.addressof(name), _addr.SOCKADDR_MAX, ctypes.pointer(iov), 1,
                     ctypes.addressof(control) if control is not None else None, ancbufsize, 0)
        n = self._call(_select.POLLIN, deadline, lib.xs_recvmsg, ctypes.byref(msg), flags)
        ancdata = _cmsgs(control, min(msg.msg_controllen, ancbufsize)) if control is not None else []
        namelen = min(msg.msg_namelen, _addr.SOCKADDR_MAX) if name.raw[:2] != b"\0\0" else 0
        return n, msg.msg_flags, ancdata, _addr.unpack(name, namelen)

    # --- options ---

    def setsockopt(self, level, optname, value, optlen=None):
        """``setsockopt(level, optname, int | bytes-like)`` or
        ``setsockopt(level, optname, None, optlen)``, as in the stdlib. At levels
        ``XS_SOL_TLS`` and ``XS_SOL_WS`` text options (paths, names, ALPN and
        subprotocol lists, hex pins, origins, close reasons) also take a ``str``;
        flags and numbers take an int (or bool); PEM and raw pins take bytes."""
        if optlen is not None:
            if value is not None:
                raise TypeError("setsockopt(): value must be None when optlen is given")
            pointer, length = None, optlen
        elif isinstance(value, int):
            owner = ctypes.c_int(value)
            pointer, length = ctypes.addressof(owner), ctypes.sizeof(owner)
        elif isinstance(value, str) and level in _TEXT_OPTION_LEVELS:
            owner = value.encode()
            if b"\0" in owner:
                raise ValueError("embedded null byte")
            owner, pointer, length = _readable(owner)
        else:
            owner, pointer, length = _readable(value)
        if lib.xs_setsockopt(self._sid, level, optname, pointer, length) < 0:
            raise failure()

    def getsockopt(self, level, optname, buflen=0):
        """The option as an int, or with ``buflen`` (1..1024) as at most that many bytes.
        ``XS_SOL_TLS``: ``XS_TLS_VERSION``, ``XS_TLS_RESUMED`` and ``XS_TLS_HANDSHAKE_US``
        (an int64) read as ints; ``XS_TLS_CIPHER``, ``XS_TLS_ALPN_SELECTED`` and
        ``XS_TLS_PEER_SHA256`` need a ``buflen`` (e.g. 256) and return bytes. Before the
        handshake has finished they raise ``OSError(EINVAL)``. ``XS_SOL_WS``: the int
        options read as ints; the text ones (``XS_WS_SUBPROTOCOL``,
        ``XS_WS_PEER_CLOSE_REASON``, ``XS_WS_REQUEST_PATH``, …) need a ``buflen`` and
        return bytes (the ``ws_*`` methods decode them)."""
        if buflen == 0:
            if level == XS_SOL_TLS and optname == XS_TLS_HANDSHAKE_US:
                value, length = ctypes.c_int64(), socklen_t(ctypes.sizeof(ctypes.c_int64))
                if lib.xs_getsockopt(self._sid, level, optname, ctypes.byref(value), ctypes.byref(length)) < 0:
                    raise failure()
                return value.value
            return _sockopt_int(self._sid, optname, level)
        if not 0 < buflen <= 1024:
            raise OSError("getsockopt buflen out of range")
        buffer, length = ctypes.create_string_buffer(buflen), socklen_t(buflen)
        if lib.xs_getsockopt(self._sid, level, optname, buffer, ctypes.byref(length)) < 0:
            raise failure()
        return ctypes.string_at(buffer, length.value)

    # --- smux sessions and streams (XS_PROTO_SMUX sockets) ---

    def open_stream(self):
        """Open a stream on this connected smux session (``xs_smux_open``) and return
        it as a socket (``SOCK_STREAM``, proto ``XS_PROTO_SMUX``). Its SYN goes out at
        once, so data may follow right away; the peer gets it from ``accept``. The
        stream starts with the default timeout (``getdefaulttimeout()``), as accepted
        sockets do. Raises ``OSError``: ``EMFILE`` when every stream id is in use (or
        ``XS_SMUX_MAX_STREAMS`` is reached), ``ECONNRESET`` once the session ended,
        ``EINVAL`` on a socket that is not a connected session."""
        sid = lib.xs_smux_open(self._sid)
        if sid < 0:
            raise failure()
        return socket(self._family, _std.SOCK_STREAM, XS_PROTO_SMUX, fileno=sid)

    def probe_smux(self, timeout=1.0):
        """Whether the session's peer speaks smux (``xs_smux_probe``): send the VRM probe
        and wait at most ``timeout`` seconds for the right answer. False on no answer
        in time or a wrong one."""
        timeout = _check_timeout(timeout)
        result = lib.xs_smux_probe(self._sid, min(math.ceil(timeout * 1000), _POLL_MAX_MS))
        if result < 0:
            raise failure()
        return result == 1

    def smux_stream_id(self):
        """This stream's wire id (1-65535), 0 once it is closed both ways
        (``XS_SMUX_STREAM_ID``)."""
        return self.getsockopt(XS_SOL_SMUX, XS_SMUX_STREAM_ID)

    def smux_streams(self):
        """The streams open on this session (or waiting for the peer's FIN)
        (``XS_SMUX_STREAMS``)."""
        return self.getsockopt(XS_SOL_SMUX, XS_SMUX_STREAMS)

    def smux_peer_pins(self):
        """Whether the session's peer sends PIN keepalives (a Go v2 peer)
        (``XS_SMUX_PEER_PINS``)."""
        return bool(self.getsockopt(XS_SOL_SMUX, XS_SMUX_PEER_PINS))

    # --- TLS read-backs (XS_PROTO_TLS sockets) ---

    def _tls_value(self, optname, buflen=0):
        """A TLS read-back, or None while the handshake has not finished."""
        try:
            return self.getsockopt(XS_SOL_TLS, optname, buflen)
        except OSError as exc:
            if exc.errno == EINVAL:
                return None
            raise

    def tls_version(self):
        """The TLS version as ``"TLSv1.3"`` or ``"TLSv1.2"`` (as ``ssl.SSLSocket.version()``),
        or None while the handshake has not finished. Raises ``OSError(ENOPROTOOPT)``
        on a socket that is not ``XS_PROTO_TLS`` (as every ``tls_*`` read-back does)."""
        value = self._tls_value(XS_TLS_VERSION)
        return None if value is None else _TLS_VERSIONS.get(value, f"0x{value:04x}")

    def cipher(self):
        """``(cipher suite name, TLS version, secret bits)`` as ``ssl.SSLSocket.cipher()``,
        e.g. ``("TLS13_AES_256_GCM_SHA384", "TLSv1.3", 256)``; None before the handshake."""
        name = self._tls_value(XS_TLS_CIPHER, 256)
        if name is None:
            return None
        name = name.decode("ascii", "replace")
        bits = 256 if ("_256_" in name or "CHACHA20" in name) else 128 if "_128_" in name else None
        return name, self.tls_version(), bits

    def selected_alpn_protocol(self):
        """The ALPN protocol agreed on (``str``), or None (none agreed, or before the
        handshake), as ``ssl.SSLSocket.selected_alpn_protocol()``."""
        value = self._tls_value(XS_TLS_ALPN_SELECTED, 256)
        return value.decode("ascii", "replace") if value else None

    def peer_fingerprint(self):
        """SHA-256 of the peer's certificate (DER) as 32 bytes; None when the peer sent
        none (a client without certificate) or before the handshake."""
        value = self._tls_value(XS_TLS_PEER_SHA256, 64)
        return value or None

    def tls_resumed(self):
        """True when this connection resumed an earlier TLS session; None before the
        handshake."""
        value = self._tls_value(XS_TLS_RESUMED)
        return None if value is None else bool(value)

    def handshake_us(self):
        """How long the TLS handshake took, in microseconds; None before it finished."""
        return self._tls_value(XS_TLS_HANDSHAKE_US)

    # --- WebSocket messages and read-backs (XS_PROTO_WS, XS_PROTO_WS_RAW sockets) ---

    def send_message(self, data, flags=0):
        """Send one WebSocket message: a ``str`` as text (UTF-8, ``XS_MSG_TEXT``), a
        bytes-like object as binary. The timeout bounds the whole call. ``flags`` as
        for ``send`` (``MSG_DONTWAIT`` …)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
            flags |= XS_MSG_TEXT
        owner, address, length = _readable(data)
        deadline = self._io_deadline()
        sent = self._call(_select.POLLOUT, deadline, lib.xs_send, address, length, flags)
        while sent < length:  # a stream socket that took part of it: the rest follows
            sent += self._call(_select.POLLOUT, deadline, lib.xs_send, address + sent, length - sent, flags)

    def recv_message(self, bufsize=None, flags=0):
        """Receive one whole WebSocket message: ``str`` for a text message, ``bytes`` for
        a binary one, None once the peer has closed (see ``ws_close_code()``). The
        timeout bounds the whole call.

        ``SOCK_SEQPACKET``: one message of at most ``bufsize`` bytes (default: the
        socket's ``XS_WS_MAX_MESSAGE``, so any message the socket accepts fits); a
        longer one is dropped and raises ``OSError(EMSGSIZE)``. ``SOCK_STREAM``: the
        pieces ``recv`` would return (each at most ``bufsize``, default 64 KiB), joined
        up to the end of the message."""
        deadline = self._io_deadline()
        if self._type == _std.SOCK_STREAM:
            return self._recv_stream_message(bufsize or 65536, flags, deadline)
        if bufsize is None:
            bufsize = max(self.getsockopt(XS_SOL_WS, XS_WS_MAX_MESSAGE), 1)
        elif bufsize < 0:
            raise ValueError("negative buffersize in recv_message")
        if self._message_lock.acquire(blocking=False):
            # One buffer the size of the largest message serves every call: its pages
            # are mapped as messages fill them, and it is dropped after a big message.
            try:
                buffer = self._message_buffer
                if buffer is None or len(buffer) < bufsize:
                    buffer = (ctypes.c_char * max(bufsize, 1))()
                self._message_buffer = None
                n, msg_flags, data = self._recv_one(buffer, bufsize, flags, deadline)
                if n <= _MESSAGE_CACHE_MAX:
                    self._message_buffer = buffer
            finally:
                self._message_lock.release()
        else:  # another thread is receiving too
            n, msg_flags, data = self._recv_one((ctypes.c_char * max(bufsize, 1))(), bufsize, flags, deadline)
        if msg_flags & _std.MSG_TRUNC:
            raise OSError(EMSGSIZE, f"message longer than the {bufsize}-byte buffer (dropped)")
        if n == 0 and not msg_flags & (XS_MSG_TEXT | _std.MSG_EOR):
            return None  # the end: an empty message has MSG_EOR
        return self._message(data, msg_flags)

    def _recv_one(self, buffer, bufsize, flags, deadline):
        n, msg_flags, _, _ = self._recvmsg_into(buffer, bufsize, 0, flags & ~_std.MSG_TRUNC, deadline)
        return n, msg_flags, ctypes.string_at(buffer, min(n, bufsize))

    def _recv_stream_message(self, bufsize, flags, deadline):
        buffer = (ctypes.c_char * bufsize)()
        parts = []
        while True:
            n, msg_flags, _, _ = self._recvmsg_into(buffer, bufsize, 0, flags, deadline)
            if n == 0 and not msg_flags & _std.MSG_EOR:
                if parts:
                    raise OSError(ECONNRESET, "connection closed in the middle of a message")
                return None
            parts.append(ctypes.string_at(buffer, n))
            if msg_flags & _std.MSG_EOR:
                return self._message(b"".join(parts), msg_flags)

    @staticmethod
    def _message(data, msg_flags):
        return data.decode("utf-8") if msg_flags & XS_MSG_TEXT else data

    def ws_close(self, code=1000, reason=None):
        """Close with WebSocket close ``code`` (1000, normal, by default) and ``reason``
        (``str``, at most 123 bytes of UTF-8): ``close()`` after setting
        ``XS_WS_CLOSE_CODE`` and ``XS_WS_CLOSE_REASON``. The close handshake finishes in
        the background (at most ``XS_WS_CLOSE_TIMEOUT``)."""
        if self._sid < 0:
            return
        self.setsockopt(XS_SOL_WS, XS_WS_CLOSE_CODE, code)
        if reason is not None:
            self.setsockopt(XS_SOL_WS, XS_WS_CLOSE_REASON, reason)
        self.close()

    def _ws_text(self, optname):
        """A text read-back at level ``XS_SOL_WS`` as ``str`` (up to the longest HTTP head)."""
        buffer, length = ctypes.create_string_buffer(_WS_TEXT_MAX), socklen_t(_WS_TEXT_MAX)
        if lib.xs_getsockopt(self._sid, XS_SOL_WS, optname, buffer, ctypes.byref(length)) < 0:
            raise failure()
        return ctypes.string_at(buffer, length.value).decode("utf-8", "replace")

    def ws_subprotocol(self):
        """The subprotocol agreed on in the opening handshake (``str``), or None."""
        return self._ws_text(XS_WS_SUBPROTOCOL) or None

    def ws_close_code(self):
        """The peer's close code (1000, 1001, …; 1005: its close frame had none; 1006: the
        connection was lost without one), or None while the peer has not closed."""
        return self.getsockopt(XS_SOL_WS, XS_WS_PEER_CLOSE_CODE) or None

    def ws_close_reason(self):
        """The reason in the peer's close frame (``str``, possibly empty), or None while
        the peer has not closed."""
        if self.ws_close_code() is None:
            return None
        return self._ws_text(XS_WS_PEER_CLOSE_REASON)

    def ws_request_path(self):
        """Server side: the path (with its query) the client asked for."""
        return self._ws_text(XS_WS_REQUEST_PATH)

    def ws_request_origin(self):
        """Server side: the client's ``Origin`` header, or None when it sent none."""
        return self._ws_text(XS_WS_REQUEST_ORIGIN) or None

    def ws_recv_text(self):
        """Whether the last bytes ``recv`` returned were of a text message
        (``XS_WS_RECV_TEXT``)."""
        return bool(self.getsockopt(XS_SOL_WS, XS_WS_RECV_TEXT))


SocketType = socket


def _sockopt_int(sid, optname, level=_std.SOL_SOCKET):
    value, length = ctypes.c_int(), socklen_t(ctypes.sizeof(ctypes.c_int))
    if lib.xs_getsockopt(sid, level, optname, ctypes.byref(value), ctypes.byref(length)) < 0:
        raise failure()
    return value.value
