//! The event thread: one `mio::Poll` for the whole library, started on first need.
//!
//! Protocol-0 sockets do their I/O in the calling thread, so today the event thread
//! watches only the sockets whose notification eventfd was asked for: when the
//! kernel socket becomes readable or writable (edge-triggered), it adds one to that
//! eventfd, so epoll, libuv, asyncio or select() users can wait on xsocket sockets.
//!
//! Other threads never touch the thread's state. They queue a socket that needs
//! attention (at most once per socket, so the queue is bounded by the number of
//! open sockets) and wake the thread through a `mio::Waker`. After `fork()` the
//! child has no event thread; [`handle`] starts a new one there when it is next
//! needed, and re-watches the child's sockets (see `fork.rs`).

use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
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

/// The event loop. Sockets are watched by sid; the thread keeps them alive while watched.
fn run(mut poll: Poll, reactor: &Reactor) {
    let mut events = Events::with_capacity(256);
    let mut watched: HashMap<usize, Arc<Socket>> = HashMap::new();
    loop {
        if let Err(err) = poll.poll(&mut events, None) {
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
            } else if let Some(notify) = watched.get(&event.token().0).and_then(|s| s.notify()) {
                sys::eventfd_signal(notify);
            }
        }
        if woken {
            let batch = std::mem::take(&mut *reactor.attention.lock());
            for socket in batch {
                socket.attention_queued.store(false, SeqCst);
                update_watch(&reactor.registry, &mut watched, socket);
            }
        }
    }
}

/// Starts or stops watching one socket, to match its state.
fn update_watch(
    registry: &Registry,
    watched: &mut HashMap<usize, Arc<Socket>>,
    socket: Arc<Socket>,
) {
    let token = socket.sid() as usize;
    let fd = socket.raw_fd();
    if socket.is_closed() {
        if watched.remove(&token).is_some() {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        // Dropping `socket` here may close the kernel socket: the event thread held it.
        return;
    }
    if watched.contains_key(&token) {
        return;
    }
    let Some(notify) = socket.notify() else {
        return;
    };
    let interest = Interest::READABLE | Interest::WRITABLE;
    match registry.register(&mut SourceFd(&fd), Token(token), interest) {
        Ok(()) => {
            // Report the current state once: the application may have missed an edge.
            sys::eventfd_signal(notify);
            log!(Level::Trace, "sid {}: watched (eventfd {})", socket.sid(), notify.as_raw_fd());
            watched.insert(token, socket);
        }
        Err(err) => log!(Level::Error, "sid {}: cannot watch: {err}", socket.sid()),
    }
}
