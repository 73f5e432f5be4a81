//! `xs_poll`.

use std::ffi::c_int;

use libc::{nfds_t, pollfd};

use super::{ffi_call, non_null};
use crate::{error::Error, fork, poll};

/// The most entries one `xs_poll` takes (the kernel's own limit is `RLIMIT_NOFILE`).
const MAX_POLL_ENTRIES: nfds_t = 1 << 20;

/// Waits for events on sids, as `poll(2)` does on descriptors: each entry's `fd` is a
/// sid. `events`/`revents` are the usual `POLLIN`, `POLLOUT`, `POLLPRI`, `POLLERR`,
/// `POLLHUP`, `POLLRDHUP`. A negative sid is ignored; a sid that is not open (or is
/// closed by another thread during the wait) gets `POLLNVAL` and counts as ready.
/// `timeout_ms` is -1 (no limit), 0 (check only) or milliseconds.
///
/// Returns the number of entries with events (0 on time-out), or -1 with errno:
/// `EFAULT` (NULL `fds` with `nfds` > 0), `EINVAL` (`nfds` over 2^20), `EINTR`,
/// `ENOMEM`.
///
/// # Safety
/// `fds` must point to `nfds` valid `struct pollfd` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn xs_poll(fds: *mut pollfd, nfds: nfds_t, timeout_ms: c_int) -> c_int {
    ffi_call!("xs_poll", {
        if nfds > MAX_POLL_ENTRIES {
            return Err(Error::InvalidArgument(
                format!("nfds {nfds} is over {MAX_POLL_ENTRIES}").into(),
            ));
        }
        let entries: &mut [pollfd] = if nfds == 0 {
            &mut []
        } else {
            non_null(fds, "fds")?;
            // SAFETY: non-NULL, and the caller promises `nfds` valid entries.
            unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
        };
        fork::after_fork_check();
        poll::poll(entries, timeout_ms)
    })
}
