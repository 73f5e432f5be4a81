//! WebSocket (RFC 6455): Raw-WS (`XS_PROTO_WS_RAW`) and Full-WS (`XS_PROTO_WS`).

pub(crate) mod conn;
pub(crate) mod decoder;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod heartbeat;
mod layer;
pub(crate) mod options;
pub(crate) mod utf8;

pub(crate) use self::layer::WsLayer;
#[cfg(test)]
mod codec_bench;
