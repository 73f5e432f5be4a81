//! The C ABI: every `extern "C"` function of the library, and nothing else.
//!
//! Each function checks its arguments, converts between C and Rust types, calls into
//! the crate, and turns an [`Error`] into `-1` (or NULL) with `errno` set. Every body
//! runs inside [`ffi_call!`], which catches panics, so no Rust panic ever unwinds
//! into C. Output arguments are written only on success.

pub mod diag;
mod errno;
pub mod io;
pub mod opt;
pub mod poll;
pub mod socket;
pub mod types;
pub mod url;

use std::{cell::RefCell, ffi::c_char, sync::Arc};

use crate::{error::Error, fork, socket::Socket, table};

/// What a C function returns on failure.
pub(crate) trait FailValue {
    /// `-1` for numbers, NULL for pointers.
    const FAIL: Self;
}

impl FailValue for i32 {
    const FAIL: Self = -1;
}

impl FailValue for isize {
    const FAIL: Self = -1;
}

impl FailValue for *const c_char {
    const FAIL: Self = std::ptr::null();
}

thread_local! {
    /// This thread's last failure: the C function and the error, formatted only when asked.
    static LAST_ERROR: RefCell<Option<(&'static str, Error)>> = const { RefCell::new(None) };
}

/// Records `err` as this thread's last error, sets `errno`, and returns the failure value.
pub(crate) fn fail<T: FailValue>(function: &'static str, err: Error) -> T {
    let errno = errno::errno_of(&err);
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = Some((function, err)));
    errno::set_errno(errno);
    T::FAIL
}

/// Runs an FFI body that returns `Result<T>`, catching panics; `$function` names the
/// C function for `xs_last_error`.
macro_rules! ffi_call {
    ($function:literal, $body:block) => {{
        let outcome = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> $crate::error::Result<_> { $body },
        ));
        match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(err)) => $crate::ffi::fail($function, err),
            Err(_) => $crate::ffi::fail(
                $function,
                $crate::error::Error::Internal("a Rust panic was caught at the C boundary"),
            ),
        }
    }};
}
pub(crate) use ffi_call;

/// The open socket behind `sid`.
pub(crate) fn socket_of(sid: i32) -> crate::error::Result<Arc<Socket>> {
    fork::after_fork_check();
    table::lookup(sid)
}

/// Fails with `EFAULT` when a required pointer is NULL.
pub(crate) fn non_null<T>(ptr: *const T, what: &'static str) -> crate::error::Result<()> {
    if ptr.is_null() { Err(Error::NullPointer(what)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    #[test]
    fn a_panic_becomes_minus_one_with_eio() {
        let rc: i32 = ffi_call!("xs_test", {
            if errno() >= 0 {
                panic!("boom");
            }
            Ok(0)
        });
        assert_eq!(rc, -1);
        assert_eq!(errno(), libc::EIO);
        // SAFETY: xs_last_error returns a valid C string owned by this thread.
        let detail = unsafe { CStr::from_ptr(diag::xs_last_error()) };
        assert_eq!(
            detail.to_str().expect("utf-8"),
            "xs_test: internal error: a Rust panic was caught at the C boundary"
        );
    }

    #[test]
    fn errors_set_errno_and_values_pass_through() {
        let rc: isize = ffi_call!("xs_test", { Err(Error::BadSid(42)) });
        assert_eq!((rc, errno()), (-1, libc::EBADF));
        let rc: isize = ffi_call!("xs_test", { Ok(7) });
        assert_eq!(rc, 7);
        let ptr: *const c_char = ffi_call!("xs_test", { Err(Error::NullPointer("buf")) });
        assert!(ptr.is_null());
        assert_eq!(errno(), libc::EFAULT);
    }

    #[test]
    fn strerror_adds_the_detail_of_the_last_failure_with_that_errno() {
        let _: i32 = ffi_call!("xs_recv", { Err(Error::ClosedWhileInUse) });
        let text = |e| {
            // SAFETY: xs_strerror returns a valid C string owned by this thread.
            unsafe { CStr::from_ptr(diag::xs_strerror(e)) }.to_str().unwrap().to_owned()
        };
        assert_eq!(
            text(libc::EBADF),
            "Bad file descriptor (xs_recv: socket was closed by another thread)"
        );
        assert_eq!(text(libc::ENOENT), "No such file or directory");
    }
}
