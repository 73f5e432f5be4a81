//! xsocket's own socket options (level `XS_SOL_XSOCKET`), parsed from the bytes C hands in.
//!
//! Kernel levels (`SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IPV6`, …) never come here: they
//! go to the kernel socket unchanged, so they read back exactly as the kernel has them.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    ffi::types::{XS_SO_CONNECT_TIMEOUT, XS_SO_NOTIFY_FD, XS_SOL_XSOCKET},
    reactor,
    socket::Socket,
};

/// Reads an `int` option value; shorter values are `EINVAL`, as the kernel does.
fn int_value(value: &[u8]) -> Result<i32> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::InvalidArgument("option value must be an int".into()))?;
    Ok(i32::from_ne_bytes(bytes))
}

/// Reads a non-negative `int` option value of the option `name` (for its errors).
pub(crate) fn non_negative_int(value: &[u8], name: &str) -> Result<u32> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::InvalidArgument(format!("{name} must be an int").into()))?;
    u32::try_from(i32::from_ne_bytes(bytes))
        .map_err(|_| Error::InvalidArgument(format!("{name} must be >= 0").into()))
}

/// Sets an xsocket option from its raw value bytes.
pub(crate) fn set(socket: &Socket, name: i32, value: &[u8]) -> Result<()> {
    match name {
        XS_SO_CONNECT_TIMEOUT => {
            let ms = u32::try_from(int_value(value)?).map_err(|_| {
                Error::InvalidArgument("XS_SO_CONNECT_TIMEOUT must be >= 0 milliseconds".into())
            })?;
            socket.set_connect_timeout_ms(ms);
            Ok(())
        }
        _ => Err(Error::OptionNotSupported { level: XS_SOL_XSOCKET, name }),
    }
}

/// Reads an xsocket option; every one is an `int`.
pub(crate) fn get(socket: &Arc<Socket>, name: i32) -> Result<i32> {
    match name {
        XS_SO_CONNECT_TIMEOUT => Ok(i32::try_from(socket.connect_timeout_ms()).unwrap_or(i32::MAX)),
        XS_SO_NOTIFY_FD => {
            let (fd, new) = socket.make_notify()?;
            match socket.smux().filter(|s| s.is_stream()) {
                // A stream shares its session's kernel socket: the session signals it.
                Some(smux) if new => smux.watch_notify(fd),
                Some(_) => {}
                None if new => reactor::handle()?.attend(socket),
                None => {}
            }
            Ok(fd)
        }
        _ => Err(Error::OptionNotSupported { level: XS_SOL_XSOCKET, name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_values_need_four_bytes() {
        assert_eq!(int_value(&7i32.to_ne_bytes()).expect("int"), 7);
        assert!(matches!(int_value(&[1, 2]), Err(Error::InvalidArgument(_))));
        assert!(matches!(int_value(&[]), Err(Error::InvalidArgument(_))));
    }
}
