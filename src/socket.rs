//! One open socket: a kernel socket behind a sid, shared by the calling threads and
//! the event thread.
//!
//! The data path runs in the calling thread: each call goes straight to the kernel
//! socket with the caller's own blocking mode, flags and timeouts, so protocol-0
//! sockets behave exactly as kernel sockets do and pay no thread hop.
//!
//! Closing from another thread: every call that may block counts itself in
//! `waiters`. [`Socket::close`] marks the socket closed and, when anyone is inside a
//! call, shuts the kernel socket down, which wakes blocked `recv`, `send`, `accept`,
//! `connect` and `poll` calls in the kernel. They then fail with `EBADF`. The
//! kernel descriptor itself is closed only when the last reference is dropped, so
//! a descriptor number is never reused while a thread may still use it. (A blocking
//! Unix connect waits on the listener, out of reach of that shutdown; it waits on a
//! wake eventfd instead, see `connect_unix_waiting`.)

use std::{
    os::fd::{AsRawFd, OwnedFd, RawFd},
    sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst},
    time::{Duration, Instant},
};

use crate::{
    addr,
    cork::Cork,
    error::{Error, Result},
    fork::ForkSafe,
    handshakes::Handshakes,
    log::{self, Level},
    reactor,
    smux::SmuxLayer,
    sys::{self, LazyEventFd, syscall},
    tls::TlsLayer,
    ws::WsLayer,
};

/// An open socket. Lives in the sid table until closed, and as long as any call uses it.
#[derive(Debug)]
pub(crate) struct Socket {
    sid: i32,
    fd: Descriptor,
    domain: i32,
    sock_type: i32,
    /// The caller's `O_NONBLOCK`, mirrored on the kernel socket.
    nonblocking: AtomicBool,
    closed: AtomicBool,
    /// Calls currently inside this socket that may block.
    waiters: AtomicUsize,
    /// Bound on a blocking `connect`, in milliseconds; 0 means the kernel's own.
    connect_timeout_ms: AtomicU32,
    /// The notification eventfd for event loops, made when asked for.
    notify: LazyEventFd,
    /// Wakes a blocked Unix connect when the socket is closed (see `connect_unix_waiting`).
    wake: LazyEventFd,
    /// `MSG_MORE` bytes corked in user space (stream sockets; see `cork.rs`). The lock is
    /// made on first use; a forked child drops the parent's bytes with a fresh lock.
    cork: ForkSafe<Option<Box<Cork>>>,
    /// Whether `cork` holds bytes, so that other calls need not take its lock.
    corked: AtomicBool,
    /// The TLS layer of an `XS_PROTO_TLS` socket.
    tls: Option<Box<TlsLayer>>,
    /// The WebSocket layer of an `XS_PROTO_WS` or `XS_PROTO_WS_RAW` socket.
    ws: Option<Box<WsLayer>>,
    /// The smux layer of an `XS_PROTO_SMUX` socket: a session, or one of its streams.
    smux: Option<Box<SmuxLayer>>,
    /// A layered listener's handshakes in progress (see `handshakes.rs`).
    handshakes: Handshakes,
    /// Whether this socket waits in the event thread's attention list.
    pub(crate) attention_queued: AtomicBool,
}

/// The kernel socket behind a sid.
#[derive(Debug)]
enum Descriptor {
    /// The socket's own.
    Own(OwnedFd),
    /// An smux stream's: its session's connection, kept open by the session socket
    /// the stream holds (see `smux::layer`).
    Session(RawFd),
}

/// A call's timeout deadline, read from the kernel (a system call) only when the call
/// first has to wait; the time then counts from there, as the kernel's does.
#[derive(Debug)]
pub(crate) struct Deadline<'a> {
    socket: &'a Socket,
    optname: i32,
    at: Option<Option<Instant>>,
}

impl Deadline<'_> {
    /// When the wait must end (`None`: no limit).
    pub(crate) fn get(&mut self) -> Result<Option<Instant>> {
        if let Some(at) = self.at {
            return Ok(at);
        }
        let at = self.socket.timeout_deadline(self.optname)?;
        self.at = Some(at);
        Ok(at)
    }
}

/// Marks a call as inside the socket for as long as it lives (see [`Socket::enter`]).
#[derive(Debug)]
pub(crate) struct InCall<'a>(&'a AtomicUsize);

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Socket {
    /// Wraps a kernel socket. `nonblocking` must match the descriptor's `O_NONBLOCK`.
    pub(crate) fn new(
        sid: i32,
        fd: OwnedFd,
        domain: i32,
        sock_type: i32,
        nonblocking: bool,
    ) -> Self {
        Self::new_with(sid, Descriptor::Own(fd), domain, sock_type, nonblocking)
    }

    fn new_with(sid: i32, fd: Descriptor, domain: i32, sock_type: i32, nonblocking: bool) -> Self {
        Self {
            sid,
            fd,
            domain,
            sock_type,
            nonblocking: AtomicBool::new(nonblocking),
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            connect_timeout_ms: AtomicU32::new(0),
            notify: LazyEventFd::new(),
            wake: LazyEventFd::new(),
            cork: ForkSafe::new(),
            corked: AtomicBool::new(false),
            tls: None,
            ws: None,
            smux: None,
            handshakes: Handshakes::default(),
            attention_queued: AtomicBool::new(false),
        }
    }

    /// The same socket with a TLS layer.
    pub(crate) fn with_tls(mut self, layer: TlsLayer) -> Self {
        self.tls = Some(Box::new(layer));
        self
    }

    /// The TLS layer, for `XS_PROTO_TLS` sockets.
    pub(crate) fn tls(&self) -> Option<&TlsLayer> {
        self.tls.as_deref()
    }

    /// A stream of the smux session on `parent`, as a socket of its own.
    /// `layer` (made by `SmuxLayer::for_stream`) holds the session socket, which keeps
    /// the shared kernel socket open.
    pub(crate) fn new_stream(sid: i32, session: &Socket, layer: SmuxLayer) -> Self {
        let fd = Descriptor::Session(session.raw_fd());
        let mut socket = Self::new_with(sid, fd, session.domain, libc::SOCK_STREAM, false);
        socket.smux = Some(Box::new(layer));
        socket
    }

    /// The same socket with an smux layer.
    pub(crate) fn with_smux(mut self, layer: SmuxLayer) -> Self {
        self.smux = Some(Box::new(layer));
        self
    }

    /// The smux layer, for `XS_PROTO_SMUX` sockets (sessions, listeners, streams).
    pub(crate) fn smux(&self) -> Option<&SmuxLayer> {
        self.smux.as_deref()
    }

    /// Whether this is an smux stream (no kernel socket of its own).
    pub(crate) fn is_stream(&self) -> bool {
        self.smux.as_ref().is_some_and(|s| s.is_stream())
    }

    /// The same socket with a WebSocket layer.
    pub(crate) fn with_ws(mut self, layer: WsLayer) -> Self {
        self.ws = Some(Box::new(layer));
        self
    }

    /// The WebSocket layer, for `XS_PROTO_WS` and `XS_PROTO_WS_RAW` sockets.
    pub(crate) fn ws(&self) -> Option<&WsLayer> {
        self.ws.as_deref()
    }

    /// A layered listener's handshakes in progress.
    pub(crate) fn handshakes(&self) -> &Handshakes {
        &self.handshakes
    }

    /// Moves a layer's handshake on without waiting: `None` once done (or when there
    /// is none), else the kernel events it waits for.
    pub(crate) fn handshake_step(&self) -> Result<Option<i16>> {
        if let Some(ws) = &self.ws {
            // Drives TLS under it too.
            return ws.handshake_poll(self);
        }
        match &self.tls {
            Some(tls) => tls.handshake_poll(self),
            None => Ok(None),
        }
    }

    /// Says whether a layer holds output for the event thread's sweep to write.
    pub(crate) fn set_corked(&self, corked: bool) {
        if corked && !self.corked.swap(true, SeqCst) {
            reactor::arm_cork_sweep();
        } else if !corked {
            self.corked.store(false, SeqCst);
        }
    }

    /// Whether the caller's `O_NONBLOCK` is set.
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(SeqCst)
    }

    /// Waits for `events` on the kernel socket until `deadline` (`None`: no limit);
    /// `Ok(false)` on time-out. A close from another thread ends it with `EBADF`.
    pub(crate) fn wait(&self, events: i16, deadline: Option<Instant>) -> Result<bool> {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX)
            }
        };
        let _in_call = self.enter()?;
        let mut pfd = libc::pollfd { fd: self.raw_fd(), events, revents: 0 };
        let ready = syscall!("poll", poll(&mut pfd, 1, timeout))?;
        if self.closed.load(SeqCst) {
            return Err(Error::ClosedWhileInUse);
        }
        Ok(ready > 0)
    }

    /// Runs a layer's handshake (`what`) until done. `step` moves it on without
    /// waiting: `None` once done, else the kernel events it waits for. Waits until
    /// `deadline` (then `ETIMEDOUT`) unless `dont_wait` (then `EAGAIN`).
    pub(crate) fn run_handshake(
        &self,
        what: &'static str,
        deadline: Option<Instant>,
        dont_wait: bool,
        mut step: impl FnMut() -> Result<Option<i16>>,
    ) -> Result<()> {
        loop {
            let Some(events) = step()? else { return Ok(()) };
            if dont_wait {
                return Err(Error::errno(what, libc::EAGAIN));
            }
            if !self.wait(events, deadline)? {
                return Err(Error::TimedOut(what));
            }
        }
    }

    /// When a wait bounded by `SO_RCVTIMEO` or `SO_SNDTIMEO` (`optname`) must end.
    pub(crate) fn timeout_deadline(&self, optname: i32) -> Result<Option<Instant>> {
        if let Some(smux) = self.smux.as_deref().filter(|s| s.is_stream()) {
            let which = usize::from(optname == libc::SO_SNDTIMEO);
            return Ok(smux.stream_timeout(which).map(|limit| Instant::now() + limit));
        }
        let tv: libc::timeval = sys::option(self.raw_fd(), libc::SOL_SOCKET, optname)?;
        Ok(duration_of(tv).map(|limit| Instant::now() + limit))
    }

    /// A call's deadline from `SO_RCVTIMEO` or `SO_SNDTIMEO` (`optname`), read only
    /// if the call has to wait.
    pub(crate) fn deadline(&self, optname: i32) -> Deadline<'_> {
        Deadline { socket: self, optname, at: None }
    }

    /// The socket's id.
    pub(crate) fn sid(&self) -> i32 {
        self.sid
    }

    /// The kernel descriptor.
    pub(crate) fn raw_fd(&self) -> RawFd {
        match &self.fd {
            Descriptor::Own(fd) => fd.as_raw_fd(),
            Descriptor::Session(fd) => *fd,
        }
    }

    /// The address family given to `xs_socket`.
    pub(crate) fn domain(&self) -> i32 {
        self.domain
    }

    /// The socket type given to `xs_socket`, without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
    pub(crate) fn sock_type(&self) -> i32 {
        self.sock_type
    }

    /// Whether `xs_close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Counts a handshake driven from elsewhere (a listener's `xs_accept`, see
    /// `handshakes.rs`) as a call inside the socket, until [`Socket::unhold`].
    pub(crate) fn hold(&self) {
        self.waiters.fetch_add(1, SeqCst);
    }

    /// Ends a [`Socket::hold`].
    pub(crate) fn unhold(&self) {
        self.waiters.fetch_sub(1, SeqCst);
    }

    /// Whether a thread is inside a call on this socket.
    pub(crate) fn has_callers(&self) -> bool {
        self.waiters.load(SeqCst) > 0
    }

    /// Enters a call that may block, so that [`Socket::close`] wakes it; fails if the
    /// socket is already closed.
    pub(crate) fn enter(&self) -> Result<InCall<'_>> {
        self.waiters.fetch_add(1, SeqCst);
        let guard = InCall(&self.waiters);
        if self.closed.load(SeqCst) {
            return Err(Error::ClosedWhileInUse);
        }
        Ok(guard)
    }

    /// Runs one kernel call that may block, so that `xs_close` from another thread can
    /// wake it. A call cut short by that close fails with [`Error::ClosedWhileInUse`].
    fn blocking(&self, op: &'static str, call: impl FnOnce() -> isize) -> Result<isize> {
        let _in_call = self.enter()?;
        let rc = call();
        let err = (rc < 0).then(|| Error::last_os(op));
        if rc <= 0 && self.closed.load(SeqCst) {
            return Err(Error::ClosedWhileInUse);
        }
        err.map_or(Ok(rc), Err)
    }

    /// In a forked child: the calls other threads were making exist only in the parent.
    pub(crate) fn forget_other_threads(&self) {
        self.waiters.store(0, SeqCst);
        self.attention_queued.store(false, SeqCst);
        // Corked bytes are the parent's to send; a parent thread may hold their lock.
        // SAFETY: called only from the fork handler in the child.
        unsafe { self.cork.reset_in_child() };
        self.corked.store(false, SeqCst);
    }

    /// Marks the socket closed and wakes every call blocked on it. Corked bytes the
    /// kernel cannot take at once stay for the event thread to drain ([`Socket::is_corked`]).
    pub(crate) fn close(&self) {
        self.push_cork();
        // Closed first: a call woken by what the peer answers to close_notify sees it.
        self.closed.store(true, SeqCst);
        if let Some(smux) = &self.smux {
            // A stream's FIN, or the end of a session and all its streams. Threads
            // blocked on a stream wait on their wakers, which this signals.
            let lingering = smux.close(self);
            if smux.is_stream() {
                self.notify.signal();
                return;
            }
            self.set_corked(lingering);
        } else if let Some(ws) = &self.ws {
            // The close frame; the event thread waits for the peer's (see `is_corked`).
            let lingering = ws.begin_close(self);
            self.set_corked(lingering);
        } else if let Some(tls) = &self.tls {
            // close_notify, as far as the kernel takes it now: close does not wait.
            let _ = tls.close_notify(self, false);
        }
        if self.waiters.load(SeqCst) > 0 {
            // Wakes blocked calls; the descriptor stays open until the last user leaves.
            // SAFETY: shutdown on a descriptor we own.
            unsafe { libc::shutdown(self.raw_fd(), libc::SHUT_RDWR) };
        }
        self.handshakes.abandon();
        self.notify.signal();
        self.wake.signal();
    }

    // ===== set-up =====

    /// `bind(2)`.
    ///
    /// # Safety
    /// `addr` and `len` are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn bind(
        &self,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
    ) -> Result<()> {
        syscall!("bind", bind(self.raw_fd(), addr, len))?;
        log_debug_event(self, "bound to", false);
        Ok(())
    }

    /// `listen(2)`.
    pub(crate) fn listen(&self, backlog: i32) -> Result<()> {
        if let Some(tls) = &self.tls {
            tls.prepare_server()?; // a bad certificate fails here, not at every accept
        }
        syscall!("listen", listen(self.raw_fd(), backlog))?;
        log_debug_event(self, "listening on", false);
        Ok(())
    }

    /// `accept4(2)`: the accepted kernel socket, always close-on-exec.
    ///
    /// # Safety
    /// `addr` and `len` are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn accept(
        &self,
        addr: *mut libc::sockaddr,
        len: *mut libc::socklen_t,
        flags: i32,
    ) -> Result<OwnedFd> {
        let fd = self.blocking("accept", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::accept4(self.raw_fd(), addr, len, flags | libc::SOCK_CLOEXEC) as isize }
        })?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) })
    }

    /// `connect(2)`, bounded by the connect timeout when one is set on a blocking socket.
    ///
    /// # Safety
    /// `addr` and `len` are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn connect(
        &self,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
    ) -> Result<()> {
        let timeout_ms = self.connect_timeout_ms.load(SeqCst);
        let blocking = !self.nonblocking.load(SeqCst);
        let unix_stream = self.domain == libc::AF_UNIX && self.sock_type != libc::SOCK_DGRAM;
        let started = Instant::now();
        let outcome = if blocking && unix_stream {
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { self.connect_unix_waiting(addr, len, timeout_ms) }
        } else if blocking && timeout_ms != 0 {
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { self.connect_bounded(addr, len, timeout_ms) }
        } else {
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { self.connect_once(addr, len) }
        };
        let in_progress = matches!(&outcome, Err(e) if e.os_errno() == Some(libc::EINPROGRESS));
        // Inside the call until the handshakes are done: the event thread leaves them
        // to this thread.
        let _in_call = self.enter()?;
        if outcome.is_ok() || in_progress {
            // Every layer starts now; a non-blocking socket's handshakes move on later.
            self.start_client_layers()?;
        }
        if outcome.is_ok() {
            let deadline = match timeout_ms {
                0 => self.timeout_deadline(libc::SO_SNDTIMEO)?,
                ms => Some(started + Duration::from_millis(ms.into())),
            };
            let handshakes = self
                .tls
                .as_ref()
                .map_or(Ok(()), |tls| tls.handshake(self, deadline, !blocking))
                .and_then(|()| {
                    self.ws.as_ref().map_or(Ok(()), |ws| ws.handshake(self, deadline, !blocking))
                });
            match handshakes {
                Err(err) if !blocking && err.os_errno() == Some(libc::EAGAIN) => {
                    return Err(Error::errno("connect", libc::EINPROGRESS));
                }
                other => other?,
            }
        }
        outcome?;
        log_debug_event(self, "connected to", true);
        Ok(())
    }

    /// Starts the client side of every layer once the kernel connected (or started to).
    fn start_client_layers(&self) -> Result<()> {
        if let Some(tls) = &self.tls {
            tls.start_client(self)?;
        }
        if let Some(ws) = &self.ws {
            ws.start_client(self)?;
        }
        if let Some(smux) = &self.smux {
            smux.start_session();
            reactor::watch(self);
        }
        if self.ws.is_some() || self.smux.is_some() {
            // Pings, keepalives and timeouts of idle connections.
            reactor::add_timer(self);
        }
        Ok(())
    }

    /// One kernel `connect` with the socket's own blocking mode.
    unsafe fn connect_once(&self, addr: *const libc::sockaddr, len: libc::socklen_t) -> Result<()> {
        self.blocking("connect", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::connect(self.raw_fd(), addr, len) as isize }
        })
        .map(drop)
    }

    /// A blocking TCP connect that gives up after `timeout_ms` with `ETIMEDOUT`.
    ///
    /// The kernel's own bound on a blocking connect is `SO_SNDTIMEO`, so the call runs
    /// with the send timeout lowered to `timeout_ms` and restored after: signals
    /// (`EINTR`) and a close from another thread behave as for a plain connect.
    unsafe fn connect_bounded(
        &self,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
        timeout_ms: u32,
    ) -> Result<()> {
        let fd = self.raw_fd();
        let (level, name) = (libc::SOL_SOCKET, libc::SO_SNDTIMEO);
        let before: libc::timeval = sys::option(fd, level, name)?;
        if duration_of(before).is_some_and(|user| user.as_millis() <= u128::from(timeout_ms)) {
            // The application's own, shorter send timeout governs, as on a kernel socket.
            // SAFETY: the caller's contract is passed on unchanged.
            return unsafe { self.connect_once(addr, len) };
        }
        sys::set_option(fd, level, name, &timeval_ms(timeout_ms))?;
        // SAFETY: the caller's contract is passed on unchanged.
        let outcome = unsafe { self.connect_once(addr, len) };
        sys::set_option(fd, level, name, &before)?;
        match outcome {
            // A blocking TCP connect says EINPROGRESS when SO_SNDTIMEO runs out.
            Err(err) if err.os_errno() == Some(libc::EINPROGRESS) => {
                // Abandon the attempt so the socket does not connect later behind our back.
                let unspec = libc::sockaddr { sa_family: libc::AF_UNSPEC as _, sa_data: [0; 14] };
                // SAFETY: a valid AF_UNSPEC address of the right size.
                unsafe { libc::connect(fd, &unspec, size_of::<libc::sockaddr>() as _) };
                Err(Error::TimedOut("connect"))
            }
            other => other,
        }
    }

    /// A blocking Unix stream connect that a close from another thread can wake.
    ///
    /// The kernel parks a blocking Unix connect on the *listener's* queue, out of reach
    /// of a shutdown of this socket. So the connect is tried without blocking, and while
    /// the listener's queue is full (`EAGAIN`) the thread waits on the socket's wake
    /// eventfd, which [`Socket::close`] signals, retrying with a growing pause (1 ms to
    /// 50 ms). It stops as the kernel would: `EAGAIN` when `SO_SNDTIMEO` runs out,
    /// `EINTR` on a signal, and `ETIMEDOUT` when the connect timeout (`timeout_ms`, 0:
    /// none) runs out.
    unsafe fn connect_unix_waiting(
        &self,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
        timeout_ms: u32,
    ) -> Result<()> {
        let fd = self.raw_fd();
        let start = Instant::now();
        let send_timeout = send_timeout(fd)?;
        let connect_timeout = (timeout_ms != 0).then(|| Duration::from_millis(timeout_ms.into()));
        let flags = syscall!("fcntl", fcntl(fd, libc::F_GETFL))?;
        let _in_call = self.enter()?;
        let mut pause = Duration::from_millis(1);
        loop {
            syscall!("fcntl", fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            let rc = unsafe { libc::connect(fd, addr, len) };
            let err = (rc != 0).then(|| Error::last_os("connect"));
            syscall!("fcntl", fcntl(fd, libc::F_SETFL, flags))?;
            if self.closed.load(SeqCst) {
                return Err(Error::ClosedWhileInUse);
            }
            match err {
                None => return Ok(()),
                Some(err) if err.os_errno() != Some(libc::EAGAIN) => return Err(err),
                Some(_) => {}
            }
            let elapsed = start.elapsed();
            if connect_timeout.is_some_and(|limit| elapsed >= limit) {
                return Err(Error::TimedOut("connect"));
            }
            if send_timeout.is_some_and(|limit| elapsed >= limit) {
                return Err(Error::errno("connect", libc::EAGAIN));
            }
            let left = [connect_timeout, send_timeout]
                .into_iter()
                .flatten()
                .map(|limit| limit - elapsed)
                .fold(pause, Duration::min);
            // No events asked for: only a hang-up (our own close) or the time ends it.
            let mut pfd = libc::pollfd { fd, events: 0, revents: 0 };
            let wait_ms = left.as_millis().max(1) as i32;
            syscall!("poll", poll(&mut pfd, 1, wait_ms))?;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    // ===== data =====

    /// `send(2)`, never raising SIGPIPE. On stream sockets `MSG_MORE` sends are corked in
    /// user space and handed to the kernel together (see `cork.rs`).
    ///
    /// # Safety
    /// `buf` and `len` are passed to the kernel as given; the kernel checks them. A
    /// `MSG_MORE` send (or any send while bytes are corked) reads `len` bytes at `buf`
    /// itself, so `buf` must then be NULL or valid.
    pub(crate) unsafe fn send(
        &self,
        buf: *const libc::c_void,
        len: usize,
        flags: i32,
    ) -> Result<isize> {
        let dont_wait = self.is_nonblocking() || flags & libc::MSG_DONTWAIT != 0;
        if let Some(smux) = &self.smux {
            // SAFETY: the caller's contract; the layer copies the bytes itself.
            let data = unsafe { user_bytes(buf, len) }?;
            let deadline = self.timeout_deadline(libc::SO_SNDTIMEO)?;
            return smux.send(self, data, dont_wait, deadline).map(|n| n as isize);
        }
        if let Some(ws) = &self.ws {
            // SAFETY: the caller's contract; the layer reads the message itself.
            let data = unsafe { user_bytes(buf, len) }?;
            return ws.send(self, data, flags, dont_wait).map(|n| n as isize);
        }
        if let Some(tls) = &self.tls {
            // SAFETY: the caller's contract; TLS reads the plaintext itself.
            let data = unsafe { user_bytes(buf, len) }?;
            return tls.send(self, data, dont_wait).map(|n| n as isize);
        }
        if self.sock_type == libc::SOCK_STREAM
            && (flags & libc::MSG_MORE != 0 || self.corked.load(SeqCst))
        {
            // SAFETY: the caller's contract; corking reads the bytes itself.
            let data = unsafe { user_bytes(buf, len) }?;
            return self.send_corked(data, flags).map(|n| n as isize);
        }
        self.blocking("send", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::send(self.raw_fd(), buf, len, kernel_flags(flags)) }
        })
    }

    /// A send on a stream socket that corks (`MSG_MORE`) or has corked bytes: keeps
    /// `data` corked while `MSG_MORE` asks for it and there is room; otherwise hands
    /// the corked bytes and `data` to the kernel in one call, as the socket's blocking
    /// mode allows. Returns how many bytes of `data` were taken, as `send(2)` does.
    fn send_corked(&self, data: &[u8], flags: i32) -> Result<usize> {
        let more = flags & libc::MSG_MORE != 0;
        let dont_wait = self.nonblocking.load(SeqCst) || flags & libc::MSG_DONTWAIT != 0;
        let mut slot = self.cork.write();
        if more && slot.as_ref().is_none_or(|cork| cork.fits(data.len())) {
            self.cork_bytes(&mut slot, data);
            return Ok(data.len());
        }
        let mut taken = 0;
        let failure = loop {
            let pending = slot.as_ref().map_or(&[][..], |cork| cork.pending());
            let pending_len = pending.len();
            let rest = &data[taken..];
            let iov = [iovec(pending), iovec(rest)];
            // SAFETY: all-zero is a valid msghdr; the fields set point at live buffers.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_ptr().cast_mut();
            msg.msg_iovlen = iov.len();
            let outcome = self.blocking("send", || {
                // SAFETY: `msg` describes the two live buffers above.
                unsafe { libc::sendmsg(self.raw_fd(), &msg, kernel_flags(flags)) }
            });
            match outcome {
                Ok(n) => {
                    let n = n as usize;
                    let from_cork = n.min(pending_len);
                    if slot.as_mut().is_some_and(|cork| cork.consume(from_cork)) {
                        *slot = None;
                    }
                    taken += n - from_cork;
                    if (slot.is_none() && taken == data.len()) || dont_wait {
                        break None;
                    }
                }
                Err(err) => break Some(err),
            }
        };
        match failure {
            Some(err) if !matches!(err.os_errno(), Some(libc::EAGAIN | libc::EINTR)) => {
                // The connection is broken: corked bytes can never be delivered.
                *slot = None;
                self.corked.store(false, SeqCst);
                return if taken > 0 { Ok(taken) } else { Err(err) };
            }
            _ => {}
        }
        // What the kernel did not take stays corked when MSG_MORE allows it.
        if more && taken < data.len() && slot.as_ref().is_none_or(|c| c.fits(data.len() - taken)) {
            self.cork_bytes(&mut slot, &data[taken..]);
            taken = data.len();
        }
        self.corked.store(slot.is_some(), SeqCst);
        match failure {
            Some(err) if taken == 0 && !data.is_empty() => Err(err),
            None if taken == 0 && !data.is_empty() => Err(Error::errno("send", libc::EAGAIN)),
            _ => Ok(taken),
        }
    }

    /// Adds bytes to the cork (which has room), arming the event thread's sweep when
    /// the cork starts.
    fn cork_bytes(&self, slot: &mut Option<Box<Cork>>, data: &[u8]) {
        match slot {
            Some(cork) => cork.append(data),
            None => {
                *slot = Some(Box::new(Cork::new(data, Instant::now())));
                self.corked.store(true, SeqCst);
                reactor::arm_cork_sweep();
            }
        }
    }

    /// Hands all corked bytes to the kernel, waiting for room (bounded by
    /// `SO_SNDTIMEO`, woken by a close): before a shutdown, `sendto` or `sendmsg`,
    /// whose bytes must come after them. A broken connection drops the bytes.
    pub(crate) fn flush_cork(&self) -> Result<()> {
        if !self.corked.load(SeqCst) || self.ws.is_some() {
            return Ok(());
        }
        let mut slot = self.cork.write();
        let outcome = self.flush_locked(&mut slot, true);
        self.corked.store(slot.is_some(), SeqCst);
        outcome
    }

    /// Hands over what corked bytes the kernel takes at once: before a receive, poll or
    /// close, which must never wait behind a sender. A thread that holds the cork is
    /// sending, corked bytes first, so then there is nothing to do.
    pub(crate) fn push_cork(&self) {
        self.push_cork_if(|_| true);
    }

    /// From the event thread: pushes corked bytes that waited [`crate::cork::MAX_DELAY`]
    /// (all of them once the socket is closed).
    pub(crate) fn flush_due_cork(&self, now: Instant) {
        self.push_cork_if(|cork| cork.is_due(now) || self.is_closed());
    }

    fn push_cork_if(&self, due: impl FnOnce(&Cork) -> bool) {
        if !self.corked.load(SeqCst) {
            return;
        }
        if let Some(ws) = &self.ws {
            let waiting = ws.push_output(self, self.is_closed());
            self.set_corked(waiting);
            return;
        }
        if let Some(smux) = self.smux.as_deref().filter(|_| self.is_closed()) {
            let waiting = smux.push_output(self);
            self.set_corked(waiting);
            return;
        }
        let Some(mut slot) = self.cork.try_write() else { return };
        if slot.as_deref().is_some_and(due) {
            // A broken connection drops the bytes; the next call reports it.
            let _ = self.flush_locked(&mut slot, false);
            self.corked.store(slot.is_some(), SeqCst);
        }
    }

    fn flush_locked(&self, slot: &mut Option<Box<Cork>>, wait: bool) -> Result<()> {
        let fd = self.raw_fd();
        while let Some(cork) = slot.as_mut() {
            let pending = cork.pending();
            // SAFETY: sends from a live buffer of `pending.len()` bytes.
            let rc = unsafe {
                libc::send(fd, pending.as_ptr().cast(), pending.len(), DONT_WAIT_NO_SIGNAL)
            };
            if rc >= 0 {
                if cork.consume(rc as usize) {
                    *slot = None;
                }
                continue;
            }
            let err = Error::last_os("send");
            match err.os_errno() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if wait => self.wait_writable()?,
                Some(libc::EAGAIN) => return Ok(()),
                _ => {
                    *slot = None;
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Waits until the kernel socket can take more bytes, at most `SO_SNDTIMEO`.
    fn wait_writable(&self) -> Result<()> {
        let deadline = self.timeout_deadline(libc::SO_SNDTIMEO)?;
        if !self.wait(libc::POLLOUT, deadline)? {
            return Err(Error::errno("send corked bytes", libc::EAGAIN));
        }
        Ok(())
    }

    /// From the event thread: runs the layer's timer (the WebSocket heartbeat); the
    /// next time it is due, `None` when it is no longer needed. A connection the
    /// heartbeat declares dead wakes every call blocked on it.
    pub(crate) fn on_timer(&self, now: Instant) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        if let Some(smux) = &self.smux {
            return smux.tick(self, now);
        }
        let ws = self.ws.as_deref()?;
        let idle = self.waiters.load(SeqCst) == 0;
        let (due, failed) = ws.tick(self, now, idle);
        if failed {
            if !idle {
                // SAFETY: shutdown on a descriptor we own; wakes the blocked calls.
                unsafe { libc::shutdown(self.raw_fd(), libc::SHUT_RDWR) };
            }
            self.notify.signal();
        }
        due
    }

    /// Whether the event thread should watch the kernel socket: for the notification
    /// fd, or to move an smux session on while no thread does.
    pub(crate) fn wants_events(&self) -> bool {
        let stream = self.is_stream();
        (self.notify().is_some() && !stream) || self.smux.as_ref().is_some_and(|s| s.is_session())
    }

    /// From the event thread: the kernel socket became readable or writable.
    pub(crate) fn on_ready(&self) {
        if let Some(smux) = &self.smux {
            smux.on_ready(self);
        }
    }

    /// Whether corked bytes wait for the kernel.
    pub(crate) fn is_corked(&self) -> bool {
        self.corked.load(SeqCst)
    }

    /// `recv(2)`.
    ///
    /// # Safety
    /// `buf` and `len` are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn recv(
        &self,
        buf: *mut libc::c_void,
        len: usize,
        flags: i32,
    ) -> Result<isize> {
        if self.ws.is_some() {
            // SAFETY: the caller's contract.
            return unsafe { self.recv_message(buf, len, flags) }.map(|(n, _)| n as isize);
        }
        if self.smux.is_some() {
            // SAFETY: the caller's contract.
            return unsafe { self.recv_message(buf, len, flags) }.map(|(n, _)| n as isize);
        }
        if let Some(tls) = &self.tls {
            // SAFETY: the caller's contract; TLS writes the plaintext itself.
            let buf = unsafe { user_bytes_mut(buf, len) }?;
            let dont_wait = self.is_nonblocking() || flags & libc::MSG_DONTWAIT != 0;
            return tls.recv(self, buf, flags, dont_wait).map(|n| n as isize);
        }
        self.push_cork();
        self.blocking("recv", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::recv(self.raw_fd(), buf, len, flags) }
        })
    }

    /// Receives from a layer (a WebSocket, or an smux stream): the count as `recv`
    /// returns it, and the `msg_flags` for `recvmsg` (WebSocket: `MSG_TRUNC`,
    /// `MSG_EOR`, `XS_MSG_TEXT`; smux: none).
    ///
    /// # Safety
    /// `buf` must be NULL or point to `len` writable bytes.
    pub(crate) unsafe fn recv_message(
        &self,
        buf: *mut libc::c_void,
        len: usize,
        flags: i32,
    ) -> Result<(usize, i32)> {
        // SAFETY: the caller's contract; the layer writes the bytes itself.
        let buf = unsafe { user_bytes_mut(buf, len) }?;
        let dont_wait = self.is_nonblocking() || flags & libc::MSG_DONTWAIT != 0;
        if let Some(smux) = &self.smux {
            let deadline = self.timeout_deadline(libc::SO_RCVTIMEO)?;
            let peek = flags & libc::MSG_PEEK != 0;
            return smux.recv(self, buf, peek, dont_wait, deadline).map(|n| (n, 0));
        }
        let ws = self.ws.as_deref().ok_or_else(|| Error::errno("recv", libc::EOPNOTSUPP))?;
        ws.recv(self, buf, flags, dont_wait)
    }

    /// `sendto(2)`, never raising SIGPIPE.
    ///
    /// # Safety
    /// All pointers are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn send_to(
        &self,
        buf: *const libc::c_void,
        len: usize,
        flags: i32,
        to: *const libc::sockaddr,
        to_len: libc::socklen_t,
    ) -> Result<isize> {
        if self.tls.is_some() || self.ws.is_some() || self.smux.is_some() {
            if !to.is_null() {
                return Err(Error::errno("sendto", libc::EISCONN));
            }
            // SAFETY: the caller's contract.
            return unsafe { self.send(buf, len, flags) };
        }
        self.flush_cork()?;
        self.blocking("sendto", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::sendto(self.raw_fd(), buf, len, kernel_flags(flags), to, to_len) }
        })
    }

    /// `recvfrom(2)`.
    ///
    /// # Safety
    /// All pointers are passed to the kernel as given; the kernel checks them.
    pub(crate) unsafe fn recv_from(
        &self,
        buf: *mut libc::c_void,
        len: usize,
        flags: i32,
        from: *mut libc::sockaddr,
        from_len: *mut libc::socklen_t,
    ) -> Result<isize> {
        if self.tls.is_some() || self.ws.is_some() || self.smux.is_some() {
            // A connected stream: no address to report, as for TCP.
            // SAFETY: the caller's contract.
            return unsafe { self.recv(buf, len, flags) };
        }
        self.push_cork();
        self.blocking("recvfrom", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::recvfrom(self.raw_fd(), buf, len, flags, from, from_len) }
        })
    }

    /// `sendmsg(2)`, never raising SIGPIPE.
    ///
    /// # Safety
    /// `msg` is passed to the kernel as given; the kernel checks it.
    pub(crate) unsafe fn send_msg(&self, msg: *const libc::msghdr, flags: i32) -> Result<isize> {
        if self.ws.is_some() || self.smux.is_some() {
            // One message from all the pieces.
            // SAFETY: the caller's contract.
            let data = unsafe { gather(msg) }?;
            // SAFETY: a live buffer of data.len() bytes.
            return unsafe { self.send(data.as_ptr().cast(), data.len(), flags) };
        }
        if self.tls.is_some() {
            return Err(Error::errno("sendmsg on a TLS socket (use xs_send)", libc::EOPNOTSUPP));
        }
        self.flush_cork()?;
        self.blocking("sendmsg", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::sendmsg(self.raw_fd(), msg, kernel_flags(flags)) }
        })
    }

    /// `recvmsg(2)`.
    ///
    /// # Safety
    /// `msg` is passed to the kernel as given; the kernel checks it.
    pub(crate) unsafe fn recv_msg(&self, msg: *mut libc::msghdr, flags: i32) -> Result<isize> {
        if self.ws.is_some() || self.smux.is_some() {
            // SAFETY: the caller's contract.
            return unsafe { self.recv_msg_layered(msg, flags) };
        }
        if self.tls.is_some() {
            return Err(Error::errno("recvmsg on a TLS socket (use xs_recv)", libc::EOPNOTSUPP));
        }
        self.push_cork();
        self.blocking("recvmsg", || {
            // SAFETY: pointers go to the kernel unchanged (caller's contract).
            unsafe { libc::recvmsg(self.raw_fd(), msg, flags) }
        })
    }

    /// `recvmsg` on a layer (WebSocket, smux): one receive scattered over the iovecs, with
    /// `msg_flags` from the layer; no address or control data.
    unsafe fn recv_msg_layered(&self, msg: *mut libc::msghdr, flags: i32) -> Result<isize> {
        if msg.is_null() {
            return Err(Error::NullPointer("msg"));
        }
        // SAFETY: non-NULL; the caller promises a valid msghdr.
        let hdr = unsafe { &mut *msg };
        // SAFETY: the caller promises msg_iov holds msg_iovlen entries.
        let iovs = unsafe { iovecs(hdr.msg_iov, hdr.msg_iovlen) }?;
        let total: usize = iovs.iter().map(|v| v.iov_len).sum();
        let (n, msg_flags) = if let [one] = iovs {
            // SAFETY: the caller promises iov_base holds iov_len writable bytes.
            unsafe { self.recv_message(one.iov_base, one.iov_len, flags) }?
        } else {
            let mut data = vec![0u8; total];
            // SAFETY: a live buffer of `total` bytes.
            let got = unsafe { self.recv_message(data.as_mut_ptr().cast(), total, flags) }?;
            let mut at = 0;
            for iov in iovs {
                let take = iov.iov_len.min(got.0.min(total) - at);
                if take > 0 {
                    // SAFETY: the caller promises iov_base holds iov_len writable bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            data[at..].as_ptr(),
                            iov.iov_base.cast(),
                            take,
                        )
                    };
                }
                at += take;
            }
            got
        };
        hdr.msg_namelen = 0;
        hdr.msg_controllen = 0;
        hdr.msg_flags = msg_flags;
        Ok(n as isize)
    }

    /// `shutdown(2)`. Corked bytes go first (before the FIN); this may wait for room.
    pub(crate) fn shutdown(&self, how: i32) -> Result<()> {
        if let Some(smux) = self.smux.as_deref().filter(|s| s.is_stream()) {
            // FIN; receiving goes on until the peer's.
            return if how == libc::SHUT_RD { Ok(()) } else { smux.finish() };
        }
        if let Some(ws) = &self.ws {
            // The close frame; the transport ends once the peer's close arrives.
            if how != libc::SHUT_RD {
                ws.shutdown_write(self)?;
            }
            if how == libc::SHUT_WR {
                return Ok(());
            }
        }
        if how != libc::SHUT_RD {
            self.flush_cork()?;
            if let Some(tls) = &self.tls {
                tls.close_notify(self, true)?;
            }
        }
        syscall!("shutdown", shutdown(self.raw_fd(), how))?;
        Ok(())
    }

    // ===== state and options =====

    /// Sets or clears `O_NONBLOCK` on the socket.
    pub(crate) fn set_nonblocking(&self, on: bool) -> Result<()> {
        if self.is_stream() {
            // The kernel socket is the session's: only the stream's own mode changes.
            self.nonblocking.store(on, SeqCst);
            return Ok(());
        }
        let fd = self.raw_fd();
        let flags = syscall!("fcntl", fcntl(fd, libc::F_GETFL))?;
        let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
        syscall!("fcntl", fcntl(fd, libc::F_SETFL, flags))?;
        self.nonblocking.store(on, SeqCst);
        Ok(())
    }

    /// The file status flags (`F_GETFL`).
    pub(crate) fn status_flags(&self) -> Result<i32> {
        if self.is_stream() {
            let nonblocking = if self.is_nonblocking() { libc::O_NONBLOCK } else { 0 };
            return Ok(libc::O_RDWR | nonblocking);
        }
        syscall!("fcntl", fcntl(self.raw_fd(), libc::F_GETFL))
    }

    /// The connect timeout in milliseconds (0: none).
    pub(crate) fn connect_timeout_ms(&self) -> u32 {
        self.connect_timeout_ms.load(SeqCst)
    }

    /// Sets the connect timeout in milliseconds (0: none).
    pub(crate) fn set_connect_timeout_ms(&self, ms: u32) {
        self.connect_timeout_ms.store(ms, SeqCst);
    }

    /// The notification eventfd, if one was made. Borrowed: the socket owns it.
    pub(crate) fn notify(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.notify.get()
    }

    /// Makes the notification eventfd (once) and returns it with whether it is new.
    pub(crate) fn make_notify(&self) -> Result<(RawFd, bool)> {
        self.notify.get_or_make()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        log::log!(Level::Trace, "sid {}: released", self.sid);
    }
}

/// The caller's buffer as bytes to read; NULL is `EFAULT` unless `len` is 0.
///
/// # Safety
/// `buf` must be NULL or point to `len` readable bytes.
unsafe fn user_bytes<'a>(buf: *const libc::c_void, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if buf.is_null() {
        return Err(Error::NullPointer("buf"));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(buf.cast(), len) })
}

/// The caller's buffer as bytes to write; NULL is `EFAULT` unless `len` is 0.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes, not used elsewhere meanwhile.
unsafe fn user_bytes_mut<'a>(buf: *mut libc::c_void, len: usize) -> Result<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Error::NullPointer("buf"));
    }
    // SAFETY: non-NULL, and the caller promises `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) })
}

/// The iovecs of a msghdr; NULL is `EFAULT` unless there are none.
///
/// # Safety
/// `iov` must be NULL or point to `len` iovecs.
unsafe fn iovecs<'a>(iov: *mut libc::iovec, len: usize) -> Result<&'a [libc::iovec]> {
    if len == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(Error::NullPointer("msg_iov"));
    }
    if len > libc::UIO_MAXIOV as usize {
        return Err(Error::InvalidArgument("msg_iovlen over IOV_MAX".into()));
    }
    // SAFETY: non-NULL, and the caller promises `len` iovecs.
    Ok(unsafe { std::slice::from_raw_parts(iov, len) })
}

/// The bytes a msghdr's iovecs describe, in one buffer.
///
/// # Safety
/// `msg` must be NULL or a valid msghdr whose iovecs point to readable bytes.
unsafe fn gather(msg: *const libc::msghdr) -> Result<Vec<u8>> {
    if msg.is_null() {
        return Err(Error::NullPointer("msg"));
    }
    // SAFETY: non-NULL; the caller promises a valid msghdr.
    let hdr = unsafe { &*msg };
    // SAFETY: the caller promises msg_iov holds msg_iovlen entries.
    let iovs = unsafe { iovecs(hdr.msg_iov, hdr.msg_iovlen) }?;
    let mut data = Vec::with_capacity(iovs.iter().map(|v| v.iov_len).sum());
    for iov in iovs {
        // SAFETY: the caller promises iov_base holds iov_len readable bytes.
        data.extend_from_slice(unsafe { user_bytes(iov.iov_base, iov.iov_len) }?);
    }
    Ok(data)
}

/// Send flags for the kernel: never SIGPIPE, and without xsocket's own flags
/// (`XS_MSG_TEXT` means nothing to a kernel socket).
fn kernel_flags(flags: i32) -> i32 {
    (flags & !crate::ffi::types::XS_MSG_TEXT) | libc::MSG_NOSIGNAL
}

/// `send` flags for handing corked bytes over.
const DONT_WAIT_NO_SIGNAL: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// An iovec over a byte slice (the kernel only reads it for sends).
fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() }
}

/// The socket's `SO_SNDTIMEO`, or `None` when it has none.
fn send_timeout(fd: RawFd) -> Result<Option<Duration>> {
    Ok(duration_of(sys::option(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO)?))
}

/// A socket timeout as a duration; `None` for zero (no timeout).
fn duration_of(tv: libc::timeval) -> Option<Duration> {
    let limit = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    (!limit.is_zero()).then_some(limit)
}

/// A `timeval` of `ms` milliseconds.
fn timeval_ms(ms: u32) -> libc::timeval {
    libc::timeval {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
    }
}

/// Logs "sid N: <what> <address>" at debug level, reading the address from the kernel.
fn log_debug_event(sock: &Socket, what: &str, peer: bool) {
    if log::enabled(Level::Debug) {
        let addr = addr::of_socket(sock.raw_fd(), peer);
        log::write(Level::Debug, format_args!("sid {}: {what} {addr}", sock.sid));
    }
}
