//! smux stream multiplexing (`XS_PROTO_SMUX`), wire-compatible with yddeng/smux.

pub(crate) mod frame;
pub(crate) mod ids;
mod layer;
pub(crate) mod options;
pub(crate) mod session;

pub(crate) use self::{
    layer::{SmuxLayer, Waker, thread_waker},
    session::StreamKey,
};
