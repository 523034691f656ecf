//! A tiny greenlet runtime on top of the crate's public API, shaped like the Python binding's use of
//! it: heap greenlets with a parent, a closure and a value slot; per-thread "current" and "switching
//! target" variables; a start stub whose caller provides the mark; a dying greenlet that switches to
//! its parent and never comes back.
//!
//! Values are `usize`s. A panic inside a greenlet is caught in its stub and re-raised in whichever
//! greenlet is resumed by its death (normally the parent), like an exception in greenlet.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::{StackState, SwitchContext, SwitchOutcome, switch};

type Run = Box<dyn FnOnce(usize) -> usize>;

struct Greenlet {
    stack: StackState,
    parent: *mut Greenlet,
    run: Option<Run>,
    /// Non-zero: start on a dedicated stack of this size (sliced if none can be had).
    dedicated: usize,
}

/// Per-thread runtime state. Only `Cell`s: nothing here is ever borrowed across a switch.
struct Rt {
    ctx: Cell<*mut SwitchContext>,
    main: Cell<*mut Greenlet>,
    current: Cell<*mut Greenlet>,
    switching_target: Cell<*mut Greenlet>,
    transfer: Cell<usize>,
    panic: Cell<Option<Box<dyn Any + Send>>>,
    all: RefCell<Vec<*mut Greenlet>>,
}

impl Rt {
    const fn new() -> Self {
        Rt {
            ctx: Cell::new(ptr::null_mut()),
            main: Cell::new(ptr::null_mut()),
            current: Cell::new(ptr::null_mut()),
            switching_target: Cell::new(ptr::null_mut()),
            transfer: Cell::new(0),
            panic: Cell::new(None),
            all: RefCell::new(Vec::new()),
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let main = self.main.get();
        if main.is_null() || self.current.get() != main {
            // Never initialised, or the thread is ending inside a greenlet: leak rather than guess.
            return;
        }
        // The main greenlet is running, so its stack chain is itself alone: every other state may go.
        for g in self.all.get_mut().drain(..) {
            // SAFETY: allocated by `spawn_with_parent` with Box::into_raw, freed only here.
            drop(unsafe { Box::from_raw(g) });
        }
        // SAFETY: allocated by `init` with Box::into_raw, freed only here.
        drop(unsafe { Box::from_raw(main) });
        // SAFETY: as for `main`.
        drop(unsafe { Box::from_raw(self.ctx.get()) });
    }
}

thread_local! {
    static RT: Rt = const { Rt::new() };
}

fn rt<R>(f: impl FnOnce(&Rt) -> R) -> R {
    RT.with(|rt| {
        if rt.main.get().is_null() {
            let main = Box::into_raw(Box::new(Greenlet {
                stack: StackState::main(),
                parent: ptr::null_mut(),
                run: None,
                dedicated: 0,
            }));
            rt.main.set(main);
            rt.current.set(main);
            rt.ctx.set(Box::into_raw(Box::new(SwitchContext::new())));
        }
        f(rt)
    })
}

/// A handle on a greenlet of this thread (freed when the thread ends).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct G(*mut Greenlet);

/// The running greenlet.
pub(crate) fn current() -> G {
    G(rt(|rt| rt.current.get()))
}

/// This thread's main greenlet.
pub(crate) fn main_greenlet() -> G {
    G(rt(|rt| rt.main.get()))
}

/// This thread's switch context, for calling the core API directly.
pub(crate) fn context() -> *mut SwitchContext {
    rt(|rt| rt.ctx.get())
}

/// A new, unstarted greenlet whose parent is the running greenlet.
pub(crate) fn spawn(f: impl FnOnce(usize) -> usize + 'static) -> G {
    spawn_with_parent(current(), f)
}

/// A new, unstarted greenlet with the given parent.
pub(crate) fn spawn_with_parent(parent: G, f: impl FnOnce(usize) -> usize + 'static) -> G {
    spawn_on(parent, 0, f)
}

/// A new, unstarted greenlet whose parent is the running greenlet, to be started on a dedicated
/// stack of `size` bytes.
#[cfg_attr(
    not(unix),
    allow(dead_code, reason = "used by the unix-only dedicated-stack tests")
)]
pub(crate) fn spawn_dedicated(size: usize, f: impl FnOnce(usize) -> usize + 'static) -> G {
    spawn_on(current(), size, f)
}

/// A new, unstarted greenlet with the given parent; `dedicated` as in [`Greenlet`].
pub(crate) fn spawn_on(parent: G, dedicated: usize, f: impl FnOnce(usize) -> usize + 'static) -> G {
    let g = Box::into_raw(Box::new(Greenlet {
        stack: StackState::unstarted(),
        parent: parent.0,
        run: Some(Box::new(f)),
        dedicated,
    }));
    rt(|rt| rt.all.borrow_mut().push(g));
    G(g)
}

impl G {
    /// Switch to this greenlet, passing `value`; returns the value passed back when something
    /// switches to the caller again (or the return value of a child that finished).
    pub(crate) fn switch(self, value: usize) -> usize {
        // SAFETY: handles only name greenlets of this thread, alive until the thread ends.
        let v = unsafe { switch_to(self.0, value) };
        if let Some(payload) = rt(|rt| rt.panic.take()) {
            panic::resume_unwind(payload);
        }
        v
    }

    /// The greenlet's `StackState`, for calling the core API directly.
    pub(crate) fn stack_raw(self) -> *mut StackState {
        // SAFETY: handles name live greenlets; no reference is created.
        unsafe { &raw mut (*self.0).stack }
    }

    /// The greenlet's `StackState` (for accounting checks; read it only while no switch runs).
    pub(crate) fn stack(self) -> &'static StackState {
        // SAFETY: the greenlet lives until the thread ends; callers drop the reference before switching.
        unsafe { &*self.stack_raw() }
    }

    pub(crate) fn saved_bytes(self) -> usize {
        self.stack().saved_bytes()
    }

    /// Whether it runs on a dedicated stack (its own, or one it slices).
    #[cfg_attr(
        not(unix),
        allow(dead_code, reason = "used by the unix-only dedicated-stack tests")
    )]
    pub(crate) fn on_dedicated_stack(self) -> bool {
        self.stack().stack_bounds().is_some()
    }

    pub(crate) fn is_dead(self) -> bool {
        let s = self.stack();
        s.started() && !s.active()
    }

    /// The `n`th greenlet spawned on this thread (0 is the first).
    #[cfg_attr(
        not(unix),
        allow(dead_code, reason = "used by the unix-only dedicated-stack tests")
    )]
    pub(crate) fn nth_spawned(n: usize) -> G {
        G(rt(|rt| rt.all.borrow()[n]))
    }

    pub(crate) fn parent(self) -> G {
        // SAFETY: as for `stack_ptr`.
        G(unsafe { (*self.0).parent })
    }
}

/// Switch to `target` (or, if it is dead, to its first live ancestor), starting it if needed.
///
/// # Safety
///
/// `target` is a live greenlet of this thread.
unsafe fn switch_to(target: *mut Greenlet, value: usize) -> usize {
    let mut target = target;
    loop {
        // SAFETY: `target` and its ancestors are live greenlets of this thread (contract); the
        // reference ends with this iteration, before anything else touches the greenlet.
        let t = unsafe { &*target };
        if !t.stack.started() || t.stack.active() {
            break;
        }
        target = t.parent;
        assert!(!target.is_null(), "no live ancestor to switch to");
    }
    let current = rt(|rt| rt.current.get());
    rt(|rt| rt.transfer.set(value));
    if target == current {
        return value;
    }
    // SAFETY: `target` is a live greenlet of this thread (contract); a read.
    let started = unsafe { (*target).stack.started() };
    // SAFETY: as above.
    let dedicated = unsafe { (*target).dedicated };
    let stack = if !started && dedicated > 0 {
        // SAFETY: this thread's context, not otherwise borrowed now.
        unsafe { (*rt(|rt| rt.ctx.get())).take_stack(dedicated) }
    } else {
        None
    };
    if let (false, Some(stack)) = (started, stack) {
        // SAFETY: `target` is unstarted and live.
        unsafe { start_dedicated(target, stack) };
    } else if !started {
        // The mark: a local of *this* frame, the stub's caller, forced into memory.
        let mut mark = 0usize;
        let mark_ptr = black_box(&raw mut mark).cast::<u8>();
        // Returns only once this greenlet is resumed.
        // SAFETY: `target` is unstarted and live; `mark_ptr` is a local of this frame.
        unsafe { initial_stub(target, mark_ptr) };
        black_box(&raw mut mark);
    } else {
        let ctx = rt(|rt| rt.ctx.get());
        rt(|rt| rt.switching_target.set(target));
        // SAFETY: `current` is the running greenlet, live on the heap; `&raw mut` makes no reference.
        let from = unsafe { &raw mut (*current).stack };
        // SAFETY: `target` is live (contract); `&raw mut` makes no reference.
        let to = unsafe { &raw mut (*target).stack };
        // SAFETY: the crate contract: one context per thread, live heap StackStates, nothing
        // borrowed across the call.
        match unsafe { switch(ctx, from, to) } {
            Ok(SwitchOutcome::Resumed) => {}
            Ok(SwitchOutcome::Started) => unreachable!("started an active greenlet"),
            Err(e) => panic!("switch failed: {e}"),
        }
        // We are whoever was switched to; the per-thread variable says who.
        rt(|rt| rt.current.set(rt.switching_target.get()));
    }
    rt(|rt| rt.transfer.get())
}

/// Start `target` below `mark`, a local of the caller's frame. Returns only in the starting greenlet,
/// when it is resumed; the new greenlet runs its closure in this frame and never returns from it.
///
/// # Safety
///
/// `target` is an unstarted greenlet of this thread; `mark` is the address of a local in the caller's
/// frame.
#[inline(never)]
unsafe fn initial_stub(target: *mut Greenlet, mark: *mut u8) {
    let current = rt(|rt| rt.current.get());
    let ctx = rt(|rt| rt.ctx.get());
    // SAFETY: `current` is the running greenlet, live on the heap; `&raw` makes no reference.
    let parent_stack = unsafe { &raw mut (*current).stack };
    // SAFETY: `target` is unstarted and live on the heap (our contract); `&raw` makes no reference.
    let target_stack = unsafe { &raw mut (*target).stack };
    // SAFETY: `mark` is in our caller's frame (our contract), above this whole frame; the parent's
    // state is live.
    let fresh = unsafe { StackState::for_new_greenlet(mark, parent_stack) };
    // SAFETY: `target_stack` is a live field nothing else refers to now.
    unsafe { *target_stack = fresh };
    rt(|rt| rt.switching_target.set(target));
    // SAFETY: the crate contract: one context per thread, live heap StackStates, nothing borrowed,
    // `target` about to start with its mark in our caller's frame.
    let outcome = unsafe { switch(ctx, parent_stack, target_stack) };
    match outcome {
        Ok(SwitchOutcome::Resumed) => {
            // The starting greenlet, resumed later by someone.
            rt(|rt| rt.current.set(rt.switching_target.get()));
            return;
        }
        Ok(SwitchOutcome::Started) => {}
        Err(e) => {
            // SAFETY: the switch did not happen; the target is ours to reset.
            unsafe { (*target).stack.reset() };
            panic!("could not start a greenlet: {e}");
        }
    }
    // From here on this frame belongs to the new greenlet. `target` is our own local: still valid.
    // SAFETY: `target` is the greenlet just started, live.
    unsafe { run_and_die(target) }
}

/// Start `target` on `stack`; returns in the starting greenlet when it is resumed.
///
/// # Safety
///
/// `target` is an unstarted greenlet of this thread.
unsafe fn start_dedicated(target: *mut Greenlet, stack: crate::Stack) {
    let current = rt(|rt| rt.current.get());
    let ctx = rt(|rt| rt.ctx.get());
    let fresh = StackState::for_new_dedicated(stack, dedicated_entry, target.cast());
    // SAFETY: `target` is unstarted and live on the heap; nothing else refers to it now.
    unsafe { (*target).stack = fresh };
    rt(|rt| rt.switching_target.set(target));
    // SAFETY: `current` is the running greenlet, live on the heap; `&raw` makes no reference.
    let from = unsafe { &raw mut (*current).stack };
    // SAFETY: as above.
    let to = unsafe { &raw mut (*target).stack };
    // SAFETY: the crate contract: one context per thread, live heap StackStates, nothing borrowed.
    match unsafe { switch(ctx, from, to) } {
        Ok(SwitchOutcome::Resumed) => rt(|rt| rt.current.set(rt.switching_target.get())),
        Ok(SwitchOutcome::Started) => unreachable!("a dedicated start never returns Started"),
        Err(e) => panic!("could not start a greenlet: {e}"),
    }
}

/// The entry of a greenlet started on its own stack.
unsafe extern "C-unwind" fn dedicated_entry(arg: *mut c_void) -> ! {
    // SAFETY: `arg` is the greenlet `start_dedicated` started, live.
    unsafe { run_and_die(arg.cast()) }
}

/// The life of a greenlet that just started (sliced, in its stub, or on its own stack): run its
/// closure, then die into its parent.
///
/// # Safety
///
/// `me` is the greenlet that just started, live.
unsafe fn run_and_die(me: *mut Greenlet) -> ! {
    rt(|rt| rt.current.set(me));
    // SAFETY: `me` is live; nothing else refers to its fields now.
    let me_ref = unsafe { &mut *me };
    me_ref.stack.set_active();
    let run = me_ref.run.take().expect("greenlet started twice");
    let arg = rt(|rt| rt.transfer.get());
    let value = match panic::catch_unwind(AssertUnwindSafe(move || run(arg))) {
        Ok(v) => v,
        Err(payload) => {
            rt(|rt| rt.panic.set(Some(payload)));
            0
        }
    };
    // Dying: never saved again, never resumed. Our StackState stays allocated (the runtime frees it
    // with the thread), so it outlives this last switch as the contract requires.
    // SAFETY: `me` is live and is the running greenlet; nothing else refers to its fields now.
    let me_ref = unsafe { &mut *me };
    me_ref.stack.set_inactive();
    let parent = me_ref.parent;
    // SAFETY: the parent of a live greenlet is a live greenlet of this thread.
    unsafe { switch_to(parent, value) };
    // A dead greenlet is never switched to: `switch_to` forwards to its parent.
    std::process::abort();
}

/// Run `f` on a fresh thread with a big stack, so each test gets its own main greenlet, and its
/// greenlets are freed when it ends; re-raise its panic here.
pub(crate) fn on_thread<F: FnOnce() + Send + 'static>(f: F) {
    let handle = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .expect("spawn test thread");
    if let Err(payload) = handle.join() {
        panic::resume_unwind(payload);
    }
}

/// A small deterministic PRNG (xorshift64*), so the tests need no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
