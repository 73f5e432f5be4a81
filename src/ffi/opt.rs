//! Socket options: `xs_setsockopt`, `xs_getsockopt`.

use std::ffi::{c_int, c_void};

use libc::socklen_t;

use super::{
    ffi_call, non_null, socket_of,
    types::{XS_SOL_SMUX, XS_SOL_TLS, XS_SOL_WS, XS_SOL_XSOCKET},
};
use crate::{
    error::Error, options, smux::SmuxLayer, socket::Socket, sys::syscall, tls::TlsLayer,
    ws::WsLayer,
};

/// The TLS layer of a socket, for `XS_SOL_TLS` options.
fn tls_of(socket: &Socket) -> crate::error::Result<&TlsLayer> {
    socket.tls().ok_or(Error::OptionNotSupported { level: XS_SOL_TLS, name: 0 })
}

/// The WebSocket layer of a socket, for `XS_SOL_WS` options.
fn ws_of(socket: &Socket) -> crate::error::Result<&WsLayer> {
    socket.ws().ok_or(Error::OptionNotSupported { level: XS_SOL_WS, name: 0 })
}

/// The smux layer of a socket, for `XS_SOL_SMUX` options.
fn smux_of(socket: &Socket) -> crate::error::Result<&SmuxLayer> {
    socket.smux().ok_or(Error::OptionNotSupported { level: XS_SOL_SMUX, name: 0 })
}

/// Whether a level is one of xsocket's own (not the kernel's).
fn own_level(level: c_int) -> bool {
    matches!(level, XS_SOL_XSOCKET | XS_SOL_TLS | XS_SOL_WS | XS_SOL_SMUX)
}

/// An smux stream's own timeout (`SO_RCVTIMEO`: 0, `SO_SNDTIMEO`: 1): the kernel
/// socket under it is the whole session's.
fn stream_timeout(socket: &Socket, level: c_int, optname: c_int) -> Option<(&SmuxLayer, usize)> {
    let which = match (level, optname) {
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => 0,
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => 1,
        _ => return None,
    };
    socket.smux().filter(|s| s.is_stream()).map(|s| (s, which))
}

/// Sets a socket option, as `setsockopt(2)`.
///
/// Kernel levels (`SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IP`, `IPPROTO_IPV6`, …) go to
/// the kernel socket unchanged: `SO_REUSEADDR`, `SO_REUSEPORT`, `SO_KEEPALIVE`,
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` (`struct timeval`), `SO_LINGER`, `SO_SNDBUF`,
/// `SO_RCVBUF`, `TCP_NODELAY`, `IPV6_V6ONLY` and the rest behave and read back
/// exactly as on a kernel socket. Level `XS_SOL_XSOCKET` takes xsocket's own options
/// (`XS_SO_*`), level `XS_SOL_TLS` the TLS options (`XS_TLS_*`) of an `XS_PROTO_TLS`
/// socket.
///
/// Returns 0, or -1 with errno: `EBADF`, `EFAULT` (bad `optval`), `EINVAL` (bad
/// `optlen` or value), `ENOPROTOOPT` (unknown option, or read-only).
///
/// # Safety
/// `optval` must point to `optlen` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_setsockopt(
    sid: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    ffi_call!("xs_setsockopt", {
        let socket = socket_of(sid)?;
        if let Some((smux, which)) = stream_timeout(&socket, level, optname) {
            if (optlen as usize) < size_of::<libc::timeval>() {
                return Err(Error::InvalidArgument("a timeout is a struct timeval".into()));
            }
            non_null(optval, "optval")?;
            // SAFETY: non-NULL, with room for a timeval (checked above).
            let tv = unsafe { optval.cast::<libc::timeval>().read_unaligned() };
            if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Error::InvalidArgument("timeval out of range".into()));
            }
            let limit = std::time::Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
            smux.set_stream_timeout(which, limit);
            return Ok(0);
        }
        if !own_level(level) {
            syscall!("setsockopt", setsockopt(socket.raw_fd(), level, optname, optval, optlen))?;
            return Ok(0);
        }
        if optlen > 0 {
            non_null(optval, "optval")?;
        }
        let value: &[u8] = if optlen == 0 {
            &[]
        } else {
            // SAFETY: non-NULL, and the caller promises `optlen` readable bytes.
            unsafe { std::slice::from_raw_parts(optval.cast(), optlen as usize) }
        };
        if level == XS_SOL_TLS {
            tls_of(&socket)?.set_option(optname, value)?;
        } else if level == XS_SOL_WS {
            ws_of(&socket)?.set_option(optname, value)?;
        } else if level == XS_SOL_SMUX {
            smux_of(&socket)?.set_option(optname, value)?;
        } else {
            options::set(&socket, optname, value)?;
        }
        Ok(0)
    })
}

/// Reads a socket option, as `getsockopt(2)`: kernel levels go to the kernel socket,
/// `XS_SOL_XSOCKET` reads xsocket's own options (all `int`), `XS_SOL_TLS` the TLS
/// connection's parameters once its handshake is done (`EINVAL` before). `*optlen` is the size of
/// `optval` on entry and the size written on return.
///
/// Returns 0, or -1 with errno: `EBADF`, `EFAULT` (NULL `optval` or `optlen`),
/// `EINVAL` (`*optlen` too small), `ENOPROTOOPT` (unknown option), or for
/// `XS_SO_NOTIFY_FD` the errors of making an eventfd (`EMFILE`, `ENFILE`).
///
/// # Safety
/// `optlen` must be valid for reading and writing and `optval` for `*optlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_getsockopt(
    sid: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    ffi_call!("xs_getsockopt", {
        let socket = socket_of(sid)?;
        if let Some((smux, which)) = stream_timeout(&socket, level, optname) {
            non_null(optlen, "optlen")?;
            non_null(optval, "optval")?;
            // SAFETY: non-NULL, and the caller promises it is valid.
            if (unsafe { *optlen } as usize) < size_of::<libc::timeval>() {
                return Err(Error::InvalidArgument("optlen is smaller than a timeval".into()));
            }
            let limit = smux.stream_timeout(which).unwrap_or_default();
            let tv = libc::timeval {
                tv_sec: limit.as_secs() as libc::time_t,
                tv_usec: limit.subsec_micros() as libc::suseconds_t,
            };
            // SAFETY: `optval` has room for a timeval (checked above).
            unsafe {
                optval.cast::<libc::timeval>().write_unaligned(tv);
                *optlen = size_of::<libc::timeval>() as socklen_t;
            }
            return Ok(0);
        }
        if !own_level(level) {
            syscall!("getsockopt", getsockopt(socket.raw_fd(), level, optname, optval, optlen))?;
            // A layer runs over a kernel stream: SO_TYPE is the delivery asked for.
            if (level, optname) == (libc::SOL_SOCKET, libc::SO_TYPE) && socket.ws().is_some() {
                // SAFETY: the kernel just wrote an int there, so it is valid for one.
                unsafe { optval.cast::<c_int>().write_unaligned(socket.sock_type()) };
            }
            // A handshake that failed after a non-blocking connect reports like the
            // connect would have: through SO_ERROR, once.
            let layer_error = || {
                socket
                    .ws()
                    .and_then(WsLayer::take_error)
                    .or_else(|| socket.tls().and_then(TlsLayer::take_error))
            };
            if (level, optname) == (libc::SOL_SOCKET, libc::SO_ERROR)
                && let Some(errno) = layer_error()
            {
                // SAFETY: the kernel just wrote an int there, so it is valid for one.
                unsafe {
                    if optval.cast::<c_int>().read_unaligned() == 0 {
                        optval.cast::<c_int>().write_unaligned(errno);
                    }
                }
            }
            return Ok(0);
        }
        non_null(optlen, "optlen")?;
        non_null(optval, "optval")?;
        // SAFETY: non-NULL, and the caller promises it is valid.
        let room = unsafe { *optlen } as usize;
        if level == XS_SOL_TLS || level == XS_SOL_WS {
            let value = if level == XS_SOL_TLS {
                tls_of(&socket)?.option(optname)?
            } else {
                ws_of(&socket)?.option(optname)?
            };
            if room < value.len() {
                return Err(Error::InvalidArgument(
                    format!("optlen {room} is too small for {} bytes", value.len()).into(),
                ));
            }
            // SAFETY: `optval` has room for `value.len()` bytes (checked above).
            unsafe {
                std::ptr::copy_nonoverlapping(value.as_ptr(), optval.cast::<u8>(), value.len());
                *optlen = value.len() as socklen_t;
            }
            return Ok(0);
        }
        if room < size_of::<c_int>() {
            return Err(Error::InvalidArgument("optlen is smaller than an int".into()));
        }
        let value = if level == XS_SOL_SMUX {
            smux_of(&socket)?.option(&socket, optname)?
        } else {
            options::get(&socket, optname)?
        };
        // SAFETY: `optval` has room for an int (checked above); it may be unaligned.
        unsafe {
            optval.cast::<c_int>().write_unaligned(value);
            *optlen = size_of::<c_int>() as socklen_t;
        }
        Ok(0)
    })
}

/// Reads the library-wide TLS handshake counters: handshakes completed (as client or
/// server) that resumed a session, and full ones. Either pointer may be NULL.
///
/// Returns 0 (it cannot fail).
///
/// # Safety
/// `resumed` and `full` must each be NULL or valid for writing a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_tls_handshake_counts(resumed: *mut u64, full: *mut u64) -> c_int {
    ffi_call!("xs_tls_handshake_counts", {
        let (hits, misses) = crate::tls::handshake_counts();
        // SAFETY: each pointer is NULL or valid for writing (caller's contract).
        unsafe {
            if !resumed.is_null() {
                resumed.write_unaligned(hits);
            }
            if !full.is_null() {
                full.write_unaligned(misses);
            }
        }
        Ok(0)
    })
}
