//! The plaintext buffer of a session: what was decrypted and not yet
//! taken, kept in one allocation that refills its tail without zeroing.

use super::RECORD;

/// Plaintext decrypted but not yet taken: bytes `[start..end]` of `buf`.
/// `buf` stays initialised up to its length, so refilling the tail costs no
/// zeroing.
#[derive(Default)]
pub(super) struct PlainBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl PlainBuf {
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    pub(super) fn len(&self) -> usize {
        self.end - self.start
    }
    pub(super) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * RECORD {
                // An idle session should not pin a burst's worth of memory.
                self.buf = Vec::new();
            }
        }
    }
    /// Writable room for at least one record after the live bytes, moving
    /// them to the front when that avoids growing.
    pub(super) fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < RECORD {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < RECORD {
                let grow = (self.buf.len()).max(RECORD);
                self.buf.resize(self.buf.len() + grow, 0);
            }
        }
        &mut self.buf[self.end..]
    }
    /// An empty buffer gives its memory back (an idle session's).
    pub(super) fn shrink(&mut self) -> bool {
        let had = !self.buf.is_empty();
        if self.len() == 0 {
            *self = PlainBuf::default();
        }
        had
    }
    pub(super) fn commit(&mut self, used: usize) {
        self.end += used;
    }
}
