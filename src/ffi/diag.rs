//! Diagnostics: `xs_strerror`, `xs_last_error`, `xs_set_logger`.

use std::{
    cell::RefCell,
    ffi::{CString, c_char, c_int, c_void},
};

use super::{LAST_ERROR, errno::errno_of, ffi_call, types::xs_log_fn};
use crate::{
    error::{Error, os_text},
    log,
};

thread_local! {
    /// The text last returned by `xs_strerror` on this thread.
    static STRERROR_TEXT: RefCell<CString> = RefCell::new(CString::default());
    /// The text last returned by `xs_last_error` on this thread.
    static LAST_ERROR_TEXT: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `text` in one of this thread's buffers and returns a pointer to it.
fn thread_text(
    buffer: &'static std::thread::LocalKey<RefCell<CString>>,
    text: String,
) -> *const c_char {
    let text = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
    buffer.with(|slot| {
        *slot.borrow_mut() = text;
        slot.borrow().as_ptr()
    })
}

/// Describes an errno value, as `strerror(3)`, and adds xsocket's detail when the
/// calling thread's last failed xs_ call set that same errno, e.g.
/// `"Bad file descriptor (xs_recv: socket was closed by another thread)"`.
///
/// Returns a string owned by the calling thread, valid until its next `xs_strerror` call.
/// Never NULL.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_strerror(errnum: c_int) -> *const c_char {
    ffi_call!("xs_strerror", {
        let base = os_text(&std::io::Error::from_raw_os_error(errnum));
        let detail = LAST_ERROR.with(|last| match &*last.borrow() {
            Some((function, err)) if errno_of(err) == errnum => Some(match err {
                Error::Os { op, .. } => format!("{function}: {op}"),
                other => format!("{function}: {other}"),
            }),
            _ => None,
        });
        Ok(thread_text(
            &STRERROR_TEXT,
            match detail {
                Some(detail) => format!("{base} ({detail})"),
                None => base,
            },
        ))
    })
}

/// Describes the calling thread's last failed xs_ call in words, e.g.
/// `"xs_connect: connect to 127.0.0.1:9: Connection refused"`. Successful calls do not
/// clear it (like `errno`). Returns `""` when no call has failed on this thread.
///
/// Returns a string owned by the calling thread, valid until its next `xs_last_error` call.
/// Never NULL.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_last_error() -> *const c_char {
    ffi_call!("xs_last_error", {
        let text = LAST_ERROR.with(|last| match &*last.borrow() {
            Some((function, err)) => format!("{function}: {err}"),
            None => String::new(),
        });
        Ok(thread_text(&LAST_ERROR_TEXT, text))
    })
}

/// Sends xsocket's log lines to `callback` (or to stderr when `callback` is NULL) for
/// levels up to `max_level` (`XS_LOG_OFF` … `XS_LOG_TRACE`). Without a call, the
/// environment variable `XSOCKET_LOG` (`error`, `warn`, `info`, `debug`, `trace`)
/// turns stderr logging on.
///
/// Returns 0, or -1 with errno `EINVAL` (`max_level` outside 0..5).
///
/// # Safety
/// `callback` must be safe to call from any thread with `userdata` until it is
/// replaced; it must not call `xs_set_logger`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_set_logger(
    callback: xs_log_fn,
    userdata: *mut c_void,
    max_level: c_int,
) -> c_int {
    ffi_call!("xs_set_logger", {
        if !(0..=5).contains(&max_level) {
            return Err(Error::InvalidArgument(
                format!("log level {max_level} is not 0..5").into(),
            ));
        }
        log::set(callback, userdata, max_level);
        Ok(0)
    })
}
