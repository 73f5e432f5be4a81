//! `xs_poll`: waits on many sids with one kernel `poll(2)`.
//!
//! Each entry's sid is swapped for its kernel socket. Entries with a negative sid are
//! ignored and unknown sids report `POLLNVAL`, as `poll(2)` does for descriptors. A
//! sid closed by another thread during the wait wakes the call and reports `POLLNVAL`.
//! Layers add what the kernel cannot show: a TLS socket with decrypted plaintext is
//! readable; one whose handshake is in progress reports nothing until the handshake
//! is done (the poll waits for the kernel events the handshake needs and drives it),
//! and `POLLERR` if it fails, as a failed non-blocking connect does.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    smux::{Waker, thread_waker},
    socket::{InCall, Socket},
    table,
};

/// How `xs_poll` treats a socket with a layer (TLS, WebSocket) on its kernel socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollPlan {
    /// Established (or not connected): the kernel's events, plus these (`POLLIN` for
    /// bytes the layer already holds).
    Ready(i16),
    /// A handshake waits for these kernel events; nothing to report to the caller.
    Handshaking(i16),
    /// The handshake failed: report `POLLERR` (read the reason with `SO_ERROR`).
    Failed,
    /// A message layer decides readability: report `ready` (with the kernel's
    /// `POLLOUT`, `POLLERR` and `POLLHUP`, never its `POLLIN`), and wait at the kernel
    /// for `wait`.
    Layered {
        /// Events to report now.
        ready: i16,
        /// Kernel events that let the layer move on.
        wait: i16,
        /// Whether the kernel socket's `POLLOUT` is the caller's too (not for an smux
        /// stream, whose window decides).
        kernel_out: bool,
    },
}

/// Hands corked bytes to the kernel (a sleeping poll must not hold them back), then
/// enters the socket so that a close wakes the poll.
fn flush_then_enter(socket: &Socket) -> Result<InCall<'_>> {
    socket.push_cork();
    socket.enter()
}

/// The polling thread's waker, registered with the smux sessions polled and taken
/// off them when the poll ends.
struct Watching<'a> {
    sockets: &'a [Option<Arc<Socket>>],
    waker: Option<Arc<Waker>>,
}

impl<'a> Watching<'a> {
    fn new(sockets: &'a [Option<Arc<Socket>>]) -> Result<Self> {
        let any_smux = sockets.iter().flatten().any(|s| s.smux().is_some());
        let waker = if any_smux { Some(thread_waker()?) } else { None };
        Ok(Self { sockets, waker })
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let Some(waker) = &self.waker else { return };
        for smux in self.sockets.iter().flatten().filter_map(|s| s.smux()) {
            smux.unwatch(waker);
        }
    }
}

/// What one entry asks of the kernel, and what it reports without it.
fn plan(entry: &libc::pollfd, socket: Option<&Socket>, waker: Option<&Arc<Waker>>) -> PollPlan {
    let Some(socket) = socket else { return PollPlan::Ready(0) };
    let plan = if let Some(smux) = socket.smux() {
        smux.poll_plan(socket, waker)
    } else if let Some(ws) = socket.ws() {
        ws.poll_plan(socket)
    } else if let Some(tls) = socket.tls() {
        tls.poll_plan(socket)
    } else {
        PollPlan::Ready(0)
    };
    match plan {
        PollPlan::Ready(extra) => PollPlan::Ready(extra & entry.events),
        PollPlan::Layered { ready, wait, kernel_out } => {
            // POLLERR and POLLHUP are reported whether asked for or not, as poll(2) does.
            let ready = ready & (entry.events | libc::POLLERR | libc::POLLHUP);
            PollPlan::Layered { ready, wait, kernel_out }
        }
        other => other,
    }
}

/// Polls the sids in `entries` (their `fd` fields), filling `revents`; returns how many
/// entries have events, or 0 on time-out.
pub(crate) fn poll(entries: &mut [libc::pollfd], timeout_ms: i32) -> Result<i32> {
    let sockets: Vec<Option<Arc<Socket>>> =
        entries.iter().map(|e| if e.fd < 0 { None } else { table::lookup(e.fd).ok() }).collect();
    let deadline =
        (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    let mut in_calls: Vec<InCall<'_>> = Vec::with_capacity(entries.len());
    let mut fds = Vec::with_capacity(entries.len());
    for (entry, socket) in entries.iter().zip(&sockets) {
        let fd = match socket.as_deref().map(flush_then_enter) {
            Some(Ok(in_call)) => {
                in_calls.push(in_call);
                socket.as_deref().map_or(-1, Socket::raw_fd)
            }
            Some(Err(_)) => -1,
            None => -1,
        };
        fds.push(if entry.fd < 0 { -1 } else { fd });
    }
    // smux streams and sessions wake this thread's waker when they change.
    let watching = Watching::new(&sockets)?;
    let waker = watching.waker.as_ref();
    loop {
        let plans: Vec<PollPlan> =
            entries.iter().zip(&sockets).map(|(e, s)| plan(e, s.as_deref(), waker)).collect();
        let mut kernel: Vec<libc::pollfd> = Vec::with_capacity(entries.len());
        let mut now_ready = false;
        for ((entry, &fd), plan) in entries.iter().zip(&fds).zip(&plans) {
            let events = match plan {
                PollPlan::Handshaking(needed) => *needed,
                PollPlan::Layered { ready, wait, kernel_out } => {
                    now_ready |= *ready != 0;
                    *wait | if *kernel_out { entry.events & libc::POLLOUT } else { 0 }
                }
                PollPlan::Failed => {
                    now_ready = true;
                    0
                }
                PollPlan::Ready(extra) => {
                    now_ready |= *extra != 0;
                    entry.events
                }
            };
            // A valid sid whose socket is gone (closed) reports POLLNVAL at once.
            now_ready |= entry.fd >= 0 && fd < 0;
            kernel.push(libc::pollfd { fd, events, revents: 0 });
        }
        let wait_ms = match deadline {
            _ if now_ready => 0,
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
            }
        };
        if let Some(waker) = waker {
            kernel.push(libc::pollfd { fd: waker.fd(), events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: `kernel` is a live array of `kernel.len()` pollfd entries.
        let rc = unsafe { libc::poll(kernel.as_mut_ptr(), kernel.len() as libc::nfds_t, wait_ms) };
        if rc < 0 {
            return Err(Error::last_os("poll"));
        }
        let mut layer_moved = false;
        if let Some(waker) = waker {
            // A stream changed: the next round's plans tell what.
            layer_moved = kernel.pop().is_some_and(|w| w.revents != 0);
            waker.reset();
        }
        let mut ready = 0;
        for (((entry, k), socket), plan) in
            entries.iter_mut().zip(&kernel).zip(&sockets).zip(&plans)
        {
            entry.revents = match (socket, plan) {
                _ if entry.fd < 0 => 0,
                (Some(socket), _) if socket.is_closed() => libc::POLLNVAL,
                (None, _) => libc::POLLNVAL,
                (Some(_), _) if k.fd < 0 => libc::POLLNVAL,
                (Some(_), PollPlan::Ready(extra)) => k.revents | extra,
                (Some(_), PollPlan::Failed) => {
                    libc::POLLERR | (entry.events & (libc::POLLIN | libc::POLLOUT))
                }
                (Some(_), PollPlan::Handshaking(_)) => {
                    // Progress is made on the next round; hang-ups show through.
                    layer_moved |= k.revents != 0;
                    k.revents & (libc::POLLERR | libc::POLLHUP)
                }
                (Some(_), PollPlan::Layered { ready, kernel_out, .. }) => {
                    // Kernel input is the layer's to judge on the next round.
                    layer_moved |= k.revents != 0;
                    let out = if *kernel_out { libc::POLLOUT } else { 0 };
                    let passed = out | libc::POLLERR | libc::POLLHUP;
                    (k.revents & passed & (entry.events | libc::POLLERR | libc::POLLHUP)) | ready
                }
            };
            ready += i32::from(entry.revents != 0);
        }
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        if ready > 0 || timed_out || !layer_moved && rc == 0 {
            drop(in_calls);
            return Ok(ready);
        }
    }
}
