//! The URL convenience: `xs_dial`, `xs_listen_url`.

use std::ffi::{CStr, c_char, c_int};

use super::{ffi_call, non_null, socket_of};
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
/// `unix:///PATH`, `unix://@NAME` (Linux abstract name), and `tls://HOST:PORT`,
/// `tls+unix:///PATH` (the same with `XS_PROTO_TLS`, default TLS options: the system's
/// CAs, the URL's host as the name; use `xs_socket_url` to set options first). HOST
/// is an IPv4 address, a bracketed IPv6 address (`[::1]`) or a name; every address a
/// name resolves to is tried in turn.
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

/// Opens an unconnected socket of the kind `url` needs (its family, type and
/// `XS_PROTO_*` layers), so options can be set before `xs_connect_url` or
/// `xs_bind_url`. The family is that of the first address the host resolves to.
///
/// Returns the sid, or -1 with errno as for `xs_dial` (`EFAULT`, `EINVAL`,
/// `EHOSTUNREACH`) or `xs_socket`.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_socket_url(url: *const c_char) -> c_int {
    ffi_call!("xs_socket_url", {
        // SAFETY: the caller's contract.
        let url = unsafe { url_text(url)? };
        Ok(open::socket_for(url)?.sid())
    })
}

/// Connects `sid` to `url`, trying each of its addresses of the socket's family. A TLS
/// socket checks the server certificate against the URL's host unless
/// `XS_TLS_SERVER_NAME` is set.
///
/// Returns 0, or -1 with errno as for `xs_dial` and `xs_connect`; `EINVAL` when the
/// URL has no address of the socket's family.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_connect_url(sid: c_int, url: *const c_char) -> c_int {
    ffi_call!("xs_connect_url", {
        // SAFETY: the caller's contract.
        let url = unsafe { url_text(url)? };
        open::connect_url(&*socket_of(sid)?, url)?;
        Ok(0)
    })
}

/// Binds `sid` to `url`'s first address of the socket's family (TCP sockets get
/// `SO_REUSEADDR`); then `xs_listen` as usual.
///
/// Returns 0, or -1 with errno as for `xs_dial` and `xs_bind`.
///
/// # Safety
/// `url` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_bind_url(sid: c_int, url: *const c_char) -> c_int {
    ffi_call!("xs_bind_url", {
        // SAFETY: the caller's contract.
        let url = unsafe { url_text(url)? };
        open::bind_url(&*socket_of(sid)?, url)?;
        Ok(0)
    })
}
