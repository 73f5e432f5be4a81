//! The sid table: socket ids handed to C, mapped to shared [`Socket`]s.
//!
//! Ids come from a counter that only goes up (wrapping at `i32::MAX` to 1 and
//! skipping ids still open), so a closed sid is not handed out again until about
//! two billion sockets later: a stale sid fails with `EBADF` instead of reaching
//! another socket. A lookup holds the table lock only to clone an `Arc`; no lock is
//! held across I/O.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use crate::{
    error::{Error, Result},
    fork::ForkSafe,
    socket::Socket,
};

/// Every open socket, by sid.
pub(crate) static TABLE: ForkSafe<Table> = ForkSafe::new();

/// Open sockets by sid, and the next sid to try.
#[derive(Debug)]
pub(crate) struct Table {
    sockets: HashMap<i32, Arc<Socket>, BuildHasherDefault<SidHasher>>,
    next: i32,
}

impl Default for Table {
    fn default() -> Self {
        Self { sockets: HashMap::default(), next: 1 }
    }
}

impl Table {
    /// Stores the socket that `make` builds for a fresh sid, and returns it.
    pub(crate) fn insert(&mut self, make: impl FnOnce(i32) -> Socket) -> Arc<Socket> {
        let mut sid = self.next;
        while self.sockets.contains_key(&sid) {
            sid = following(sid);
        }
        self.next = following(sid);
        let socket = Arc::new(make(sid));
        self.sockets.insert(sid, Arc::clone(&socket));
        socket
    }

    /// The open socket with this sid.
    pub(crate) fn get(&self, sid: i32) -> Result<Arc<Socket>> {
        self.sockets.get(&sid).cloned().ok_or(Error::BadSid(sid))
    }

    /// Takes the socket out of the table; its sid is closed from now on.
    pub(crate) fn remove(&mut self, sid: i32) -> Result<Arc<Socket>> {
        self.sockets.remove(&sid).ok_or(Error::BadSid(sid))
    }

    /// Every open socket.
    pub(crate) fn sockets(&self) -> impl Iterator<Item = &Arc<Socket>> {
        self.sockets.values()
    }
}

fn following(sid: i32) -> i32 {
    if sid == i32::MAX { 1 } else { sid + 1 }
}

/// Looks a sid up in the global table.
pub(crate) fn lookup(sid: i32) -> Result<Arc<Socket>> {
    TABLE.read().get(sid)
}

/// sids are already well spread; hashing them again only costs time.
#[derive(Debug, Default)]
pub(crate) struct SidHasher(u64);

impl Hasher for SidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = n as u32 as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;
    use crate::sys;

    fn socket(sid: i32) -> Socket {
        let fd: OwnedFd = sys::eventfd().expect("eventfd");
        Socket::new(sid, fd, libc::AF_UNIX, libc::SOCK_STREAM, false)
    }

    #[test]
    fn sids_are_not_reused_after_close() {
        let mut table = Table::default();
        let a = table.insert(socket).sid();
        let b = table.insert(socket).sid();
        assert_eq!((a, b), (1, 2));
        table.remove(a).expect("open");
        assert!(matches!(table.get(a), Err(Error::BadSid(1))));
        assert!(matches!(table.remove(a), Err(Error::BadSid(1))));
        let c = table.insert(socket).sid();
        assert_eq!(c, 3, "a closed sid is not handed out again");
        assert_eq!(table.get(b).expect("open").sid(), b);
    }

    #[test]
    fn counter_wraps_to_one_and_skips_open_sids() {
        let mut table = Table::default();
        let one = table.insert(socket).sid();
        assert_eq!(one, 1);
        table.next = i32::MAX;
        assert_eq!(table.insert(socket).sid(), i32::MAX);
        // 1 is still open, so the wrapped counter moves on to 2.
        assert_eq!(table.insert(socket).sid(), 2);
        assert!(table.sockets().all(|s| s.sid() > 0));
    }

    #[test]
    fn unknown_and_negative_sids_are_bad() {
        let table = Table::default();
        for sid in [0, -1, 7, i32::MIN] {
            assert!(matches!(table.get(sid), Err(Error::BadSid(s)) if s == sid));
        }
    }

    proptest::proptest! {
        /// Random opens, closes and lookups: every open sid finds its socket, closed
        /// ones are bad, and no sid is handed out twice.
        #[test]
        fn behaves_like_a_map_without_reuse(ops in proptest::collection::vec((0u8..3, 0usize..8), 1..80)) {
            let mut table = Table::default();
            let mut open: Vec<i32> = Vec::new();
            let mut ever: std::collections::HashSet<i32> = std::collections::HashSet::new();
            for (op, pick) in ops {
                match op {
                    0 => {
                        let sid = table.insert(socket).sid();
                        proptest::prop_assert!(sid > 0 && ever.insert(sid), "sid {} reused", sid);
                        open.push(sid);
                    }
                    1 if !open.is_empty() => {
                        let sid = open.remove(pick % open.len());
                        proptest::prop_assert!(table.remove(sid).is_ok());
                        proptest::prop_assert!(table.get(sid).is_err());
                    }
                    _ => {
                        for &sid in &open {
                            proptest::prop_assert_eq!(table.get(sid).unwrap().sid(), sid);
                        }
                    }
                }
            }
        }
    }
}
