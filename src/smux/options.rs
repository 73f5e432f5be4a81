//! smux options (level `XS_SOL_SMUX`), parsed from the bytes C hands to `xs_setsockopt`.

use std::time::Duration;

use super::session::SessionConfig;
use crate::options::non_negative_int;
use crate::{
    error::{Error, Result},
    ffi::types::*,
};

/// What an smux socket was asked for; sessions accepted copy their listener's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SmuxOptions {
    /// Window, stream limits.
    pub(crate) session: SessionConfig,
    /// PIN from the start, this often (zero: only answer a v2 peer's).
    pub(crate) pin_interval: Duration,
    /// Fail the session after this long without a byte from the peer (zero: never).
    pub(crate) idle_timeout: Duration,
}

fn positive(value: &[u8], name: &str, max: u32) -> Result<u32> {
    match non_negative_int(value, name)? {
        n @ 1.. if n <= max => Ok(n),
        _ => Err(Error::InvalidArgument(format!("{name} must be 1..{max}").into())),
    }
}

impl SmuxOptions {
    /// Sets one option from its raw value bytes.
    pub(crate) fn set(&mut self, name: i32, value: &[u8]) -> Result<()> {
        match name {
            XS_SMUX_WINDOW => {
                // At least one full frame, so a stream can always move.
                let window = positive(value, "XS_SMUX_WINDOW", i32::MAX as u32)?;
                if window < 65_536 {
                    return Err(Error::InvalidArgument("XS_SMUX_WINDOW must be >= 65536".into()));
                }
                self.session.window = window;
            }
            XS_SMUX_MAX_STREAMS => {
                self.session.max_streams = positive(value, "XS_SMUX_MAX_STREAMS", 65_535)? as usize;
            }
            XS_SMUX_ACCEPT_BACKLOG => {
                self.session.accept_backlog =
                    positive(value, "XS_SMUX_ACCEPT_BACKLOG", 65_535)? as usize;
            }
            XS_SMUX_PIN_INTERVAL => {
                self.pin_interval =
                    Duration::from_millis(non_negative_int(value, "XS_SMUX_PIN_INTERVAL")?.into());
            }
            XS_SMUX_IDLE_TIMEOUT => {
                self.idle_timeout =
                    Duration::from_millis(non_negative_int(value, "XS_SMUX_IDLE_TIMEOUT")?.into());
            }
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_SMUX, name }),
        }
        Ok(())
    }

    /// Reads one of the settable options back.
    pub(crate) fn get(&self, name: i32) -> Result<i32> {
        let clamp = |v: u128| i32::try_from(v).unwrap_or(i32::MAX);
        Ok(match name {
            XS_SMUX_WINDOW => clamp(self.session.window.into()),
            XS_SMUX_MAX_STREAMS => clamp(self.session.max_streams as u128),
            XS_SMUX_ACCEPT_BACKLOG => clamp(self.session.accept_backlog as u128),
            XS_SMUX_PIN_INTERVAL => clamp(self.pin_interval.as_millis()),
            XS_SMUX_IDLE_TIMEOUT => clamp(self.idle_timeout.as_millis()),
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_SMUX, name }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_back_and_bad_values_are_refused() {
        let mut options = SmuxOptions::default();
        assert_eq!(options.get(XS_SMUX_WINDOW).expect("window"), 512 * 1024);
        options.set(XS_SMUX_WINDOW, &(1i32 << 20).to_ne_bytes()).expect("window");
        assert_eq!(options.session.window, 1 << 20);
        assert!(options.set(XS_SMUX_WINDOW, &1000i32.to_ne_bytes()).is_err());
        assert!(options.set(XS_SMUX_MAX_STREAMS, &70_000i32.to_ne_bytes()).is_err());
        assert!(options.set(XS_SMUX_MAX_STREAMS, &0i32.to_ne_bytes()).is_err());
        options.set(XS_SMUX_IDLE_TIMEOUT, &250i32.to_ne_bytes()).expect("timeout");
        assert_eq!(options.get(XS_SMUX_IDLE_TIMEOUT).expect("timeout"), 250);
        assert!(matches!(options.set(99, &[0; 4]), Err(Error::OptionNotSupported { .. })));
    }
}
