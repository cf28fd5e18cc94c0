//! The three chain queues of a connection (spec melon.md §3.2): plain
//! pointer work, no I/O.  An unknown queue selector does nothing (Melon
//! asserts in debug builds and dereferences NULL otherwise).

use crate::abi::{MlnChain, TcpConn};
use std::ptr::{self, addr_of_mut};

pub const M_C_SEND: i32 = 1;
pub const M_C_RECV: i32 = 2;
pub const M_C_SENT: i32 = 3;

/// Head and tail slots of queue `ty`, or None for an unknown selector.
///
/// # Safety
/// `tc` points to a live connection struct.
pub unsafe fn slots(tc: *mut TcpConn, ty: i32) -> Option<(*mut *mut MlnChain, *mut *mut MlnChain)> {
    match ty {
        M_C_SEND => Some((addr_of_mut!((*tc).snd_head), addr_of_mut!((*tc).snd_tail))),
        M_C_RECV => Some((addr_of_mut!((*tc).rcv_head), addr_of_mut!((*tc).rcv_tail))),
        M_C_SENT => Some((addr_of_mut!((*tc).sent_head), addr_of_mut!((*tc).sent_tail))),
        _ => None,
    }
}

/// Link the list `head..tail` (tail NULL: walk `next` to find it).  Only
/// the queue's old tail gets a new `next`; the list's own links, the given
/// tail's `next` included, are left as they are.
///
/// # Safety
/// `tc` is live; `head` is NULL or a list of live chains.
pub unsafe fn append_chain(tc: *mut TcpConn, head: *mut MlnChain, mut tail: *mut MlnChain, ty: i32) {
    if head.is_null() {
        return;
    }
    let Some((h, t)) = slots(tc, ty) else { return };
    if tail.is_null() {
        tail = head;
        while !(*tail).next.is_null() {
            tail = (*tail).next;
        }
    }
    if (*h).is_null() {
        *h = head;
    } else {
        (**t).next = head;
    }
    *t = tail;
}

/// Link one node; its `next` is left as it is.
///
/// # Safety
/// `tc` is live; `c` is NULL or a live chain.
pub unsafe fn append(tc: *mut TcpConn, c: *mut MlnChain, ty: i32) {
    append_chain(tc, c, c, ty);
}

/// # Safety
/// `tc` is live.
pub unsafe fn head(tc: *mut TcpConn, ty: i32) -> *mut MlnChain {
    slots(tc, ty).map_or(ptr::null_mut(), |(h, _)| *h)
}

/// # Safety
/// `tc` is live.
pub unsafe fn tail(tc: *mut TcpConn, ty: i32) -> *mut MlnChain {
    slots(tc, ty).map_or(ptr::null_mut(), |(_, t)| *t)
}

/// Detach the whole queue; returns its head.
///
/// # Safety
/// `tc` is live.
pub unsafe fn remove(tc: *mut TcpConn, ty: i32) -> *mut MlnChain {
    let Some((h, t)) = slots(tc, ty) else { return ptr::null_mut() };
    let rc = *h;
    *h = ptr::null_mut();
    *t = ptr::null_mut();
    rc
}

/// Detach the first node.  When it was the tail, both pointers become NULL
/// and its `next` is left alone; otherwise its `next` is cleared.
///
/// # Safety
/// `tc` is live and its queue well formed.
pub unsafe fn pop(tc: *mut TcpConn, ty: i32) -> *mut MlnChain {
    let Some((h, t)) = slots(tc, ty) else { return ptr::null_mut() };
    let rc = *h;
    if rc == *t {
        *h = ptr::null_mut();
        *t = ptr::null_mut();
        return rc;
    }
    if rc.is_null() {
        // A head of NULL with a non-NULL tail: a corrupt queue; do not chase it.
        return rc;
    }
    *h = (*rc).next;
    (*rc).next = ptr::null_mut();
    rc
}

/// Move the head of SEND to the end of SENT.
///
/// # Safety
/// `tc` is live and SEND is not empty.
pub unsafe fn send_head_to_sent(tc: *mut TcpConn) {
    let c = pop(tc, M_C_SEND);
    append(tc, c, M_C_SENT);
}

/// The whole SEND queue onto the end of SENT.
///
/// # Safety
/// `tc` is live.
pub unsafe fn move_sent(tc: *mut TcpConn) {
    // An empty SEND gives a NULL head: nothing is appended.
    let t = (*tc).snd_tail;
    append_chain(tc, remove(tc, M_C_SEND), t, M_C_SENT);
}
