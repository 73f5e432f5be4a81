//! The WebSocket layer of a socket: moves bytes between the sans-IO connection
//! ([`Conn`]) and the transport under it (kernel socket or TLS, see `lower.rs`), in
//! the calling thread, as TLS does. Waits happen on the kernel socket without the
//! connection's lock held, so one thread can receive while another sends.
//!
//! Output that the transport cannot take at once stays queued; a blocking send
//! waits until it is written, and what a non-blocking one leaves behind is written
//! by later calls, by `xs_poll`, and by the event thread's sweep (the socket counts
//! as corked while bytes wait, see `Socket::is_corked`). `MSG_MORE` keeps messages
//! queued until a send without it, as the kernel's cork does.

use std::{
    sync::atomic::{AtomicBool, Ordering::SeqCst},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::{
    conn::{Conn, ConnConfig, Received},
    decoder::Role,
    handshake::{self, ClientRequest, ServerPolicy},
    options::WsOptions,
};
use crate::{
    error::{Error, Result},
    ffi::types::*,
    lower::{self, Io},
    poll::PollPlan,
    socket::{Deadline, Socket},
};

/// How often the event thread reads an idle connection to answer the peer's pings
/// (clients such as browsers and the Python `websockets` package drop a peer that
/// does not answer within 20 s or so).
const SERVICE_INTERVAL: Duration = Duration::from_secs(2);

/// Queued output beyond which a send waits (or says `EAGAIN`) before taking more.
const HIGH_WATER: usize = 64 * 1024;

/// The WebSocket state of one socket.
#[derive(Debug)]
pub(crate) struct WsLayer {
    /// Full-WS (HTTP Upgrade) rather than Raw-WS.
    upgrade: bool,
    /// Whole messages per receive (`SOCK_SEQPACKET`).
    messages: bool,
    options: Mutex<WsOptions>,
    conn: Mutex<Option<Conn>>,
    /// The `Host` and path a URL gave, used unless the options say otherwise.
    url_target: Mutex<Option<(String, String)>>,
    /// When `xs_close` started the close handshake.
    closing_since: Mutex<Option<Instant>>,
    /// Whether a failed handshake was reported through `SO_ERROR`.
    error_reported: AtomicBool,
}

fn would_block() -> Error {
    Error::errno("websocket", libc::EAGAIN)
}

fn not_connected() -> Error {
    Error::errno("websocket", libc::ENOTCONN)
}

/// Writes queued output until the transport would block: `None` when all is out,
/// else the kernel events to wait for.
fn flush(socket: &Socket, conn: &mut Conn) -> Result<Option<i16>> {
    while !conn.output.is_empty() {
        match lower::write(socket, conn.output.pending())? {
            Io::Done(n) => conn.output.consume(n),
            Io::Wait(events) => return Ok(Some(events)),
        }
    }
    if lower::holds_output(socket) {
        if let Io::Wait(events) = lower::write(socket, &[])? {
            return Ok(Some(events));
        }
    }
    Ok(None)
}

/// Reads once from the transport into the connection: `None` when bytes (or the
/// end) came, else the kernel events to wait for.
fn fill(socket: &Socket, conn: &mut Conn) -> Result<Option<i16>> {
    match lower::read(socket, conn.read_room()) {
        Ok(Io::Done(n)) => {
            conn.input.filled(n);
            if n == 0 {
                conn.transport_ended();
            }
            conn.received(n);
            Ok(None)
        }
        Ok(Io::Wait(events)) => Ok(Some(events)),
        // A broken transport ends the stream; the connection reports it (1006).
        Err(err)
            if matches!(err.os_errno(), Some(libc::ECONNRESET | libc::EPIPE))
                || err_is_tls(&err) =>
        {
            conn.transport_ended();
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn err_is_tls(err: &Error) -> bool {
    matches!(err, Error::Tls(_))
}

impl WsLayer {
    /// A layer for a new socket: Full-WS when `upgrade`, whole messages when `messages`.
    pub(crate) fn new(upgrade: bool, messages: bool) -> Self {
        Self {
            upgrade,
            messages,
            options: Mutex::new(WsOptions::default()),
            conn: Mutex::new(None),
            url_target: Mutex::new(None),
            closing_since: Mutex::new(None),
            error_reported: AtomicBool::new(false),
        }
    }

    /// A layer for a socket accepted from this listening one: the same options.
    pub(crate) fn for_accepted(&self) -> Self {
        let layer = Self::new(self.upgrade, self.messages);
        *layer.options.lock() = self.options.lock().clone();
        layer
    }

    /// Sets a WebSocket option (level `XS_SOL_WS`).
    pub(crate) fn set_option(&self, name: i32, value: &[u8]) -> Result<()> {
        self.options.lock().set(name, value)
    }

    /// Reads a WebSocket option: the settable ones, and the connection's state.
    pub(crate) fn option(&self, name: i32) -> Result<Vec<u8>> {
        let guard = self.conn.lock();
        let conn = guard.as_ref();
        let int = |v: i32| v.to_ne_bytes().to_vec();
        Ok(match name {
            XS_WS_SUBPROTOCOL => conn.and_then(Conn::protocol).unwrap_or("").as_bytes().to_vec(),
            XS_WS_PEER_CLOSE_CODE => int(conn.and_then(Conn::peer_close).map_or(0, |c| c.0.into())),
            XS_WS_PEER_CLOSE_REASON => conn
                .and_then(Conn::peer_close)
                .map(|c| c.1.clone().into_bytes())
                .unwrap_or_default(),
            XS_WS_REQUEST_PATH => conn
                .and_then(Conn::accepted)
                .map(|a| a.path.clone().into_bytes())
                .unwrap_or_default(),
            XS_WS_REQUEST_ORIGIN => conn
                .and_then(Conn::accepted)
                .map(|a| a.origin.clone().into_bytes())
                .unwrap_or_default(),
            XS_WS_RECV_TEXT => int(conn.is_some_and(Conn::last_text).into()),
            _ => {
                drop(guard);
                return self.options.lock().get(name);
            }
        })
    }

    /// The `Host` header and path from a URL, unless options set them.
    pub(crate) fn default_target(&self, host: String, path: String) {
        *self.url_target.lock() = Some((host, path));
    }

    fn config(&self, role: Role, options: &WsOptions) -> ConnConfig {
        ConnConfig {
            role,
            messages: self.messages,
            max_message: options.max_message,
            fragment_size: options.fragment_size,
            heartbeat: options.heartbeat(),
        }
    }

    /// After the kernel connected (or started connecting): starts the client side.
    pub(crate) fn start_client(&self, socket: &Socket) -> Result<()> {
        let options = self.options.lock().clone();
        let config = self.config(Role::Client, &options);
        let now = Instant::now();
        let conn = if self.upgrade {
            let (url_host, url_path) = self.url_target.lock().clone().unwrap_or_default();
            let host = options.host.clone().filter(|h| !h.is_empty()).unwrap_or(url_host);
            let host = if host.is_empty() {
                crate::addr::of_socket(socket.raw_fd(), true).to_string()
            } else {
                host
            };
            let path = options.path.clone().unwrap_or(if url_path.is_empty() {
                "/".into()
            } else {
                url_path
            });
            let key = handshake::new_key()
                .map_err(|_| Error::Internal("no system randomness for Sec-WebSocket-Key"))?;
            let request = ClientRequest {
                host,
                path,
                origin: options.origin.clone(),
                protocols: options.protocols.clone(),
                key,
            };
            Conn::client_handshake(config, request, now)
        } else {
            Conn::new(config, now)
        };
        *self.conn.lock() = Some(conn);
        Ok(())
    }

    /// For an accepted socket: starts the server side with its (inherited) options.
    pub(crate) fn start_server(&self) {
        let options = self.options.lock().clone();
        let config = self.config(Role::Server, &options);
        let now = Instant::now();
        let conn = if self.upgrade {
            let policy = ServerPolicy {
                path: options.path.clone(),
                origins: options.allowed_origins.clone(),
                protocols: options.protocols.clone(),
            };
            Conn::server_handshake(config, policy, now)
        } else {
            Conn::new(config, now)
        };
        *self.conn.lock() = Some(conn);
    }

    /// One step of the handshake, without waiting: `None` when done, else the kernel
    /// events it waits for. A refused request's answer is written before it fails.
    fn handshake_step(socket: &Socket, conn: &mut Conn) -> Result<Option<i16>> {
        loop {
            let pending = flush(socket, conn);
            if !conn.handshaking() {
                // Done (a later failure is for the calls that follow to report).
                return pending.map(|_| None);
            }
            if let Some(events) = pending? {
                return Ok(Some(events));
            }
            match conn.drive_handshake() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    // The refusal (an HTTP error) goes out before the connection ends.
                    if flush(socket, conn)?.is_none() {
                        lower::shutdown_write(socket);
                    }
                    return Err(err);
                }
            }
            if let Some(events) = fill(socket, conn)? {
                return Ok(Some(events));
            }
        }
    }

    /// Moves the handshake on without waiting: `None` once done, else the kernel
    /// events it waits for.
    pub(crate) fn handshake_poll(&self, socket: &Socket) -> Result<Option<i16>> {
        let mut guard = self.conn.lock();
        let conn = guard.as_mut().ok_or_else(not_connected)?;
        if !conn.handshaking() {
            return Ok(None);
        }
        Self::handshake_step(socket, conn)
    }

    /// Before a send or receive: finishes the handshake if it is still going on.
    fn finish_handshake(
        &self,
        socket: &Socket,
        deadline: &mut Deadline<'_>,
        dont_wait: bool,
    ) -> Result<()> {
        if self.handshake_poll(socket)?.is_none() {
            return Ok(());
        }
        self.handshake(socket, deadline.get()?, dont_wait)
    }

    /// Runs the handshake until done; waits (until `deadline`) unless `dont_wait`.
    pub(crate) fn handshake(
        &self,
        socket: &Socket,
        deadline: Option<Instant>,
        dont_wait: bool,
    ) -> Result<()> {
        socket.run_handshake("websocket handshake", deadline, dont_wait, || {
            self.handshake_poll(socket)
        })
    }

    /// Sends one message (`XS_MSG_TEXT` for text); `MSG_MORE` keeps it queued.
    pub(crate) fn send(
        &self,
        socket: &Socket,
        data: &[u8],
        flags: i32,
        dont_wait: bool,
    ) -> Result<usize> {
        // Inside the call from the start: the event thread's timer then leaves input
        // to this thread (see `tick`).
        let _in_call = socket.enter()?;
        let mut deadline = socket.deadline(libc::SO_SNDTIMEO);
        self.finish_handshake(socket, &mut deadline, dont_wait)?;
        let text = flags & XS_MSG_TEXT != 0;
        let more = flags & libc::MSG_MORE != 0;
        let mut accepted = false;
        loop {
            let wait_for = {
                let mut guard = self.conn.lock();
                let conn = guard.as_mut().ok_or_else(not_connected)?;
                if !accepted && conn.output.len() >= HIGH_WATER {
                    flush(socket, conn)?;
                }
                if !accepted && conn.output.len() < HIGH_WATER {
                    conn.send(data, text)?;
                    accepted = true;
                    if more && conn.output.len() < HIGH_WATER {
                        socket.set_corked(true);
                        return Ok(data.len());
                    }
                }
                let pending = if accepted { flush(socket, conn)? } else { Some(libc::POLLOUT) };
                socket.set_corked(!conn.output.is_empty());
                match pending {
                    None if accepted => return Ok(data.len()),
                    // A non-blocking send leaves the rest to later calls and the sweep.
                    Some(_) if accepted && dont_wait => return Ok(data.len()),
                    other => other,
                }
            };
            if dont_wait {
                return Err(would_block());
            }
            if !socket.wait(wait_for.unwrap_or(libc::POLLOUT), deadline.get()?)? {
                // Timed out: a message taken is sent later; one not taken is EAGAIN.
                return if accepted { Ok(data.len()) } else { Err(would_block()) };
            }
        }
    }

    /// Receives into `buf`: the bytes written, or for a truncated message its whole
    /// length under `MSG_TRUNC`, with the `msg_flags` to report (`MSG_TRUNC`,
    /// `MSG_EOR`, `XS_MSG_TEXT`). 0 once the peer has closed.
    pub(crate) fn recv(
        &self,
        socket: &Socket,
        buf: &mut [u8],
        flags: i32,
        dont_wait: bool,
    ) -> Result<(usize, i32)> {
        // Inside the call from the start: the event thread's timer then leaves input
        // to this thread (see `tick`).
        let _in_call = socket.enter()?;
        let mut deadline = socket.deadline(libc::SO_RCVTIMEO);
        self.finish_handshake(socket, &mut deadline, dont_wait)?;
        let peek = flags & libc::MSG_PEEK != 0;
        loop {
            if socket.is_closed() {
                return Err(Error::ClosedWhileInUse);
            }
            let wait_for = {
                let mut guard = self.conn.lock();
                let conn = guard.as_mut().ok_or_else(not_connected)?;
                let outcome = conn.receive(buf, peek);
                // Pongs, close replies and close codes go out now.
                let pending = flush(socket, conn);
                socket.set_corked(!conn.output.is_empty());
                if conn.finished() {
                    lower::shutdown_write(socket);
                }
                match outcome? {
                    Some(Received::End) => return Ok((0, 0)),
                    Some(Received::Bytes { copied, full, text, last }) => {
                        let mut msg_flags = 0;
                        if text {
                            msg_flags |= XS_MSG_TEXT;
                        }
                        if last {
                            msg_flags |= libc::MSG_EOR;
                        }
                        let truncated = self.messages && copied < full;
                        if truncated {
                            msg_flags |= libc::MSG_TRUNC;
                        }
                        let n =
                            if truncated && flags & libc::MSG_TRUNC != 0 { full } else { copied };
                        return Ok((n, msg_flags));
                    }
                    None => {}
                }
                match fill(socket, conn)? {
                    None => continue,
                    Some(events) => events | pending?.unwrap_or(0),
                }
            };
            if dont_wait {
                return Err(would_block());
            }
            if !socket.wait(wait_for, deadline.get()?)? {
                return Err(would_block());
            }
        }
    }

    /// `xs_shutdown` for writing: sends the close frame (waiting for room as a send
    /// does); receiving goes on until the peer's close.
    pub(crate) fn shutdown_write(&self, socket: &Socket) -> Result<()> {
        let mut deadline = socket.deadline(libc::SO_SNDTIMEO);
        let (code, reason) = {
            let options = self.options.lock();
            (options.close_code, options.close_reason.clone())
        };
        loop {
            let wait_for = {
                let mut guard = self.conn.lock();
                let conn = guard.as_mut().ok_or_else(not_connected)?;
                conn.queue_close(code, &reason);
                let pending = flush(socket, conn)?;
                if conn.finished() {
                    lower::shutdown_write(socket);
                }
                match pending {
                    None => return Ok(()),
                    Some(events) => events,
                }
            };
            if !socket.wait(wait_for, deadline.get()?)? {
                return Err(would_block());
            }
        }
    }

    /// `xs_close`: queues the close frame and writes what the transport takes now.
    /// Returns whether the close handshake goes on in the event thread.
    pub(crate) fn begin_close(&self, socket: &Socket) -> bool {
        let (code, reason) = {
            let options = self.options.lock();
            (options.close_code, options.close_reason.clone())
        };
        let mut guard = self.conn.lock();
        let Some(conn) = guard.as_mut() else { return false };
        if conn.handshaking() {
            // Nothing was agreed: there is no close handshake to do.
            return false;
        }
        conn.queue_close(code, &reason);
        let _ = flush(socket, conn);
        *self.closing_since.lock() = Some(Instant::now());
        // Until the peer is done too: closing the transport on bytes it still sends
        // would reset it, and it might not see our close frame.
        !(conn.peer_done() && conn.output.is_empty())
    }

    /// From the event thread (and before other calls): writes queued output; for a
    /// closed socket, moves the close handshake on and reads what the peer still
    /// sends. Returns whether anything still waits.
    pub(crate) fn push_output(&self, socket: &Socket, closed: bool) -> bool {
        let Some(mut guard) = self.conn.try_lock() else { return true };
        let Some(conn) = guard.as_mut() else { return false };
        let _ = flush(socket, conn);
        if !closed {
            return !conn.output.is_empty();
        }
        let close_timeout = self.options.lock().close_timeout;
        let expired =
            self.closing_since.lock().is_none_or(|since| since.elapsed() >= close_timeout);
        let mut scratch = [0u8; 4096];
        while !conn.peer_done() && !expired {
            match conn.receive(&mut scratch, false) {
                Ok(Some(Received::Bytes { .. })) => continue,
                Ok(Some(Received::End)) => break,
                // Failed: what the peer still sends is read and dropped.
                Err(_) => conn.discard_input(),
                Ok(None) => {}
            }
            match fill(socket, conn) {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => break,
            }
        }
        let _ = flush(socket, conn);
        if (conn.peer_done() && conn.output.is_empty()) || expired {
            lower::shutdown_write(socket);
            return false;
        }
        true
    }

    /// The event thread's timer: reads what arrived and answers the peer's pings (when
    /// no thread is inside a call on the socket), and runs the heartbeat. The next
    /// time it wants to run (`None`: never again), and whether the connection just
    /// failed.
    pub(crate) fn tick(
        &self,
        socket: &Socket,
        now: Instant,
        idle: bool,
    ) -> (Option<Instant>, bool) {
        let Some(mut guard) = self.conn.try_lock() else {
            return (Some(now + Duration::from_millis(10)), false);
        };
        let Some(conn) = guard.as_mut() else { return (None, false) };
        if idle && conn.wants_input() && !conn.handshaking() {
            let _ = fill(socket, conn);
            // Decoding ahead answers pings (a message met on the way is kept).
            conn.readable();
        }
        let outcome = conn.tick(now);
        let _ = flush(socket, conn);
        socket.set_corked(!conn.output.is_empty());
        match outcome {
            Err(_) => (None, true),
            _ if conn.failure_errno().is_some() || conn.peer_done() => (None, false),
            Ok(due) => (Some(due.unwrap_or(now + SERVICE_INTERVAL)), false),
        }
    }

    /// What `xs_poll` should do: drives the handshake, writes queued output, and
    /// decodes ahead to tell whether a receive would return at once.
    pub(crate) fn poll_plan(&self, socket: &Socket) -> PollPlan {
        // Calls hold the lock only briefly (never while they wait).
        let mut guard = self.conn.lock();
        let Some(conn) = guard.as_mut() else { return PollPlan::Ready(0) };
        if let Some(tls) = socket.tls() {
            // TLS first: the socket is not connected before its handshake is done.
            match tls.handshake_poll(socket) {
                Err(_) => return PollPlan::Failed,
                Ok(Some(events)) => return PollPlan::Handshaking(events),
                Ok(None) => {}
            }
        }
        if conn.handshaking() {
            return match Self::handshake_step(socket, conn) {
                Err(_) => PollPlan::Failed,
                Ok(Some(events)) => PollPlan::Handshaking(events),
                Ok(None) => PollPlan::Layered { ready: 0, wait: libc::POLLIN, kernel_out: true },
            };
        }
        let pending = flush(socket, conn).ok().flatten();
        socket.set_corked(!conn.output.is_empty());
        let mut readable = conn.readable();
        if !readable && conn.wants_input() && fill(socket, conn).map_or(true, |w| w.is_none()) {
            readable = conn.readable();
        }
        // What decoding ahead queued (pongs, a close reply) goes out now.
        let pending = flush(socket, conn).ok().flatten().or(pending);
        socket.set_corked(!conn.output.is_empty());
        let mut ready = if readable { libc::POLLIN } else { 0 };
        if conn.failure_errno().is_some() {
            ready |= libc::POLLERR;
        }
        let mut wait = if conn.wants_input() { libc::POLLIN } else { 0 };
        wait |= pending.unwrap_or(0);
        PollPlan::Layered { ready, wait, kernel_out: true }
    }

    /// The errno of a failed handshake, once (for `SO_ERROR`).
    pub(crate) fn take_error(&self) -> Option<i32> {
        let guard = self.conn.lock();
        let errno = guard.as_ref().filter(|c| c.handshaking()).and_then(Conn::failure_errno)?;
        (!self.error_reported.swap(true, SeqCst)).then_some(errno)
    }
}
