//! smux stream multiplexing (`XS_PROTO_SMUX`), wire-compatible with yddeng/smux.

pub(crate) mod frame;
pub(crate) mod ids;
pub(crate) mod session;
