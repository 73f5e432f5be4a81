//! The few raw kernel calls xsocket makes itself, behind one `syscall!` macro.
//!
//! Everything here is a thin wrapper: `-1` becomes [`Error::Os`] labelled with the
//! operation, everything else is returned as it is.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::Result;

/// Calls a libc function and turns `-1` into [`Error::Os`] labelled with `$op`.
macro_rules! syscall {
    ($op:expr, $fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: the caller upholds the libc function's contract for these arguments.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 { Err($crate::error::Error::last_os($op)) } else { Ok(res) }
    }};
}
pub(crate) use syscall;

/// Sets a socket option of type `T` (an `int`, a `timeval`, …) on a kernel socket.
pub(crate) fn set_option<T>(fd: RawFd, level: i32, name: i32, value: &T) -> Result<()> {
    let len = size_of::<T>() as libc::socklen_t;
    syscall!(
        "setsockopt",
        setsockopt(fd, level, name, (value as *const T).cast(), len)
    )?;
    Ok(())
}

/// Reads a socket option of plain-data type `T` (an `int`, a `timeval`, …).
pub(crate) fn option<T: Copy>(fd: RawFd, level: i32, name: i32) -> Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    syscall!(
        "getsockopt",
        getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len)
    )?;
    // SAFETY: zero-initialised plain data (ints, timeval), partly or wholly written by
    // the kernel; every bit pattern is a valid value of such types.
    Ok(unsafe { value.assume_init() })
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
