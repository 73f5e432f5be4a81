//! The TLS layer (`XS_PROTO_TLS`): rustls over the socket's kernel stream.
//!
//! rustls is sans-IO; this module moves its records between the `rustls::Connection`
//! and the kernel socket, in the calling thread, as the rest of xsocket does. Kernel
//! calls use `MSG_DONTWAIT`; a call that must wait polls the kernel socket (woken by
//! `xs_close`) without holding the session lock, so one thread can receive while
//! another sends. Blocking sockets wait as a kernel socket would (`SO_RCVTIMEO`,
//! `SO_SNDTIMEO`); non-blocking ones return `EAGAIN`.
//!
//! * Client: the handshake runs inside `xs_connect` (bounded by
//!   `XS_SO_CONNECT_TIMEOUT`, else `SO_SNDTIMEO`). A non-blocking connect returns
//!   `EINPROGRESS`; the handshake then moves on inside `xs_poll` ([`PollPlan`]) and
//!   with each later call on the socket; a failure shows as `POLLERR` and `SO_ERROR`.
//! * Server: a blocking `xs_accept` returns a socket whose handshake is done (bounded
//!   by the listener's `XS_SO_CONNECT_TIMEOUT`, else 10 s); a failed handshake makes it
//!   fail with `ECONNABORTED` and the reason in `xs_last_error()`. A non-blocking
//!   accept returns at once and the handshake moves on with later calls.
//! * End: `xs_shutdown(SHUT_WR)` and `xs_close` send close_notify. A peer that closes
//!   without close_notify makes `xs_recv` fail with `EPROTO` (truncation), not 0.

mod config;
mod options;

pub(crate) use self::config::CLIENT_CONFIGS;

use std::{
    io::{self, Read, Write},
    os::fd::RawFd,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};

pub(crate) use self::options::TlsOptions;
use crate::{
    error::{Error, Result},
    ffi::types::*,
    lower::Io,
    poll::PollPlan,
    socket::Socket,
};

/// Handshakes completed in this process, resumed and full (client and server).
static HANDSHAKES_RESUMED: AtomicU64 = AtomicU64::new(0);
static HANDSHAKES_FULL: AtomicU64 = AtomicU64::new(0);

/// The library-wide handshake counters: (resumed, full).
pub(crate) fn handshake_counts() -> (u64, u64) {
    (HANDSHAKES_RESUMED.load(Ordering::Relaxed), HANDSHAKES_FULL.load(Ordering::Relaxed))
}

/// How long a blocking `xs_accept` waits for a client's handshake by default.
const ACCEPT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most plaintext rustls keeps queued for sending (bytes).
const SEND_BUFFER_LIMIT: usize = 64 * 1024;

/// The TLS state of one socket.
#[derive(Debug, Default)]
pub(crate) struct TlsLayer {
    options: Mutex<TlsOptions>,
    /// A listening socket's server configuration, made on first accept.
    server: Mutex<Option<Arc<ServerConfig>>>,
    session: Mutex<Option<Session>>,
}

/// A connection in progress or established.
#[derive(Debug)]
struct Session {
    conn: Connection,
    /// Plaintext received and not yet returned (kept for `MSG_PEEK`).
    plain: Vec<u8>,
    /// The name the server certificate is checked against, for error messages.
    server_name: Option<String>,
    started: Instant,
    /// How long the handshake took, once done.
    handshake: Option<Duration>,
    /// Why the connection failed, kept so every later call reports it (and `SO_ERROR`
    /// once, with `reported`).
    failed: Option<(i32, String)>,
    reported: bool,
}

/// Kernel socket I/O that never blocks and never raises SIGPIPE.
struct KernelIo(RawFd);

impl Read for KernelIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: writes at most buf.len() bytes into a live buffer.
        let n =
            unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}

impl Write for KernelIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: reads buf.len() bytes from a live buffer.
        let n = unsafe { libc::send(self.0, buf.as_ptr().cast(), buf.len(), flags) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one attempt to read TLS records gave.
enum Input {
    /// Records were read and processed.
    Progress,
    /// Nothing to read now.
    Empty,
    /// The peer closed the TCP connection.
    Closed,
}

fn io_error(op: &'static str, source: io::Error) -> Error {
    Error::Os { op: op.into(), source }
}

fn would_block() -> Error {
    Error::errno("tls", libc::EAGAIN)
}

impl Session {
    fn new(conn: Connection, server_name: Option<String>) -> Self {
        Self {
            conn,
            plain: Vec::new(),
            server_name,
            started: Instant::now(),
            handshake: None,
            failed: None,
            reported: false,
        }
    }

    /// One step of the handshake, without waiting: `None` when it is done, else the
    /// kernel events it waits for. A failure is kept for every later call.
    fn handshake_step(&mut self, fd: RawFd) -> Result<Option<i16>> {
        if let Some((errno, detail)) = &self.failed {
            return Err(Error::Failed { errno: *errno, detail: detail.clone() });
        }
        let outcome = self.try_handshake(fd);
        if let Err(err) = &outcome {
            self.failed = Some((err.os_errno().unwrap_or(libc::EPROTO), err.to_string()));
        }
        outcome
    }

    fn try_handshake(&mut self, fd: RawFd) -> Result<Option<i16>> {
        loop {
            if self.handshake.is_some() {
                return Ok(None);
            }
            self.write_out(fd)?;
            if !self.conn.is_handshaking() {
                self.handshake = Some(self.started.elapsed());
                let resumed = self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let counter = if resumed { &HANDSHAKES_RESUMED } else { &HANDSHAKES_FULL };
                counter.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            match self.read_in(fd)? {
                Input::Progress => continue,
                Input::Closed => {
                    return Err(Error::Tls(
                        "peer closed the connection during the handshake".into(),
                    ));
                }
                Input::Empty => {}
            }
            return Ok(Some(if self.conn.wants_write() { libc::POLLOUT } else { libc::POLLIN }));
        }
    }

    fn tls_error(&self, err: &rustls::Error) -> Error {
        Error::Tls(config::describe(err, self.server_name.as_deref()))
    }

    /// Writes queued records to the kernel until it would block.
    fn write_out(&mut self, fd: RawFd) -> Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut KernelIo(fd)) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io_error("tls send", err)),
            }
        }
        Ok(())
    }

    /// Reads and processes what records the kernel has.
    fn read_in(&mut self, fd: RawFd) -> Result<Input> {
        match self.conn.read_tls(&mut KernelIo(fd)) {
            Ok(0) => Ok(Input::Closed),
            Ok(_) => match self.conn.process_new_packets() {
                Ok(_) => Ok(Input::Progress),
                Err(err) => {
                    // Tell the peer why (the alert rustls queued), then fail.
                    let _ = self.write_out(fd);
                    Err(self.tls_error(&err))
                }
            },
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(Input::Empty),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(Input::Progress),
            Err(err) => Err(io_error("tls receive", err)),
        }
    }

    /// Moves plaintext from rustls into `plain`: `Some(n)` bytes added (`Some(0)`: the
    /// peer sent close_notify and everything was read), `None` when none is ready.
    fn take_plaintext(&mut self) -> Result<Option<usize>> {
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.reader().read(&mut chunk) {
            Ok(n) => {
                self.plain.extend_from_slice(&chunk[..n]);
                Ok(Some(n))
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Tls(
                "peer closed the connection without close_notify (truncated)".into(),
            )),
            Err(err) => Err(io_error("tls read", err)),
        }
    }

    /// Copies received plaintext into `buf`, keeping it for the next call under
    /// `MSG_PEEK`; returns how many bytes.
    fn deliver(&mut self, buf: &mut [u8], flags: i32) -> usize {
        let n = self.plain.len().min(buf.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        if flags & libc::MSG_PEEK == 0 {
            self.plain.drain(..n);
        }
        n
    }

    /// Fills `plain` up to `want` bytes from what rustls has; returns whether the peer
    /// has ended the stream (close_notify).
    fn fill_plain(&mut self, want: usize) -> Result<bool> {
        while self.plain.len() < want {
            match self.take_plaintext() {
                Ok(Some(0)) => return Ok(true),
                Ok(Some(_)) => {}
                Ok(None) => break,
                // Plaintext already taken is delivered first; the error comes next call.
                Err(_) if !self.plain.is_empty() => break,
                Err(err) => return Err(err),
            }
        }
        Ok(false)
    }
}

impl TlsLayer {
    /// Sets a TLS option (level `XS_SOL_TLS`).
    pub(crate) fn set_option(&self, name: i32, value: &[u8]) -> Result<()> {
        self.options.lock().set(name, value)?;
        // A listener's server configuration is made again with the new options.
        *self.server.lock() = None;
        Ok(())
    }

    /// Reads a TLS option: the connection's parameters once the handshake is done.
    pub(crate) fn option(&self, name: i32) -> Result<Vec<u8>> {
        let session = self.session.lock();
        let conn = session.as_ref().filter(|s| s.handshake.is_some());
        let not_yet = || Error::InvalidArgument("the TLS handshake has not finished".into());
        let value = match name {
            XS_TLS_VERSION => {
                let version =
                    conn.ok_or_else(not_yet)?.conn.protocol_version().map_or(0, u16::from);
                i32::from(version).to_ne_bytes().to_vec()
            }
            XS_TLS_CIPHER => {
                let suite = conn.ok_or_else(not_yet)?.conn.negotiated_cipher_suite();
                suite.map(|s| format!("{:?}", s.suite()).into_bytes()).unwrap_or_default()
            }
            XS_TLS_ALPN_SELECTED => conn
                .ok_or_else(not_yet)?
                .conn
                .alpn_protocol()
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            XS_TLS_PEER_SHA256 => {
                let certs = conn.ok_or_else(not_yet)?.conn.peer_certificates();
                certs
                    .and_then(|c| c.first())
                    .map(|c| config::fingerprint(c).to_vec())
                    .unwrap_or_default()
            }
            XS_TLS_HANDSHAKE_US => {
                let took = conn.ok_or_else(not_yet)?.handshake.unwrap_or_default();
                i64::try_from(took.as_micros()).unwrap_or(i64::MAX).to_ne_bytes().to_vec()
            }
            XS_TLS_RESUMED => {
                let kind = conn.ok_or_else(not_yet)?.conn.handshake_kind();
                i32::from(kind == Some(rustls::HandshakeKind::Resumed)).to_ne_bytes().to_vec()
            }
            _ => return Err(Error::OptionNotSupported { level: XS_SOL_TLS, name }),
        };
        Ok(value)
    }

    /// Checks the server's certificate against `host` (from a URL) unless
    /// `XS_TLS_SERVER_NAME` was set.
    pub(crate) fn default_server_name(&self, host: &str) {
        let mut options = self.options.lock();
        if options.server_name.is_none() {
            options.server_name = Some(host.to_string());
        }
    }

    /// A layer for a socket accepted from this listening one: the same options.
    pub(crate) fn for_accepted(&self) -> Self {
        Self { options: Mutex::new(self.options.lock().clone()), ..Self::default() }
    }

    /// After the kernel connected (or started connecting): starts the client session.
    pub(crate) fn start_client(&self, socket: &Socket) -> Result<()> {
        let options = self.options.lock().clone();
        let peer_ip = crate::addr::peer_ip(socket.raw_fd());
        let name = config::server_name(&options, peer_ip)?;
        let config = config::client_config(&options)?;
        let label = options.server_name.clone().or(peer_ip.map(|ip| ip.to_string()));
        let mut conn = ClientConnection::new(config, name)
            .map_err(|err| Error::Tls(config::describe(&err, label.as_deref())))?;
        conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        *self.session.lock() = Some(Session::new(conn.into(), label));
        Ok(())
    }

    /// For an accepted socket: starts the server session with the listener's config.
    pub(crate) fn start_server(&self, listener: &TlsLayer) -> Result<()> {
        let config = {
            let mut server = listener.server.lock();
            match server.as_ref() {
                Some(config) => Arc::clone(config),
                None => {
                    let config = config::server_config(&listener.options.lock())?;
                    *server = Some(Arc::clone(&config));
                    config
                }
            }
        };
        let mut conn = ServerConnection::new(config).map_err(|err| Error::Tls(err.to_string()))?;
        conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        *self.session.lock() = Some(Session::new(conn.into(), None));
        Ok(())
    }

    /// Checks that a listening socket can serve (certificate and key load), so that
    /// `xs_listen` reports a bad certificate rather than every `xs_accept`.
    pub(crate) fn prepare_server(&self) -> Result<()> {
        let config = config::server_config(&self.options.lock())?;
        *self.server.lock() = Some(config);
        Ok(())
    }

    /// Moves the handshake on without waiting: `None` once done, else the kernel
    /// events it waits for.
    pub(crate) fn handshake_poll(&self, socket: &Socket) -> Result<Option<i16>> {
        self.session.lock().as_mut().ok_or_else(not_connected)?.handshake_step(socket.raw_fd())
    }

    /// Runs the handshake until done; waits (until `deadline`) unless `dont_wait`.
    pub(crate) fn handshake(
        &self,
        socket: &Socket,
        deadline: Option<Instant>,
        dont_wait: bool,
    ) -> Result<()> {
        let outcome = socket
            .run_handshake("tls handshake", deadline, dont_wait, || self.handshake_poll(socket));
        if let Err(err @ Error::TimedOut(_)) = &outcome {
            // Every later call reports it.
            if let Some(session) = self.session.lock().as_mut() {
                session.failed = Some((libc::ETIMEDOUT, err.to_string()));
            }
        }
        outcome
    }

    /// Sends plaintext: all of it on a blocking socket (as `send(2)`), what fits on a
    /// non-blocking one.
    pub(crate) fn send(&self, socket: &Socket, data: &[u8], dont_wait: bool) -> Result<usize> {
        let deadline = socket.timeout_deadline(libc::SO_SNDTIMEO)?;
        self.handshake(socket, deadline, dont_wait)?;
        let fd = socket.raw_fd();
        let mut taken = 0;
        loop {
            {
                let mut guard = self.session.lock();
                let session = guard.as_mut().ok_or_else(not_connected)?;
                session.write_out(fd)?;
                if taken < data.len() {
                    taken += session
                        .conn
                        .writer()
                        .write(&data[taken..])
                        .map_err(|e| io_error("tls", e))?;
                    session.write_out(fd)?;
                }
                // Blocking sends return once every byte is with the kernel.
                let done = taken == data.len() && !session.conn.wants_write();
                if done || (dont_wait && (taken > 0 || data.is_empty())) {
                    return Ok(taken);
                }
            }
            if dont_wait {
                return Err(would_block());
            }
            if !socket.wait(libc::POLLOUT, deadline)? {
                return if taken > 0 { Ok(taken) } else { Err(would_block()) };
            }
        }
    }

    /// Receives plaintext as `recv(2)` does, with `MSG_PEEK` and `MSG_WAITALL`.
    pub(crate) fn recv(
        &self,
        socket: &Socket,
        buf: &mut [u8],
        flags: i32,
        dont_wait: bool,
    ) -> Result<usize> {
        let deadline = socket.timeout_deadline(libc::SO_RCVTIMEO)?;
        self.handshake(socket, deadline, dont_wait)?;
        let fd = socket.raw_fd();
        let want = if flags & libc::MSG_WAITALL != 0 { buf.len() } else { buf.len().min(1) };
        loop {
            if socket.is_closed() {
                return Err(Error::ClosedWhileInUse);
            }
            {
                let mut guard = self.session.lock();
                let session = guard.as_mut().ok_or_else(not_connected)?;
                session.write_out(fd)?;
                let ended = session.fill_plain(buf.len())?;
                let ready = session.plain.len().min(buf.len());
                if ready >= want || ended || (ready > 0 && dont_wait) {
                    return Ok(session.deliver(buf, flags));
                }
                match session.read_in(fd)? {
                    // After Closed, rustls knows of the end: the next round reports it.
                    Input::Progress | Input::Closed => continue,
                    Input::Empty => {}
                }
            }
            if dont_wait {
                return Err(would_block());
            }
            if !socket.wait(libc::POLLIN, deadline)? {
                // Timed out: what a MSG_WAITALL receive has so far, as the kernel does.
                let mut guard = self.session.lock();
                let session = guard.as_mut().ok_or_else(not_connected)?;
                if session.plain.is_empty() {
                    return Err(would_block());
                }
                return Ok(session.deliver(buf, flags));
            }
        }
    }

    /// Reads plaintext without waiting (moving the handshake on first), for a layer
    /// above TLS: `Done(0)` when the peer ended the stream with close_notify.
    pub(crate) fn read_now(&self, socket: &Socket, buf: &mut [u8]) -> Result<Io> {
        self.established(socket, |session, fd| {
            loop {
                let ended = session.fill_plain(buf.len())?;
                if !session.plain.is_empty() {
                    return Ok(Io::Done(session.deliver(buf, 0)));
                }
                if ended {
                    return Ok(Io::Done(0));
                }
                match session.read_in(fd)? {
                    Input::Progress | Input::Closed => {}
                    Input::Empty => return Ok(Io::Wait(libc::POLLIN)),
                }
            }
        })
    }

    /// Writes plaintext without waiting (moving the handshake on first), for a layer
    /// above TLS: how much rustls took.
    pub(crate) fn write_now(&self, socket: &Socket, data: &[u8]) -> Result<Io> {
        self.established(socket, |session, fd| {
            let taken = session.conn.writer().write(data).map_err(|e| io_error("tls", e))?;
            session.write_out(fd)?;
            Ok(if taken == 0 && !data.is_empty() {
                Io::Wait(libc::POLLOUT)
            } else {
                Io::Done(taken)
            })
        })
    }

    /// Runs `io` on the session once its handshake is done and queued records are
    /// written; while the handshake goes on, the events it waits for.
    fn established(
        &self,
        socket: &Socket,
        io: impl FnOnce(&mut Session, RawFd) -> Result<Io>,
    ) -> Result<Io> {
        let fd = socket.raw_fd();
        let mut guard = self.session.lock();
        let session = guard.as_mut().ok_or_else(not_connected)?;
        if let Some(events) = session.handshake_step(fd)? {
            return Ok(Io::Wait(events));
        }
        session.write_out(fd)?;
        io(session, fd)
    }

    /// Whether the handshake is over (or never started).
    pub(crate) fn handshake_done(&self) -> bool {
        self.session.lock().as_ref().is_none_or(|s| s.handshake.is_some() || s.failed.is_some())
    }

    /// Whether encrypted records wait for the kernel.
    pub(crate) fn holds_output(&self) -> bool {
        self.session.lock().as_ref().is_some_and(|s| s.conn.wants_write())
    }

    /// Sends close_notify; with `wait`, until it is with the kernel.
    pub(crate) fn close_notify(&self, socket: &Socket, wait: bool) -> Result<()> {
        let fd = socket.raw_fd();
        let deadline = socket.timeout_deadline(libc::SO_SNDTIMEO)?;
        loop {
            {
                let mut guard = self.session.lock();
                let Some(session) = guard.as_mut() else { return Ok(()) };
                session.conn.send_close_notify();
                session.write_out(fd)?;
                if !session.conn.wants_write() || !wait {
                    return Ok(());
                }
            }
            if !socket.wait(libc::POLLOUT, deadline)? {
                return Err(would_block());
            }
        }
    }

    /// What `xs_poll` should do for this socket: drives a handshake in progress one
    /// step, and hands queued records to the kernel.
    pub(crate) fn poll_plan(&self, socket: &Socket) -> PollPlan {
        // A thread inside a call holds the session: the kernel socket tells enough.
        let Some(mut guard) = self.session.try_lock() else { return PollPlan::Ready(0) };
        let Some(session) = guard.as_mut() else { return PollPlan::Ready(0) };
        match session.handshake_step(socket.raw_fd()) {
            Err(_) => return PollPlan::Failed,
            Ok(Some(events)) => return PollPlan::Handshaking(events),
            Ok(None) => {}
        }
        let _ = session.write_out(socket.raw_fd());
        if !session.plain.is_empty() || !matches!(session.take_plaintext(), Ok(None)) {
            PollPlan::Ready(libc::POLLIN)
        } else {
            PollPlan::Ready(0)
        }
    }

    /// The errno of a failed handshake, once (for `SO_ERROR`, as after a failed
    /// non-blocking connect).
    pub(crate) fn take_error(&self) -> Option<i32> {
        let mut guard = self.session.lock();
        let session = guard.as_mut()?;
        let errno = session.failed.as_ref().filter(|_| !session.reported)?.0;
        session.reported = true;
        Some(errno)
    }
}

fn not_connected() -> Error {
    Error::errno("tls", libc::ENOTCONN)
}

/// How long a blocking `xs_accept` gives a client's handshake (TLS, WebSocket):
/// the listener's `XS_SO_CONNECT_TIMEOUT`, else 10 s.
pub(crate) fn accept_timeout(timeout_ms: u32) -> Duration {
    if timeout_ms == 0 {
        ACCEPT_HANDSHAKE_TIMEOUT
    } else {
        Duration::from_millis(timeout_ms.into())
    }
}
