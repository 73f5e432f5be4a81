//! Constants and callback types of the C header.

use std::ffi::{c_char, c_int, c_void};

/// Option level of xsocket's own socket options (`xs_setsockopt`/`xs_getsockopt`).
pub const XS_SOL_XSOCKET: c_int = 0x5853;

/// `int`, milliseconds: bound on a blocking `xs_connect`; 0 (the default) leaves it to
/// the kernel. When it runs out, `xs_connect` fails with `ETIMEDOUT` and the attempt is
/// abandoned. Non-blocking sockets ignore it.
pub const XS_SO_CONNECT_TIMEOUT: c_int = 1;

/// `int`, read-only: a kernel eventfd that becomes readable when the sid may have
/// events (readable, writable, error, or closed). Edge-style, like `EPOLLET`: read the
/// eventfd to reset it, then call `xs_recv`/`xs_accept`/`xs_send` until `EAGAIN`. It
/// may wake spuriously. Made on first request and owned by the sid: after `xs_close`
/// the event thread closes it (within milliseconds), so take it out of your event
/// loop before `xs_close` and do not use the number afterwards.
pub const XS_SO_NOTIFY_FD: c_int = 2;

/// Logging off (for `xs_set_logger`).
pub const XS_LOG_OFF: c_int = 0;
/// Errors only.
pub const XS_LOG_ERROR: c_int = 1;
/// Errors and warnings.
pub const XS_LOG_WARN: c_int = 2;
/// Also lifecycle messages (event thread start, fork).
pub const XS_LOG_INFO: c_int = 3;
/// Also connection events (bound, listening, connected, accepted, closed).
pub const XS_LOG_DEBUG: c_int = 4;
/// Everything.
pub const XS_LOG_TRACE: c_int = 5;

/// A log callback: `level` is one of `XS_LOG_ERROR` … `XS_LOG_TRACE`; `message` is
/// valid only during the call. It may be called from any thread, including
/// xsocket's event thread, and must not call `xs_set_logger`.
#[allow(non_camel_case_types)]
pub type xs_log_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, level: c_int, message: *const c_char)>;
