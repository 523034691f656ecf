//! Stack domains: the thread's own stack, or a dedicated mapping ([`Stack`]) that one greenlet was
//! started on.
//!
//! Slicing works exactly as before *inside* a domain: greenlets started from a greenlet share its
//! domain and its stack chain. A switch *between* domains copies nothing out of the domain being
//! left; it only records that domain's chain head (the greenlet that left it), so that the next switch
//! into the domain knows where its chain starts.
//!
//! A dedicated mapping looks like this (the stack grows down, from the [`Domain`] header):
//!
//! ```text
//!   map_base + map_len  +--------------------+
//!                       | Domain (header)    |
//!             hi  ----> +--------------------+ <- the new greenlet's first SP (16-aligned)
//!                       | the greenlet's     |
//!                       | frames, and those  |
//!                       | of sliced children |
//!             lo  ----> +--------------------+
//!                       | guard page(s)      |    MADV_GUARD_INSTALL, or PROT_NONE
//!   map_base            +--------------------+
//! ```
//!
//! The header is inside the mapping, so a dedicated greenlet costs no heap allocation, and a pool of
//! free stacks is an intrusive list through the headers.
//!
//! # Membership
//!
//! `Domain::members` counts the `StackState`s whose slice lies in the domain: started (or about to
//! start) and not dead. The mapping goes back to the pool (or is unmapped) when the count drops to
//! zero, which happens only once nothing runs on it any more:
//!
//! - a dying greenlet's membership is released by the switch away from it, after the SP has left the
//!   domain (in the restore hook, or in [`fresh_entry`](crate::switch) on a new stack), or at once if
//!   the target lives in the same domain (the target is a member, so the count stays above zero);
//! - a suspended or about-to-start greenlet that is reset or dropped releases its membership at once
//!   (the crate contract says when that is allowed; it never runs on the domain then).

use core::ffi::c_void;
use core::ptr;

use crate::StackState;

/// The header of a dedicated stack, at the top of its mapping; its address is the stack's `hi`.
#[repr(C, align(16))]
pub(crate) struct Domain {
    /// The head of this domain's stack chain while no greenlet of it runs: the greenlet that last
    /// left it (or, if that one was dying, the greenlet above it). Null: no live slice in it.
    pub(crate) last: *mut StackState,
    /// How many `StackState`s have their slice in this domain.
    pub(crate) members: usize,
    /// The lowest SP any greenlet of the domain switched away at: how deep the stack was used, so a
    /// released stack gives back only what was touched.
    pub(crate) low: *mut u8,
    /// Lowest usable address (just above the guard).
    pub(crate) lo: *mut u8,
    /// The whole mapping, guard included.
    pub(crate) map_base: *mut u8,
    pub(crate) map_len: usize,
    /// What the first greenlet runs on the fresh stack; taken (set to `None`) when it starts.
    pub(crate) entry: Option<StackEntry>,
    pub(crate) entry_arg: *mut c_void,
    /// The next free stack, while this one is in a pool.
    pub(crate) next_free: *mut Domain,
}

/// The function a greenlet started on a dedicated stack runs first, with the argument given to
/// [`StackState::for_new_dedicated`]. It is the whole life of that greenlet: it must end by marking
/// itself dead ([`StackState::set_inactive`]) and switching away, never by returning.
///
/// `C-unwind`: a foreign exception (C++) that nothing catches travels up to this frame, the
/// bottom of the stack, where the unwinder finds no handler and its runtime terminates the
/// process with its usual report, as on a thread's own stack. Rust code must not unwind out.
pub type StackEntry = unsafe extern "C-unwind" fn(arg: *mut c_void) -> !;

impl Domain {
    /// The top of the usable stack (exclusive): the header's own address.
    pub(crate) fn hi(this: *mut Domain) -> *mut u8 {
        this.cast()
    }
}

/// Head of `domain`'s chain as recorded when it was last left (the thread's own stack keeps it in the
/// switch context).
///
/// # Safety
///
/// `domain` is null or a live domain header of this thread.
pub(crate) unsafe fn chain_head(
    domain: *mut Domain,
    thread_last: *mut StackState,
) -> *mut StackState {
    if domain.is_null() {
        thread_last
    } else {
        // SAFETY: a live header (contract); a read.
        unsafe { (*domain).last }
    }
}

/// Take one more member into `domain` (null: the thread's stack, which needs no counting).
///
/// # Safety
///
/// `domain` is null or a live domain header of this thread.
pub(crate) unsafe fn join(domain: *mut Domain) {
    if !domain.is_null() {
        // SAFETY: a live header (contract); a read-modify-write of a plain field.
        unsafe { (*domain).members += 1 };
    }
}

/// Release one member of `domain`. Returns the domain if that was the last member: the caller then
/// owns the mapping (and must pool or unmap it) — nothing may run on it any more.
///
/// # Safety
///
/// `domain` is null or a live domain header of this thread with at least one member.
#[must_use = "a domain whose last member left must be pooled or unmapped"]
pub(crate) unsafe fn leave(domain: *mut Domain) -> Option<Stack> {
    if domain.is_null() {
        return None;
    }
    // SAFETY: a live header of this thread (contract), referred to by nothing else during the call.
    let header = unsafe { &mut *domain };
    header.members -= 1;
    if header.members == 0 {
        // SAFETY: a live header nobody else refers to now: its last member just left.
        Some(unsafe { Stack::from_domain(domain) })
    } else {
        None
    }
}

/// An owned dedicated stack that no greenlet uses: fresh from [`Stack::new`], or from a pool. Dropping
/// it unmaps it.
///
/// It is `Send`: a free stack is plain memory.
#[derive(Debug)]
pub struct Stack {
    domain: ptr::NonNull<Domain>,
}

// SAFETY: a free `Stack` is an anonymous private mapping that only its owner refers to; nothing in
// it is tied to a thread.
unsafe impl Send for Stack {}

impl Stack {
    /// Map a new stack whose usable part is at least `size` bytes (rounded up to whole pages; at least
    /// [`MIN_STACK_SIZE`]), with a guard below it. `None` if the mapping or the guard could not be had
    /// (out of address space, the process's map-count budget, strict overcommit).
    #[cfg(unix)]
    pub fn new(size: usize) -> Option<Stack> {
        crate::os::map_stack(size).map(|domain| Stack { domain })
    }

    /// Bytes usable for frames (from `lo` up to the header).
    pub fn size(&self) -> usize {
        Domain::hi(self.domain.as_ptr()) as usize - self.header().lo as usize
    }

    fn header(&self) -> &Domain {
        // SAFETY: the header is live and owned by this handle, so nothing else refers to it.
        unsafe { self.domain.as_ref() }
    }

    fn header_mut(&mut self) -> &mut Domain {
        // SAFETY: as in `header`; `&mut self` makes this the only reference.
        unsafe { self.domain.as_mut() }
    }

    /// Wrap a header whose last member left.
    ///
    /// # Safety
    ///
    /// `domain` is a live header that nothing else refers to.
    pub(crate) unsafe fn from_domain(domain: *mut Domain) -> Stack {
        Stack {
            domain: ptr::NonNull::new(domain).expect("a live domain header is not null"),
        }
    }

    /// Give up ownership: the header now belongs to a greenlet (or a pool list).
    pub(crate) fn into_domain(self) -> *mut Domain {
        let d = self.domain.as_ptr();
        core::mem::forget(self);
        d
    }

    /// Decommit whatever the last user touched below the part kept resident, and reset the header
    /// for the next user.
    pub(crate) fn recycle(&mut self) {
        let hi = Domain::hi(self.domain.as_ptr());
        let header = self.header_mut();
        #[cfg(unix)]
        {
            let keep_from = (hi as usize).saturating_sub(KEEP_RESIDENT);
            if (header.low as usize) < keep_from {
                // SAFETY: [low, keep_from) lies inside this mapping (`low` is at or above `lo`),
                // and no greenlet runs on a free stack.
                unsafe { crate::os::decommit(header.lo.max(header.low), keep_from as *mut u8) };
            }
        }
        header.last = ptr::null_mut();
        header.members = 0;
        header.low = hi;
        header.entry = None;
        header.entry_arg = ptr::null_mut();
        header.next_free = ptr::null_mut();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let (base, len) = (self.header().map_base, self.header().map_len);
            // SAFETY: the whole mapping is ours and nothing runs on or refers into it.
            unsafe { crate::os::unmap_stack(base, len) };
        }
    }
}

/// The smallest usable stack [`Stack::new`] makes.
pub const MIN_STACK_SIZE: usize = 64 << 10;

/// The top of a released stack that stays resident for the next user (a greenlet that stayed
/// shallow touches only this much, so a pool hit costs no page faults).
pub const KEEP_RESIDENT: usize = 64 << 10;

/// How many free stacks a thread keeps for reuse at first.
pub const DEFAULT_POOL_CAP: usize = 64;

/// How far a thread's pool of free stacks raises its own cap (see
/// [`SwitchContext::set_stack_pool_cap`](crate::SwitchContext::set_stack_pool_cap)).
pub const MAX_ADAPTIVE_POOL_CAP: usize = 1024;

/// A thread's free stacks: a LIFO list through the headers (the most recently used, still warm in
/// cache and resident, is reused first), up to a cap; stacks beyond it are unmapped.
///
/// Unless set explicitly, the cap follows demand: each `take` that finds the pool empty raises
/// it by one, up to [`MAX_ADAPTIVE_POOL_CAP`]. A thread that keeps, say, 100 greenlets alive at
/// a time then stops mapping and unmapping the 36 stacks beyond the first 64 on every round
/// (measured with gevent: 3,774 `mmap` and 3,605 `munmap` calls over 100 rounds of 100
/// greenlets, against 160 and 5 for rounds of 50). It does not shrink back: a pooled stack
/// costs its resident top (a few pages for a greenlet that stayed shallow; everything below
/// [`KEEP_RESIDENT`] was given back).
#[derive(Debug)]
pub(crate) struct Pool {
    head: *mut Domain,
    len: usize,
    cap: usize,
    /// Whether the cap follows demand (it was never set explicitly).
    adaptive: bool,
    /// Stacks this pool mapped anew (a `take` that found none to reuse).
    mapped: usize,
}

impl Pool {
    pub(crate) const fn new() -> Pool {
        Pool {
            head: ptr::null_mut(),
            len: 0,
            cap: DEFAULT_POOL_CAP,
            adaptive: true,
            mapped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn mapped(&self) -> usize {
        self.mapped
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
        self.adaptive = false;
        while self.len > self.cap {
            drop(self.pop());
        }
    }

    /// A stack of `size` usable bytes (as [`Stack::new`] rounds it): a pooled one if the most recent
    /// has that size, else a new mapping.
    #[cfg(unix)]
    pub(crate) fn take(&mut self, size: usize) -> Option<Stack> {
        if let Some(stack) = self.pop() {
            if stack.size() == crate::os::usable_size(size) {
                return Some(stack);
            }
            // A different size was asked for since: the pool is stale.
            drop(stack);
            while self.len > 0 {
                drop(self.pop());
            }
        }
        if self.adaptive && self.cap < MAX_ADAPTIVE_POOL_CAP {
            // More stacks were wanted at once than the pool keeps: keep one more.
            self.cap += 1;
        }
        let stack = Stack::new(size);
        self.mapped += usize::from(stack.is_some());
        stack
    }

    /// Keep `stack` for reuse, or unmap it if the pool is full.
    pub(crate) fn put(&mut self, mut stack: Stack) {
        if self.len >= self.cap {
            return;
        }
        stack.recycle();
        let d = stack.into_domain();
        // SAFETY: `d` is a free header now owned by the pool; a write.
        unsafe { (*d).next_free = self.head };
        self.head = d;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Stack> {
        if self.head.is_null() {
            return None;
        }
        let d = self.head;
        // SAFETY: the pool owns every header on its list; a read.
        self.head = unsafe { (*d).next_free };
        self.len -= 1;
        // SAFETY: just unlinked: the pool's ownership passes to the handle.
        Some(unsafe { Stack::from_domain(d) })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}
