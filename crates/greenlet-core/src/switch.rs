//! The portable half of a switch: [`switch()`], the [`SwitchContext`] it hands to the assembly, and the
//! two hooks the assembly calls ([`save_hook`] before moving the SP, [`restore_hook`] after).

use core::fmt;
use core::ptr;

use crate::arch;
use crate::domain::{Pool, Stack};
use crate::stack_state::{self, SaveOutcome, StackState};

/// What a switch hook tells the assembly. Even values are a displacement to add to the SP (two
/// stack pointers at the same point of the switch routine are both `STACK_ALIGNMENT`-aligned, so their
/// difference is even); odd values mean "do not move, return this status".
pub(crate) type HookWord = usize;

/// The switch resumed a suspended target (also the value [`restore_hook`] returns).
pub(crate) const STATUS_RESUMED: HookWord = 0;
/// The target was about to start: the caller continues as the new greenlet.
pub(crate) const STATUS_STARTED: HookWord = 1;
/// Saving a slice failed; nothing moved.
pub(crate) const STATUS_OUT_OF_MEMORY: HookWord = 3;
/// The target starts on a stack of its own: move the SP to [`SwitchContext`]'s `fresh_sp` and jump
/// to [`fresh_entry`]. Never returned to [`switch()`].
#[cfg_attr(
    not(unix),
    allow(dead_code, reason = "only the unix arch files have a fresh-stack path")
)]
pub(crate) const STATUS_START_FRESH: HookWord = 5;

/// The two ends of the switch in progress, read by the hooks.
///
/// The assembly carries only a pointer to this across the switch (in a callee-saved register): the
/// stack itself is being rewritten, so nothing else the switch needs may live on it. Keep one per OS
/// thread at a stable heap address (a `Box` in the thread state), and never share it between threads.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<greenlet_core::SwitchContext>();
/// ```
///
/// It also keeps the thread's pool of free dedicated stacks, and the head of the thread stack's chain
/// while a greenlet on a dedicated stack runs.
#[repr(C)]
pub struct SwitchContext {
    current: *mut StackState,
    target: *mut StackState,
    /// The head of the target domain's chain that `save_slices` walked from.
    pub(crate) head: *mut StackState,
    /// A dying greenlet's domain, to release once the SP has left it.
    pub(crate) release: *mut crate::domain::Domain,
    /// The first SP of a greenlet starting on a fresh stack.
    pub(crate) fresh_sp: *mut u8,
    /// The head of the thread stack's chain while the running greenlet is on a dedicated stack.
    pub(crate) thread_last: *mut StackState,
    /// Free dedicated stacks for reuse.
    pub(crate) pool: Pool,
    /// The top of the thread's own stack, if [`record_thread_stack`](Self::record_thread_stack)
    /// found it.
    thread_stack_top: *mut u8,
}

impl SwitchContext {
    /// A context with no switch in progress.
    pub const fn new() -> Self {
        SwitchContext {
            current: ptr::null_mut(),
            target: ptr::null_mut(),
            head: ptr::null_mut(),
            release: ptr::null_mut(),
            fresh_sp: ptr::null_mut(),
            thread_last: ptr::null_mut(),
            pool: Pool::new(),
            thread_stack_top: ptr::null_mut(),
        }
    }

    /// Look up (once, on the thread this context belongs to) where the thread's own stack
    /// ends, for [`StackState::held_bytes`]. A few microseconds on most threads; on the main
    /// thread glibc reads `/proc/self/maps`.
    pub fn record_thread_stack(&mut self) {
        #[cfg(unix)]
        if let Some(top) = crate::os::thread_stack_top() {
            self.thread_stack_top = top;
        }
    }

    /// The top of the thread's own stack, or null if not recorded.
    pub fn thread_stack_top(&self) -> *mut u8 {
        self.thread_stack_top
    }

    /// A stack with at least `size` usable bytes for a new greenlet
    /// ([`StackState::for_new_dedicated`]): the thread's most recently freed one if it has that size,
    /// else a new mapping. `None` if none can be had (always, on targets without dedicated
    /// stacks: Windows): run the greenlet sliced instead.
    pub fn take_stack(&mut self, size: usize) -> Option<Stack> {
        #[cfg(unix)]
        return self.pool.take(size);
        #[cfg(not(unix))]
        {
            let _ = size;
            None
        }
    }

    /// Keep a stack that was taken but not used, for the next [`take_stack`](Self::take_stack).
    pub fn give_back_stack(&mut self, stack: Stack) {
        self.pool.put(stack);
    }

    /// How many free stacks this thread keeps.
    pub fn pooled_stacks(&self) -> usize {
        self.pool.len()
    }

    /// How many stacks [`take_stack`](Self::take_stack) had to map (rather than reuse) so far.
    pub fn mapped_stacks(&self) -> usize {
        self.pool.mapped()
    }

    /// Keep at most `cap` free stacks (unmapping any beyond it now), from now on; by default
    /// the cap starts at [`DEFAULT_POOL_CAP`](crate::DEFAULT_POOL_CAP) and follows demand up
    /// to [`MAX_ADAPTIVE_POOL_CAP`](crate::MAX_ADAPTIVE_POOL_CAP).
    pub fn set_stack_pool_cap(&mut self, cap: usize) {
        self.pool.set_cap(cap);
    }
}

impl Default for SwitchContext {
    fn default() -> Self {
        SwitchContext::new()
    }
}

impl fmt::Debug for SwitchContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwitchContext")
            .field("current", &self.current)
            .field("target", &self.target)
            .field("thread_last", &self.thread_last)
            .field("pool", &self.pool)
            .finish()
    }
}

/// How a successful [`switch()`] returned, as seen by the code that called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchOutcome {
    /// Some later switch resumed this greenlet: the code is running as the greenlet that made the
    /// call, on its own restored stack. (Also how a switch that started a greenlet on a stack of its
    /// own returns: the new greenlet ran elsewhere, in its entry function.)
    Resumed,
    /// The target was about to start: the code is now running *as the new greenlet*, on the same
    /// stack, below the target's start mark.
    Started,
}

/// Why a [`switch()`] failed. Nothing moved: the caller is still the greenlet that made the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchError {
    /// A heap copy of some slice could not be allocated or grown. Slices already saved stay saved
    /// (their copies equal the live bytes), which is harmless.
    OutOfMemory,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::OutOfMemory => {
                f.write_str("out of memory while saving a greenlet's stack")
            }
        }
    }
}

impl std::error::Error for SwitchError {}

/// Switch this thread from the running greenlet `current` to `target`.
///
/// - If `target` is suspended, this saves whatever overlaps its slice, restores its slice and its
///   registers, and returns [`SwitchOutcome::Resumed`] *in the target*, from the `switch` call that
///   suspended it. The call made here returns only when something switches back to `current`.
/// - If `target` is about to start ([`StackState::for_new_greenlet`], not yet active), this saves
///   what overlaps `[.., target.stop)` and returns [`SwitchOutcome::Started`] right away, on the same
///   stack: the caller is now the new greenlet and must call [`StackState::set_active`] on `target`.
///   The switch that later resumes `current` returns [`SwitchOutcome::Resumed`] from this same call.
///
/// # Safety
///
/// The whole crate-level safety contract applies; in short:
/// - `ctx` is this thread's [`SwitchContext`]; `current` is the `StackState` of the greenlet running on
///   this thread (active, or dying after [`StackState::set_inactive`]); `target` belongs to a greenlet
///   of this thread and is either active or about to start, never dead or unstarted.
/// - All of them, and every `StackState` on `current`'s stack chain, stay live and unmoved for the
///   whole switch.
/// - Nothing borrowed from the stack of another greenlet, and no guard (`RefCell` borrow, lock,
///   `thread_local!` access) is held across the call.
/// - If `target` is about to start, the caller is the start stub described in the crate docs, and
///   `target`'s mark is in the frame that called it.
/// - If `current` is dying, the call never returns; its `StackState` must outlive the switch.
pub unsafe fn switch(
    ctx: *mut SwitchContext,
    current: *mut StackState,
    target: *mut StackState,
) -> Result<SwitchOutcome, SwitchError> {
    debug_assert!(
        // SAFETY: `current` is live (contract); a read.
        unsafe { (*current).started() },
        "switch from an unstarted greenlet"
    );
    debug_assert!(
        // SAFETY: `target` is live (contract); a read.
        unsafe { (*target).started() },
        "switch to an unstarted greenlet (no mark)"
    );
    // SAFETY: `ctx` is this thread's live SwitchContext, used by nothing else during the switch
    // (contract); a write.
    unsafe { (*ctx).current = current };
    // SAFETY: as above.
    unsafe { (*ctx).target = target };
    // SAFETY: `ctx` is filled in, and the caller upholds the contract the hooks rely on.
    let status = unsafe { arch::switch_stack(ctx) };
    match status {
        STATUS_RESUMED => Ok(SwitchOutcome::Resumed),
        STATUS_STARTED => Ok(SwitchOutcome::Started),
        _ => Err(SwitchError::OutOfMemory),
    }
}

/// Called by the assembly with the current SP after pushing the callee-saved registers. Returns a
/// [`HookWord`]: the displacement to the target's saved SP, or an odd status.
///
/// `extern "C"` so the assembly can call it; `#[inline(never)]` so it always runs in its own frame
/// below `sp`, never in the switch's frame.
///
/// # Safety
///
/// Only the arch switch routine calls this, with the `ctx` filled in by [`switch()`] and its own SP.
#[inline(never)]
pub(crate) unsafe extern "C" fn save_hook(ctx: *mut SwitchContext, sp: *mut u8) -> HookWord {
    // SAFETY: `ctx` is the live SwitchContext that `switch` filled in (contract); a read.
    let current = unsafe { (*ctx).current };
    // SAFETY: as above.
    let target = unsafe { (*ctx).target };
    // SAFETY: `switch`'s caller vouches for both StackStates and the chain; `sp` is the switch
    // routine's SP and this frame is below it.
    match unsafe { stack_state::save_slices(ctx, current, target, sp) } {
        SaveOutcome::Resume(diff) => {
            debug_assert!(diff.is_multiple_of(2), "misaligned stack pointers");
            diff
        }
        SaveOutcome::Start => STATUS_STARTED,
        SaveOutcome::StartFresh(fresh_sp) => {
            debug_assert!((fresh_sp as usize).is_multiple_of(arch::STACK_ALIGNMENT));
            // SAFETY: `ctx` is live (contract); a write the assembly reads.
            unsafe { (*ctx).fresh_sp = fresh_sp };
            STATUS_START_FRESH
        }
        SaveOutcome::OutOfMemory => STATUS_OUT_OF_MEMORY,
    }
}

/// Called by the assembly once the SP is at the target's saved SP, before popping the target's
/// registers. Returns [`STATUS_RESUMED`].
///
/// `extern "C"` so the assembly can call it; `#[inline(never)]` so it runs in its own small frame,
/// entirely below the target's slice that it overwrites.
///
/// # Safety
///
/// Only the arch switch routine calls this, after [`save_hook`] returned a displacement for the same
/// `ctx` and the SP was moved by it.
#[inline(never)]
pub(crate) unsafe extern "C" fn restore_hook(ctx: *mut SwitchContext) -> HookWord {
    // SAFETY: `ctx` is the live SwitchContext that `switch` filled in (contract); a read.
    let target = unsafe { (*ctx).target };
    // SAFETY: as for `save_hook`; the SP (and this frame) is now below the target's slice.
    unsafe { stack_state::restore_slices(ctx, target) };
    STATUS_RESUMED
}

/// Where the assembly jumps, on the new stack, when [`save_hook`] returned [`STATUS_START_FRESH`]:
/// the bottom frame of a greenlet started on a stack of its own (its return address is 0, which
/// ends every unwinder's walk). Releases the domain a dying greenlet left, then runs the target's
/// entry function, which never returns (`C-unwind`: see [`StackEntry`](crate::StackEntry)).
///
/// # Safety
///
/// Only the arch switch routine jumps here, with the SP at `ctx.fresh_sp`, for a target made by
/// [`StackState::for_new_dedicated`].
#[cfg_attr(
    not(unix),
    allow(dead_code, reason = "only the unix arch files have a fresh-stack path")
)]
pub(crate) unsafe extern "C-unwind" fn fresh_entry(ctx: *mut SwitchContext) -> ! {
    // SAFETY: the SP is on the new stack, off any domain being released.
    unsafe { stack_state::release_left_domain(ctx) };
    // SAFETY: `ctx` is live (contract); a read.
    let target = unsafe { (*ctx).target };
    // SAFETY: the target is live (contract), and nothing else refers to it during the call.
    let target = unsafe { &mut *target };
    // SAFETY: it was made by `for_new_dedicated` and is starting (contract).
    let (entry, arg) = unsafe { target.take_entry() };
    // SAFETY: `entry` is the function the caller of `for_new_dedicated` gave for this greenlet, with
    // its argument; it never returns.
    unsafe { entry(arg) }
}
