//! The few raw kernel calls xsocket makes itself, behind one `syscall!` macro.
//!
//! Everything here is a thin wrapper: `-1` becomes [`Error::Os`] labelled with the
//! operation, everything else is returned as it is.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd},
    sync::atomic::{AtomicI32, Ordering::SeqCst},
};

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
    syscall!("setsockopt", setsockopt(fd, level, name, (value as *const T).cast(), len))?;
    Ok(())
}

/// Reads a socket option of plain-data type `T` (an `int`, a `timeval`, …).
pub(crate) fn option<T: Copy>(fd: RawFd, level: i32, name: i32) -> Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    syscall!("getsockopt", getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len))?;
    // SAFETY: zero-initialised plain data (ints, timeval), partly or wholly written by
    // the kernel; every bit pattern is a valid value of such types.
    Ok(unsafe { value.assume_init() })
}

/// Creates a non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    let fd = syscall!("eventfd", eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
    // SAFETY: eventfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd made on first use and closed with its owner.
#[derive(Debug)]
pub(crate) struct LazyEventFd(AtomicI32);

impl LazyEventFd {
    /// No eventfd yet.
    pub(crate) const fn new() -> Self {
        Self(AtomicI32::new(-1))
    }

    /// The eventfd, if one was made.
    pub(crate) fn get(&self) -> Option<BorrowedFd<'_>> {
        match self.0.load(SeqCst) {
            -1 => None,
            // SAFETY: the descriptor stays open until `self` is dropped.
            fd => Some(unsafe { BorrowedFd::borrow_raw(fd) }),
        }
    }

    /// The eventfd, made now if needed, and whether this call made it.
    pub(crate) fn get_or_make(&self) -> Result<(RawFd, bool)> {
        if let Some(fd) = self.get() {
            return Ok((fd.as_raw_fd(), false));
        }
        let fd = eventfd()?;
        match self.0.compare_exchange(-1, fd.as_raw_fd(), SeqCst, SeqCst) {
            // From now on `self` owns it and closes it on drop.
            Ok(_) => Ok((fd.into_raw_fd(), true)),
            // Another thread made one first; ours is closed as `fd` drops.
            Err(existing) => Ok((existing, false)),
        }
    }

    /// Makes the eventfd readable, if it exists.
    pub(crate) fn signal(&self) {
        if let Some(fd) = self.get() {
            eventfd_signal(fd);
        }
    }
}

impl Drop for LazyEventFd {
    fn drop(&mut self) {
        let fd = *self.0.get_mut();
        if fd != -1 {
            // SAFETY: `get_or_make` gave this descriptor to us alone; nobody else closes it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

/// Adds one to an eventfd's counter, making it readable. A full counter is already readable.
pub(crate) fn eventfd_signal(fd: impl AsFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
    let _ = unsafe { libc::write(fd.as_fd().as_raw_fd(), (&raw const one).cast(), 8) };
}
