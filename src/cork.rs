//! User-space corking of `MSG_MORE` sends on stream sockets: the buffer, without I/O.
//!
//! Linux's `MSG_MORE` says "more data follows", but the kernel still costs one system
//! call per send. xsocket keeps such sends in a per-socket buffer instead and hands
//! them to the kernel together, with one call: with the next send without `MSG_MORE`
//! (its bytes in the same call), when the buffer would grow past [`LIMIT`], before a
//! receive, poll, shutdown or close on the socket, and from the event thread once the
//! oldest byte has waited [`MAX_DELAY`] (the kernel's own limit for `MSG_MORE` data).
//!
//! This module is only the buffer: bytes in, bytes out, time passed in.

use std::time::{Duration, Instant};

/// The most bytes a socket keeps corked; a send that would pass it writes them out.
pub(crate) const LIMIT: usize = 64 * 1024;

/// How long corked bytes may wait for more before the event thread sends them.
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(200);

/// Corked bytes not yet handed to the kernel, oldest first.
#[derive(Debug)]
pub(crate) struct Cork {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed to the kernel.
    start: usize,
    /// When the oldest pending byte was corked.
    since: Instant,
}

impl Cork {
    /// A buffer holding `data`, corked at `now`.
    pub(crate) fn new(data: &[u8], now: Instant) -> Self {
        let mut buf = Vec::with_capacity(data.len().clamp(4096, LIMIT));
        buf.extend_from_slice(data);
        Self { buf, start: 0, since: now }
    }

    /// The bytes still to send.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether `more` bytes can be added without passing [`LIMIT`].
    pub(crate) fn fits(&self, more: usize) -> bool {
        self.pending().len().saturating_add(more) <= LIMIT
    }

    /// Adds bytes at the end.
    pub(crate) fn append(&mut self, data: &[u8]) {
        if self.start > 0 && self.buf.len() + data.len() > self.buf.capacity() {
            // Reuse the room at the front before growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` pending bytes as handed to the kernel; returns whether none are left.
    pub(crate) fn consume(&mut self, n: usize) -> bool {
        self.start = (self.start + n).min(self.buf.len());
        self.start == self.buf.len()
    }

    /// Whether the oldest pending byte has waited [`MAX_DELAY`] at `now`.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= MAX_DELAY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bytes_in_order_across_partial_sends() {
        let t0 = Instant::now();
        let mut cork = Cork::new(b"hello ", t0);
        cork.append(b"world");
        assert_eq!(cork.pending(), b"hello world");
        assert!(!cork.consume(3));
        assert_eq!(cork.pending(), b"lo world");
        cork.append(b"!");
        assert_eq!(cork.pending(), b"lo world!");
        assert!(cork.consume(9));
        assert_eq!(cork.pending(), b"");
    }

    #[test]
    fn reuses_the_front_before_growing_and_respects_the_limit() {
        let t0 = Instant::now();
        let mut cork = Cork::new(&[1u8; 4000], t0);
        let capacity = cork.buf.capacity();
        assert!(!cork.consume(3000));
        cork.append(&[2u8; 2000]); // 1000 + 2000 pending: fits once the front is reused
        assert_eq!(cork.buf.capacity(), capacity);
        assert_eq!(cork.pending().len(), 3000);
        assert_eq!(&cork.pending()[..1000], &[1u8; 1000][..]);
        assert!(cork.fits(LIMIT - 3000));
        assert!(!cork.fits(LIMIT - 2999));
        assert!(!cork.fits(usize::MAX));
    }

    #[test]
    fn is_due_after_the_delay() {
        let t0 = Instant::now();
        let cork = Cork::new(b"x", t0);
        assert!(!cork.is_due(t0 + MAX_DELAY / 2));
        assert!(cork.is_due(t0 + MAX_DELAY));
    }

    proptest::proptest! {
        /// Any mix of appends (when they fit) and partial sends keeps exactly the bytes
        /// not yet sent, in order, never more than LIMIT.
        #[test]
        fn matches_a_simple_queue(ops in proptest::collection::vec((proptest::bool::ANY, 0usize..20_000), 1..60)) {
            let t0 = Instant::now();
            let mut cork = Cork::new(b"start", t0);
            let mut model: std::collections::VecDeque<u8> = b"start".iter().copied().collect();
            let mut next = 0u8;
            for (append, n) in ops {
                if append {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    if cork.fits(data.len()) {
                        cork.append(&data);
                        model.extend(&data);
                    }
                } else {
                    let n = n.min(model.len());
                    let empty = cork.consume(n);
                    model.drain(..n);
                    proptest::prop_assert_eq!(empty, model.is_empty());
                }
                proptest::prop_assert!(cork.pending().len() <= LIMIT);
                proptest::prop_assert!(cork.pending().iter().eq(model.iter()));
            }
        }
    }
}
