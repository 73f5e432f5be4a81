//! Stream ids: a 65,536-bit bitmap, as the Go library keeps them. Both ends share
//! one id space; id 0 is never handed out (as in the library's v1), so at most
//! 65,535 streams are open at once.

/// The ids in use on one session.
#[derive(Debug, Clone)]
pub(crate) struct IdBitmap {
    bits: Box<[u64; 1024]>,
    /// Where the next search starts (ids go up, then wrap).
    next: u16,
    used: usize,
}

impl Default for IdBitmap {
    fn default() -> Self {
        Self { bits: Box::new([0; 1024]), next: 1, used: 0 }
    }
}

impl IdBitmap {
    /// Whether `id` is in use.
    pub(crate) fn contains(&self, id: u16) -> bool {
        self.bits[usize::from(id) / 64] & (1 << (id % 64)) != 0
    }

    /// Marks `id` used (the peer opened it).
    pub(crate) fn insert(&mut self, id: u16) {
        if !self.contains(id) {
            self.bits[usize::from(id) / 64] |= 1 << (id % 64);
            self.used += 1;
        }
    }

    /// Frees `id` for reuse.
    pub(crate) fn remove(&mut self, id: u16) {
        if self.contains(id) {
            self.bits[usize::from(id) / 64] &= !(1 << (id % 64));
            self.used -= 1;
        }
    }

    /// How many ids are in use.
    pub(crate) fn len(&self) -> usize {
        self.used
    }

    /// Takes the next free id after the last one taken (never 0), or `None` when all
    /// 65,535 are in use.
    pub(crate) fn allocate(&mut self) -> Option<u16> {
        let mut id = self.next;
        for _ in 0..=u16::MAX {
            if id != 0 && !self.contains(id) {
                self.insert(id);
                self.next = id.wrapping_add(1);
                return Some(id);
            }
            id = id.wrapping_add(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_up_skip_used_and_zero_and_run_out() {
        let mut ids = IdBitmap::default();
        assert_eq!(ids.allocate(), Some(1));
        ids.insert(2); // the peer opened 2
        assert_eq!(ids.allocate(), Some(3));
        ids.remove(1);
        assert_eq!(ids.allocate(), Some(4), "ids go up before they wrap");
        let mut all = IdBitmap::default();
        for _ in 0..65_535 {
            assert!(all.allocate().is_some_and(|id| id != 0));
        }
        assert_eq!(all.len(), 65_535);
        assert_eq!(all.allocate(), None);
        all.remove(77);
        assert_eq!(all.allocate(), Some(77));
    }
}
