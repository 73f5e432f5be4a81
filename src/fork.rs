//! `fork()` support: the child gets a working library, never a hang.
//!
//! The library's global state sits in [`ForkSafe`] locks. Before a fork, the forking
//! thread takes all of them, so that no other thread is half-way through a change at
//! the moment of the fork. The parent then releases them. The child cannot simply
//! release them: threads that waited on a lock in the parent do not exist in the
//! child, and a lock may have been handed to one of them. So the child moves each
//! lock's data into a fresh lock and forgets the old one.
//!
//! The child has no event thread either: [`reactor::handle`] sees the pid change and
//! starts a new one when one is next needed, re-watching the sockets that had a
//! notification fd; the first call after the fork that looks up a sid does that at
//! once if any socket needs it. Calls that were blocked in the parent's other threads
//! do not exist in the child, so each socket's count of them is reset. Sockets are
//! plain kernel sockets shared by both processes and keep working in both.

use std::{
    ptr,
    sync::{
        Once,
        atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering},
    },
};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{log, reactor, table, tls};

static INSTALL: Once = Once::new();

/// Set in the child after a fork; cleared when the child has restarted what it needs.
static FORKED: AtomicBool = AtomicBool::new(false);

/// A read-write lock around global state that a forked child gets back unlocked.
///
/// The lock lives on the heap, made with `T::default()` on first use, until the
/// `ForkSafe` is dropped (a forked child replaces it and leaks the old one).
#[derive(Debug)]
pub(crate) struct ForkSafe<T> {
    current: AtomicPtr<RwLock<T>>,
}

impl<T: Default> ForkSafe<T> {
    /// An empty slot; the lock is made on first use.
    pub(crate) const fn new() -> Self {
        Self { current: AtomicPtr::new(ptr::null_mut()) }
    }

    fn lock(&self) -> &RwLock<T> {
        let mut current = self.current.load(Ordering::Acquire);
        if current.is_null() {
            let fresh = Box::into_raw(Box::new(RwLock::new(T::default())));
            current = match self.current.compare_exchange(
                ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => fresh,
                Err(other) => {
                    // SAFETY: `fresh` came from Box::into_raw above and was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    other
                }
            };
        }
        // SAFETY: a published lock is never freed (a forked child leaks the old one).
        unsafe { &*current }
    }

    /// Shared access.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
        self.lock().read()
    }

    /// Exclusive access.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.lock().write()
    }

    /// Exclusive access if nobody holds the lock now.
    pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.lock().try_write()
    }

    /// Before a fork: takes the lock and keeps it.
    fn hold(&self) {
        std::mem::forget(self.lock().write());
    }

    /// In the parent after a fork: releases the lock [`hold`](Self::hold) took.
    ///
    /// # Safety
    /// Only after `hold`, in the thread that forked.
    unsafe fn release(&self) {
        // SAFETY: `hold` locked it exclusively and forgot the guard (caller's contract).
        unsafe { self.lock().force_unlock_write() };
    }

    /// In the child after a fork: moves the data into a fresh, unlocked lock.
    ///
    /// # Safety
    /// Only after `hold`, in the child, before anything else uses the lock.
    unsafe fn renew(&self) {
        let old = self.lock();
        // SAFETY: this thread holds the old lock exclusively (`hold`) and is the only
        // thread in the child, so nothing else can touch the data.
        let data = std::mem::take(unsafe { &mut *old.data_ptr() });
        let fresh = Box::into_raw(Box::new(RwLock::new(data)));
        self.current.store(fresh, Ordering::Release);
        // The old lock may be owned by a thread that does not exist here: leak it.
    }

    /// In the child after a fork: replaces the lock, whoever held it, with a fresh one
    /// around `T::default()`, dropping the data. For per-socket state that belongs
    /// to the parent, which a thread of the parent may have held at the fork.
    ///
    /// # Safety
    /// Only in the child, where no other thread runs.
    pub(crate) unsafe fn reset_in_child(&self) {
        if self.current.load(Ordering::Acquire).is_null() {
            return; // never used: nothing to reset
        }
        let fresh = Box::into_raw(Box::new(RwLock::new(T::default())));
        // The old lock and its data are leaked: they may be in a half-changed state.
        self.current.store(fresh, Ordering::Release);
    }
}

impl<T> Drop for ForkSafe<T> {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        if !current.is_null() {
            // SAFETY: made by Box::into_raw in this type, and no longer shared.
            drop(unsafe { Box::from_raw(current) });
        }
    }
}

/// How many forks this process descends from (bumped in each child), so that
/// per-thread state drawn in the parent can tell it must be drawn again.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The fork generation: changes in a forked child.
pub(crate) fn generation() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

/// Registers the fork handlers (once per process).
pub(crate) fn install_handlers() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers only take, release and renew the library's own locks.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// After a fork, in the child: restarts the event thread if a socket is watched.
pub(crate) fn after_fork_check() {
    if FORKED.load(Ordering::Relaxed) && FORKED.swap(false, Ordering::SeqCst) {
        let needs_events = table::TABLE.read().sockets().any(|s| s.notify().is_some());
        if needs_events && let Err(err) = reactor::handle() {
            log::log!(log::Level::Error, "cannot restart the event thread after fork: {err}");
        }
    }
}

extern "C" fn prepare() {
    // Same order as everywhere else: REACTOR before TABLE (reactor::handle reads TABLE
    // after releasing REACTOR, and nothing takes REACTOR while holding TABLE).
    reactor::REACTOR.hold();
    table::TABLE.hold();
    log::SINK.hold();
    tls::CLIENT_CONFIGS.hold();
}

extern "C" fn parent() {
    // SAFETY: `prepare` took each of these in this thread.
    unsafe {
        tls::CLIENT_CONFIGS.release();
        log::SINK.release();
        table::TABLE.release();
        reactor::REACTOR.release();
    }
}

extern "C" fn child() {
    // SAFETY: `prepare` took each of these in this thread, now the child's only thread.
    unsafe {
        tls::CLIENT_CONFIGS.renew();
        log::SINK.renew();
        table::TABLE.renew();
        reactor::REACTOR.renew();
    }
    for socket in table::TABLE.read().sockets() {
        socket.forget_other_threads();
    }
    // The event thread did not survive the fork; forget it without touching its state.
    if let Some(old) = reactor::REACTOR.write().take() {
        std::mem::forget(old);
    }
    FORKS.fetch_add(1, Ordering::SeqCst);
    FORKED.store(true, Ordering::SeqCst);
}
