//! The URL convenience: `xs_dial`, `xs_listen_url`.

use std::ffi::{CStr, c_char, c_int};

use super::{ffi_call, non_null};
use crate::{error::Error, open};

/// Reads a C string argument as UTF-8.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
unsafe fn url_text<'a>(url: *const c_char) -> crate::error::Result<&'a str> {
    non_null(url, "url")?;
    // SAFETY: non-NULL and NUL-terminated (caller's contract).
    unsafe { CStr::from_ptr(url) }
        .to_str()
        .map_err(|_| Error::InvalidArgument("url is not UTF-8".into()))
}

/// Opens a socket connected to `url` and returns its sid (blocking).
///
/// URLs: `tcp://HOST:PORT`, `udp://HOST:PORT` (a connected UDP socket),
/// `unix:///PATH`, `unix://@NAME` (Linux abstract name). HOST is an IPv4 address,
/// a bracketed IPv6 address (`[::1]`) or a name; every address a name resolves to is
/// tried in turn.
///
/// Returns the sid, or -1 with errno: `EFAULT` (NULL `url`), `EINVAL` (malformed
/// URL or unknown scheme; `xs_last_error()` says which), `EHOSTUNREACH` (name not
/// resolved), or the errors of `xs_socket` and `xs_connect` (`ECONNREFUSED`,
/// `ENOENT`, `ETIMEDOUT`, …) for the last address tried.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_dial(url: *const c_char) -> c_int {
    ffi_call!("xs_dial", {
        // SAFETY: the caller's contract.
        let url = unsafe { url_text(url)? };
        Ok(open::dial(url)?.sid())
    })
}

/// Opens a socket bound to `url` and returns its sid: listening with `backlog` for
/// `tcp://` and `unix://`, bound for `udp://`. Port 0 picks a free port (read it
/// with `xs_getsockname`). TCP listeners get `SO_REUSEADDR`. A Unix path that
/// exists already is `EADDRINUSE`, as with `bind(2)`.
///
/// Returns the sid, or -1 with errno: `EFAULT`, `EINVAL`, `EHOSTUNREACH` (as for
/// `xs_dial`), or the errors of `xs_socket`, `xs_bind` (`EADDRINUSE`, `EACCES`, …) and
/// `xs_listen`.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_listen_url(url: *const c_char, backlog: c_int) -> c_int {
    ffi_call!("xs_listen_url", {
        // SAFETY: the caller's contract.
        let url = unsafe { url_text(url)? };
        Ok(open::listen(url, backlog)?.sid())
    })
}
