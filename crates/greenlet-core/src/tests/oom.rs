//! A failed allocation of a heap copy makes the switch fail with nothing moved.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use super::runtime::{G, context, current, on_thread, spawn};
use crate::{StackState, SwitchError, SwitchOutcome, switch};

thread_local! {
    /// While set, every allocation on this thread fails.
    static FAIL_ALLOCS: Cell<bool> = const { Cell::new(false) };
}

struct FailingAlloc;

// SAFETY: forwards to `System`, or fails (returns null), which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL_ALLOCS.with(Cell::get) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: every block came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if FAIL_ALLOCS.with(Cell::get) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on; every block came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: FailingAlloc = FailingAlloc;

/// Try to start a greenlet below `mark` while allocations fail.
#[inline(never)]
fn try_start(mark: *mut u8) -> Result<SwitchOutcome, SwitchError> {
    let main = current();
    let mut st = Box::new(StackState::unstarted());
    // SAFETY: `main` is the running greenlet; `mark` is a local of our caller.
    *st = unsafe { StackState::for_new_greenlet(mark, main.stack_raw()) };
    FAIL_ALLOCS.with(|f| f.set(true));
    // SAFETY: this thread's context, the running greenlet, a greenlet about to start from this stub.
    let r = unsafe { switch(context(), main.stack_raw(), &raw mut *st) };
    FAIL_ALLOCS.with(|f| f.set(false));
    if r == Ok(SwitchOutcome::Started) {
        // We would be the new greenlet, with nothing to run: the test has failed.
        std::process::abort();
    }
    assert!(!st.active() && st.saved_bytes() == 0);
    st.reset();
    r
}

/// Switch from main to `g` while allocations fail, `depth` frames down: well below `g`'s mark, so
/// that part of main's stack must be saved. (From the frame that started `g`, main's SP may well be
/// above the mark, and the switch then needs no copy at all.)
#[inline(never)]
fn failing_switch_from_depth(depth: usize, g: G) -> Result<SwitchOutcome, SwitchError> {
    let mut pad = [depth as u64; 16];
    black_box(&mut pad);
    let r = if depth > 0 {
        failing_switch_from_depth(depth - 1, g)
    } else {
        let main = current();
        assert!((&raw const pad as usize) < g.stack().stack_stop() as usize);
        FAIL_ALLOCS.with(|f| f.set(true));
        // SAFETY: this thread's context, the running greenlet and a suspended one.
        let r = unsafe { switch(context(), main.stack_raw(), g.stack_raw()) };
        FAIL_ALLOCS.with(|f| f.set(false));
        if r == Ok(SwitchOutcome::Resumed) {
            // We would be `g`, resumed behind the runtime's back: the test has failed.
            std::process::abort();
        }
        r
    };
    black_box(&mut pad);
    r
}

#[test]
fn out_of_memory_fails_the_switch_with_nothing_moved() {
    on_thread(|| {
        let main = current();
        // Starting: saving main's stack down to the mark needs a copy.
        let mut mark = 0usize;
        let r = try_start(black_box(&raw mut mark).cast());
        black_box(&raw mut mark);
        assert_eq!(r, Err(SwitchError::OutOfMemory));
        assert_eq!(main.saved_bytes(), 0);

        // Resuming: g is parked below main's SP, so switching to it must save part of main.
        let g = spawn(move |v| {
            let mut arr = [0x3Cu8; 256];
            black_box(&mut arr);
            let back = main.switch(v + 1);
            black_box(&mut arr);
            assert!(arr.iter().all(|&b| b == 0x3C));
            back + 1
        });
        assert_eq!(g.switch(1), 2);
        let before = g.saved_bytes();
        assert_eq!(
            failing_switch_from_depth(16, g),
            Err(SwitchError::OutOfMemory)
        );
        assert_eq!(current(), main);
        assert_eq!(g.saved_bytes(), before);
        // Everything still works.
        assert_eq!(g.switch(10), 11);
        assert!(g.is_dead());
    });
}
