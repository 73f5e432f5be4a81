//! The event thread: one `mio::Poll` for the whole library, started on first need.
//!
//! Protocol-0 sockets do their I/O in the calling thread, so the event thread has
//! two jobs today:
//! * notification fds: it watches the sockets whose eventfd was asked for, and when
//!   the kernel socket becomes readable or writable (edge-triggered) it adds one to
//!   that eventfd, so epoll, libuv, asyncio or select() users can wait on sids;
//! * corked `MSG_MORE` bytes (`cork.rs`): while any exist it wakes every
//!   `SWEEP_INTERVAL` and sends those that waited `cork::MAX_DELAY`, and it drains the
//!   corked bytes of sockets closed before the kernel could take them.
//!
//! Other threads never touch the thread's state. They queue a socket that needs
//! attention (at most once per socket, so the queue is bounded by the number of
//! open sockets) and wake the thread through a `mio::Waker`. After `fork()` the
//! child has no event thread; [`handle`] starts a new one there when it is next
//! needed, and re-watches the child's sockets (see `fork.rs`).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use mio::{Events, Interest, Poll, Registry, Token, Waker, unix::SourceFd};
use parking_lot::Mutex;

use crate::{
    error::{Error, Result},
    fork::ForkSafe,
    log::{Level, log},
    socket::Socket,
    sys, table,
};

/// The token of the waker; sockets use their sid, which is never negative.
const WAKE: Token = Token(usize::MAX);

/// The running event thread, or `None` before first use (and in a forked child).
pub(crate) static REACTOR: ForkSafe<Option<Arc<Reactor>>> = ForkSafe::new();

/// A handle on the event thread.
#[derive(Debug)]
pub(crate) struct Reactor {
    registry: Registry,
    waker: Waker,
    /// Sockets whose watch state changed (notification asked for, or closed).
    attention: Mutex<Vec<Arc<Socket>>>,
    /// The process the thread runs in; a forked child starts its own.
    pid: u32,
    /// False once the thread has stopped (it only stops if it panicked).
    alive: AtomicBool,
}

/// The event thread of this process, started if it is not running.
pub(crate) fn handle() -> Result<Arc<Reactor>> {
    let mut slot = REACTOR.write();
    if let Some(reactor) = slot.as_ref() {
        if reactor.pid == std::process::id() && reactor.alive.load(SeqCst) {
            return Ok(Arc::clone(reactor));
        }
    }
    let reactor = start()?;
    *slot = Some(Arc::clone(&reactor));
    drop(slot);
    // Sockets that already had a notification fd (in a forked child) are watched again.
    let watched: Vec<Arc<Socket>> =
        table::TABLE.read().sockets().filter(|s| s.notify().is_some()).cloned().collect();
    for socket in &watched {
        // A flag left set by the old thread (in a forked child) would hide the socket.
        socket.attention_queued.store(false, SeqCst);
        reactor.attend(socket);
    }
    Ok(reactor)
}

fn start() -> Result<Arc<Reactor>> {
    let poll = Poll::new().map_err(|source| Error::Os { op: "epoll_create".into(), source })?;
    let registry = poll
        .registry()
        .try_clone()
        .map_err(|source| Error::Os { op: "epoll dup".into(), source })?;
    let waker = Waker::new(poll.registry(), WAKE)
        .map_err(|source| Error::Os { op: "eventfd".into(), source })?;
    let reactor = Arc::new(Reactor {
        registry,
        waker,
        attention: Mutex::new(Vec::new()),
        pid: std::process::id(),
        alive: AtomicBool::new(true),
    });
    let for_thread = Arc::clone(&reactor);
    std::thread::Builder::new()
        .name("xsocket-events".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(poll, &for_thread);
            }));
            for_thread.alive.store(false, SeqCst);
            if outcome.is_err() {
                log!(Level::Error, "event thread panicked; it restarts on next use");
            }
        })
        .map_err(|source| Error::Os { op: "spawn event thread".into(), source })?;
    log!(Level::Info, "event thread started (pid {})", reactor.pid);
    Ok(reactor)
}

impl Reactor {
    /// Asks the event thread to look at `socket` again (new notification fd, or closed).
    pub(crate) fn attend(&self, socket: &Arc<Socket>) {
        if !socket.attention_queued.swap(true, SeqCst) {
            self.attention.lock().push(Arc::clone(socket));
            if let Err(err) = self.waker.wake() {
                log!(Level::Error, "cannot wake the event thread: {err}");
            }
        }
    }
}

/// How often the event thread looks for corked bytes while any may be waiting.
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// How long a closed socket's corked bytes may wait for a peer that does not read.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Sockets (by sid) whose layer runs on a timer (the WebSocket heartbeat), added
/// by other threads; the event thread takes them into its own list.
static NEW_TIMERS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Makes the event thread watch a socket's kernel events (see `Socket::wants_events`).
pub(crate) fn watch(socket: &Socket) {
    let Ok(socket) = table::lookup(socket.sid()) else { return };
    match handle() {
        Ok(reactor) => reactor.attend(&socket),
        Err(err) => log!(Level::Error, "sid {}: not watched: {err}", socket.sid()),
    }
}

/// Runs `socket`'s timer (`Socket::on_timer`) from the event thread until it says
/// it is no longer needed or the socket is closed.
pub(crate) fn add_timer(socket: &Socket) {
    NEW_TIMERS.lock().push(socket.sid());
    match handle() {
        Ok(reactor) => {
            if let Err(err) = reactor.waker.wake() {
                log!(Level::Error, "cannot wake the event thread: {err}");
            }
        }
        Err(err) => log!(Level::Error, "sid {}: no timer: {err}", socket.sid()),
    }
}

/// Runs the timers that are due; returns the next time one is.
fn run_timers(timers: &mut HashMap<i32, Instant>, now: Instant) -> Option<Instant> {
    for sid in NEW_TIMERS.lock().drain(..) {
        timers.insert(sid, now);
    }
    timers.retain(|sid, due| {
        if *due > now {
            return true;
        }
        match table::lookup(*sid).ok().and_then(|socket| socket.on_timer(now)) {
            Some(next) => {
                *due = next;
                true
            }
            None => false,
        }
    });
    timers.values().min().copied()
}

/// Whether the event thread sweeps for corked bytes (see [`arm_cork_sweep`]).
static SWEEP_ARMED: AtomicBool = AtomicBool::new(false);

/// Makes the event thread look for corked bytes every [`SWEEP_INTERVAL`] until none
/// are left. Cheap when already armed; wakes the thread otherwise.
pub(crate) fn arm_cork_sweep() {
    if SWEEP_ARMED.load(SeqCst) || SWEEP_ARMED.swap(true, SeqCst) {
        return;
    }
    match handle() {
        Ok(reactor) => {
            if let Err(err) = reactor.waker.wake() {
                log!(Level::Error, "cannot wake the event thread: {err}");
            }
        }
        Err(err) => log!(Level::Error, "corked bytes wait for a send: {err}"),
    }
}

/// A socket the event thread holds: for its notification fd, or to drain the corked
/// bytes of a closed socket (then with the time it was closed).
struct Watch {
    socket: Arc<Socket>,
    draining_since: Option<Instant>,
}

/// The event loop. Sockets are watched by sid; the thread keeps them alive while watched.
fn run(mut poll: Poll, reactor: &Reactor) {
    let mut events = Events::with_capacity(256);
    let mut watched: HashMap<usize, Watch> = HashMap::new();
    let mut last_sweep = Instant::now();
    let mut timers: HashMap<i32, Instant> = HashMap::new();
    let mut next_timer: Option<Instant> = None;
    loop {
        let sweep = SWEEP_ARMED.load(SeqCst).then_some(SWEEP_INTERVAL);
        let until_timer = next_timer.map(|due| due.saturating_duration_since(Instant::now()));
        let timeout = match (sweep, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Err(err) = poll.poll(&mut events, timeout) {
            if err.kind() != std::io::ErrorKind::Interrupted {
                log!(Level::Warn, "event thread: poll failed: {err}; retrying");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let mut woken = false;
        for event in events.iter() {
            if event.token() == WAKE {
                woken = true;
            } else if let Some(watch) = watched.get(&event.token().0) {
                if watch.draining_since.is_some() {
                    watch.socket.flush_due_cork(Instant::now());
                } else {
                    if let Some(notify) = watch.socket.notify() {
                        sys::eventfd_signal(notify);
                    }
                    watch.socket.on_ready();
                }
            }
        }
        if woken {
            let batch = std::mem::take(&mut *reactor.attention.lock());
            for socket in batch {
                socket.attention_queued.store(false, SeqCst);
                update_watch(&reactor.registry, &mut watched, socket);
            }
        }
        let now = Instant::now();
        if woken || next_timer.is_some_and(|due| due <= now) {
            next_timer = run_timers(&mut timers, now);
        }
        if SWEEP_ARMED.load(SeqCst) && now.duration_since(last_sweep) >= SWEEP_INTERVAL {
            last_sweep = now;
            sweep_corks(&reactor.registry, &mut watched, now);
        }
        // Closed sockets whose corked bytes are all sent are let go.
        watched.retain(|_, watch| {
            let done = watch.draining_since.is_some() && !watch.socket.is_corked();
            if done {
                let _ = reactor.registry.deregister(&mut SourceFd(&watch.socket.raw_fd()));
            }
            !done
        });
    }
}

/// Sends corked bytes that waited long enough, gives up on closed sockets whose peer
/// stopped reading, and disarms the sweep once no bytes are corked anywhere.
fn sweep_corks(registry: &Registry, watched: &mut HashMap<usize, Watch>, now: Instant) {
    let corked = || -> Vec<Arc<Socket>> {
        table::TABLE.read().sockets().filter(|s| s.is_corked()).cloned().collect()
    };
    for socket in corked() {
        socket.flush_due_cork(now);
    }
    watched.retain(|_, watch| {
        let Some(since) = watch.draining_since else { return true };
        watch.socket.flush_due_cork(now);
        let expired = watch.socket.is_corked() && now.duration_since(since) >= DRAIN_LIMIT;
        if expired {
            log!(
                Level::Warn,
                "sid {}: peer stopped reading; corked bytes dropped at close",
                watch.socket.sid()
            );
            let _ = registry.deregister(&mut SourceFd(&watch.socket.raw_fd()));
        }
        !expired
    });
    let draining = watched.values().any(|w| w.draining_since.is_some());
    if !draining && corked().is_empty() {
        SWEEP_ARMED.store(false, SeqCst);
        // A socket corked between the check and the store saw the sweep armed and did
        // not wake us: look once more.
        if !corked().is_empty() {
            SWEEP_ARMED.store(true, SeqCst);
        }
    }
}

/// Starts or stops watching one socket, to match its state.
fn update_watch(registry: &Registry, watched: &mut HashMap<usize, Watch>, socket: Arc<Socket>) {
    let token = socket.sid() as usize;
    let fd = socket.raw_fd();
    let interest = Interest::READABLE | Interest::WRITABLE;
    if socket.is_closed() {
        let registered = watched.remove(&token).is_some();
        if socket.is_corked() {
            // Keep the socket until its corked bytes are out (xs_close did not wait).
            if registered || registry.register(&mut SourceFd(&fd), Token(token), interest).is_ok() {
                arm_cork_sweep();
                watched.insert(token, Watch { socket, draining_since: Some(Instant::now()) });
                return;
            }
        } else if registered {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        // Dropping `socket` here may close the kernel socket: the event thread held it.
        return;
    }
    if watched.contains_key(&token) || !socket.wants_events() {
        return;
    }
    match registry.register(&mut SourceFd(&fd), Token(token), interest) {
        Ok(()) => {
            // Report the current state once: the application may have missed an edge.
            if let Some(notify) = socket.notify() {
                sys::eventfd_signal(notify);
            }
            socket.on_ready();
            log!(Level::Trace, "sid {}: watched", socket.sid());
            watched.insert(token, Watch { socket, draining_since: None });
        }
        Err(err) => log!(Level::Error, "sid {}: cannot watch: {err}", socket.sid()),
    }
}
