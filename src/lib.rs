//! xsocket: BSD-socket calls over integer socket ids, for C, C++ and Python.
//!
//! ```text
//!  app threads ── xs_* (ffi) ── sid table ── Socket ──────── kernel socket
//!                                              │ attention        ▲ edge events
//!                                      event thread (mio Poll) ───┘
//!                                              │
//!                                     notification eventfds
//! ```
//!
//! * [`ffi`] is the C ABI and nothing else: argument checks, panics caught, errno.
//! * `table` maps sids to shared sockets; sids are not reused while a stale copy
//!   could still be in use.
//! * `socket` does the I/O in the calling thread, straight on the kernel socket, so
//!   plain (protocol 0) sockets behave exactly as the kernel's and pay no thread hop.
//! * `reactor` is the one event thread, started on first need; it turns kernel
//!   readiness into notification eventfds for event loops.
//!
//! Errors are one enum (`error`), mapped to errno in one place (`ffi::errno`).

#![deny(unsafe_op_in_unsafe_fn)]

mod addr;
mod cork;
mod endpoint;
mod error;
pub mod ffi;
mod fork;
mod handshakes;
mod log;
mod lower;
mod open;
mod options;
mod poll;
mod reactor;
mod smux;
mod socket;
mod sys;
mod table;
mod tls;
mod ws;

#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_api;
