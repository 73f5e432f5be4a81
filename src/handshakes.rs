//! Server handshakes (TLS, WebSocket) in progress on a listening socket.
//!
//! A blocking `xs_accept` on a layered listener takes every connection the kernel
//! has queued, moves all their handshakes on without waiting, and returns the first
//! whose handshake is done; it waits on the listener and on those connections
//! together. So a client that connects and then stays silent holds up nobody: it
//! only waits, with its own deadline, among the others. A handshake that fails or
//! runs out of time makes the `xs_accept` that saw it fail with `ECONNABORTED`.

use std::{
    os::fd::{FromRawFd, OwnedFd},
    sync::Arc,
    time::Instant,
};

use parking_lot::Mutex;

use crate::{
    addr,
    error::{Error, Result},
    log::{Level, log},
    socket::Socket,
    sys::syscall,
    table,
};

/// Handshakes a listener keeps in progress at most; more connections wait in the
/// kernel's queue.
const MAX_PENDING: usize = 256;

/// A connection whose handshake is under way. It counts as a call inside the
/// socket while here (`Socket::has_callers`), so the event thread leaves its
/// handshake to the accepting thread.
#[derive(Debug)]
struct InProgress {
    socket: Arc<Socket>,
    deadline: Instant,
}

impl InProgress {
    fn new(socket: Arc<Socket>, deadline: Instant) -> Self {
        socket.hold();
        Self { socket, deadline }
    }

    /// The socket, no longer held.
    fn release(self) -> Arc<Socket> {
        self.socket.unhold();
        self.socket
    }
}

/// The handshakes in progress on one listening socket.
#[derive(Debug, Default)]
pub(crate) struct Handshakes(Mutex<Vec<InProgress>>);

/// What one pass over the handshakes found.
enum Pass {
    /// A connection is ready.
    Ready(Arc<Socket>),
    /// Nothing yet: wait for these descriptors and events, until the earliest deadline.
    Wait(Vec<libc::pollfd>, Option<Instant>),
}

impl Handshakes {
    /// Closes every connection still in its handshake (the listener is closing).
    pub(crate) fn abandon(&self) {
        for entry in self.0.lock().drain(..) {
            drop_connection(&entry.release());
        }
    }

    /// Accepts as a blocking `xs_accept` does: the first connection whose handshake
    /// is done. `make` turns a kernel connection into a socket with its layers
    /// started. Waits no longer than the listener's `SO_RCVTIMEO` (then `EAGAIN`).
    pub(crate) fn accept(
        &self,
        listener: &Socket,
        handshake_timeout: std::time::Duration,
        make: impl Fn(OwnedFd) -> Result<Arc<Socket>>,
    ) -> Result<Arc<Socket>> {
        let user_deadline = listener.timeout_deadline(libc::SO_RCVTIMEO)?;
        loop {
            let (mut fds, deadline) = match self.pass(listener, handshake_timeout, &make)? {
                Pass::Ready(socket) => return Ok(socket),
                Pass::Wait(fds, deadline) => (fds, deadline),
            };
            let deadline = [deadline, user_deadline].into_iter().flatten().min();
            let timeout = deadline.map_or(-1, |d| {
                let left = d.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX)
            });
            {
                let _in_call = listener.enter()?;
                syscall!("poll", poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout))?;
                if listener.is_closed() {
                    return Err(Error::ClosedWhileInUse);
                }
            }
            if user_deadline.is_some_and(|d| Instant::now() >= d)
                && !fds.iter().any(|f| f.revents != 0)
            {
                return Err(Error::errno("accept", libc::EAGAIN));
            }
        }
    }

    /// Takes new connections and moves every handshake on once, without waiting.
    fn pass(
        &self,
        listener: &Socket,
        handshake_timeout: std::time::Duration,
        make: &impl Fn(OwnedFd) -> Result<Arc<Socket>>,
    ) -> Result<Pass> {
        let mut pending = self.0.lock();
        while pending.len() < MAX_PENDING {
            match accept_now(listener) {
                Ok(Some(fd)) => {
                    let socket = make(fd)?;
                    pending.push(InProgress::new(socket, Instant::now() + handshake_timeout));
                }
                Ok(None) => break,
                // Out of descriptors and the like: report it unless others are in progress.
                Err(err) if pending.is_empty() => return Err(err),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let mut fds =
            vec![libc::pollfd { fd: listener.raw_fd(), events: libc::POLLIN, revents: 0 }];
        let mut earliest: Option<Instant> = None;
        let mut index = 0;
        while index < pending.len() {
            let entry = &pending[index];
            let outcome = match entry.socket.handshake_step() {
                Ok(Some(_)) if now >= entry.deadline => Err(Error::TimedOut("handshake")),
                other => other,
            };
            match outcome {
                Ok(None) => return Ok(Pass::Ready(pending.swap_remove(index).release())),
                Ok(Some(events)) => {
                    fds.push(libc::pollfd { fd: entry.socket.raw_fd(), events, revents: 0 });
                    earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
                    index += 1;
                }
                Err(err) => {
                    let socket = pending.swap_remove(index).release();
                    let peer = addr::of_socket(socket.raw_fd(), true);
                    drop_connection(&socket);
                    return Err(Error::errno(
                        format!("handshake with {peer} failed ({err})"),
                        libc::ECONNABORTED,
                    ));
                }
            }
        }
        Ok(Pass::Wait(fds, earliest))
    }
}

/// Takes a connection from the listener's kernel queue without waiting, whatever
/// the listener's own blocking mode (callers hold the handshakes lock, so no other
/// accept runs meanwhile).
fn accept_now(listener: &Socket) -> Result<Option<OwnedFd>> {
    let fd = listener.raw_fd();
    let flags = syscall!("fcntl", fcntl(fd, libc::F_GETFL))?;
    let blocking = flags & libc::O_NONBLOCK == 0;
    if blocking {
        syscall!("fcntl", fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    let outcome = loop {
        // SAFETY: accept4 with no address buffers.
        let rc = unsafe {
            libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        };
        if rc >= 0 {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            break Ok(Some(unsafe { OwnedFd::from_raw_fd(rc) }));
        }
        let err = Error::last_os("accept");
        match err.os_errno() {
            Some(libc::EINTR) => {}
            // The connection went away before it was taken (as accept(2) allows).
            Some(libc::EAGAIN | libc::ECONNABORTED) => break Ok(None),
            _ => break Err(err),
        }
    };
    if blocking {
        syscall!("fcntl", fcntl(fd, libc::F_SETFL, flags))?;
    }
    outcome
}

/// Drops a connection whose handshake will not finish: out of the sid table, closed.
fn drop_connection(socket: &Socket) {
    let _ = table::TABLE.write().remove(socket.sid());
    socket.close();
    log!(Level::Debug, "sid {}: handshake abandoned", socket.sid());
}
