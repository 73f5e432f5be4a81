//! The smux layer: sessions and streams as sids.
//!
//! A session socket owns the connection (kernel socket, or TLS on it) and the
//! sans-IO [`Session`]. A stream socket holds its session socket and its stream key.
//! There is no thread per session: the threads that call move the session on.
//! Every call first *pumps* the session (reads what the connection has, acts on the
//! frames, writes what is queued), without waiting. A call that must wait does so
//! either as the session's *leader*, the one thread that watches the connection
//! (and pumps when it becomes readable), or as a follower that sleeps on its
//! thread's wake-up eventfd until a pump changes its stream. When the leader
//! returns it wakes a follower to take over. Streams nobody reads only fill up to
//! their window; the others go on. With no thread inside, the event thread's timer
//! pumps the session now and then, sends PIN keepalives and checks the idle timeout;
//! whenever the connection becomes writable the event thread writes what is queued.

use std::{
    cell::RefCell,
    collections::VecDeque,
    os::fd::{AsRawFd, OwnedFd},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use parking_lot::{Mutex, MutexGuard};

use super::{
    options::SmuxOptions,
    session::{Read, Session, StreamError, StreamKey},
};
use crate::{
    error::{Error, Result},
    ffi::types::*,
    lower::{self, Io},
    poll::PollPlan,
    socket::Socket,
    sys,
};

/// The key waiters use for "a stream to accept".
const ACCEPT: StreamKey = 0;

/// Queued output beyond which a session fails: only answers to the peer's requests
/// can pile up past [`OUTPUT_HIGH`], and only if the peer does not read.
const OUTPUT_LIMIT: usize = 16 << 20;

/// Queued output beyond which writers wait for the connection.
const OUTPUT_HIGH: usize = 1 << 20;

/// The most one writer adds to the output in one turn while others wait.
const TURN_QUANTUM: usize = 64 * 1024;

/// The most a pump reads at once, so one busy session cannot hold a thread forever.
const PUMP_LIMIT: usize = 4 << 20;

/// How often a PIN goes to a peer that sends them (the Go library's v2 interval).
const PIN_INTERVAL_V2: Duration = Duration::from_secs(10);

/// How often the event thread looks at an idle session (for PINs from the peer).
const IDLE_PUMP: Duration = Duration::from_secs(5);

/// A thread's wake-up eventfd, for waits on sessions and streams.
#[derive(Debug)]
pub(crate) struct Waker(OwnedFd);

impl Waker {
    fn signal(&self) {
        sys::eventfd_signal(&self.0);
    }

    /// Clears the eventfd after a wake-up.
    pub(crate) fn reset(&self) {
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd we own.
        unsafe { libc::read(self.0.as_raw_fd(), (&raw mut count).cast(), 8) };
    }

    /// The eventfd, for `poll`.
    pub(crate) fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

thread_local! {
    static WAKER: RefCell<Option<Arc<Waker>>> = const { RefCell::new(None) };
    /// Where a pump reads the connection into: one per thread, not per session, so
    /// idle sessions hold no buffer.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How much one read from the connection takes at most.
const READ_CHUNK: usize = 256 * 1024;

/// This thread's wake-up eventfd, made on first need.
pub(crate) fn thread_waker() -> Result<Arc<Waker>> {
    WAKER.with_borrow_mut(|slot| {
        if let Some(waker) = slot {
            return Ok(Arc::clone(waker));
        }
        let waker = Arc::new(Waker(sys::eventfd()?));
        *slot = Some(Arc::clone(&waker));
        Ok(waker)
    })
}

/// The state of one session, behind its lock.
#[derive(Debug)]
struct State {
    core: Session,
    /// Why the session ended: errno and detail.
    failure: Option<(i32, String)>,
    /// Whether a thread watches the connection for everyone.
    leader: bool,
    /// Threads waiting, with the stream each waits for.
    waiters: Vec<(StreamKey, Arc<Waker>)>,
    /// When the peer last sent anything.
    last_input: Instant,
    /// When the next PIN is due, once PINs go out.
    next_pin: Option<Instant>,
    /// Streams' notification eventfds (`XS_SO_NOTIFY_FD`), signalled when the
    /// stream changes; each is removed when its stream is closed, before it is.
    notifiers: Vec<(StreamKey, i32)>,
    /// Closed here: what was queued before still goes out (see `SmuxLayer::close`).
    draining: bool,
    /// Writers waiting for their turn at the output, in order (see `send`).
    turns: VecDeque<u64>,
    next_turn: u64,
}

/// One session, shared by its socket and its streams.
#[derive(Debug)]
pub(crate) struct SmuxSession {
    state: Mutex<State>,
    options: SmuxOptions,
}

/// The smux part of a socket: a session to be (options), a session, or a stream.
#[derive(Debug)]
pub(crate) struct SmuxLayer {
    options: Mutex<SmuxOptions>,
    session: OnceLock<Arc<SmuxSession>>,
    /// A stream socket's key and session socket.
    stream: Option<(StreamKey, Arc<Socket>)>,
    /// A stream's `SO_RCVTIMEO` and `SO_SNDTIMEO`, in microseconds (0: none): the
    /// kernel's would be the whole connection's.
    timeouts: [AtomicU64; 2],
}

fn would_block() -> Error {
    Error::errno("smux", libc::EAGAIN)
}

fn failed(failure: &(i32, String)) -> Error {
    Error::Failed { errno: failure.0, detail: failure.1.clone() }
}

impl State {
    fn fail(&mut self, errno: i32, detail: String) {
        if self.failure.is_none() {
            self.failure = Some((errno, detail));
            self.wake_all();
            for (_, notify) in &self.notifiers {
                signal_fd(*notify);
            }
        }
    }

    fn wake_all(&self) {
        for (_, waker) in &self.waiters {
            waker.signal();
        }
    }

    /// A waiting thread leaves: if it watched the connection, or nobody does, the
    /// first waiter takes over (a wake-up meant for the next leader may have come to
    /// the thread leaving, which then would not pass it on).
    fn leave(&mut self, leading: bool) {
        if leading {
            self.leader = false;
        }
        if !self.leader {
            if let Some((_, next)) = self.waiters.first() {
                next.signal();
            }
        }
    }

    /// A writer's place at the end of the line for the output (see `SmuxLayer::send`).
    fn line_up(&mut self) -> u64 {
        let turn = self.next_turn;
        self.next_turn += 1;
        self.turns.push_back(turn);
        turn
    }

    fn wake(&self, key: StreamKey) {
        for (k, waker) in &self.waiters {
            if *k == key {
                waker.signal();
            }
        }
    }

    /// Writes queued frames until the connection would block: `None` when all is out.
    fn flush(&mut self, transport: &Socket) -> Option<i16> {
        let before = self.core.output().len();
        let mut pending = None;
        while !self.core.output().is_empty() && (self.failure.is_none() || self.draining) {
            match lower::write(transport, self.core.output()) {
                Ok(Io::Done(n)) => self.core.consume_output(n),
                Ok(Io::Wait(events)) => {
                    pending = Some(events);
                    break;
                }
                Err(err) => {
                    // Nothing more can go out: what is queued is dropped.
                    self.fail(libc::ECONNRESET, format!("smux: connection lost ({err})"));
                    self.draining = false;
                    let queued = self.core.output().len();
                    self.core.consume_output(queued);
                }
            }
        }
        if before >= OUTPUT_HIGH && self.core.output().len() < OUTPUT_HIGH {
            // Writers waiting for room may go on.
            self.wake_all();
        }
        pending
    }

    /// Reads what the connection has, acts on it, writes what is queued, and wakes
    /// the threads whose streams changed. Never waits. Returns whether it read all
    /// there was (false when it stopped at its limit, or for queued output).
    fn pump(&mut self, transport: &Socket) -> bool {
        let drained = READ_BUF.with_borrow_mut(|buf| {
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            let mut taken = 0;
            // Incoming data and confirmations are bounded by the windows, so reading
            // goes on whatever our output holds; only answers (VRM, refusals) grow it
            // without bound, and a peer that never reads them is cut off.
            while self.failure.is_none() && taken < PUMP_LIMIT {
                if self.core.output().len() > OUTPUT_LIMIT {
                    let detail = "smux: the peer does not read our answers; session closed";
                    self.fail(libc::EPROTO, detail.into());
                    end_connection(transport);
                    break;
                }
                match lower::read(transport, buf) {
                    Ok(Io::Done(0)) => {
                        self.fail(libc::ECONNRESET, "smux: the peer closed the connection".into());
                    }
                    Ok(Io::Done(n)) => {
                        taken += n;
                        self.last_input = Instant::now();
                        if let Err(violation) = self.core.receive(&buf[..n]) {
                            let detail =
                                format!("smux: {} from the peer; session closed", violation.0);
                            self.fail(libc::EPROTO, detail);
                            // SAFETY: shutdown on the session's own descriptor.
                            unsafe { libc::shutdown(transport.raw_fd(), libc::SHUT_RDWR) };
                        }
                    }
                    Ok(Io::Wait(_)) => return true,
                    Err(err) => {
                        self.fail(libc::ECONNRESET, format!("smux: connection lost ({err})"));
                    }
                }
            }
            self.failure.is_some()
        });
        self.flush(transport);
        for key in self.core.take_changed() {
            self.wake(key);
            for (_, notify) in self.notifiers.iter().filter(|(k, _)| *k == key) {
                signal_fd(*notify);
            }
        }
        drained
    }
}

impl SmuxSession {
    fn new(options: SmuxOptions) -> Self {
        let state = State {
            core: Session::new(options.session),
            failure: None,
            leader: false,
            waiters: Vec::new(),
            last_input: Instant::now(),
            next_pin: (!options.pin_interval.is_zero()).then(Instant::now),
            turns: VecDeque::new(),
            next_turn: 0,
            draining: false,
            notifiers: Vec::new(),
        };
        Self { state: Mutex::new(state), options }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Waits until `ready` gives a value, moving the session on meanwhile (see the
    /// module's comment). `caller` is the sid waiting (a close of it ends the
    /// wait); `key` is what it waits for. Without `deadline` it waits as long as it
    /// takes; with `dont_wait` it tries once.
    fn wait_until<T>(
        &self,
        transport: &Socket,
        caller: &Socket,
        key: StreamKey,
        deadline: Option<Instant>,
        dont_wait: bool,
        mut ready: impl FnMut(&mut State) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut leading = false;
        let mut waker: Option<Arc<Waker>> = None;
        loop {
            let (me, transport_events) = {
                let mut state = self.lock();
                let finished = 'check: {
                    state.pump(transport);
                    if caller.is_closed() {
                        break 'check Some(Err(Error::ClosedWhileInUse));
                    }
                    match ready(&mut state) {
                        Ok(None) => {}
                        done => {
                            state.flush(transport);
                            break 'check done.transpose();
                        }
                    }
                    if dont_wait || deadline.is_some_and(|d| Instant::now() >= d) {
                        break 'check Some(Err(would_block()));
                    }
                    if waker.is_none() {
                        match thread_waker() {
                            Ok(w) => waker = Some(w),
                            Err(err) => break 'check Some(Err(err)),
                        }
                    }
                    None
                };
                if let Some(outcome) = finished {
                    state.leave(leading);
                    return outcome;
                }
                let me = Arc::clone(waker.as_ref().expect("made above"));
                if !leading && !state.leader {
                    state.leader = true;
                    leading = true;
                }
                state.waiters.push((key, Arc::clone(&me)));
                let output = if state.core.output().is_empty() { 0 } else { libc::POLLOUT };
                (me, leading.then_some(libc::POLLIN | output))
            };
            let mut fds = [
                libc::pollfd { fd: me.fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd {
                    fd: transport.raw_fd(),
                    events: transport_events.unwrap_or(0),
                    revents: 0,
                },
            ];
            let count = if transport_events.is_some() { 2 } else { 1 };
            let timeout = deadline.map_or(-1, |d| {
                let left = d.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` holds `count` live pollfd entries.
            unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
            me.reset();
            let mut state = self.lock();
            if let Some(at) =
                state.waiters.iter().position(|(k, w)| *k == key && Arc::ptr_eq(w, &me))
            {
                state.waiters.swap_remove(at);
            }
        }
    }
}

/// Makes a notification eventfd readable.
fn signal_fd(fd: i32) {
    // SAFETY: the stream owning this eventfd takes it out of the list before it
    // closes it (see `SmuxLayer::close`), so the number is still its own here.
    sys::eventfd_signal(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
}

/// Ends a closed session's connection: close_notify on TLS, then both directions.
fn end_connection(socket: &Socket) {
    lower::shutdown_write(socket);
    // SAFETY: shutdown on the session's own descriptor.
    unsafe { libc::shutdown(socket.raw_fd(), libc::SHUT_RDWR) };
}

/// Whether TLS under the session still handshakes.
fn tls_handshaking(socket: &Socket) -> bool {
    socket.tls().is_some_and(|tls| !tls.handshake_done())
}

/// Whether a thread drives the TLS handshake under the session (a blocking connect
/// or accept): the event thread must not take its bytes away then.
fn handshake_driven(socket: &Socket) -> bool {
    tls_handshaking(socket) && socket.has_callers()
}

impl Default for SmuxLayer {
    fn default() -> Self {
        Self {
            options: Mutex::new(SmuxOptions::default()),
            session: OnceLock::new(),
            stream: None,
            timeouts: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

/// Maps a stream error to errno.
fn stream_error(err: StreamError) -> Error {
    match err {
        StreamError::Unknown => Error::errno("smux stream", libc::EBADF),
        StreamError::Closed => Error::Failed {
            errno: libc::EPIPE,
            detail: "smux: the stream is closed (FIN sent or received)".into(),
        },
        StreamError::NoIds => Error::Failed {
            errno: libc::EMFILE,
            detail: "smux: no stream id left (the session's stream limit is reached)".into(),
        },
    }
}

impl SmuxLayer {
    /// The layer of a stream of `session` (whose socket is `parent`).
    pub(crate) fn for_stream(parent: Arc<Socket>, key: StreamKey) -> Result<Self> {
        let smux = parent.smux().ok_or_else(|| Error::errno("smux", libc::ENOTSOCK))?;
        let session = smux.session.get().ok_or_else(|| Error::errno("smux", libc::ENOTCONN))?;
        let layer = Self { stream: Some((key, Arc::clone(&parent))), ..Self::default() };
        *layer.options.lock() = session.options;
        let _ = layer.session.set(Arc::clone(session));
        Ok(layer)
    }

    /// A layer for a session accepted on this listening one: the same options.
    pub(crate) fn for_accepted(&self) -> Self {
        let layer = Self::default();
        *layer.options.lock() = *self.options.lock();
        layer
    }

    /// Sets an smux option (level `XS_SOL_SMUX`), before the session starts.
    pub(crate) fn set_option(&self, name: i32, value: &[u8]) -> Result<()> {
        if self.session.get().is_some() {
            return Err(Error::InvalidArgument(
                "smux options are set before the session starts".into(),
            ));
        }
        self.options.lock().set(name, value)
    }

    /// Reads an smux option, or the session's and stream's state.
    pub(crate) fn option(&self, socket: &Socket, name: i32) -> Result<i32> {
        let session = self.session.get();
        if let Some(session) = session {
            // What came meanwhile counts (a FIN, the peer's first PIN).
            let transport = self.stream.as_ref().map_or(socket, |(_, t)| &**t);
            if !tls_handshaking(transport) {
                session.lock().pump(transport);
            }
        }
        match name {
            XS_SMUX_STREAM_ID => {
                let (key, _) = self
                    .stream
                    .as_ref()
                    .ok_or(Error::OptionNotSupported { level: XS_SOL_SMUX, name })?;
                let session = session.ok_or_else(|| Error::errno("smux", libc::ENOTCONN))?;
                Ok(session.lock().core.stream_id(*key).map_or(0, i32::from))
            }
            XS_SMUX_STREAMS => Ok(session.map_or(0, |s| s.lock().core.stream_count() as i32)),
            XS_SMUX_PEER_PINS => Ok(session.is_some_and(|s| s.lock().core.peer_pins()).into()),
            _ => self.options.lock().get(name),
        }
    }

    /// Whether this is a stream socket.
    pub(crate) fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether a session runs on this socket (not a listener, not a stream).
    pub(crate) fn is_session(&self) -> bool {
        self.session.get().is_some() && self.stream.is_none()
    }

    /// Starts the session once the connection is up (connected or accepted).
    pub(crate) fn start_session(&self) {
        let options = *self.options.lock();
        let _ = self.session.set(Arc::new(SmuxSession::new(options)));
    }

    fn session(&self) -> Result<&Arc<SmuxSession>> {
        self.session.get().ok_or_else(|| Error::errno("smux", libc::ENOTCONN))
    }

    /// A stream's own `SO_RCVTIMEO` (`which` 0) or `SO_SNDTIMEO` (1).
    pub(crate) fn stream_timeout(&self, which: usize) -> Option<Duration> {
        let micros = self.timeouts[which].load(SeqCst);
        (micros != 0).then(|| Duration::from_micros(micros))
    }

    /// Sets a stream's own `SO_RCVTIMEO` (`which` 0) or `SO_SNDTIMEO` (1).
    pub(crate) fn set_stream_timeout(&self, which: usize, limit: Duration) {
        self.timeouts[which].store(u64::try_from(limit.as_micros()).unwrap_or(u64::MAX), SeqCst);
    }

    /// `xs_smux_open` on a session socket: a new stream's key (SYN goes out).
    pub(crate) fn open_stream(&self, transport: &Socket) -> Result<StreamKey> {
        let session = self.session()?;
        let mut state = session.lock();
        // FINs that came meanwhile free ids.
        state.pump(transport);
        if let Some(failure) = &state.failure {
            return Err(failed(failure));
        }
        let key = state.core.open().map_err(stream_error)?;
        state.flush(transport);
        Ok(key)
    }

    /// `xs_accept` on a session socket: the key of a stream the peer opened.
    pub(crate) fn accept_stream(
        &self,
        transport: &Socket,
        deadline: Option<Instant>,
    ) -> Result<StreamKey> {
        let session = self.session()?;
        let dont_wait = transport.is_nonblocking();
        session.wait_until(transport, transport, ACCEPT, deadline, dont_wait, |state| {
            if let Some(key) = state.core.accept() {
                return Ok(Some(key));
            }
            state.failure.as_ref().map_or(Ok(None), |f| Err(failed(f)))
        })
    }

    /// Sends on a stream (`caller`): all of it when blocking (until the deadline: then
    /// the bytes already handed to the connection), what the window allows otherwise.
    pub(crate) fn send(
        &self,
        caller: &Socket,
        data: &[u8],
        dont_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let (key, transport) =
            self.stream.as_ref().ok_or_else(|| Error::errno("send", libc::ENOTCONN))?;
        let session = self.session()?;
        let mut sent = 0;
        let mut turn: Option<u64> = None;
        let outcome = session.wait_until(transport, caller, *key, deadline, dont_wait, |state| {
            if let Some(failure) = &state.failure {
                return Err(failed(failure));
            }
            // Writers take turns (first come, first served) while others wait for
            // room in the connection's output, so that none starves.
            while sent < data.len() {
                let mine = turn.is_some_and(|t| state.turns.front() == Some(&t));
                if state.core.output().len() >= OUTPUT_HIGH || !(state.turns.is_empty() || mine) {
                    if turn.is_none() {
                        turn = Some(state.line_up());
                    }
                    break;
                }
                if let Some(t) = turn.take() {
                    state.turns.retain(|x| *x != t);
                }
                let end = (sent + TURN_QUANTUM).min(data.len());
                let n = match state.core.write(*key, &data[sent..end]) {
                    Ok(n) => n,
                    Err(err) => {
                        // Its turn taken but not used: the next in line goes.
                        state.wake_all();
                        return Err(stream_error(err));
                    }
                };
                sent += n;
                state.flush(transport);
                if !state.turns.is_empty() {
                    // Others wait: the next in line goes, and this writer lines up
                    // behind them (whoever takes a turn with others in line wakes
                    // them), unless its window closed: then the peer's CFM wakes it.
                    if n > 0 && sent < data.len() {
                        turn = Some(state.line_up());
                    }
                    state.wake_all();
                    break;
                }
                if n == 0 {
                    break; // the window is closed: wait for the peer's CFM
                }
            }
            let done = sent == data.len() || (dont_wait && sent > 0);
            Ok(done.then_some(sent))
        });
        if let Some(t) = turn {
            // Leaving without its turn (done, timed out or failed): the next one goes.
            let mut state = session.lock();
            state.turns.retain(|x| *x != t);
            state.wake_all();
        }
        match outcome {
            // Bytes handed over count, even when the wait ran out (the seed's rule).
            Err(err) if sent > 0 && err.os_errno() == Some(libc::EAGAIN) => Ok(sent),
            other => other,
        }
    }

    /// Receives from a stream (`caller`) as `recv(2)` does: 0 once the peer closed it
    /// and every byte was read.
    pub(crate) fn recv(
        &self,
        caller: &Socket,
        buf: &mut [u8],
        peek: bool,
        dont_wait: bool,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let (key, transport) =
            self.stream.as_ref().ok_or_else(|| Error::errno("recv", libc::ENOTCONN))?;
        let session = self.session()?;
        session.wait_until(transport, caller, *key, deadline, dont_wait, |state| {
            match state.core.read(*key, buf, peek).map_err(stream_error)? {
                Read::Data(n) => Ok(Some(n)),
                Read::End => Ok(Some(0)),
                Read::Empty if buf.is_empty() => Ok(Some(0)),
                Read::Empty => state.failure.as_ref().map_or(Ok(None), |f| Err(failed(f))),
            }
        })
    }

    /// `xs_shutdown(SHUT_WR)` on a stream: FIN (the peer closes too; reading goes on
    /// until its FIN).
    pub(crate) fn finish(&self) -> Result<()> {
        let (key, transport) =
            self.stream.as_ref().ok_or_else(|| Error::errno("shutdown", libc::ENOTCONN))?;
        let mut state = self.session()?.lock();
        state.core.finish(*key);
        state.flush(transport);
        Ok(())
    }

    /// `xs_close`: a stream lets go (FIN). A session ends every stream on it: FIN
    /// for each, then what was queued goes out (as a kernel socket's close sends what
    /// `send` took) and the connection ends. Returns whether output still waits for
    /// the event thread to write (see `push_output`).
    pub(crate) fn close(&self, socket: &Socket) -> bool {
        let Some(session) = self.session.get() else { return false };
        let mut state = session.lock();
        match &self.stream {
            Some((key, transport)) => {
                state.core.release(*key);
                state.flush(transport);
                state.wake(*key);
                state.notifiers.retain(|(k, _)| k != key);
                false
            }
            None => {
                state.core.finish_all();
                state.fail(libc::ECONNRESET, "smux: the session was closed".into());
                state.draining = true;
                let lingering = state.flush(socket).is_some();
                if !lingering {
                    end_connection(socket);
                }
                lingering
            }
        }
    }

    /// From the event thread, for a closed session: writes what is still queued;
    /// ends the connection once all is out. Returns whether output still waits.
    pub(crate) fn push_output(&self, socket: &Socket) -> bool {
        let Some(session) = self.session.get() else { return false };
        let mut state = session.lock();
        if state.flush(socket).is_some() {
            return true;
        }
        end_connection(socket);
        false
    }

    /// What `xs_poll` should do for a session (streams to accept) or stream socket.
    /// The waker is the polling thread's: it is woken when the stream changes.
    pub(crate) fn poll_plan(&self, socket: &Socket, waker: Option<&Arc<Waker>>) -> PollPlan {
        let Some(session) = self.session.get() else { return PollPlan::Ready(0) };
        let (key, transport) = match &self.stream {
            Some((key, transport)) => (*key, &**transport),
            None => (ACCEPT, socket),
        };
        if let Some(tls) = transport.tls().filter(|_| key == ACCEPT) {
            // A session is connected once TLS under it is.
            match tls.handshake_poll(transport) {
                Err(_) => return PollPlan::Failed,
                Ok(Some(events)) => return PollPlan::Handshaking(events),
                Ok(None) => {}
            }
        }
        let mut state = session.lock();
        state.pump(transport);
        let mut ready = 0;
        if state.failure.is_some() {
            ready |= libc::POLLIN | libc::POLLHUP;
        } else if key == ACCEPT {
            if state.core.can_accept() {
                ready |= libc::POLLIN;
            }
        } else {
            if state.core.readable(key) {
                ready |= libc::POLLIN;
            }
            if state.core.send_room(key) > 0 && state.core.output().len() < OUTPUT_HIGH {
                ready |= libc::POLLOUT;
            }
            if state.core.peer_closed(key) {
                ready |= libc::POLLHUP;
            }
        }
        if let Some(waker) = waker {
            if !state.waiters.iter().any(|(k, w)| *k == key && Arc::ptr_eq(w, waker)) {
                state.waiters.push((key, Arc::clone(waker)));
            }
        }
        let wait = libc::POLLIN | if state.core.output().is_empty() { 0 } else { libc::POLLOUT };
        // The connection's writability is not a stream's (its window says), but it
        // is a session's (a non-blocking connect completes with POLLOUT).
        PollPlan::Layered { ready, wait, kernel_out: key == ACCEPT }
    }

    /// From the event thread, when the session's connection became readable or
    /// writable: moves the session on unless a thread watches it already, and
    /// writes what is queued either way.
    pub(crate) fn on_ready(&self, socket: &Socket) {
        let Some(session) = self.session.get().filter(|_| self.stream.is_none()) else { return };
        if handshake_driven(socket) {
            return;
        }
        let mut state = session.lock();
        if state.leader {
            // The leader may watch for input only: what other threads left queued
            // goes out now that the connection takes it.
            state.flush(socket);
            return;
        }
        while state.failure.is_none() && !state.pump(socket) {}
    }

    /// `XS_SO_NOTIFY_FD` on a stream: its eventfd is signalled when the session's
    /// pumps change the stream (the connection's own events are the session's).
    pub(crate) fn watch_notify(&self, fd: i32) {
        let (Some(session), Some((key, _))) = (self.session.get(), &self.stream) else { return };
        let mut state = session.lock();
        state.notifiers.push((*key, fd));
        // The application may have missed what came before.
        signal_fd(fd);
    }

    /// After `xs_poll`: the polling thread no longer waits here.
    pub(crate) fn unwatch(&self, waker: &Arc<Waker>) {
        if let Some(session) = self.session.get() {
            session.lock().waiters.retain(|(_, w)| !Arc::ptr_eq(w, waker));
        }
    }

    /// The event thread's timer for a session: pumps it when no thread watches the
    /// connection, sends PINs when due, and fails it after the idle timeout. The next
    /// time it wants to run; `None` once the session is over.
    pub(crate) fn tick(&self, socket: &Socket, now: Instant) -> Option<Instant> {
        let session = self.session.get()?;
        let options = session.options;
        if handshake_driven(socket) {
            return Some(now + Duration::from_millis(50));
        }
        let mut state = session.lock();
        if state.failure.is_some() {
            return None;
        }
        if !state.leader {
            state.pump(socket);
        }
        if state.next_pin.is_none() && state.core.peer_pins() {
            state.next_pin = Some(now);
        }
        if let Some(due) = state.next_pin.filter(|due| *due <= now) {
            state.core.ping();
            let every =
                if options.pin_interval.is_zero() { PIN_INTERVAL_V2 } else { options.pin_interval };
            state.next_pin = Some(due.max(now - every) + every);
        }
        if !options.idle_timeout.is_zero()
            && now.duration_since(state.last_input) >= options.idle_timeout
        {
            let detail =
                format!("smux: nothing from the peer for {} ms", options.idle_timeout.as_millis());
            state.fail(libc::ETIMEDOUT, detail);
            // SAFETY: shutdown on the session's own descriptor.
            unsafe { libc::shutdown(socket.raw_fd(), libc::SHUT_RDWR) };
            return None;
        }
        let pending = state.flush(socket).is_some();
        let mut next = now + if pending { Duration::from_millis(20) } else { IDLE_PUMP };
        if let Some(pin) = state.next_pin {
            next = next.min(pin);
        }
        if !options.idle_timeout.is_zero() {
            next = next.min(state.last_input + options.idle_timeout);
        }
        Some(next)
    }

    /// `xs_smux_probe`: sends a VRM probe and waits (until `deadline`) for the right
    /// answer; whether it came. A peer that answers wrong or not at all is no smux
    /// peer.
    pub(crate) fn probe(&self, socket: &Socket, deadline: Instant) -> Result<bool> {
        let session = self.session()?;
        let mut random = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| Error::Internal("no system randomness for the VRM probe"))?;
        let v1 = u16::from_le_bytes([random[0], random[1]]);
        let v2 = u32::from_le_bytes([random[2], random[3], random[4], random[5]]);
        {
            let mut state = session.lock();
            state.core.probe(v1, v2);
            state.flush(socket);
        }
        let outcome = session.wait_until(socket, socket, ACCEPT, Some(deadline), false, |state| {
            if state.core.probe_answered() {
                return Ok(Some(true));
            }
            Ok(state.failure.is_some().then_some(false))
        });
        match outcome {
            Err(err) if err.os_errno() == Some(libc::EAGAIN) => Ok(false),
            other => other,
        }
    }
}
