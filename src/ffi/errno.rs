//! The one mapping from [`Error`] to errno, and the thread's `errno` itself.

use crate::error::Error;

/// The POSIX errno for an error. Exhaustive on purpose: a new variant needs a decision.
pub(crate) fn errno_of(err: &Error) -> i32 {
    match err {
        Error::BadSid(_) | Error::ClosedWhileInUse => libc::EBADF,
        Error::NullPointer(_) => libc::EFAULT,
        Error::InvalidArgument(_) => libc::EINVAL,
        Error::FamilyNotSupported(_) => libc::EAFNOSUPPORT,
        Error::TypeNotSupported(_) => libc::ESOCKTNOSUPPORT,
        Error::ProtocolNotSupported(_) => libc::EPROTONOSUPPORT,
        Error::OptionNotSupported { .. } => libc::ENOPROTOOPT,
        Error::TimedOut(_) => libc::ETIMEDOUT,
        Error::Resolve { .. } => libc::EHOSTUNREACH,
        Error::Tls(_) => libc::EPROTO,
        Error::Failed { errno, .. } => *errno,
        Error::Os { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        Error::Internal(_) => libc::EIO,
    }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(value: i32) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread.
    unsafe { *libc::__errno_location() = value };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_keep_their_errno() {
        let source = std::io::Error::from_raw_os_error(libc::ECONNRESET);
        let err = Error::Os { op: "recv".into(), source };
        assert_eq!(errno_of(&err), libc::ECONNRESET);
    }

    #[test]
    fn library_errors_map_to_posix_values() {
        assert_eq!(errno_of(&Error::BadSid(1)), libc::EBADF);
        assert_eq!(errno_of(&Error::ClosedWhileInUse), libc::EBADF);
        assert_eq!(errno_of(&Error::NullPointer("buf")), libc::EFAULT);
        assert_eq!(errno_of(&Error::TimedOut("connect")), libc::ETIMEDOUT);
        assert_eq!(errno_of(&Error::FamilyNotSupported(99)), libc::EAFNOSUPPORT);
        assert_eq!(errno_of(&Error::Internal("x")), libc::EIO);
    }
}
