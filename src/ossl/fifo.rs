//! A byte FIFO as an OpenSSL BIO.
//!
//! To OpenSSL it behaves like `BIO_s_mem` with eof_return -1: writes append,
//! reads consume, an empty FIFO asks to retry.  It exists because
//! `BIO_s_mem` in OpenSSL 3.0 zeroes every region before copying into it and
//! moves the unread tail on every write, and because the transport wants the
//! buffer itself: it receives from the socket straight into the input FIFO
//! and sends straight from the output FIFO, with no copy in between.

use crate::unload::callback_guard;
use libc::{c_char, c_int, c_long, c_void};
use openssl_sys as sys;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Capacity an emptied FIFO may keep; anything larger is given back, so an
/// idle connection holds little memory.
const KEEP: usize = 16 * 1024 + 512;

/// Bytes `[start..]` of `buf` are queued.
#[derive(Default)]
pub struct Fifo {
    buf: Vec<u8>,
    start: usize,
}

impl Fifo {
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued bytes, oldest first.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Drop `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
            if self.buf.capacity() > KEEP {
                self.buf = Vec::new();
            }
        }
    }

    /// An empty FIFO gives its buffer back (an idle connection's); returns
    /// whether it had one.
    pub fn shrink(&mut self) -> bool {
        let had = self.buf.capacity() > 0;
        if self.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
        }
        had
    }

    /// Make room for `n` more bytes, reusing the consumed front first.
    pub fn reserve(&mut self, n: usize) {
        if self.start > 0 && self.buf.capacity() - self.buf.len() < n {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(n);
    }

    pub fn append(&mut self, data: &[u8]) {
        self.reserve(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Let `fill` write up to `max` bytes at the end (for instance `recv`);
    /// it returns how many it wrote, which are then queued.  The room
    /// offered is the spare capacity, grown to at most `KEEP` bytes queued:
    /// the buffer an emptied FIFO keeps is reused record after record, never
    /// allocated and freed per `recv` (a short fill does not mean the source
    /// is drained).  Room reserved for nothing is given back: an empty FIFO
    /// keeps at most `KEEP` bytes of capacity.
    pub fn fill_with<E>(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let spare = self.buf.capacity() - self.buf.len();
        let max = max.min(spare.max(KEEP.saturating_sub(self.len())).max(1));
        self.reserve(max);
        let spare = &mut self.buf.spare_capacity_mut()[..max];
        let n = match fill(spare) {
            Ok(n) => n.min(max),
            Err(e) => {
                self.consume(0);
                return Err(e);
            }
        };
        // SAFETY: `fill` initialised the first n bytes of the spare
        // capacity, and n <= max <= spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        if n == 0 {
            self.consume(0);
        }
        Ok(n)
    }

    /// Copy up to `out.len()` bytes out and consume them.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.data()[..n]);
        self.consume(n);
        n
    }
}

/// BIO_TYPE_SOURCE_SINK: a BIO at the end of a chain.
const BIO_TYPE_SOURCE_SINK: c_int = 0x0400;

/// Our method table (NULL until made, and again once released at unload)
/// and the type number it was registered with.
struct Method {
    table: AtomicPtr<sys::BIO_METHOD>,
    kind: c_int,
}

/// FIFO BIOs alive: the method is released at unload only when none is.
static LIVE_BIOS: AtomicUsize = AtomicUsize::new(0);

fn method() -> &'static Method {
    static METHOD: OnceLock<Method> = OnceLock::new();
    METHOD.get_or_init(|| {
        // SAFETY: registers a new BIO type with our callbacks; the table
        // lives until the library is unloaded (release_method).
        unsafe {
            let kind = super::BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
            let m = sys::BIO_meth_new(kind, c"corotls fifo".as_ptr());
            if !m.is_null() {
                sys::BIO_meth_set_write__fixed_rust(m, Some(fifo_write));
                sys::BIO_meth_set_read__fixed_rust(m, Some(fifo_read));
                sys::BIO_meth_set_ctrl__fixed_rust(m, Some(fifo_ctrl));
                sys::BIO_meth_set_create__fixed_rust(m, Some(fifo_create));
                sys::BIO_meth_set_destroy__fixed_rust(m, Some(fifo_destroy));
                crate::unload::at_unload(release_method);
            }
            Method { table: AtomicPtr::new(m), kind }
        }
    })
}

/// At unload: free the method table, unless a FIFO BIO is still alive (a
/// session the host never freed), whose BIO_free would need it.
extern "C" fn release_method(_: *mut c_void) {
    if LIVE_BIOS.load(Ordering::SeqCst) != 0 {
        return;
    }
    let m = method().table.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !m.is_null() {
        // SAFETY: made by BIO_meth_new above; no BIO uses it (none alive),
        // and new_bio refuses to make one from now on (the table is NULL).
        unsafe { sys::BIO_meth_free(m) };
    }
}

/// A new FIFO BIO, or NULL if OpenSSL could not allocate one.
///
/// # Safety
/// The caller owns the returned BIO (for example by handing it to an SSL).
pub unsafe fn new_bio() -> *mut sys::BIO {
    let m = method().table.load(Ordering::Acquire);
    if m.is_null() {
        return std::ptr::null_mut();
    }
    sys::BIO_new(m)
}

/// The FIFO behind `bio`, if it is one of ours.
///
/// # Safety
/// `bio` is NULL or live; the reference must not outlive it, and nothing
/// else may use the BIO while the reference is held.
pub unsafe fn of<'a>(bio: *mut sys::BIO) -> Option<&'a mut Fifo> {
    if bio.is_null() || super::BIO_method_type(bio) != method().kind {
        return None;
    }
    (sys::BIO_get_data(bio) as *mut Fifo).as_mut()
}

unsafe extern "C" fn fifo_create(b: *mut sys::BIO) -> c_int {
    callback_guard(0, || {
        // SAFETY: OpenSSL hands us the BIO being created; we attach our state.
        unsafe {
            sys::BIO_set_data(b, Box::into_raw(Box::<Fifo>::default()) as *mut c_void);
            sys::BIO_set_init(b, 1);
        }
        LIVE_BIOS.fetch_add(1, Ordering::SeqCst);
        1
    })
}

unsafe extern "C" fn fifo_destroy(b: *mut sys::BIO) -> c_int {
    if b.is_null() {
        return 0;
    }
    callback_guard(0, || {
        // SAFETY: the data pointer is the Box made in fifo_create (or NULL).
        unsafe {
            let p = sys::BIO_get_data(b) as *mut Fifo;
            if !p.is_null() {
                sys::BIO_set_data(b, std::ptr::null_mut());
                LIVE_BIOS.fetch_sub(1, Ordering::SeqCst);
                drop(Box::from_raw(p));
            }
        }
        1
    })
}

/// # Safety
/// `b` is a live FIFO BIO (OpenSSL calls these only with its own BIOs).
unsafe fn state<'a>(b: *mut sys::BIO) -> Option<&'a mut Fifo> {
    (sys::BIO_get_data(b) as *mut Fifo).as_mut()
}

unsafe extern "C" fn fifo_write(b: *mut sys::BIO, data: *const c_char, len: c_int) -> c_int {
    // SAFETY: OpenSSL passes a live BIO and `len` readable bytes at `data`.
    callback_guard(-1, || unsafe {
        sys::BIO_clear_retry_flags(b);
        let Some(f) = state(b) else { return -1 };
        if len <= 0 || data.is_null() {
            return 0;
        }
        f.append(std::slice::from_raw_parts(data as *const u8, len as usize));
        len
    })
}

unsafe extern "C" fn fifo_read(b: *mut sys::BIO, out: *mut c_char, len: c_int) -> c_int {
    // SAFETY: OpenSSL passes a live BIO and room for `len` bytes at `out`.
    callback_guard(-1, || unsafe {
        sys::BIO_clear_retry_flags(b);
        let Some(f) = state(b) else { return -1 };
        if len <= 0 || out.is_null() {
            return 0;
        }
        if f.is_empty() {
            // Like a memory BIO with eof_return -1: empty means "later".
            sys::BIO_set_retry_read(b);
            return -1;
        }
        f.take(std::slice::from_raw_parts_mut(out as *mut u8, len as usize)) as c_int
    })
}

const BIO_CTRL_RESET: c_int = 1;
const BIO_CTRL_EOF: c_int = 2;
const BIO_CTRL_PENDING: c_int = 10;
const BIO_CTRL_FLUSH: c_int = 11;
const BIO_CTRL_DUP: c_int = 12;
const BIO_CTRL_WPENDING: c_int = 13;

unsafe extern "C" fn fifo_ctrl(b: *mut sys::BIO, cmd: c_int, num: c_long, ptr: *mut c_void) -> c_long {
    callback_guard(0, || ctrl(b, cmd, num, ptr))
}

fn ctrl(b: *mut sys::BIO, cmd: c_int, _num: c_long, _ptr: *mut c_void) -> c_long {
    // SAFETY: OpenSSL passes a live FIFO BIO.
    let Some(f) = (unsafe { state(b) }) else { return 0 };
    match cmd {
        BIO_CTRL_PENDING => f.len() as c_long,
        BIO_CTRL_WPENDING => 0,
        BIO_CTRL_FLUSH | BIO_CTRL_DUP => 1,
        BIO_CTRL_EOF => 0, // never at EOF: the transport reports the end
        BIO_CTRL_RESET => {
            let n = f.len();
            f.consume(n);
            1
        }
        sys::BIO_C_SET_BUF_MEM_EOF_RETURN => 1, // already "retry"
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_room() {
        let mut f = Fifo::default();
        f.append(b"hello ");
        let n = f
            .fill_with::<()>(10, |spare| {
                for (i, b) in b"world".iter().enumerate() {
                    spare[i].write(*b);
                }
                Ok(5)
            })
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(f.data(), b"hello world");
        let mut out = [0u8; 6];
        assert_eq!(f.take(&mut out), 6);
        assert_eq!(&out, b"hello ");
        f.append(&[7u8; 100_000]);
        assert_eq!(f.len(), 100_005);
        f.consume(100_005);
        assert!(f.is_empty());
        assert_eq!(f.buf.capacity(), 0, "a large emptied buffer is given back");
        // Room reserved for a read that found nothing is given back too.
        assert_eq!(f.fill_with::<()>(64 * 1024, |_| Ok(0)), Ok(0));
        assert!(f.buf.capacity() <= KEEP);
        assert_eq!(f.fill_with(64 * 1024, |_| Err("EAGAIN")), Err("EAGAIN"));
        assert!(f.buf.capacity() <= KEEP);
        // Not when something is queued.
        f.append(b"x");
        assert_eq!(f.fill_with(64 * 1024, |_| Err("EAGAIN")), Err("EAGAIN"));
        assert_eq!(f.data(), b"x");
    }

    #[test]
    fn bio_behaves_like_a_retrying_memory_bio() {
        // SAFETY: a BIO we own for the test's duration.
        unsafe {
            let b = new_bio();
            assert!(!b.is_null());
            let mut buf = [0u8; 8];
            assert_eq!(sys::BIO_read(b, buf.as_mut_ptr() as *mut c_void, 8), -1);
            assert!(super::super::BIO_test_flags(b, sys::BIO_FLAGS_SHOULD_RETRY) != 0);
            assert_eq!(sys::BIO_write(b, b"abcdef".as_ptr() as *const c_void, 6), 6);
            assert_eq!(super::super::BIO_ctrl_pending(b), 6);
            assert_eq!(sys::BIO_read(b, buf.as_mut_ptr() as *mut c_void, 4), 4);
            assert_eq!(&buf[..4], b"abcd");
            assert_eq!(of(b).unwrap().data(), b"ef");
            super::super::BIO_free(b);
            let m = super::super::ssl::new_mem_bio();
            assert!(of(m).is_none(), "a memory BIO is not a FIFO");
            super::super::BIO_free(m);
        }
    }
}
