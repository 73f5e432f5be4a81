//! The few raw kernel calls xsocket makes itself, behind one `syscall!` macro.
//!
//! Everything here is a thin wrapper: `-1` becomes [`Error::Os`] labelled with the
//! operation, everything else is returned as it is.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// Calls a libc function and turns `-1` into [`Error::Os`] labelled with `$op`.
macro_rules! syscall {
    ($op:expr, $fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the caller upholds the libc function's contract for these arguments.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 { Err($crate::error::Error::last_os($op)) } else { Ok(res) }
    }};
}
pub(crate) use syscall;

/// Sets an `int` socket option on a kernel socket.
pub(crate) fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) -> Result<()> {
    let len = size_of::<i32>() as libc::socklen_t;
    syscall!(
        "setsockopt",
        setsockopt(fd, level, name, (&raw const value).cast(), len)
    )?;
    Ok(())
}

/// Reads an `int` socket option from a kernel socket.
pub(crate) fn int_option(fd: RawFd, level: i32, name: i32) -> Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    syscall!(
        "getsockopt",
        getsockopt(fd, level, name, (&raw mut value).cast(), &mut len)
    )?;
    Ok(value)
}

/// Creates a non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    let fd = syscall!(
        "eventfd",
        eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
    )?;
    // SAFETY: eventfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter, making it readable. A full counter is already readable.
pub(crate) fn eventfd_signal(fd: impl AsFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
    let _ = unsafe { libc::write(fd.as_fd().as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Waits for `events` on one descriptor for up to `timeout_ms` (-1: no limit).
/// Returns the `revents`, or 0 on time-out. Retries after signals with the time left.
pub(crate) fn poll_one(fd: RawFd, events: i16, timeout_ms: i32) -> Result<i16> {
    let deadline = (timeout_ms >= 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64));
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let left = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(std::time::Instant::now())
                .as_millis() as i32,
        };
        match syscall!("poll", poll(&mut pfd, 1, left)) {
            Ok(0) => return Ok(0),
            Ok(_) => return Ok(pfd.revents),
            Err(e) if e.os_errno() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads `SO_ERROR`, clearing it. `Ok(0)` means no pending error.
pub(crate) fn take_socket_error(fd: RawFd) -> Result<i32> {
    int_option(fd, libc::SOL_SOCKET, libc::SO_ERROR)
}

/// The error for a failed call with errno `errno`, labelled with `op`.
pub(crate) fn os_error(op: &'static str, errno: i32) -> Error {
    Error::Os {
        op: op.into(),
        source: std::io::Error::from_raw_os_error(errno),
    }
}
