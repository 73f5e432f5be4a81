//! WebSocket options (level `XS_SOL_WS`), parsed from the bytes C hands to
//! `xs_setsockopt`.

use std::time::Duration;

use super::{handshake, heartbeat::HeartbeatConfig};
use crate::options::non_negative_int;
use crate::{
    error::{Error, Result},
    ffi::types::*,
};

/// The largest message accepted unless `XS_WS_MAX_MESSAGE` says otherwise.
const DEFAULT_MAX_MESSAGE: u64 = 16 << 20;
/// How long the close handshake waits for the peer unless told otherwise.
const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a WebSocket socket was asked for; accepted sockets copy their listener's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsOptions {
    /// Client: the request path; server: the only path accepted.
    pub(crate) path: Option<String>,
    /// Client: the `Host` header.
    pub(crate) host: Option<String>,
    /// Client: the `Origin` header.
    pub(crate) origin: Option<String>,
    /// Subprotocols offered (client) or spoken (server), in order.
    pub(crate) protocols: Vec<String>,
    /// Server: origins allowed (empty: any).
    pub(crate) allowed_origins: Vec<String>,
    /// Ping interval (zero: no heartbeat).
    pub(crate) ping_interval: Duration,
    /// How long a pong may take (zero: the ping interval).
    pub(crate) pong_timeout: Duration,
    /// Misses tolerated in a row.
    pub(crate) missed_pongs: u32,
    /// How long the close handshake may wait for the peer.
    pub(crate) close_timeout: Duration,
    /// Outgoing frame payload limit (0: one frame per message).
    pub(crate) fragment_size: usize,
    /// Largest message accepted.
    pub(crate) max_message: u64,
    /// The close code sent by `xs_close`/`xs_shutdown`.
    pub(crate) close_code: u16,
    /// The close reason sent with it.
    pub(crate) close_reason: String,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            path: None,
            host: None,
            origin: None,
            protocols: Vec::new(),
            allowed_origins: Vec::new(),
            ping_interval: Duration::ZERO,
            pong_timeout: Duration::ZERO,
            missed_pongs: 2,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            fragment_size: 0,
            max_message: DEFAULT_MAX_MESSAGE,
            close_code: 1000,
            close_reason: String::new(),
        }
    }
}

fn invalid(why: impl Into<String>) -> Error {
    Error::InvalidArgument(why.into().into())
}

/// An option value as one line of text for an HTTP header: UTF-8 up to an optional
/// trailing NUL, without control characters (no header injection).
fn text(value: &[u8]) -> Result<String> {
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    let text =
        std::str::from_utf8(value).map_err(|_| invalid("WebSocket option text is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(invalid("WebSocket option text may not hold control characters"));
    }
    Ok(text.trim().to_string())
}

fn millis(value: &[u8], name: &str) -> Result<Duration> {
    Ok(Duration::from_millis(non_negative_int(value, name)?.into()))
}

/// A comma-separated list of tokens.
fn tokens(value: &[u8]) -> Result<Vec<String>> {
    Ok(handshake::list(&text(value)?).map(str::to_string).collect())
}

fn int_bytes(value: impl TryInto<i32>) -> Vec<u8> {
    value.try_into().unwrap_or(i32::MAX).to_ne_bytes().to_vec()
}

impl WsOptions {
    /// Sets one option from its raw value bytes.
    pub(crate) fn set(&mut self, name: i32, value: &[u8]) -> Result<()> {
        match name {
            XS_WS_PATH => {
                let path = text(value)?;
                if !path.starts_with('/') || path.contains(' ') {
                    return Err(invalid("XS_WS_PATH must start with '/' and hold no spaces"));
                }
                self.path = Some(path);
            }
            XS_WS_HOST => self.host = Some(text(value)?).filter(|h| !h.is_empty()),
            XS_WS_ORIGIN => self.origin = Some(text(value)?).filter(|o| !o.is_empty()),
            XS_WS_SUBPROTOCOLS => self.protocols = tokens(value)?,
            XS_WS_ALLOWED_ORIGINS => self.allowed_origins = tokens(value)?,
            XS_WS_PING_INTERVAL => self.ping_interval = millis(value, "XS_WS_PING_INTERVAL")?,
            XS_WS_PONG_TIMEOUT => self.pong_timeout = millis(value, "XS_WS_PONG_TIMEOUT")?,
            XS_WS_MISSED_PONGS => {
                self.missed_pongs = non_negative_int(value, "XS_WS_MISSED_PONGS")?
            }
            XS_WS_CLOSE_TIMEOUT => self.close_timeout = millis(value, "XS_WS_CLOSE_TIMEOUT")?,
            XS_WS_FRAGMENT_SIZE => {
                self.fragment_size = non_negative_int(value, "XS_WS_FRAGMENT_SIZE")? as usize;
            }
            XS_WS_MAX_MESSAGE => {
                let max = non_negative_int(value, "XS_WS_MAX_MESSAGE")?;
                if max == 0 {
                    return Err(invalid("XS_WS_MAX_MESSAGE must be at least 1"));
                }
                self.max_message = max.into();
            }
            XS_WS_CLOSE_CODE => {
                let code = non_negative_int(value, "XS_WS_CLOSE_CODE")?;
                match u16::try_from(code) {
                    Ok(code) if super::decoder::close_code_allowed(code) => self.close_code = code,
                    _ => {
                        return Err(invalid(
                            "XS_WS_CLOSE_CODE must be 1000-1003, 1007-1014 or 3000-4999",
                        ));
                    }
                }
            }
            XS_WS_CLOSE_REASON => {
                let reason = text(value)?;
                if reason.len() > 123 {
                    return Err(invalid("XS_WS_CLOSE_REASON is limited to 123 bytes"));
                }
                self.close_reason = reason;
            }
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_WS, name }),
        }
        Ok(())
    }

    /// Reads one of the settable options back (the connection's own are the layer's).
    pub(crate) fn get(&self, name: i32) -> Result<Vec<u8>> {
        let text = |value: &Option<String>| value.clone().unwrap_or_default().into_bytes();
        Ok(match name {
            XS_WS_PATH => text(&self.path),
            XS_WS_HOST => text(&self.host),
            XS_WS_ORIGIN => text(&self.origin),
            XS_WS_SUBPROTOCOLS => self.protocols.join(",").into_bytes(),
            XS_WS_ALLOWED_ORIGINS => self.allowed_origins.join(",").into_bytes(),
            XS_WS_PING_INTERVAL => int_bytes(self.ping_interval.as_millis()),
            XS_WS_PONG_TIMEOUT => int_bytes(self.pong_timeout.as_millis()),
            XS_WS_MISSED_PONGS => int_bytes(self.missed_pongs),
            XS_WS_CLOSE_TIMEOUT => int_bytes(self.close_timeout.as_millis()),
            XS_WS_FRAGMENT_SIZE => int_bytes(self.fragment_size),
            XS_WS_MAX_MESSAGE => int_bytes(self.max_message),
            XS_WS_CLOSE_CODE => int_bytes(self.close_code),
            XS_WS_CLOSE_REASON => self.close_reason.clone().into_bytes(),
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_WS, name }),
        })
    }

    /// The heartbeat asked for, if any.
    pub(crate) fn heartbeat(&self) -> Option<HeartbeatConfig> {
        (!self.ping_interval.is_zero()).then(|| HeartbeatConfig {
            interval: self.ping_interval,
            pong_timeout: if self.pong_timeout.is_zero() {
                self.ping_interval
            } else {
                self.pong_timeout
            },
            missed_allowed: self.missed_pongs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_back_and_bad_values_are_refused() {
        let mut options = WsOptions::default();
        options.set(XS_WS_PATH, b"/chat\0").expect("path");
        options.set(XS_WS_SUBPROTOCOLS, b"chat, superchat").expect("list");
        options.set(XS_WS_PING_INTERVAL, &250i32.to_ne_bytes()).expect("int");
        assert_eq!(options.get(XS_WS_PATH).expect("path"), b"/chat");
        assert_eq!(options.get(XS_WS_SUBPROTOCOLS).expect("list"), b"chat,superchat");
        assert_eq!(options.get(XS_WS_PING_INTERVAL).expect("int"), 250i32.to_ne_bytes());
        assert_eq!(options.heartbeat().map(|h| h.pong_timeout), Some(Duration::from_millis(250)));
        assert!(options.set(XS_WS_PATH, b"no-slash").is_err());
        assert!(options.set(XS_WS_HOST, b"evil\r\nX-Injected: 1").is_err());
        assert!(options.set(XS_WS_PING_INTERVAL, &(-1i32).to_ne_bytes()).is_err());
        assert!(options.set(XS_WS_CLOSE_CODE, &1005i32.to_ne_bytes()).is_err());
        assert!(options.set(XS_WS_CLOSE_CODE, &4000i32.to_ne_bytes()).is_ok());
        assert!(options.set(XS_WS_MAX_MESSAGE, &[1, 2]).is_err());
        assert!(matches!(options.set(999, &[]), Err(Error::OptionNotSupported { .. })));
    }
}
