//! `xs_poll`: waits on many sids with one kernel `poll(2)`.
//!
//! Each entry's sid is swapped for its kernel socket. Entries with a negative sid are
//! ignored and unknown sids report `POLLNVAL`, as `poll(2)` does for descriptors. A
//! sid closed by another thread during the wait wakes the call and reports `POLLNVAL`.
//! A TLS socket with plaintext already decrypted is readable without the kernel.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    socket::{InCall, Socket},
    table,
};

/// Hands corked bytes to the kernel (a sleeping poll must not hold them back), then
/// enters the socket so that a close wakes the poll.
fn flush_then_enter(socket: &Socket) -> Result<InCall<'_>> {
    socket.push_cork();
    socket.enter()
}

/// Polls the sids in `entries` (their `fd` fields), filling `revents`; returns how many
/// entries have events, or 0 on time-out.
pub(crate) fn poll(entries: &mut [libc::pollfd], timeout_ms: i32) -> Result<i32> {
    let sockets: Vec<Option<Arc<Socket>>> =
        entries.iter().map(|e| if e.fd < 0 { None } else { table::lookup(e.fd).ok() }).collect();
    let mut kernel: Vec<libc::pollfd> = Vec::with_capacity(entries.len());
    let mut in_calls: Vec<InCall<'_>> = Vec::with_capacity(entries.len());
    let mut invalid = false;
    // Readiness a layer holds that the kernel socket cannot show (TLS plaintext).
    let layered: Vec<i16> = entries
        .iter()
        .zip(&sockets)
        .map(|(entry, socket)| match socket.as_deref().and_then(|s| Some((s, s.tls()?))) {
            Some((socket, tls)) => tls.poll_ready(socket) & entry.events,
            None => 0,
        })
        .collect();
    let layer_ready = layered.iter().any(|&r| r != 0);
    for (entry, socket) in entries.iter().zip(&sockets) {
        let fd = match socket {
            Some(socket) => match flush_then_enter(socket) {
                Ok(in_call) => {
                    in_calls.push(in_call);
                    socket.raw_fd()
                }
                Err(_) => {
                    invalid = true;
                    -1
                }
            },
            None => {
                invalid |= entry.fd >= 0;
                -1
            }
        };
        kernel.push(libc::pollfd { fd, events: entry.events, revents: 0 });
    }
    let timeout_ms = if invalid || layer_ready { 0 } else { timeout_ms };
    let nfds = kernel.len() as libc::nfds_t;
    // SAFETY: `kernel` is a live array of `nfds` pollfd entries.
    let rc = unsafe { libc::poll(kernel.as_mut_ptr(), nfds, timeout_ms) };
    let err = (rc < 0).then(|| Error::last_os("poll"));
    drop(in_calls);
    if let Some(err) = err {
        return Err(err);
    }
    let mut ready = 0;
    for (((entry, k), socket), layer) in entries.iter_mut().zip(&kernel).zip(&sockets).zip(layered)
    {
        entry.revents = match socket {
            _ if entry.fd < 0 => 0,
            Some(socket) if !socket.is_closed() => k.revents | layer,
            _ => libc::POLLNVAL,
        };
        ready += i32::from(entry.revents != 0);
    }
    Ok(ready)
}
