//! The library's one error type.
//!
//! Errors are built where they happen and become an errno only at the FFI edge
//! (`ffi::errno`). This module knows nothing about errno values.

use std::{borrow::Cow, io};

/// Why an xsocket operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The sid is not open (never was, or was closed). Caller error.
    #[error("socket id {0} is not open")]
    BadSid(i32),
    /// Another thread closed the socket while this call was using it.
    #[error("socket was closed by another thread")]
    ClosedWhileInUse,
    /// A required pointer argument was NULL.
    #[error("{0} is NULL")]
    NullPointer(&'static str),
    /// An argument is out of range or does not fit the socket's state.
    #[error("invalid argument: {0}")]
    InvalidArgument(Cow<'static, str>),
    /// The address family is not one xsocket serves.
    #[error("address family {0} is not supported (use AF_INET, AF_INET6 or AF_UNIX)")]
    FamilyNotSupported(i32),
    /// The socket type is not one xsocket serves.
    #[error("socket type {0} is not supported (use SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET)")]
    TypeNotSupported(i32),
    /// The protocol number names no transport xsocket has.
    #[error("protocol {0:#x} is not supported")]
    ProtocolNotSupported(i32),
    /// The option (level, name) is unknown, or read-only.
    #[error("option {name} at level {level:#x} is not supported")]
    OptionNotSupported {
        /// The option level.
        level: i32,
        /// The option name.
        name: i32,
    },
    /// A host name in a URL could not be resolved.
    #[error("cannot resolve host '{host}': {reason}")]
    Resolve {
        /// The name as given.
        host: String,
        /// The resolver's words.
        reason: String,
    },
    /// The TLS layer failed: a handshake refused, a bad record, a truncated stream.
    /// Fatal for the connection.
    #[error("tls: {0}")]
    Tls(String),
    /// The connection failed earlier (e.g. its handshake); every later call says so.
    #[error("{detail}")]
    Failed {
        /// The errno of the first failure.
        errno: i32,
        /// What the first failure said.
        detail: String,
    },
    /// A wait bounded by an xsocket timeout ran out.
    #[error("{0} timed out")]
    TimedOut(&'static str),
    /// The kernel refused a call.
    #[error("{op}: {}", os_text(source))]
    Os {
        /// What was being done, e.g. `"connect to 127.0.0.1:80"`.
        op: Cow<'static, str>,
        /// The kernel's error.
        source: io::Error,
    },
    /// A bug in xsocket: a Rust panic caught at the FFI edge, or a dead event thread.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The kernel's last error (errno), labelled with the operation that failed.
    pub(crate) fn last_os(op: impl Into<Cow<'static, str>>) -> Self {
        Self::Os { op: op.into(), source: io::Error::last_os_error() }
    }

    /// A kernel-style error with this errno, labelled with the operation.
    pub(crate) fn errno(op: impl Into<Cow<'static, str>>, errno: i32) -> Self {
        Self::Os { op: op.into(), source: io::Error::from_raw_os_error(errno) }
    }

    /// The errno of a kernel error, if this is one.
    pub(crate) fn os_errno(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Adds what was being done to a kernel error; other errors are returned unchanged.
    pub(crate) fn context(self, what: impl FnOnce() -> String) -> Self {
        match self {
            Self::Os { op, source } => Self::Os { op: format!("{op} {}", what()).into(), source },
            other => other,
        }
    }
}

/// The kernel's text for an error, without Rust's " (os error N)" suffix.
pub(crate) fn os_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// Result with the library's [`Error`].
pub(crate) type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_keeps_errno_and_context() {
        let err = Error::Os {
            op: "connect".into(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        }
        .context(|| "to 127.0.0.1:9".into());
        assert_eq!(err.os_errno(), Some(libc::ECONNREFUSED));
        let text = err.to_string();
        assert!(text.starts_with("connect to 127.0.0.1:9: "), "{text}");
        assert_eq!(text, "connect to 127.0.0.1:9: Connection refused");
    }

    #[test]
    fn non_os_errors_have_no_errno() {
        assert_eq!(Error::BadSid(3).os_errno(), None);
        assert_eq!(Error::BadSid(3).to_string(), "socket id 3 is not open");
    }
}
