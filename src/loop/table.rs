//! The fd table: socket fd -> entry, indexed by the fd number itself.
//!
//! Each slot carries a generation, so that an event, a timer or a
//! completion meant for a closed connection can never reach a new one that
//! got the same fd number.  The table lock is a leaf: it is taken only for
//! lookups, inserts and removals, never while waiting for an entry.

use super::entry::Entry;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

pub(super) struct Slot {
    pub fd: RawFd,
    pub gen: u32,
    pub st: Mutex<Entry>,
}

impl Slot {
    /// The poller key: generation and fd.
    pub fn key(&self) -> usize {
        key_of(self.fd, self.gen)
    }
}

pub(super) fn key_of(fd: RawFd, gen: u32) -> usize {
    ((gen as usize) << 32) | (fd as u32 as usize)
}

pub(super) fn fd_gen_of(key: usize) -> (RawFd, u32) {
    ((key & 0xffff_ffff) as u32 as RawFd, (key >> 32) as u32)
}

#[derive(Default)]
pub(super) struct Table {
    slots: Vec<Option<Arc<Slot>>>,
    count: usize,
    next_gen: u32,
}

impl Table {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn get(&self, fd: RawFd) -> Option<Arc<Slot>> {
        usize::try_from(fd).ok().and_then(|i| self.slots.get(i)).and_then(|s| s.clone())
    }

    pub fn get_gen(&self, fd: RawFd, gen: u32) -> Option<Arc<Slot>> {
        self.get(fd).filter(|s| s.gen == gen)
    }

    /// A fresh generation for a new slot (never 0).
    pub fn next_gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        self.next_gen
    }

    /// Put `slot` at its fd.  Returns the slot that was there: a stale
    /// entry whose socket was closed behind the loop's back.
    pub fn insert(&mut self, slot: Arc<Slot>) -> Option<Arc<Slot>> {
        let i = slot.fd as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        let old = self.slots[i].replace(slot);
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    /// Remove the slot at `fd` (only if it has generation `gen`, when given).
    pub fn remove(&mut self, fd: RawFd, gen: Option<u32>) -> Option<Arc<Slot>> {
        let i = usize::try_from(fd).ok()?;
        let cell = self.slots.get_mut(i)?;
        if gen.is_some_and(|g| cell.as_ref().is_some_and(|s| s.gen != g)) {
            return None;
        }
        let old = cell.take();
        if old.is_some() {
            self.count -= 1;
        }
        old
    }

    /// Give back the room of fds above the highest one in use (after a mass
    /// close).
    pub fn shrink(&mut self) {
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        self.slots.shrink_to_fit();
    }

    /// Every entry (for the buffer sweep).
    pub fn all(&self) -> Vec<Arc<Slot>> {
        self.slots.iter().flatten().cloned().collect()
    }

    pub fn drain(&mut self) -> Vec<Arc<Slot>> {
        self.count = 0;
        self.slots.drain(..).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for (fd, gen) in [(0, 1), (7, 2), (1_000_000, u32::MAX)] {
            assert_eq!(fd_gen_of(key_of(fd, gen)), (fd, gen));
        }
        assert_ne!(key_of(i32::MAX, u32::MAX), usize::MAX); // polling's notify key
        assert_ne!(key_of(i32::MAX, u32::MAX), super::super::TIMER_KEY);
    }
}
