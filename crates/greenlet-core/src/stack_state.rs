//! [`StackState`]: which slice of the thread stack a greenlet owns, and the heap copy of the part of it
//! that other greenlets have overwritten.
//!
//! The picture to keep in mind (the stack grows down, towards lower addresses):
//!
//! ```text
//!   high   +----------------------+ <- main.stop == usize::MAX (never reached)
//!          |  main's frames       |
//!          |  .. mark_a ..........| <- a.stop   (a local in the frame that started `a`)
//!          |  a's frames          |
//!          |  .. mark_b ..........| <- b.stop   (a local in the frame of `a` that started `b`)
//!          |  b's frames          |
//!          +----------------------+ <- b.start  (b's SP when it last switched away)
//!   low
//! ```
//!
//! A suspended greenlet `g` logically owns `[g.start, g.stop)`. The low `g.saved` bytes of that range,
//! `[g.start, g.start + g.saved)`, have been moved to the heap buffer `g.copy` because another greenlet
//! needed the memory; the rest, `[g.start + g.saved, g.stop)`, is still live on the stack.
//!
//! `prev` links the running greenlet to the greenlet owning the stack just above it, and so on up to
//! the main greenlet: that chain (the *stack chain*) is exactly the set of greenlets that may still have
//! live bytes on the stack. Every greenlet off the chain is either fully saved, dead or unstarted.

use core::ffi::c_void;
use core::ptr;
use std::alloc::{self, Layout};

use crate::domain::{self, Domain, Stack, StackEntry};
use crate::switch::SwitchContext;

/// `start` of a greenlet that is running: any non-null value marks it active, the real SP is only
/// written when it switches away.
const RUNNING: *mut u8 = ptr::without_provenance_mut(1);

/// `stop` of a main greenlet: above every address, so the main greenlet is never saved whole.
const MAIN_STOP: *mut u8 = ptr::without_provenance_mut(usize::MAX);

/// Alignment of the heap copies. The bytes are only ever moved with `memcpy`; word alignment merely
/// keeps that `memcpy` on its fast path.
const COPY_ALIGN: usize = align_of::<usize>();

/// Per-greenlet stack bookkeeping (upstream greenlet's `StackState`).
///
/// # States
///
/// | state | `start` | `stop` | how it gets there |
/// |---|---|---|---|
/// | unstarted | null | null | [`StackState::unstarted`], [`StackState::reset`] |
/// | about to start | null | mark | [`StackState::for_new_greenlet`] |
/// | running | non-null (1 or a stale SP) | mark | [`StackState::set_active`] after [`SwitchOutcome::Started`](crate::SwitchOutcome::Started), or a switch into it |
/// | suspended | its SP at the switch | mark | [`switch()`](crate::switch()) away from it |
/// | dead | null | mark | [`StackState::set_inactive`] |
///
/// "About to start" and "dead" look the same; the caller knows which one it means (a target of
/// [`switch()`](crate::switch()) with a null `start` is always started, never resumed).
///
/// # Address stability
///
/// `StackState`s point at each other with raw pointers (`prev`, and the [`SwitchContext`](crate::SwitchContext)),
/// so a `StackState` must not move while its greenlet is started, and must not be dropped or
/// [`reset`](StackState::reset) while it is on the running greenlet's stack chain (see the crate docs).
/// Keep it in a heap allocation (a `Box`, a Python object) for the greenlet's whole life.
///
/// It is neither `Send` nor `Sync`: the slices it describes exist only on one thread's stack.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<greenlet_core::StackState>();
/// ```
#[derive(Debug)]
pub struct StackState {
    /// Null: not active (unstarted, about to start, or dead). [`RUNNING`] or a stale SP: running.
    /// Otherwise the SP saved by the switch that suspended this greenlet.
    start: *mut u8,
    /// Null: unstarted. [`MAIN_STOP`]: a main greenlet. Otherwise the (exclusive) top of its slice.
    stop: *mut u8,
    /// Heap buffer of `capacity` bytes whose first `saved` bytes belong at `[start, start + saved)`,
    /// or null. It outlives a restore (with `saved == 0`) so that the next switch away from this
    /// greenlet saves into it without going through the allocator.
    copy: *mut u8,
    /// How many bytes of the slice are in `copy`.
    saved: usize,
    /// Size of the `copy` allocation (0 when `copy` is null).
    capacity: usize,
    /// The `StackState` owning the stack region just above this one *in the same domain*, or null.
    prev: *mut StackState,
    /// The dedicated stack this greenlet's slice lies in, or null for the thread's own stack.
    /// Counted in the domain's `members` from the start until death (cleared by the switch away
    /// from the dying greenlet) or reset.
    domain: *mut Domain,
}

impl StackState {
    /// The state of a greenlet that has not started: no slice, nothing saved.
    pub const fn unstarted() -> Self {
        StackState {
            start: ptr::null_mut(),
            stop: ptr::null_mut(),
            copy: ptr::null_mut(),
            saved: 0,
            capacity: 0,
            prev: ptr::null_mut(),
            domain: ptr::null_mut(),
        }
    }

    /// The state of a thread's main greenlet: always active, and owning the whole stack above every
    /// other greenlet, so it is only ever saved in part (up to the target's `stop`).
    pub const fn main() -> Self {
        StackState {
            start: RUNNING,
            stop: MAIN_STOP,
            copy: ptr::null_mut(),
            saved: 0,
            capacity: 0,
            prev: ptr::null_mut(),
            domain: ptr::null_mut(),
        }
    }

    /// The state of a greenlet about to be started from the running greenlet `current`.
    ///
    /// `mark` becomes the top (`stop`) of the new greenlet's slice: it must be the address of a local in
    /// the frame that *calls* the function doing the starting switch (see the crate docs). The new
    /// greenlet's `prev` is `current`, or `current`'s own `prev` if `current` is dying (inactive): a
    /// dying greenlet is never saved, so it cannot own the stack above the new one.
    ///
    /// # Safety
    ///
    /// `current` must point to a live `StackState` of the running greenlet of this thread (it is
    /// read, and stored as `prev`). `mark` must satisfy the contract above.
    pub unsafe fn for_new_greenlet(mark: *mut u8, current: *const StackState) -> Self {
        // SAFETY: the caller guarantees `current` points to a live StackState.
        let current_ref = unsafe { &*current };
        let prev = if current_ref.active() {
            current.cast_mut()
        } else {
            current_ref.prev
        };
        // The mark is on the running greenlet's stack, so the new slice is in its domain.
        let domain = current_ref.domain;
        // SAFETY: the running greenlet's domain is live (it is a member).
        unsafe { domain::join(domain) };
        StackState {
            start: ptr::null_mut(),
            stop: mark,
            copy: ptr::null_mut(),
            saved: 0,
            capacity: 0,
            prev,
            domain,
        }
    }

    /// The state of a greenlet about to be started on a stack of its own, `stack`, where it will run
    /// `entry(arg)`.
    ///
    /// Switching to it ([`switch()`](crate::switch())) moves the SP to the top of `stack` and calls
    /// `entry(arg)` there; the `switch` call itself returns only when something resumes the greenlet
    /// that made it. Greenlets later started *from* this one (with
    /// [`for_new_greenlet`](StackState::for_new_greenlet)) slice this stack among themselves, and it
    /// is pooled once the last of them is dead or reset.
    ///
    /// `entry` is the new greenlet's whole life: it calls [`set_active`](StackState::set_active) first,
    /// and ends with [`set_inactive`](StackState::set_inactive) and a switch away; it never returns,
    /// and never lets a panic unwind out of it (there is nothing above it to unwind into).
    pub fn for_new_dedicated(stack: Stack, entry: StackEntry, arg: *mut c_void) -> Self {
        let d = stack.into_domain();
        // SAFETY: `d` is the header of a free stack, now owned by this state; plain writes.
        unsafe { (*d).members = 1 };
        // SAFETY: as above.
        unsafe { (*d).entry = Some(entry) };
        // SAFETY: as above.
        unsafe { (*d).entry_arg = arg };
        StackState {
            start: ptr::null_mut(),
            stop: Domain::hi(d),
            copy: ptr::null_mut(),
            saved: 0,
            capacity: 0,
            prev: ptr::null_mut(),
            domain: d,
        }
    }

    /// The usable range `(lo, hi)` of the dedicated stack this greenlet runs on (its own, or that of
    /// the greenlet whose stack it slices), or `None` on the thread's own stack or once dead.
    pub fn stack_bounds(&self) -> Option<(*mut u8, *mut u8)> {
        if self.domain.is_null() {
            None
        } else {
            // SAFETY: a member's domain is live; a read.
            let lo = unsafe { (*self.domain).lo };
            Some((lo, Domain::hi(self.domain)))
        }
    }

    /// Upstream greenlet's `_stack_saved`, generalised to stack domains: the bytes of stack
    /// this greenlet keeps while it is not running.
    ///
    /// While the running greenlet `running` is in the same domain (always, with sliced
    /// stacks only), that is its heap copy, exactly as upstream. While the running greenlet
    /// is in another domain, this greenlet's stack stays in place rather than being copied:
    /// then it is everything from its saved SP up to its `stop`, or to the top of its domain
    /// (`thread_stack_top` for the thread's own stack, as
    /// [`SwitchContext::thread_stack_top`] gives it; null if unknown).
    pub fn held_bytes(&self, running: Option<&StackState>, thread_stack_top: *mut u8) -> usize {
        let Some(running) = running else {
            return self.saved;
        };
        if !self.active() || ptr::eq(self, running) || running.domain == self.domain {
            return self.saved;
        }
        let top = if self.domain.is_null() {
            thread_stack_top
        } else {
            Domain::hi(self.domain)
        };
        let top = (top as usize).min(self.stop as usize);
        top.saturating_sub(self.start as usize).max(self.saved)
    }

    /// Whether a switch from this (running) greenlet to `target` leaves this greenlet's stack
    /// untouched until it runs again: it owns a dedicated stack that no other greenlet
    /// shares, and `target` is on another stack. (No other greenlet can start on that
    /// stack without this one running.)
    pub fn stays_in_place_across(&self, target: &StackState) -> bool {
        self.owns_stack()
            && target.domain != self.domain
            // SAFETY: a member's domain header is live; a read.
            && unsafe { (*self.domain).members } == 1
    }

    /// Whether this greenlet owns its dedicated stack (started on it, rather than sliced on it).
    pub fn owns_stack(&self) -> bool {
        !self.domain.is_null() && self.stop == Domain::hi(self.domain)
    }

    /// The entry function and argument of a greenlet starting on a fresh stack.
    ///
    /// # Safety
    ///
    /// This state was made by [`for_new_dedicated`](StackState::for_new_dedicated) and is starting.
    pub(crate) unsafe fn take_entry(&mut self) -> (StackEntry, *mut c_void) {
        // SAFETY: its own domain is live (contract); a read-modify-write of the header.
        let entry = unsafe { (*self.domain).entry.take() };
        // SAFETY: as above; a read.
        let arg = unsafe { (*self.domain).entry_arg };
        (
            entry.expect("a fresh stack's entry is taken once, when it starts"),
            arg,
        )
    }

    /// Leave the domain (if any), unmapping it if this was its last member.
    fn leave_domain(&mut self) {
        let d = core::mem::replace(&mut self.domain, ptr::null_mut());
        if d.is_null() {
            return;
        }
        // SAFETY: a member's domain is live; reads and a write. If this state is the head of the
        // domain's chain, its slice is gone: the chain continues above it.
        if unsafe { (*d).last } == ptr::from_mut(self) {
            // SAFETY: as above.
            unsafe { (*d).last = self.prev };
        }
        // SAFETY: this state was a member.
        drop(unsafe { domain::leave(d) });
    }

    /// Whether the greenlet was ever given a slice (`stop` is set): true from
    /// [`for_new_greenlet`](StackState::for_new_greenlet) on, including once dead.
    pub fn started(&self) -> bool {
        !self.stop.is_null()
    }

    /// Whether the greenlet is running or suspended (`start` is set): false when unstarted, about to
    /// start, or dead.
    pub fn active(&self) -> bool {
        !self.start.is_null()
    }

    /// Whether this is a thread's main greenlet.
    pub fn is_main(&self) -> bool {
        self.stop == MAIN_STOP
    }

    /// How many bytes of this greenlet's slice currently live in the heap copy (upstream
    /// `_stack_saved`). Always 0 for the running greenlet.
    pub fn saved_bytes(&self) -> usize {
        self.saved
    }

    /// Low end of the slice: the SP saved when the greenlet last switched away. Meaningless (null, 1 or
    /// stale) unless the greenlet is suspended.
    pub fn stack_start(&self) -> *mut u8 {
        self.start
    }

    /// High end (exclusive) of the slice: the start mark; `usize::MAX` for a main greenlet; null if
    /// unstarted.
    pub fn stack_stop(&self) -> *mut u8 {
        self.stop
    }

    /// Mark the greenlet as running. The new greenlet calls this first thing after
    /// [`switch()`](crate::switch()) returned [`SwitchOutcome::Started`](crate::SwitchOutcome::Started).
    pub fn set_active(&mut self) {
        self.start = RUNNING;
    }

    /// Mark the greenlet as dead: `start` becomes null and any heap copy is freed. A dying greenlet
    /// calls this before its last switch; that switch then never saves its stack.
    pub fn set_inactive(&mut self) {
        self.start = ptr::null_mut();
        self.free_copy();
    }

    /// Forget everything: free the heap copy and become [`unstarted`](StackState::unstarted). Used to
    /// throw away the state of a greenlet whose thread has died, or of a start that failed.
    ///
    /// A greenlet on a dedicated stack leaves it; the last one to leave unmaps it (rather than pool
    /// it: there is no thread context here).
    pub fn reset(&mut self) {
        self.free_copy();
        self.leave_domain();
        *self = StackState::unstarted();
    }

    /// Copy `n` bytes that logically belong to this (suspended) greenlet's stack at address `src`
    /// into `dest`: the bytes in `[start, start + saved)` come from the heap copy, all others from
    /// the live stack. This is how a frame of a suspended greenlet is read.
    ///
    /// # Safety
    ///
    /// - `dest` must be valid for writes of `n` bytes and must not overlap the heap copy.
    /// - Every byte of `[src, src + n)` that is outside `[start, start + saved)` must be readable
    ///   memory (in practice: the part of the greenlet's slice still live on this thread's stack).
    /// - No switch may happen during the call (the heap copy must not change under it).
    pub unsafe fn copy_from_stack(&self, dest: *mut u8, src: *const u8, n: usize) {
        let lo = src as usize;
        let hi = lo + n;
        // An empty saved range when nothing is saved (including the running greenlet, whose `start` is
        // a placeholder).
        let saved_lo = self.start as usize;
        let saved_hi = saved_lo + self.saved;
        // The part of [lo, hi) in the heap copy: [mid_lo, mid_hi), possibly empty.
        let mid_lo = lo.max(saved_lo).min(hi);
        let mid_hi = hi.min(saved_hi).max(mid_lo);
        // SAFETY: [lo, mid_lo) is outside the saved range (it ends where that range begins, or
        // is empty), so readable by the caller's contract; it lands at the start of `dest`'s n
        // bytes, which do not overlap the stack bytes they are filled from (contract).
        unsafe { ptr::copy_nonoverlapping(src, dest, mid_lo - lo) };
        if mid_hi > mid_lo {
            // SAFETY: `mid_lo - saved_lo < saved`, so the offset stays inside the heap copy,
            // which holds [start, start + saved) at offset `x - start`.
            let from = unsafe { self.copy.add(mid_lo - saved_lo) };
            // SAFETY: `mid_lo - lo <= n`: inside (or one past) `dest`'s n bytes.
            let to = unsafe { dest.add(mid_lo - lo) };
            // SAFETY: [mid_lo, mid_hi) is inside [start, start + saved), so `from` has
            // `mid_hi - mid_lo` initialised bytes; they land inside `dest`, which does not
            // overlap the heap copy (contract).
            unsafe { ptr::copy_nonoverlapping(from, to, mid_hi - mid_lo) };
        }
        // SAFETY: `mid_hi - lo <= n`: inside (or one past) the `src` range.
        let from = unsafe { src.add(mid_hi - lo) };
        // SAFETY: as above, inside (or one past) `dest`'s n bytes.
        let to = unsafe { dest.add(mid_hi - lo) };
        // SAFETY: [mid_hi, hi) is above the saved range (or empty), so readable by the
        // caller's contract, and lands in the tail of `dest`, which does not overlap it.
        unsafe { ptr::copy_nonoverlapping(from, to, hi - mid_hi) };
    }

    /// Extend the heap copy so that it covers `[start, stop)`, copying only the bytes
    /// `[start + saved, stop)` that are not saved yet. Does nothing if they are.
    ///
    /// Returns `false` if the buffer could not be grown; the state is then unchanged.
    ///
    /// # Safety
    ///
    /// The greenlet must be suspended (`start` is its real SP), and `[start + saved, stop)` must
    /// still hold its bytes on the live stack, i.e. it is on the stack chain of the switch in progress.
    pub(crate) unsafe fn save_up_to(&mut self, stop: *mut u8) -> bool {
        let have_hi = self.start as usize + self.saved;
        if stop as usize <= have_hi {
            return true;
        }
        let want = stop as usize - self.start as usize;
        if want > self.capacity {
            let Ok(new_layout) = Layout::from_size_align(want, COPY_ALIGN) else {
                return false;
            };
            let buf = if self.copy.is_null() {
                // SAFETY: `want > saved >= 0`, so the layout has a non-zero size.
                unsafe { alloc::alloc(new_layout) }
            } else {
                // SAFETY:
                // - `copy` was allocated by this module with exactly `copy_layout(capacity)`;
                // - `want` is non-zero, and fits `isize` (checked by `Layout::from_size_align`).
                unsafe { alloc::realloc(self.copy, copy_layout(self.capacity), want) }
            };
            if buf.is_null() {
                return false;
            }
            self.copy = buf;
            self.capacity = want;
        }
        // SAFETY: `saved < want = stop - start`: inside this greenlet's slice of the stack.
        let from = unsafe { self.start.add(self.saved) };
        // SAFETY: `saved < want <= capacity`: inside the heap copy.
        let to = unsafe { self.copy.add(self.saved) };
        // SAFETY:
        // - the source [start + saved, stop) is this greenlet's live stack (caller's contract);
        // - the destination is the tail of the `want`-byte buffer just allocated;
        // - a heap buffer and the stack never overlap.
        unsafe { ptr::copy_nonoverlapping(from, to, want - self.saved) };
        self.saved = want;
        true
    }

    /// Put the heap copy back at `[start, start + saved)`. The buffer is kept for the next save.
    ///
    /// # Safety
    ///
    /// The SP must already be below `start`, and the caller's own frame too: this overwrites
    /// `[start, start + saved)` with no regard for what is there.
    pub(crate) unsafe fn restore_copy(&mut self) {
        if self.saved != 0 {
            // SAFETY:
            // - `copy` holds `saved` initialised bytes;
            // - [start, start + saved) is part of this thread's stack, above the SP and above every
            //   frame still in use (caller's contract);
            // - a heap buffer and the stack never overlap.
            unsafe { ptr::copy_nonoverlapping(self.copy, self.start, self.saved) };
        }
        self.saved = 0;
    }

    /// Free the heap copy, if any.
    fn free_copy(&mut self) {
        if !self.copy.is_null() {
            // SAFETY: `copy` was allocated by `save_up_to` with exactly `copy_layout(capacity)`.
            unsafe { alloc::dealloc(self.copy, copy_layout(self.capacity)) };
            self.copy = ptr::null_mut();
        }
        self.saved = 0;
        self.capacity = 0;
    }
}

/// What [`save_slices`] decided.
pub(crate) enum SaveOutcome {
    /// The target is suspended: move the SP by this many bytes (wrapping) to reach its saved SP.
    Resume(usize),
    /// The target is about to start sliced: stay on this stack.
    Start,
    /// The target is about to start on a stack of its own, whose first SP is this.
    StartFresh(*mut u8),
    /// A heap copy could not be grown.
    OutOfMemory,
}

/// The save half of a switch from `current` to `target`, run by the switch hook with `sp` the current
/// greenlet's SP after it pushed its registers.
///
/// Records `sp` as `current`'s `start` (unless `current` is dying). If the target lives in another
/// domain, records the head of `current`'s domain chain there and nothing of it is saved. Then walks
/// the target domain's chain from its head upwards, saving to the heap every slice that lies below
/// `target.stop` (entirely if it ends below it, up to `target.stop` otherwise), so that the target's
/// slice is free to be restored. The head used is left in `ctx` for [`restore_slices`].
///
/// A dying `current`'s domain membership is released here if the target shares the domain (it
/// stays above zero: the target is a member), else handed to the restore side in `ctx.release`, to
/// be released once the SP has left the domain.
///
/// # Safety
///
/// - `ctx` is this thread's live switch context.
/// - `current` and `target` point to live `StackState`s of this thread; `current` is the running
///   greenlet (active, or dying after [`StackState::set_inactive`]), `target` is active or about to
///   start, and every `StackState` on the target domain's chain is live.
/// - `sp` is the current SP, and the caller's frame is below every byte this saves.
pub(crate) unsafe fn save_slices(
    ctx: *mut SwitchContext,
    current: *mut StackState,
    target: *mut StackState,
    sp: *mut u8,
) -> SaveOutcome {
    // Every dereference below is of `ctx`, `current`, `target`, a `prev` reached from a chain head,
    // or a domain header of one of them: live, and of this thread (caller's contract). Each is a
    // plain read or write, or a `&mut` that ends with the statement, so no two references to one
    // StackState ever coexist.
    // SAFETY: `target` is live (contract); a read.
    let target_stop = unsafe { (*target).stop };
    // SAFETY: as above.
    let target_domain = unsafe { (*target).domain };
    // SAFETY: `current` is live (contract); a read.
    let current_domain = unsafe { (*current).domain };
    // SAFETY: as above.
    let dying = unsafe { (*current).start }.is_null();
    let current_head = if dying {
        // `current` is dying: its stack is garbage, never save it; its domain's chain continues
        // above it.
        // SAFETY: as above.
        unsafe { (*current).prev }
    } else {
        // SAFETY: as above; `current` is running, so `sp` is its new `start`.
        unsafe { (*current).start = sp };
        if !current_domain.is_null() {
            // SAFETY: a member's domain header is live; a read and maybe a write.
            if sp < unsafe { (*current_domain).low } {
                // SAFETY: as above.
                unsafe { (*current_domain).low = sp };
            }
        }
        current
    };
    let head = if current_domain == target_domain {
        current_head
    } else {
        // Leaving the domain: whoever switches back into it starts from this head.
        if current_domain.is_null() {
            // SAFETY: `ctx` is live (contract); a write.
            unsafe { (*ctx).thread_last = current_head };
        } else {
            // SAFETY: a member's domain header is live; a write.
            unsafe { (*current_domain).last = current_head };
        }
        // SAFETY: `ctx` is live (contract); a read.
        let thread_last = unsafe { (*ctx).thread_last };
        // SAFETY: the target's domain is live (it is a member).
        unsafe { domain::chain_head(target_domain, thread_last) }
    };
    // SAFETY: `ctx` is live; a write.
    unsafe { (*ctx).head = head };
    let mut owner = head;
    // Slices entirely inside the target's range are saved whole and leave the chain.
    // SAFETY: `owner` is non-null, so on the chain, so live (contract); a read.
    while !owner.is_null() && unsafe { (*owner).stop } < target_stop {
        // SAFETY: as above.
        let owner_stop = unsafe { (*owner).stop };
        // SAFETY: as above; the only reference to `*owner` until the next statement ends.
        let slice = unsafe { &mut *owner };
        // SAFETY: `owner` is on the chain, so its unsaved bytes are still on the live stack,
        // which is what `save_up_to` requires.
        if !unsafe { slice.save_up_to(owner_stop) } {
            return SaveOutcome::OutOfMemory;
        }
        // SAFETY: as above; a read.
        owner = unsafe { (*owner).prev };
    }
    // The first slice reaching above the target's top only loses the part below it. Slices
    // further up the chain start above this one's live part, so they do not overlap.
    if !owner.is_null() && owner != target {
        // SAFETY: `owner` is non-null, so live and on the chain (as in the loop); the only
        // reference to it while it lives.
        let slice = unsafe { &mut *owner };
        // SAFETY: on the chain, so its unsaved bytes are still on the live stack (as in the loop).
        if !unsafe { slice.save_up_to(target_stop) } {
            return SaveOutcome::OutOfMemory;
        }
    }
    // Nothing can fail from here on.
    if dying && !current_domain.is_null() {
        // SAFETY: `current` is live; a write. Its membership is released just below.
        unsafe { (*current).domain = ptr::null_mut() };
        if current_domain == target_domain {
            // SAFETY: `current` was a member; the target still is, so the domain stays.
            let last = unsafe { domain::leave(current_domain) };
            debug_assert!(last.is_none(), "the target is a member of the same domain");
            drop(last);
        } else {
            // SAFETY: `ctx` is live; a write.
            unsafe { (*ctx).release = current_domain };
        }
    }
    // SAFETY: `target` is live (contract); a read.
    let target_start = unsafe { (*target).start };
    if !target_start.is_null() {
        SaveOutcome::Resume((target_start as usize).wrapping_sub(sp as usize))
    } else if !target_domain.is_null() && target_stop == Domain::hi(target_domain) {
        SaveOutcome::StartFresh(target_stop)
    } else {
        SaveOutcome::Start
    }
}

/// The restore half of a switch from `current` to `target`, run by the switch hook once the SP is
/// below `target.start`: put the target's heap copy back, relink the target to the first greenlet
/// of its domain's chain that owns stack above the target's `stop`, and release a dying greenlet's
/// domain left behind.
///
/// # Safety
///
/// - As for [`save_slices`], which must have returned [`SaveOutcome::Resume`] for this switch.
/// - The SP, and the caller's whole frame, are below `target.start`.
pub(crate) unsafe fn restore_slices(ctx: *mut SwitchContext, target: *mut StackState) {
    // The dereferences below are as in `save_slices`: live StackStates, no overlapping borrows.
    // SAFETY: `target` is live (contract); the only reference to it while it lives.
    let target_slice = unsafe { &mut *target };
    // SAFETY: `restore_copy` may overwrite the target's slice because the SP and this frame are
    // below it (caller's contract).
    unsafe { target_slice.restore_copy() };
    // SAFETY: `target` is live; a read.
    let target_stop = unsafe { (*target).stop };
    // SAFETY: `ctx` is live; a read of the head `save_slices` walked from.
    let mut owner = unsafe { (*ctx).head };
    // SAFETY: `owner` is non-null, so on the target domain's chain, so live; a read.
    while !owner.is_null() && unsafe { (*owner).stop } <= target_stop {
        // SAFETY: as above.
        owner = unsafe { (*owner).prev };
    }
    // SAFETY: `target` is live; a write.
    unsafe { (*target).prev = owner };
    // SAFETY: the SP has left the released domain (it is not the target's).
    unsafe { release_left_domain(ctx) };
}

/// Release the membership of a dying greenlet whose domain the switch has just left (if any): the
/// last member's stack goes to the thread's pool.
///
/// # Safety
///
/// `ctx` is this thread's live switch context, and the SP is no longer in `ctx.release`'s domain.
pub(crate) unsafe fn release_left_domain(ctx: *mut SwitchContext) {
    // SAFETY: `ctx` is live (contract); a read and a write.
    let d = unsafe { core::mem::replace(&mut (*ctx).release, ptr::null_mut()) };
    if d.is_null() {
        return;
    }
    // SAFETY: `save_slices` put a member's domain there and took the membership out of the state.
    if let Some(stack) = unsafe { domain::leave(d) } {
        // SAFETY: `ctx` is live; the only reference to its pool while it lives.
        unsafe { (*ctx).pool.put(stack) };
    }
}

impl Default for StackState {
    fn default() -> Self {
        StackState::unstarted()
    }
}

impl Drop for StackState {
    fn drop(&mut self) {
        self.free_copy();
        self.leave_domain();
    }
}

/// The layout of a heap copy of `n` bytes (`n > 0`), identical for allocation and deallocation.
fn copy_layout(n: usize) -> Layout {
    Layout::from_size_align(n, COPY_ALIGN)
        .expect("accepted by Layout::from_size_align when the copy was grown to this size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_predicates() {
        let u = StackState::unstarted();
        assert!(!u.started() && !u.active() && !u.is_main());
        assert_eq!(u.saved_bytes(), 0);

        let m = StackState::main();
        assert!(m.started() && m.active() && m.is_main());
        assert_eq!(m.stack_stop() as usize, usize::MAX);

        let mut mark = 0u64;
        let mark_ptr = (&raw mut mark).cast::<u8>();
        // SAFETY: `m` is a live StackState.
        let mut g = unsafe { StackState::for_new_greenlet(mark_ptr, &m) };
        assert!(g.started() && !g.active() && !g.is_main());
        assert_eq!(g.prev, (&raw const m).cast_mut());
        assert_eq!(g.stack_stop(), mark_ptr);

        g.set_active();
        assert!(g.active());
        // A greenlet started from a dying one hangs below the dying one's prev.
        g.set_inactive();
        assert!(g.started() && !g.active());
        // SAFETY: `g` is a live StackState.
        let h = unsafe { StackState::for_new_greenlet(mark_ptr, &g) };
        assert_eq!(h.prev, (&raw const m).cast_mut());

        g.reset();
        assert!(!g.started() && !g.active() && g.prev.is_null());
    }

    #[test]
    fn save_grows_incrementally_and_copy_from_stack_splices() {
        // A fake "stack" in a heap buffer: the greenlet owns [16, 64) of it.
        let mut fake: Vec<u8> = (0..96u8).collect();
        let base = fake.as_mut_ptr();
        let mut s = StackState::unstarted();
        // Both offsets are inside `fake`.
        s.start = base.wrapping_add(16);
        s.stop = base.wrapping_add(64);
        // SAFETY: [start, 32) are readable bytes of `fake`.
        assert!(unsafe { s.save_up_to(base.wrapping_add(32)) });
        assert_eq!(s.saved_bytes(), 16);
        // SAFETY: [start, 24) is already saved: a no-op.
        assert!(unsafe { s.save_up_to(base.wrapping_add(24)) });
        assert_eq!(s.saved_bytes(), 16);
        // SAFETY: [32, 48) are readable bytes of `fake`.
        assert!(unsafe { s.save_up_to(base.wrapping_add(48)) });
        assert_eq!(s.saved_bytes(), 32);

        // Another greenlet scribbles over the live bytes.
        for b in fake.iter_mut() {
            *b = 0xEE;
        }
        let base = fake.as_mut_ptr();
        let mut out = [0u8; 96];
        // SAFETY: all of `fake` is readable; `out` is 96 bytes and separate from the copy.
        unsafe { s.copy_from_stack(out.as_mut_ptr(), base, 96) };
        for (i, &b) in out.iter().enumerate() {
            let expect = if (16..48).contains(&i) { i as u8 } else { 0xEE };
            assert_eq!(b, expect, "byte {i}");
        }
        // A window entirely inside the copy, and one straddling its top.
        let mut out = [0u8; 8];
        // SAFETY: as above, windows inside `fake`.
        unsafe { s.copy_from_stack(out.as_mut_ptr(), base.wrapping_add(20), 8) };
        assert_eq!(out, [20, 21, 22, 23, 24, 25, 26, 27]);
        // SAFETY: as above.
        unsafe { s.copy_from_stack(out.as_mut_ptr(), base.wrapping_add(44), 8) };
        assert_eq!(out, [44, 45, 46, 47, 0xEE, 0xEE, 0xEE, 0xEE]);

        // Restoring writes the saved bytes back and keeps the buffer for the next save.
        let buffer = s.copy;
        // SAFETY: [start, start + saved) is inside `fake`, which nothing else is using.
        unsafe { s.restore_copy() };
        assert_eq!(s.saved_bytes(), 0);
        assert_eq!((s.copy, s.capacity), (buffer, 32));
        assert_eq!(&fake[16..48], &(16..48u8).collect::<Vec<_>>()[..]);
        assert_eq!(fake[48], 0xEE);

        // A save that fits reuses the buffer, and saves fresh bytes, not the old copy's.
        fake[16] = 0xAB;
        // SAFETY: as above.
        unsafe { assert!(s.save_up_to(base.wrapping_add(40))) };
        assert_eq!((s.copy, s.capacity, s.saved_bytes()), (buffer, 32, 24));
        // SAFETY: `copy` holds 24 initialised bytes.
        assert_eq!(unsafe { *s.copy }, 0xAB);
        // SAFETY: as above.
        unsafe { s.restore_copy() };

        // A bigger one grows it; dropping with a copy frees it.
        // SAFETY: as above.
        unsafe { assert!(s.save_up_to(base.wrapping_add(64))) };
        assert_eq!((s.saved_bytes(), s.capacity), (48, 48));
        assert_eq!(&fake[17..64], {
            // SAFETY: `copy` holds 48 initialised bytes.
            unsafe { core::slice::from_raw_parts(s.copy.wrapping_add(1), 47) }
        });
        drop(s);

        // Dying frees the buffer at once.
        let mut d = StackState::unstarted();
        d.start = base.wrapping_add(16);
        d.stop = base.wrapping_add(64);
        // SAFETY: [16, 64) is readable bytes of `fake`.
        assert!(unsafe { d.save_up_to(base.wrapping_add(64)) });
        // SAFETY: [16, 64) is inside `fake`, which nothing else is using.
        unsafe { d.restore_copy() };
        assert!(!d.copy.is_null());
        d.set_inactive();
        assert!(d.copy.is_null() && d.capacity == 0);
    }
}
