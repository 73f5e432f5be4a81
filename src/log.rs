//! The pluggable logger: a C callback, or stderr when `XSOCKET_LOG` is set.
//!
//! `XSOCKET_LOG=error|warn|info|debug|trace` turns stderr logging on without code;
//! `xs_set_logger` replaces the sink and the level at run time. Checking whether a
//! level is enabled is one atomic load, so disabled logging costs nothing measurable.

use std::{
    ffi::{CString, c_void},
    fmt,
    io::Write,
    sync::atomic::{AtomicI32, Ordering::Relaxed},
};

use crate::fork::ForkSafe;

/// Severity of a log line; the numbers are the `XS_LOG_*` constants of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Something failed that the application may not see otherwise.
    Error = 1,
    /// Something odd that xsocket recovered from.
    Warn = 2,
    /// Lifecycle: event thread start, fork detected.
    Info = 3,
    /// Connection events: bound, listening, connected, accepted, closed.
    Debug = 4,
    /// Everything else, including per-socket release.
    Trace = 5,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// A C log callback: `void cb(void *userdata, int level, const char *message)`.
pub(crate) type Callback = crate::ffi::types::xs_log_fn;

/// Highest enabled level (0: off); -1 until read from the environment.
static MAX_LEVEL: AtomicI32 = AtomicI32::new(-1);

/// Where lines go: the C callback and its userdata, or stderr when `None`.
pub(crate) static SINK: ForkSafe<(Callback, usize)> = ForkSafe::new();

/// Parses a level name as `XSOCKET_LOG` takes it (also `off` and numbers 0-5).
pub(crate) fn parse_level(text: &str) -> Option<i32> {
    let text = text.trim().to_ascii_lowercase();
    let level = match text.as_str() {
        "" | "off" | "none" => 0,
        "error" => 1,
        "warn" | "warning" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        n => n.parse().ok().filter(|n| (0..=5).contains(n))?,
    };
    Some(level)
}

fn max_level() -> i32 {
    match MAX_LEVEL.load(Relaxed) {
        -1 => {
            let level =
                std::env::var("XSOCKET_LOG").ok().and_then(|v| parse_level(&v)).unwrap_or(0);
            // Keep a level set by xs_set_logger in the meantime.
            let _ = MAX_LEVEL.compare_exchange(-1, level, Relaxed, Relaxed);
            MAX_LEVEL.load(Relaxed)
        }
        level => level,
    }
}

/// Whether lines at `level` go anywhere.
pub(crate) fn enabled(level: Level) -> bool {
    level as i32 <= max_level()
}

/// Replaces the sink and the level (0 = off, 1 = error … 5 = trace).
pub(crate) fn set(callback: Callback, userdata: *mut c_void, level: i32) {
    *SINK.write() = (callback, userdata as usize);
    MAX_LEVEL.store(level.clamp(0, 5), Relaxed);
}

/// Writes one line at `level`; call only when [`enabled`] says so.
pub(crate) fn write(level: Level, args: fmt::Arguments<'_>) {
    let (callback, userdata) = *SINK.read();
    match callback {
        Some(callback) => {
            let text = fmt::format(args).replace('\0', "\\0");
            let line = CString::new(text).unwrap_or_default();
            // SAFETY: the application registered this callback with this userdata; the
            // message is a valid NUL-terminated string for the duration of the call.
            unsafe { callback(userdata as *mut c_void, level as i32, line.as_ptr()) };
        }
        None => {
            let _ = writeln!(std::io::stderr().lock(), "xsocket[{}] {args}", level.name());
        }
    }
}

/// Logs a formatted line if its level is enabled: `log!(Level::Debug, "sid {}", sid)`.
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, format_args!($($arg)*));
        }
    };
}
pub(crate) use log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_level_names_and_numbers() {
        assert_eq!(parse_level("debug"), Some(4));
        assert_eq!(parse_level(" TRACE "), Some(5));
        assert_eq!(parse_level("off"), Some(0));
        assert_eq!(parse_level("3"), Some(3));
        assert_eq!(parse_level("9"), None);
        assert_eq!(parse_level("loud"), None);
    }
}
