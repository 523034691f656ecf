//! The stack-switching core of greenlet-rs: greenlet's *stack slicing*, without Python.
//!
//! # The model
//!
//! All greenlets of a thread run on that thread's own stack. A greenlet owns the slice
//! `[stack_start, stack_stop)` of it (the stack grows down, so `start < stop`):
//!
//! - `stop` is fixed when the greenlet starts: the address of a local in the frame that started it
//!   (the *mark*). The main greenlet's `stop` is `usize::MAX`.
//! - `start` is the SP at which the greenlet last switched away.
//!
//! Slices overlap: a greenlet started deep in one greenlet's recursion reuses memory that a greenlet
//! started higher up also needs. Switching from `current` to `target` therefore
//!
//! 1. pushes `current`'s callee-saved registers and records its SP as its `start`;
//! 2. copies to the heap the bytes of other greenlets' slices that lie in the target's way, i.e. below
//!    `target.stop` (each slice is copied incrementally, only the part not saved yet);
//! 3. moves the SP to `target.start`, copies the target's heap copy back into
//!    `[target.start, target.start + saved)` from a frame below it, and pops the target's registers.
//!
//! A greenlet that has not started gets no stack of its own: step 2 runs for `[.., mark)`, step 3 is
//! skipped, and [`switch()`] returns [`SwitchOutcome::Started`] on the current stack. The caller then *is*
//! the new greenlet, running below the mark. No stack is allocated, ever; an idle greenlet costs only
//! the bytes of its slice that others overwrote ([`StackState::saved_bytes`], upstream's `_stack_saved`).
//!
//! [`StackState`] is the per-greenlet bookkeeping; [`switch()`] is the switch; [`SwitchContext`] is the
//! per-thread scratch the assembly carries across it. Everything else (which greenlet is current,
//! parents, values passed, Python state) belongs to the caller.
//!
//! # Dedicated stacks (unix)
//!
//! A greenlet may instead start on a stack of its own: [`SwitchContext::take_stack`] gives a
//! [`Stack`] (an `mmap`ed region with a guard below it, reused from a per-thread pool when one is
//! free), and [`StackState::for_new_dedicated`] makes the greenlet's state; switching to it moves
//! the SP to the top of that stack and runs the given entry function there. Each stack is a *domain*
//! (the thread's own stack is another): slicing works as above inside a domain, so greenlets started
//! from a dedicated greenlet share its stack; a switch between domains saves nothing of the domain
//! being left, so its cost does not depend on how deep either greenlet is. The stack goes back to the
//! pool once the last greenlet on it is dead or reset. See `src/domain.rs` for the layout and the
//! membership rule, `src/os.rs` for the guard and the `vm.max_map_count` budget.
//!
//! # Supported targets
//!
//! | arch | ABI | OS | file | saved besides the SP |
//! |---|---|---|---|---|
//! | x86_64 | System V | Linux, macOS, BSDs | `src/arch/x86_64_sysv.rs` | rbx, rbp, r12–r15, MXCSR, x87 CW |
//! | aarch64 | AAPCS64 | Linux, macOS, BSDs | `src/arch/aarch64_aapcs.rs` | x19–x30, d8–d15, FPCR |
//! | x86_64 | Microsoft x64 | Windows | `src/arch/x86_64_win64.rs` | rbx, rbp, rdi, rsi, r12–r15, xmm6–xmm15, MXCSR, x87 CW |
//!
//! Anything else (32-bit x86 and arm64 Windows included) is a compile error. CET shadow stacks are
//! not supported (upstream greenlet has the same limit).
//!
//! Tested on x86_64 Linux, and on aarch64 Linux under qemu-user:
//!
//! ```text
//! rustup target add aarch64-unknown-linux-musl      # apt-get install qemu-user
//! CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
//! CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64 \
//! GREENLET_CORE_TEST_RUNNER=qemu-aarch64 \
//!     cargo test -p greenlet-core --target aarch64-unknown-linux-musl
//! ```
//!
//! # Safety contract
//!
//! [`switch()`] and [`StackState::for_new_greenlet`] are `unsafe`; their callers promise:
//!
//! 1. **One thread.** Each OS thread has its own main greenlet ([`StackState::main`]) and its own
//!    [`SwitchContext`] at a stable heap address. A switch only ever involves `StackState`s of the
//!    calling thread.
//! 2. **Fixed addresses.** A `StackState` does not move while its greenlet is started (they link each
//!    other by raw pointers). It may be dropped or [`reset`](StackState::reset) only when it cannot be
//!    on the running greenlet's *stack chain* (the `prev` links the switch walks): an unstarted
//!    greenlet; a dead one, once the switch away from it has returned in another greenlet; any
//!    greenlet while the thread's main greenlet is the one running (its chain is itself alone); or any
//!    greenlet of a thread that has no running greenlet any more. A *suspended* greenlet of a live
//!    thread may be on the chain even if it is unrelated to the running one (a greenlet resumed below
//!    the slice of another one links to it), so kill it first (switch into it and let it finish), as
//!    upstream greenlet does. On a dedicated stack "while the main greenlet runs" does not help
//!    (main's switch saved only the thread stack's greenlets): a suspended greenlet there may be
//!    dropped or reset only if nothing on its stack will be switched to again (every other greenlet
//!    on it is dead or reset too, or the thread is gone).
//! 3. **The start stub.** A greenlet is started by a dedicated `#[inline(never)]` function (call it
//!    `initial_stub(mark, ..)`) whose *caller* passes the address of one of its own locals as `mark`
//!    (force it into memory, e.g. with `core::hint::black_box(&mut local)`). The stub calls
//!    [`StackState::for_new_greenlet`]`(mark, current)` and then [`switch()`]. The whole stub frame lies
//!    below the mark, so the new greenlet owns all of it. On [`SwitchOutcome::Started`] the stub is the
//!    new greenlet:
//!    - it calls [`StackState::set_active`] first;
//!    - it must never return from the stub (the frames above belong to the greenlet that started it),
//!      and after its first switch must not touch anything at or above the mark;
//!    - it must not let a panic unwind out of the stub: catch it and hand it to another greenlet;
//!    - it ends by calling [`StackState::set_inactive`] and switching away; that switch never returns
//!      and never saves the dying stack. The dying `StackState` must stay valid until the target is
//!      running; the target may then free it.
//!
//!    On [`SwitchOutcome::Resumed`] the stub is still the greenlet that called it, resumed later:
//!    it returns normally.
//!
//!    A greenlet made by [`StackState::for_new_dedicated`] needs no stub and no mark: the switch to it
//!    returns only as [`SwitchOutcome::Resumed`], and the new greenlet lives in its entry function,
//!    under the same rules (set active first, never return, no unwinding out, die by switching away).
//! 4. **Nothing scope-bound across a switch.** When [`switch()`] returns, any other greenlet's stack
//!    memory may hold someone else's bytes. Do not keep references into another greenlet's stack, nor
//!    any `RefCell` borrow, lock guard or `thread_local!` closure, across a switch. Locals of the
//!    resumed greenlet's own frames are valid again (they are its own past), but *which* greenlet is
//!    running must be re-read from per-thread state after every switch: set a per-thread "switching
//!    target" before switching, and after the switch returns, that variable names the greenlet that
//!    is now running.
//! 5. **Targets.** A target is active (suspended) or about to start (`for_new_greenlet`, never
//!    switched into yet). Never switch to a dead greenlet: a null `start` means "start it". Switching
//!    to the running greenlet itself is allowed and returns [`SwitchOutcome::Resumed`] at once.
//! 6. **Errors.** On [`SwitchError::OutOfMemory`] nothing moved; if the target was about to start,
//!    [`reset`](StackState::reset) it before anything else uses it.
//!
//! Floating-point control state (MXCSR and the x87 control word, FPCR on aarch64) is per greenlet: a
//! greenlet that changes its rounding mode does not change anyone else's, and a new greenlet starts
//! with the mode of the greenlet that started it.

#![warn(missing_docs)]
// One unsafe operation per block, each with the `// SAFETY:` reason for that operation.
#![deny(clippy::multiple_unsafe_ops_per_block)]

mod arch;
mod domain;
#[cfg(unix)]
mod os;
mod stack_state;
mod switch;

pub use domain::{
    DEFAULT_POOL_CAP, KEEP_RESIDENT, MAX_ADAPTIVE_POOL_CAP, MIN_STACK_SIZE, Stack, StackEntry,
};
#[cfg(unix)]
pub use os::{StackStats, stats as stack_stats};
pub use stack_state::StackState;
pub use switch::{SwitchContext, SwitchError, SwitchOutcome, switch};

#[cfg(test)]
mod tests;
