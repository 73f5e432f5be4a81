//! `fork()` support: the child gets a working library, never a hang.
//!
//! Before a fork, the handlers take the global locks so that no other thread holds
//! them at the moment of the fork; both parent and child release them after. The
//! child has no event thread: [`handle`](crate::reactor::handle) sees the pid change
//! and starts a new one when one is next needed, re-watching the sockets that had a
//! notification fd. The first call after the fork that looks up a sid does that
//! at once if any socket needs it, so notification fds keep firing in the child.
//! Sockets themselves are plain kernel sockets and keep working in both processes.

use std::sync::{
    Once,
    atomic::{AtomicBool, Ordering::SeqCst},
};

use crate::{log, reactor, table};

static INSTALL: Once = Once::new();

/// Set in the child after a fork; cleared when the child has restarted what it needs.
static FORKED: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers (once per process).
pub(crate) fn install_handlers() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers are plain functions that only lock and unlock statics.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// After a fork, in the child: restarts the event thread if a socket is watched.
pub(crate) fn after_fork_check() {
    if FORKED.load(SeqCst) && FORKED.swap(false, SeqCst) {
        let needs_events = table::TABLE.read().sockets().any(|s| s.notify().is_some());
        if needs_events && let Err(err) = reactor::handle() {
            log::log!(
                log::Level::Error,
                "cannot restart the event thread after fork: {err}"
            );
        }
    }
}

extern "C" fn prepare() {
    // Same order everywhere: REACTOR before TABLE (reactor::handle reads TABLE under it).
    std::mem::forget(reactor::REACTOR.lock());
    std::mem::forget(table::TABLE.write());
    std::mem::forget(log::SINK.write());
}

extern "C" fn parent() {
    release();
}

extern "C" fn child() {
    release();
    // The event thread did not survive the fork; forget it without touching its state.
    if let Some(old) = reactor::REACTOR.lock().take() {
        std::mem::forget(old);
    }
    FORKED.store(true, SeqCst);
}

fn release() {
    // SAFETY: `prepare` locked each of these and forgot the guards; this thread unlocks.
    unsafe {
        log::SINK.force_unlock_write();
        table::TABLE.force_unlock_write();
        reactor::REACTOR.force_unlock();
    }
}
