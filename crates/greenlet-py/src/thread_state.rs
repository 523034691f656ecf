//! Per-OS-thread greenlet state: the thread's main greenlet, the current greenlet, the
//! trace function, greenlets waiting to be killed in this thread, and the context the
//! stack switch uses.
//!
//! The state is created lazily on a thread's first greenlet operation and reached through
//! a `thread_local!` raw pointer (one TLS load on the switch path). When the OS thread
//! exits, a TLS destructor runs *without the GIL and after Python's thread state is gone*:
//! it marks the main greenlet dead and queues the state for destruction, which a pending
//! call performs later with the GIL held.

use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult};
use crate::util::{SavedError, clear_owned};
use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicI64, Ordering};
use greenlet_core::SwitchContext;
use pyo3_ffi::{PyObject, visitproc};
use std::sync::Mutex;

pub(crate) struct ThreadState {
    /// Owned reference to this thread's main greenlet.
    main_greenlet: *mut PyGreenlet,
    /// Owned reference to the greenlet running in this thread.
    current: *mut PyGreenlet,
    /// Owned; null when no trace function is set.
    tracefunc: *mut PyObject,
    /// Greenlets whose last reference went away in another thread; each entry holds a
    /// reference, dropped (which kills the greenlet) next time this thread asks for its
    /// current greenlet.
    deleteme: Vec<*mut PyGreenlet>,
    /// Scratch space of the stack switch (stable address: the state is boxed).
    switch_ctx: SwitchContext,
    /// 3.14+: the C-stack limits of the thread's own stack, restored when a switch lands
    /// back on it from a dedicated stack.
    #[cfg(Py_3_14)]
    c_stack_limits: crate::python_state::c_stack::Limits,
}

/// Sentinel stored after the thread's state was handed over for destruction.
const DESTROYED: *mut ThreadState = ptr::dangling_mut::<ThreadState>();

thread_local! {
    static STATE: Cell<*mut ThreadState> = const { Cell::new(ptr::null_mut()) };
    static EXIT_HOOK: ExitHook = const { ExitHook };
}

unsafe extern "C" {
    /// C's `clock()`: processor time used, in `CLOCKS_PER_SEC` units.
    fn clock() -> core::ffi::c_long;
}

/// C's `CLOCKS_PER_SEC` (XSI requires one million).
#[cfg(not(windows))]
pub(crate) const CLOCKS_PER_SEC: core::ffi::c_long = 1_000_000;
/// C's `CLOCKS_PER_SEC`: one thousand in Microsoft's C runtimes (msvcrt and the UCRT).
#[cfg(windows)]
pub(crate) const CLOCKS_PER_SEC: core::ffi::c_long = 1_000;

/// Thread states of exited threads, waiting for a pending call to destroy them.
/// The lock also orders "mark the main greenlet dead" against readers of that flag.
static TO_DESTROY: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// `clock()` ticks spent hunting stray references to dead threads' main greenlets, or -1
/// when that hunt is disabled.
pub(crate) static CLOCKS_USED_DOING_GC: AtomicI64 = AtomicI64::new(0);

/// The current thread's state, created on first use.
///
/// # Safety
/// The GIL is held.
#[inline(always)]
pub(crate) unsafe fn current() -> PyResult<*mut ThreadState> {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    current_in(unsafe { Gil::assume() })
}

/// The current thread's state, created on first use. It stays live until the thread
/// exits, so the pointer is good for the rest of any call on this thread.
#[inline(always)]
pub(crate) fn current_in(py: Gil<'_>) -> PyResult<*mut ThreadState> {
    let state = STATE.with(Cell::get);
    if state.is_null() || state == DESTROYED {
        return create_slow(py, state);
    }
    Ok(state)
}

/// This thread's trace function (a new reference), or `None`.
pub(crate) fn tracefunc(py: Gil<'_>) -> PyResult<Owned<'_>> {
    let state = current_in(py)?;
    // SAFETY: this thread's live state (`current_in`); a short read.
    let f = unsafe { (*state).tracefunc };
    // SAFETY: the state holds a reference to its trace function, if any, and nothing runs
    // before the incref of `to_owned`.
    let f = unsafe { Borrowed::from_ptr_opt(py, f) };
    Ok(f.unwrap_or(py.none()).to_owned())
}

/// Sets this thread's trace function (`None` clears it) and returns the previous one (or
/// `None`).
pub(crate) fn replace_tracefunc<'py>(
    py: Gil<'py>,
    func: Borrowed<'_, 'py>,
) -> PyResult<Owned<'py>> {
    let state = current_in(py)?;
    let previous = tracefunc(py)?;
    // SAFETY: the GIL is held (`py`); this thread's live state, with no reference into it
    // live here; `func` is live.
    unsafe { ThreadState::set_tracefunc(state, func.as_object()) };
    Ok(previous)
}

/// 3.14+: the C-stack limits CPython set for this thread's own stack.
#[cfg(Py_3_14)]
fn thread_c_stack_limits() -> crate::python_state::c_stack::Limits {
    // SAFETY: called with the GIL held (by `create_slow`), so this thread has a state.
    let ts = unsafe { crate::cpython::pystate::tstate() };
    // SAFETY: the GIL is held; this thread's live state, read while running on the
    // thread's own stack (no greenlet of this thread exists yet).
    unsafe { crate::python_state::c_stack::read(ts) }
}

#[cold]
#[inline(never)]
fn create_slow(py: Gil<'_>, state: *mut ThreadState) -> PyResult<*mut ThreadState> {
    if state == DESTROYED {
        return Err(py.runtime_error(c"greenlet: accessing thread state after destruction"));
    }
    let g = globals();
    // SAFETY: the GIL is held (`py`); our greenlet type, ready since module init.
    let main: *mut PyGreenlet = unsafe { pyo3_ffi::PyType_GenericAlloc(g.greenlet_type, 0) }.cast();
    if main.is_null() {
        return Err(PyErrSet);
    }
    let state = Box::into_raw(Box::new(ThreadState {
        main_greenlet: main,
        current: main,
        tracefunc: ptr::null_mut(),
        deleteme: Vec::new(),
        switch_ctx: SwitchContext::new(),
        #[cfg(Py_3_14)]
        c_stack_limits: thread_c_stack_limits(),
    }));
    // SAFETY: `state` was just allocated and is not shared yet; this is its thread.
    unsafe { (*state).switch_ctx.record_thread_stack() };
    // SAFETY: `main` is a fresh object of our type, seen by nobody else yet.
    unsafe { (*main).pimpl = Box::into_raw(Greenlet::new_main(main, state)) };
    // SAFETY: we hold one reference for `main_greenlet` and take a second one for
    // `current`.
    unsafe { pyo3_ffi::Py_INCREF(main.cast()) };
    STATE.with(|s| s.set(state));
    // Registers the exit hook of this thread.
    EXIT_HOOK.with(|_| {});
    Ok(state)
}

/// The running greenlet of this thread (borrowed), after dropping greenlets queued for
/// deletion here.
///
/// # Safety
/// The GIL is held. May run arbitrary Python code (the queued greenlets' GreenletExit).
#[inline]
pub(crate) unsafe fn borrow_current() -> PyResult<*mut PyGreenlet> {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { Gil::assume() };
    let state = current_in(py)?;
    // SAFETY: this thread's live state (`current_in`); a short read.
    if !unsafe { (*state).deleteme.is_empty() } {
        // SAFETY: the GIL is held (`py`); the live state, with no reference into it live.
        unsafe { clear_deleteme_list(state, false) };
    }
    // SAFETY: this thread's state lives until the thread exits, whatever the code run by
    // `clear_deleteme_list` did; a short read.
    Ok(unsafe { (*state).current })
}

/// Whether `g` is the running greenlet of this thread.
///
/// # Safety
/// The GIL is held.
#[inline]
pub(crate) unsafe fn is_current(g: *mut PyGreenlet) -> PyResult<bool> {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let state = current_in(unsafe { Gil::assume() })?;
    // SAFETY: this thread's live state (`current_in`); a short read.
    Ok(unsafe { (*state).current } == g)
}

/// Drops (or, for a dead thread, murders and drops) the greenlets queued for deletion.
///
/// # Safety
/// The GIL is held and `state` is live.
unsafe fn clear_deleteme_list(state: *mut ThreadState, murder: bool) {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: a live state (contract); the borrow ends with the `take`, before any code runs.
    let list = core::mem::take(unsafe { &mut (*state).deleteme });
    if list.is_empty() {
        return;
    }
    if crate::cpython::pystate::is_finalizing() {
        // Too late to run their code: leak them on purpose.
        return;
    }
    // SAFETY: the GIL is held (`py`).
    let incoming = unsafe { SavedError::fetch() };
    for g in list {
        if murder {
            // SAFETY: the entry holds a reference to `g`, so `g` and its implementation
            // are live.
            let this = unsafe { (*g).pimpl };
            // SAFETY: `g`'s live implementation, with no reference into it live here.
            unsafe { Greenlet::murder_in_place(this) };
        }
        // SAFETY: `Owned` takes over the entry's reference, released at once.
        drop(unsafe { Owned::from_raw_unchecked(py, g) });
        py.write_unraisable_if_set();
    }
    // SAFETY: the GIL is held (`py`).
    unsafe { incoming.restore() };
}

impl ThreadState {
    /// This thread's main greenlet (borrowed from the state).
    #[inline(always)]
    pub(crate) fn main_greenlet(&self) -> *mut PyGreenlet {
        self.main_greenlet
    }

    /// The greenlet running in this thread (borrowed from the state).
    #[inline(always)]
    /// 3.14+: the C-stack limits of this thread's own stack.
    #[cfg(Py_3_14)]
    pub(crate) fn c_stack_limits(&self) -> &crate::python_state::c_stack::Limits {
        &self.c_stack_limits
    }

    /// The top of this thread's own stack (null if unknown): where a main greenlet's
    /// stack ends, for `_stack_saved`.
    pub(crate) fn thread_stack_top(&self) -> *mut u8 {
        self.switch_ctx.thread_stack_top()
    }

    pub(crate) fn current(&self) -> *mut PyGreenlet {
        self.current
    }

    /// The trace function, or null (borrowed from the state).
    #[inline(always)]
    pub(crate) fn tracefunc(&self) -> *mut PyObject {
        self.tracefunc
    }

    /// The scratch space of the stack switch, at its stable address.
    ///
    /// # Safety
    /// `this` is a live state.
    #[inline(always)]
    pub(crate) unsafe fn switch_ctx(this: *mut Self) -> *mut SwitchContext {
        // SAFETY: a live state (contract); no borrow is created.
        unsafe { &raw mut (*this).switch_ctx }
    }

    /// Makes `new` (an owned reference) the running greenlet and returns the previous one
    /// (owned by the caller now).
    ///
    /// # Safety
    /// `this` is a live state; `new` is an owned reference to a greenlet of its thread.
    #[inline(always)]
    pub(crate) unsafe fn replace_current(this: *mut Self, new: *mut PyGreenlet) -> *mut PyGreenlet {
        // SAFETY: a live state (contract); no borrow is created.
        let slot = unsafe { &raw mut (*this).current };
        // SAFETY: a valid, aligned field; the old owned reference moves to the caller.
        unsafe { ptr::replace(slot, new) }
    }

    /// Queues `g` (a greenlet of this state's thread, deallocated elsewhere) to be killed
    /// in its own thread.
    ///
    /// # Safety
    /// The GIL is held and `g` is alive (its deallocator may have resurrected it).
    pub(crate) unsafe fn delete_when_thread_running(&mut self, g: *mut PyGreenlet) {
        // SAFETY: the GIL is held and `g` is alive (this function's contract); the list keeps
        // the new reference.
        unsafe { pyo3_ffi::Py_INCREF(g.cast()) };
        self.deleteme.push(g);
    }

    /// Replaces the trace function (`None` or null clears it). The old one is released
    /// after the write, with no borrow of the state live (its release can run code).
    ///
    /// # Safety
    /// The GIL is held; `this` is a live state; `func` is null or live.
    pub(crate) unsafe fn set_tracefunc(this: *mut Self, func: *mut PyObject) {
        // SAFETY: the GIL is held (this function's contract); reads the address of `None`.
        let func = if func == unsafe { pyo3_ffi::Py_None() } {
            ptr::null_mut()
        } else {
            func
        };
        // SAFETY: the GIL is held; `func` is null or live.
        let func = unsafe { crate::util::xnewref(func) };
        // SAFETY: a live state (contract); no borrow is created.
        let slot = unsafe { &raw mut (*this).tracefunc };
        // SAFETY: the new reference is stored, the old one released after the write.
        unsafe { crate::util::replace_owned(slot, func) };
    }

    /// GC traversal from the main greenlet (which is why the main greenlet itself is not
    /// visited).
    ///
    /// # Safety
    /// Called from `tp_traverse`.
    pub(crate) unsafe fn traverse(&self, visit: visitproc, arg: *mut c_void) -> c_int {
        for p in [
            if self.current != self.main_greenlet {
                self.current.cast()
            } else {
                ptr::null_mut()
            },
            self.tracefunc,
        ] {
            if !p.is_null() {
                // SAFETY: a GC visit of an owned reference.
                let r = unsafe { visit(p, arg) };
                if r != 0 {
                    return r;
                }
            }
        }
        0
    }
}

/// Runs at OS-thread exit, possibly without the GIL and without a Python thread state.
struct ExitHook;

impl Drop for ExitHook {
    fn drop(&mut self) {
        let state = STATE.with(|s| s.replace(DESTROYED));
        if state.is_null() || state == DESTROYED {
            return;
        }
        let mut queue = TO_DESTROY.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the state is alive until it is destroyed, which we are about to queue.
        let main = unsafe { (*state).main_greenlet };
        // SAFETY: the state owns a reference to its main greenlet, so it is alive.
        let main = unsafe { (*main).pimpl };
        // SAFETY: as above; only the atomic flag is touched, and readers hold the GIL.
        if let Kind::Main { thread_state } = unsafe { &(*main).kind } {
            thread_state.store(ptr::null_mut(), Ordering::Relaxed);
        }
        // SAFETY: reads a runtime global; NULL once the interpreter is gone, in which case
        // the state is leaked on purpose.
        if unsafe { pyo3_ffi::PyInterpreterState_Head() }.is_null() {
            return;
        }
        queue.push(state as usize);
        if queue.len() == 1
            && !crate::cpython::pystate::is_finalizing()
            // SAFETY: documented as callable without the GIL.
            && unsafe { pyo3_ffi::Py_AddPendingCall(Some(destroy_queued_states), ptr::null_mut()) } < 0
        {
            eprintln!(
                "greenlet: WARNING: failed in call to Py_AddPendingCall; expect a memory leak."
            );
        }
    }
}

/// Number of thread states waiting for destruction (test hook).
pub(crate) fn pending_cleanup_count() -> usize {
    TO_DESTROY.lock().unwrap_or_else(|e| e.into_inner()).len()
}

extern "C" fn destroy_queued_states(_arg: *mut c_void) -> c_int {
    loop {
        let next = {
            let mut queue = TO_DESTROY.lock().unwrap_or_else(|e| e.into_inner());
            if queue.is_empty() {
                break;
            }
            queue.remove(0)
        };
        // SAFETY: pending calls run with the GIL; the pointer came from `Box::into_raw`
        // and was queued exactly once.
        unsafe { destroy(next as *mut ThreadState) };
    }
    0
}

/// Destroys the state of an exited thread. Each release below can run code, so no borrow
/// of the state is ever live across one (see [`DeadState`]).
///
/// # Safety
/// The GIL is held; `state` was queued by the exit hook and is not used elsewhere.
unsafe fn destroy(state: *mut ThreadState) {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: reads a runtime global, with the GIL held (`py`).
    if unsafe { pyo3_ffi::PyInterpreterState_Head() }.is_null() {
        return;
    }
    // SAFETY: `state` came from `create_slow`, its thread has exited, and the exit hook
    // queued it once, for us alone (this function's contract).
    let dead = unsafe { DeadState::new(py, state) };
    dead.clear(Field::TraceFunc);
    if crate::cpython::pystate::is_finalizing() {
        dead.murder_and_clear_current();
        dead.clear(Field::MainGreenlet);
        return;
    }
    dead.clear_deleteme_list();
    let (current, main) = (dead.current(), dead.main_greenlet());
    if !current.is_null() && current == main {
        dead.clear(Field::Current);
        // SAFETY: the state's own reference keeps `main` alive for the first read below; the
        // later ones happen only when another reference is left (`count == 2`).
        let main = unsafe { Borrowed::from_ptr(py, main.cast()) };
        let count = main.refcnt();
        dead.clear(Field::MainGreenlet);
        if CLOCKS_USED_DOING_GC.load(Ordering::Relaxed) != -1 && count == 2 {
            // `count == 2`: one reference is left after the state's went away, so `main`
            // is still alive.
            if main.refcnt() == 1 {
                // SAFETY: the GIL is held (`py`); `main` is alive with one reference.
                unsafe { drop_stray_main_reference(main.as_ptr().cast()) };
            }
        }
    }
    dead.murder_and_clear_current();
    dead.clear(Field::MainGreenlet);
    py.write_unraisable_if_set();
}

/// A field of [`ThreadState`] that owns a reference.
#[derive(Clone, Copy)]
enum Field {
    TraceFunc,
    Current,
    MainGreenlet,
}

/// The state of an exited thread, owned by [`destroy`], which frees it when dropped. The
/// one promise (nobody else uses it) is made by [`DeadState::new`]; the fields are reached
/// through the raw pointer each time, so no borrow of the state is live while a release
/// runs code.
struct DeadState<'py> {
    state: *mut ThreadState,
    py: Gil<'py>,
}

impl<'py> DeadState<'py> {
    /// # Safety
    /// `state` came from `Box::into_raw` in `create_slow`, its thread has exited, and nothing
    /// else uses it from now on.
    unsafe fn new(py: Gil<'py>, state: *mut ThreadState) -> Self {
        DeadState { state, py }
    }

    /// The current greenlet, borrowed from the state (or null).
    fn current(&self) -> *mut PyGreenlet {
        // SAFETY: the state is live and ours (`new`); a short read.
        unsafe { (*self.state).current }
    }

    /// The main greenlet, borrowed from the state (or null).
    fn main_greenlet(&self) -> *mut PyGreenlet {
        // SAFETY: the state is live and ours (`new`); a short read.
        unsafe { (*self.state).main_greenlet }
    }

    /// Releases the reference `field` owns and nulls it; the release runs after the write,
    /// with no borrow of the state live.
    fn clear(&self, field: Field) {
        let slot: *mut *mut PyObject = match field {
            // SAFETY: the state is live (`new`); `&raw mut` makes no reference.
            Field::TraceFunc => unsafe { &raw mut (*self.state).tracefunc },
            // SAFETY: the state is live (`new`); `&raw mut` makes no reference.
            Field::Current => unsafe { &raw mut (*self.state).current }.cast(),
            // SAFETY: the state is live (`new`); `&raw mut` makes no reference.
            Field::MainGreenlet => unsafe { &raw mut (*self.state).main_greenlet }.cast(),
        };
        let _ = self.py;
        // SAFETY: the GIL is held (`py`); a field of the live state that owns what it holds.
        unsafe { clear_owned(slot) };
    }

    /// Kills the dead thread's current greenlet in place (if any) and drops the state's
    /// reference to it.
    fn murder_and_clear_current(&self) {
        let current = self.current();
        if current.is_null() {
            return;
        }
        // SAFETY: the state holds a reference to `current`, so it and its implementation
        // are alive.
        let this = unsafe { (*current).pimpl };
        // SAFETY: `current`'s live implementation, with no reference into it live here.
        unsafe { Greenlet::murder_in_place(this) };
        self.clear(Field::Current);
    }

    /// Murders and drops the greenlets queued for deletion.
    fn clear_deleteme_list(&self) {
        // SAFETY: the GIL is held (`py`); the live state, with no reference into it live.
        unsafe { clear_deleteme_list(self.state, true) };
    }
}

impl Drop for DeadState<'_> {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw` in `create_slow`, and ours alone (`new`); nothing
        // uses the pointer after this.
        drop(unsafe { Box::from_raw(self.state) });
    }
}

/// The main greenlet of a dead thread has exactly one reference left that we do not
/// know about. If nothing the GC can see refers to it, that reference was left on the
/// thread's dead C stack (for example by a frame that was never unwound): drop it. Also
/// handles the case where the only referrer is a bound `switch` method that is itself
/// unreferenced.
///
/// # Safety
/// The GIL is held; `old_main` is alive with a reference count of 1.
unsafe fn drop_stray_main_reference(old_main: *mut PyGreenlet) {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: C's `clock()` has no preconditions.
    let begin = unsafe { clock() };
    let Ok(gc) = py.import(c"gc") else {
        return;
    };
    let get_referrers = gc.borrow().getattr(c"get_referrers");
    drop(gc);
    let Ok(get_referrers) = get_referrers else {
        return;
    };
    // SAFETY: alive with one reference (this function's contract).
    let old_main = unsafe { Borrowed::from_ptr(py, old_main.cast::<PyObject>()) };
    if let Ok(refs) = get_referrers.borrow().call1(old_main) {
        // `gc.get_referrers` returns a list.
        let n = refs.borrow().list_len().unwrap_or(-1);
        if n == 0 {
            drop(refs);
            // SAFETY: nothing the GC sees refers to `old_main`: the reference left on the
            // dead thread's stack is the one we drop.
            unsafe { pyo3_ffi::Py_DECREF(old_main.as_object()) };
        } else if n == 1 {
            // SAFETY: the GIL is held (`py`); index 0 of a one-item list (borrowed).
            let item = unsafe { pyo3_ffi::PyList_GetItem(refs.as_object(), 0) };
            // SAFETY: the list holds `item` while we look at it; when it goes, the bound
            // method's other reference (the stray one) keeps it alive.
            let item = unsafe { Borrowed::from_ptr(py, item) };
            let is_switch = item.is_cfunction()
                && item.refcnt() == 2
                // SAFETY: the GIL is held (`py`); a C function object (checked above).
                && unsafe { crate::globals::is_switch_method(item.as_object()) };
            if is_switch {
                // The bound method outlives the list: its other reference is the stray one.
                drop(refs);
                if let Ok(refs2) = get_referrers.borrow().call1(item) {
                    if refs2.borrow().list_len().unwrap_or(-1) == 0 {
                        // SAFETY: nothing the GC sees refers to the method: the reference
                        // left on the dead thread's stack is the one we drop.
                        unsafe { pyo3_ffi::Py_DECREF(item.as_object()) };
                    }
                    drop(refs2);
                }
            }
        }
    }
    drop(get_referrers);
    // SAFETY: as for `begin`.
    let end = unsafe { clock() };
    CLOCKS_USED_DOING_GC.fetch_add((end - begin) as i64, Ordering::Relaxed);
}
