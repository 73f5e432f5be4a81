//! Socket lifecycle: `xs_socket`, `xs_bind`, `xs_listen`, `xs_accept`, `xs_accept4`,
//! `xs_connect`, `xs_shutdown`, `xs_close`, `xs_getsockname`, `xs_getpeername`,
//! `xs_fcntl`.

use std::ffi::c_int;

use libc::{sockaddr, socklen_t};

use super::{ffi_call, socket_of};
use crate::{
    error::Error,
    log::{Level, log},
    open, reactor,
    sys::syscall,
    table,
};

/// Creates a socket and returns its sid (a positive int).
///
/// `domain` is `AF_INET`, `AF_INET6` or `AF_UNIX`; `type` is `SOCK_STREAM`,
/// `SOCK_DGRAM` or `SOCK_SEQPACKET`, optionally or-ed with `SOCK_NONBLOCK` and
/// `SOCK_CLOEXEC` (xsocket's kernel sockets are always close-on-exec); `protocol` is
/// 0 (or the kernel's `IPPROTO_TCP`/`IPPROTO_UDP`) for the plain kernel transport.
/// TCP sockets start with `TCP_NODELAY` on (unlike the kernel's default).
///
/// Returns the sid, or -1 with errno: `EAFNOSUPPORT` (other domain),
/// `ESOCKTNOSUPPORT` (other type), `EPROTONOSUPPORT` (unknown protocol), or the
/// kernel's `socket(2)` errors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `EACCES`).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_socket(domain: c_int, r#type: c_int, protocol: c_int) -> c_int {
    ffi_call!("xs_socket", { Ok(open::open(domain, r#type, protocol)?.sid()) })
}

/// Binds the socket to a local address, as `bind(2)`.
///
/// Returns 0, or -1 with errno: `EBADF` (sid not open), `EFAULT` (bad `addr`),
/// `EINVAL` (bad `addrlen`, or already bound), `EAFNOSUPPORT` (family does not match
/// the socket), `EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, or another `bind(2)` error.
///
/// # Safety
/// `addr` must point to `addrlen` readable bytes (the kernel checks what it can).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_bind(sid: c_int, addr: *const sockaddr, addrlen: socklen_t) -> c_int {
    ffi_call!("xs_bind", {
        let socket = socket_of(sid)?;
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket.bind(addr, addrlen)? };
        Ok(0)
    })
}

/// Marks a stream or seqpacket socket as accepting connections, as `listen(2)`.
///
/// Returns 0, or -1 with errno: `EBADF`, `EOPNOTSUPP` (datagram socket),
/// `EADDRINUSE`, `EINVAL` (connected socket).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_listen(sid: c_int, backlog: c_int) -> c_int {
    ffi_call!("xs_listen", {
        socket_of(sid)?.listen(backlog)?;
        Ok(0)
    })
}

/// Accepts a connection, as `accept(2)`: `xs_accept4(sid, addr, addrlen, 0)`.
///
/// # Safety
/// As `xs_accept4`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_accept(
    sid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { xs_accept4(sid, addr, addrlen, 0) }
}

/// Accepts a connection and returns a new sid for it, as `accept4(2)`.
///
/// `addr`/`addrlen` may be NULL; otherwise the peer's address is written as
/// `accept(2)` does. `flags` may hold `SOCK_NONBLOCK` and `SOCK_CLOEXEC`. Blocks
/// unless the listening socket is non-blocking; `SO_RCVTIMEO` bounds the wait.
///
/// Returns the new sid, or -1 with errno: `EBADF` (sid not open, or closed by another
/// thread while waiting), `EAGAIN` (non-blocking and nothing pending, or the receive
/// timeout ran out), `EINVAL` (not listening, or bad `flags`), `EFAULT`,
/// `EOPNOTSUPP` (datagram socket), `EMFILE`, `ENFILE`, `EINTR`, `ECONNABORTED`.
///
/// # Safety
/// `addr` and `addrlen` must be NULL or valid for writing, as for `accept4(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_accept4(
    sid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
    flags: c_int,
) -> c_int {
    ffi_call!("xs_accept4", {
        let listener = socket_of(sid)?;
        // SAFETY: the pointers go to the kernel as the caller gave them.
        Ok(unsafe { open::accept(&listener, addr, addrlen, flags)? }.sid())
    })
}

/// Opens a stream on a connected smux session (`XS_PROTO_SMUX`) and returns its sid.
///
/// The stream's SYN goes to the peer at once; data may follow right away. The new
/// sid is blocking (set `O_NONBLOCK` with `xs_fcntl`) and behaves as a TCP socket
/// (see `XS_PROTO_SMUX`).
///
/// Returns the stream's sid, or -1 with errno: `EBADF`, `EINVAL` (not a connected
/// smux session), `EMFILE` (every stream id in use, or `XS_SMUX_MAX_STREAMS`
/// reached), `ECONNRESET` (the session has ended).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_smux_open(session: c_int) -> c_int {
    ffi_call!("xs_smux_open", {
        let socket = socket_of(session)?;
        Ok(open::open_stream(&socket)?.sid())
    })
}

/// Tells whether the peer of a connected smux session speaks smux: sends the VRM
/// probe (7 bytes) and waits at most `timeout_ms` for the right answer. A peer that
/// does not speak smux sees only those 7 bytes; what it sends back ends the
/// session (a session is for smux peers).
///
/// Returns 1 (an smux peer), 0 (no answer in time, or a wrong one), or -1 with
/// errno: `EBADF`, `EINVAL` (not a connected smux session, or negative timeout).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_smux_probe(session: c_int, timeout_ms: c_int) -> c_int {
    ffi_call!("xs_smux_probe", {
        let socket = socket_of(session)?;
        let smux = socket.smux().filter(|s| s.is_session()).ok_or_else(|| {
            Error::InvalidArgument("not a connected XS_PROTO_SMUX session".into())
        })?;
        let ms = u64::try_from(timeout_ms)
            .map_err(|_| Error::InvalidArgument("timeout_ms must be >= 0".into()))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        Ok(i32::from(smux.probe(&socket, deadline)?))
    })
}

/// Connects the socket, as `connect(2)`.
///
/// Blocking sockets wait until connected: at most `XS_SO_CONNECT_TIMEOUT` when set
/// (then `ETIMEDOUT`), else as the kernel does (`SO_SNDTIMEO` applies, then
/// `EINPROGRESS`). Non-blocking sockets return -1 with `EINPROGRESS`; wait for
/// `POLLOUT` with `xs_poll`, then read `SO_ERROR`.
///
/// Returns 0, or -1 with errno: `EBADF` (sid not open, or closed by another thread
/// while waiting), `EINPROGRESS`, `EALREADY`, `EISCONN`, `ECONNREFUSED`,
/// `ETIMEDOUT`, `ENETUNREACH`, `EADDRNOTAVAIL`, `EAFNOSUPPORT`, `EINVAL`, `EFAULT`,
/// `ENOENT` (Unix path), `EINTR`, or another `connect(2)` error.
///
/// # Safety
/// `addr` must point to `addrlen` readable bytes (the kernel checks what it can).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_connect(
    sid: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> c_int {
    ffi_call!("xs_connect", {
        let socket = socket_of(sid)?;
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket.connect(addr, addrlen) }.map_err(|err| {
            let errno = err.os_errno();
            // The kernel read the address unless it said EFAULT, so it is safe to show.
            if errno.is_some_and(|e| e != libc::EFAULT) {
                // SAFETY: the kernel accepted `addrlen` bytes at `addr`.
                err.context(|| format!("to {}", unsafe { describe_user_addr(addr, addrlen) }))
            } else {
                err
            }
        })?;
        Ok(0)
    })
}

/// Formats an address the kernel has already read successfully.
unsafe fn describe_user_addr(addr: *const sockaddr, len: socklen_t) -> String {
    let mut storage = crate::addr::empty_storage();
    let len = (len as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: the kernel copied `len` bytes from `addr` without EFAULT just before.
    unsafe { std::ptr::copy_nonoverlapping(addr.cast::<u8>(), (&raw mut storage).cast(), len) };
    crate::addr::describe(&storage, len as socklen_t)
}

/// Shuts down part of a full-duplex connection, as `shutdown(2)`.
///
/// `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`. After `SHUT_WR` the peer reads EOF
/// while this side can still receive.
///
/// Returns 0, or -1 with errno: `EBADF`, `EINVAL` (bad `how`), `ENOTCONN`.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_shutdown(sid: c_int, how: c_int) -> c_int {
    ffi_call!("xs_shutdown", {
        socket_of(sid)?.shutdown(how)?;
        Ok(0)
    })
}

/// Closes the sid. The sid is invalid from now on and is not handed out again for
/// about two billion sockets. Calls blocked on it in other threads wake and fail
/// with `EBADF`. The kernel socket is closed when the last such call has left.
///
/// Returns 0, or -1 with errno `EBADF` (sid not open).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_close(sid: c_int) -> c_int {
    ffi_call!("xs_close", {
        let socket = table::TABLE.write().remove(sid)?;
        socket.close();
        // The event thread lets go of watched sockets, and drains corked bytes.
        if (socket.notify().is_some() || socket.is_corked())
            && let Ok(reactor) = reactor::handle()
        {
            reactor.attend(&socket);
        }
        log!(Level::Debug, "sid {sid}: closed");
        Ok(0)
    })
}

/// Writes the socket's local address, as `getsockname(2)`.
///
/// Returns 0, or -1 with errno: `EBADF`, `EFAULT`, `EINVAL` (negative `*addrlen`).
///
/// # Safety
/// `addr` must be valid for `*addrlen` bytes and `addrlen` for reading and writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_getsockname(
    sid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    ffi_call!("xs_getsockname", {
        let fd = socket_of(sid)?.raw_fd();
        syscall!("getsockname", getsockname(fd, addr, addrlen))?;
        Ok(0)
    })
}

/// Writes the connected peer's address, as `getpeername(2)`.
///
/// Returns 0, or -1 with errno: `EBADF`, `ENOTCONN`, `EFAULT`, `EINVAL`.
///
/// # Safety
/// `addr` must be valid for `*addrlen` bytes and `addrlen` for reading and writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_getpeername(
    sid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    ffi_call!("xs_getpeername", {
        let fd = socket_of(sid)?.raw_fd();
        syscall!("getpeername", getpeername(fd, addr, addrlen))?;
        Ok(0)
    })
}

/// Reads or sets the file status flags, as `fcntl(2)` with `F_GETFL` / `F_SETFL`.
///
/// `F_GETFL` returns the flags (`O_RDWR`, and `O_NONBLOCK` when set). `F_SETFL`
/// honours `O_NONBLOCK` in `arg` and ignores every other bit.
///
/// Returns the flags or 0, or -1 with errno: `EBADF`, `EINVAL` (any other `cmd`).
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_fcntl(sid: c_int, cmd: c_int, arg: c_int) -> c_int {
    ffi_call!("xs_fcntl", {
        let socket = socket_of(sid)?;
        match cmd {
            libc::F_GETFL => socket.status_flags(),
            libc::F_SETFL => socket.set_nonblocking(arg & libc::O_NONBLOCK != 0).map(|()| 0),
            _ => Err(Error::InvalidArgument(
                format!("xs_fcntl supports F_GETFL and F_SETFL, not command {cmd}").into(),
            )),
        }
    })
}
