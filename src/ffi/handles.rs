//! The registry of live handles.
//!
//! A pointer the C ABI hands out (`corotls_conf *`, `corotls_session *`,
//! ...) is not the address of a Rust object but a handle: a slot index in
//! this registry and the slot's generation, packed into a pointer-sized
//! value.  Every call looks its handle up before touching anything, so a
//! handle that was freed (its slot's generation moved on), that never came
//! from this library, or that names another kind of object is refused with
//! COROTLS_ERR_ARG ("not a live corotls_conf") without reading freed
//! memory.  A freed handle stays refused when its slot is reused: the new
//! object gets a new generation.
//!
//! Cost: a lookup is two atomic loads and a compare (no lock, no shared
//! write), cheap enough for every per-record call.  Insert and remove take
//! one small lock (the free list).
//!
//! What it cannot catch: a handle freed by one thread while another thread
//! is inside a call on it (the documented contract forbids using an object
//! concurrently with its free); and a forged value that happens to equal a
//! live handle.
//!
//! Memory: slots live in segments of `SEG` that are allocated on demand and
//! never move; `release_at_unload` frees them when the library is unloaded
//! with no handle alive.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Builder = 1,
    Conf = 2,
    Session = 3,
    Conn = 4,
    Loop = 5,
    /// A conn's session (corotls_conn_session): the accessors take it,
    /// corotls_session_free refuses it; it dies with its conn.
    BorrowedSession = 6,
}

impl Kind {
    fn of(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Builder,
            2 => Kind::Conf,
            3 => Kind::Session,
            4 => Kind::Conn,
            5 => Kind::Loop,
            6 => Kind::BorrowedSession,
            _ => return None,
        })
    }

    /// The C type name, for messages.
    pub(crate) fn c_name(self) -> &'static str {
        match self {
            Kind::Builder => "corotls_conf_builder",
            Kind::Conf => "corotls_conf",
            Kind::Session => "corotls_session",
            Kind::Conn => "corotls_conn",
            Kind::Loop => "corotls_loop",
            Kind::BorrowedSession => "corotls_session (borrowed from a corotls_conn)",
        }
    }
}

/// Slots per segment, and segments at most: 4 Mi live handles.
const SEG: usize = 4096;
const MAX_SEGS: usize = 1024;
/// Bits of a handle that hold the slot index + 1 (never 0: a handle is
/// never NULL); the bits above hold the generation.
const INDEX_BITS: u32 = if usize::BITS >= 64 { 32 } else { 22 };
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
const GEN_MASK: u64 = (usize::MAX >> INDEX_BITS) as u64;
const _: () = assert!(SEG * MAX_SEGS < INDEX_MASK);

/// A slot's state word: generation << 8 | kind (0: free).
struct Slot {
    state: AtomicU64,
    ptr: AtomicPtr<()>,
}

fn pack(gen: u64, kind: u8) -> u64 {
    (gen << 8) | kind as u64
}

static SEGMENTS: [AtomicPtr<Slot>; MAX_SEGS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_SEGS];
/// Slots in use or ever used (the next fresh index), and the free list.
static ALLOC: Mutex<(usize, Vec<u32>)> = Mutex::new((0, Vec::new()));
static LIVE: AtomicUsize = AtomicUsize::new(0);

fn slot(index: usize) -> Option<&'static Slot> {
    let seg = SEGMENTS.get(index / SEG)?.load(Acquire);
    if seg.is_null() {
        return None;
    }
    // SAFETY: a published segment holds SEG slots and is never freed while
    // the library is in use (release_at_unload frees it only at unload).
    Some(unsafe { &*seg.add(index % SEG) })
}

fn decode(h: usize) -> Option<(usize, u64)> {
    let index = (h & INDEX_MASK).checked_sub(1)?;
    Some((index, (h >> INDEX_BITS) as u64))
}

/// Why a handle was refused: "not a live corotls_conf" and, when it is a
/// live handle of another kind, which.
pub(crate) fn refusal(h: usize, want: Kind) -> String {
    match lookup(h) {
        Some((k, _)) => format!("not a live {}: a {} was given", want.c_name(), k.c_name()),
        None => format!("not a live {} (freed, or not from this library)", want.c_name()),
    }
}

/// The kind and object of a live handle.
pub(crate) fn lookup(h: usize) -> Option<(Kind, *mut ())> {
    let (index, gen) = decode(h)?;
    let s = slot(index)?;
    let st = s.state.load(Acquire);
    if st >> 8 != gen {
        return None;
    }
    let kind = Kind::of(st as u8)?;
    Some((kind, s.ptr.load(Relaxed)))
}

/// The object of a live handle of kind `want`.
#[inline]
pub(crate) fn get(h: usize, want: Kind) -> Option<*mut ()> {
    let (index, gen) = decode(h)?;
    let s = slot(index)?;
    if s.state.load(Acquire) != pack(gen, want as u8) {
        return None;
    }
    Some(s.ptr.load(Relaxed))
}

/// Register `ptr` as a live `kind`; returns its handle.  Panics only when
/// 4 Mi handles are alive at once.
pub(crate) fn insert(ptr: *mut (), kind: Kind) -> usize {
    let mut a = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    let index = match a.1.pop() {
        Some(i) => i as usize,
        None => {
            let i = a.0;
            // SEG * MAX_SEGS (4 Mi) is below INDEX_MASK on every target.
            assert!(i < SEG * MAX_SEGS, "corotls: too many live handles");
            if i == 0 {
                crate::unload::at_unload(release_at_unload);
            }
            if i % SEG == 0 {
                let seg: Box<[Slot]> = (0..SEG)
                    .map(|_| Slot { state: AtomicU64::new(pack(1, 0)), ptr: AtomicPtr::new(std::ptr::null_mut()) })
                    .collect();
                SEGMENTS[i / SEG].store(Box::into_raw(seg) as *mut Slot, Release);
            }
            a.0 += 1;
            i
        }
    };
    let s = slot(index).expect("allocated above");
    let gen = s.state.load(Relaxed) >> 8;
    s.ptr.store(ptr, Relaxed);
    s.state.store(pack(gen, kind as u8), Release);
    LIVE.fetch_add(1, Relaxed);
    ((gen as usize) << INDEX_BITS) | (index + 1)
}

/// Unregister a live handle of kind `want` and give its object back (the
/// caller frees it); None when it is not one (a double free, a freed or
/// foreign handle, another kind).
pub(crate) fn remove(h: usize, want: Kind) -> Option<*mut ()> {
    let (index, gen) = decode(h)?;
    let s = slot(index)?;
    let next = if gen >= GEN_MASK { 1 } else { gen + 1 };
    s.state.compare_exchange(pack(gen, want as u8), pack(next, 0), AcqRel, Relaxed).ok()?;
    let p = s.ptr.swap(std::ptr::null_mut(), Relaxed);
    ALLOC.lock().unwrap_or_else(|e| e.into_inner()).1.push(index as u32);
    LIVE.fetch_sub(1, Relaxed);
    Some(p)
}

/// Live handles now (tests, and the unload rule).
pub(crate) fn live() -> usize {
    LIVE.load(Relaxed)
}

/// At library unload: free the segments, unless a handle is still alive
/// (the host leaked an object; its handle keeps its slot).
extern "C" fn release_at_unload(_: *mut libc::c_void) {
    if live() != 0 {
        return;
    }
    let mut a = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    for seg in SEGMENTS.iter() {
        let p = seg.swap(std::ptr::null_mut(), AcqRel);
        if !p.is_null() {
            // SAFETY: made by Box::into_raw of a Box<[Slot]> of SEG slots in insert.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, SEG)) });
        }
    }
    *a = (0, Vec::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_live_die_and_stay_dead() {
        let mut x = 5u32;
        let p = &mut x as *mut u32 as *mut ();
        let h = insert(p, Kind::Conf);
        assert_ne!(h, 0);
        assert_eq!(get(h, Kind::Conf), Some(p));
        assert_eq!(get(h, Kind::Session), None, "another kind");
        assert_eq!(lookup(h), Some((Kind::Conf, p)));
        assert!(refusal(h, Kind::Session).contains("a corotls_conf was given"));
        assert_eq!(remove(h, Kind::Session), None, "not freed as another kind");
        assert_eq!(remove(h, Kind::Conf), Some(p));
        assert_eq!(remove(h, Kind::Conf), None, "a double free");
        assert_eq!(get(h, Kind::Conf), None, "a freed handle");
        // The slot is reused with a new generation: the old handle stays dead.
        let h2 = insert(p, Kind::Conf);
        assert_ne!(h2, h);
        assert_eq!(get(h, Kind::Conf), None);
        assert_eq!(get(h2, Kind::Conf), Some(p));
        assert_eq!(remove(h2, Kind::Conf), Some(p));
        for bogus in [0usize, 1, 8, usize::MAX, 0xdead_beef, h ^ (1 << 40)] {
            assert_eq!(get(bogus, Kind::Conf), None, "{bogus:#x}");
        }
    }
}
