//! The byte stream under a message layer (WebSocket): the kernel socket, or TLS on
//! it. Every call here returns at once; a caller that must wait polls the kernel
//! socket for the events returned.

use crate::{
    error::{Error, Result},
    socket::Socket,
};

/// What a transfer that never waits gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// This many bytes moved (0 on a read: the stream ended).
    Done(usize),
    /// Nothing can move until the kernel socket has these events.
    Wait(i16),
}

/// Reads what bytes are there.
pub(crate) fn read(socket: &Socket, buf: &mut [u8]) -> Result<Io> {
    if let Some(tls) = socket.tls() {
        return tls.read_now(socket, buf);
    }
    loop {
        // SAFETY: writes at most buf.len() bytes into a live buffer.
        let n = unsafe {
            libc::recv(socket.raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
        };
        if n >= 0 {
            return Ok(Io::Done(n as usize));
        }
        let err = Error::last_os("recv");
        match err.os_errno() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => return Ok(Io::Wait(libc::POLLIN)),
            _ => return Err(err),
        }
    }
}

/// Writes what bytes the transport takes now.
pub(crate) fn write(socket: &Socket, data: &[u8]) -> Result<Io> {
    if let Some(tls) = socket.tls() {
        return tls.write_now(socket, data);
    }
    loop {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: reads data.len() bytes from a live buffer.
        let n = unsafe { libc::send(socket.raw_fd(), data.as_ptr().cast(), data.len(), flags) };
        if n >= 0 {
            return Ok(Io::Done(n as usize));
        }
        let err = Error::last_os("send");
        match err.os_errno() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => return Ok(Io::Wait(libc::POLLOUT)),
            _ => return Err(err),
        }
    }
}

/// Whether the transport itself still holds bytes to write (TLS records).
pub(crate) fn holds_output(socket: &Socket) -> bool {
    socket.tls().is_some_and(|tls| tls.holds_output())
}

/// Ends the sending direction: close_notify on TLS, then a FIN.
pub(crate) fn shutdown_write(socket: &Socket) {
    if let Some(tls) = socket.tls() {
        let _ = tls.close_notify(socket, false);
    }
    // SAFETY: shutdown on a descriptor the socket owns.
    unsafe { libc::shutdown(socket.raw_fd(), libc::SHUT_WR) };
}
