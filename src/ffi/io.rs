//! Data transfer: `xs_send`, `xs_recv`, `xs_sendto`, `xs_recvfrom`, `xs_sendmsg`,
//! `xs_recvmsg`.
//!
//! All of them go straight to the kernel socket in the calling thread. Sends always
//! add `MSG_NOSIGNAL`: a send to a closed peer fails with `EPIPE`, never a signal.

use std::ffi::{c_int, c_void};

use libc::{msghdr, sockaddr, socklen_t, ssize_t};

use super::{ffi_call, socket_of};

/// Sends data on a connected socket, as `send(2)` (with `MSG_NOSIGNAL` always added).
///
/// `flags`: `MSG_DONTWAIT`, `MSG_MORE`, `MSG_NOSIGNAL`, `MSG_OOB`, … as the kernel
/// takes them. Blocks while the send buffer (`SO_SNDBUF`) is full unless the socket is
/// non-blocking or `MSG_DONTWAIT` is given; `SO_SNDTIMEO` bounds the wait.
///
/// `MSG_MORE` on a stream socket (TCP or Unix) corks in user space: the bytes (up to
/// 64 KiB per socket) are kept and handed to the kernel together, in one system call,
/// with the next send without `MSG_MORE`, or before a receive, `xs_poll`,
/// `xs_shutdown` or `xs_close` on the socket, or after 200 ms at the latest (the
/// kernel's own limit for corked data). The call returns `len` once the bytes are
/// kept. Such a send reads `buf` itself, so a bad non-NULL pointer is not reported
/// as `EFAULT` there. `xs_close` does not wait for corked bytes: the event thread
/// sends them (giving up after 30 s if the peer never reads).
///
/// Returns the number of bytes sent (possibly fewer than `len` on a stream socket), or
/// -1 with errno: `EBADF` (sid not open, or closed by another thread while waiting),
/// `EAGAIN` (would block, or send timeout), `EPIPE` (shut down for writing, or peer
/// gone), `ECONNRESET`, `ENOTCONN`, `EDESTADDRREQ`, `EMSGSIZE` (datagram too large),
/// `EFAULT` (bad `buf`), `EINTR`.
///
/// # Safety
/// `buf` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_send(
    sid: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
) -> ssize_t {
    ffi_call!("xs_send", {
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket_of(sid)?.send(buf, len, flags) }
    })
}

/// Receives data, as `recv(2)`.
///
/// `flags`: `MSG_PEEK`, `MSG_WAITALL`, `MSG_DONTWAIT`, `MSG_TRUNC` (datagrams: return
/// the real length), … as the kernel takes them. Blocks until data arrives unless the
/// socket is non-blocking or `MSG_DONTWAIT` is given; `SO_RCVTIMEO` bounds the wait.
///
/// Returns the number of bytes received, 0 at end of stream (the peer shut down or
/// closed), or -1 with errno: `EBADF` (sid not open, or closed by another thread while
/// waiting), `EAGAIN` (would block, or receive timeout), `ECONNRESET`, `ENOTCONN`,
/// `ECONNREFUSED` (connected UDP whose peer port is closed), `EFAULT`, `EINTR`.
///
/// # Safety
/// `buf` must point to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_recv(
    sid: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
) -> ssize_t {
    ffi_call!("xs_recv", {
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket_of(sid)?.recv(buf, len, flags) }
    })
}

/// Sends data to an address, as `sendto(2)` (with `MSG_NOSIGNAL` always added).
/// `to` may be NULL (with `tolen` 0) on a connected socket.
///
/// Returns the number of bytes sent, or -1 with the errno of `xs_send`, plus
/// `EISCONN` (address given on a connected stream socket), `EINVAL` (bad `tolen`),
/// `EAFNOSUPPORT`, `ENOENT`/`ECONNREFUSED` (Unix datagram peer path).
///
/// # Safety
/// `buf` must point to `len` readable bytes and `to` to `tolen` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_sendto(
    sid: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    to: *const sockaddr,
    tolen: socklen_t,
) -> ssize_t {
    ffi_call!("xs_sendto", {
        // SAFETY: the pointers go to the kernel as the caller gave them.
        unsafe { socket_of(sid)?.send_to(buf, len, flags, to, tolen) }
    })
}

/// Receives data and the sender's address, as `recvfrom(2)`. `from`/`fromlen` may be
/// NULL. A datagram longer than `len` is truncated (the rest is dropped); with
/// `MSG_TRUNC` in `flags` the real length is returned.
///
/// Returns the number of bytes received (0 at end of stream), or -1 with the errno of
/// `xs_recv`.
///
/// # Safety
/// `buf` must point to `len` writable bytes; `from` and `fromlen` must be NULL or valid
/// as for `recvfrom(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_recvfrom(
    sid: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    from: *mut sockaddr,
    fromlen: *mut socklen_t,
) -> ssize_t {
    ffi_call!("xs_recvfrom", {
        // SAFETY: the pointers go to the kernel as the caller gave them.
        unsafe { socket_of(sid)?.recv_from(buf, len, flags, from, fromlen) }
    })
}

/// Sends a message from a scatter array, as `sendmsg(2)` (with `MSG_NOSIGNAL` always
/// added). Ancillary data (`msg_control`) is passed to the kernel unchanged, so
/// `SCM_RIGHTS` works on Unix sockets.
///
/// Returns the number of bytes sent, or -1 with the errno of `xs_sendto`.
///
/// # Safety
/// `msg` must be a valid `struct msghdr` whose pointers are valid as for `sendmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_sendmsg(sid: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    ffi_call!("xs_sendmsg", {
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket_of(sid)?.send_msg(msg, flags) }
    })
}

/// Receives a message into a scatter array, as `recvmsg(2)`. `msg_flags` reports
/// `MSG_TRUNC` (datagram truncated) and `MSG_CTRUNC` as the kernel sets them.
///
/// Returns the number of bytes received (0 at end of stream), or -1 with the errno of
/// `xs_recv`.
///
/// # Safety
/// `msg` must be a valid `struct msghdr` whose pointers are valid as for `recvmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_recvmsg(sid: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    ffi_call!("xs_recvmsg", {
        // SAFETY: the pointer goes to the kernel as the caller gave it.
        unsafe { socket_of(sid)?.recv_msg(msg, flags) }
    })
}
