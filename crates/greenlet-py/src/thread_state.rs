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
use crate::py::{Gil, Owned, PyErrSet, PyResult};
use crate::util::{SavedError, clear_owned, write_unraisable_if_set};
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
pub(crate) const CLOCKS_PER_SEC: core::ffi::c_long = 1_000_000;

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
    let state = STATE.with(Cell::get);
    if state.is_null() || state == DESTROYED {
        // SAFETY: forwarded.
        return unsafe { create_slow(state) };
    }
    Ok(state)
}

#[cold]
#[inline(never)]
unsafe fn create_slow(state: *mut ThreadState) -> PyResult<*mut ThreadState> {
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    if state == DESTROYED {
        return Err(py.runtime_error(c"greenlet: accessing thread state after destruction"));
    }
    let g = globals();
    // SAFETY: GIL held; the greenlet type is ready.
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
    }));
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
    // SAFETY: forwarded.
    let state = unsafe { current()? };
    // SAFETY: live state of this thread; a short read.
    if !unsafe { (*state).deleteme.is_empty() } {
        // SAFETY: the GIL is held; the live state, not borrowed here.
        unsafe { clear_deleteme_list(state, false) };
    }
    // SAFETY: as above (the state outlives its thread's code).
    Ok(unsafe { (*state).current })
}

/// Whether `g` is the running greenlet of this thread.
///
/// # Safety
/// The GIL is held.
#[inline]
pub(crate) unsafe fn is_current(g: *mut PyGreenlet) -> PyResult<bool> {
    // SAFETY: forwarded.
    let state = unsafe { current()? };
    // SAFETY: this thread's live state.
    Ok(unsafe { (*state).current } == g)
}

/// Drops (or, for a dead thread, murders and drops) the greenlets queued for deletion.
///
/// # Safety
/// The GIL is held and `state` is live.
unsafe fn clear_deleteme_list(state: *mut ThreadState, murder: bool) {
    // SAFETY: live state.
    let list = core::mem::take(unsafe { &mut (*state).deleteme });
    if list.is_empty() {
        return;
    }
    // SAFETY: plain query.
    if crate::cpython::pystate::is_finalizing() {
        // Too late to run their code: leak them on purpose.
        return;
    }
    // SAFETY: GIL held.
    let incoming = unsafe { SavedError::fetch() };
    for g in list {
        if murder {
            // SAFETY: each entry holds a reference to a live greenlet.
            let this = unsafe { (*g).pimpl };
            // SAFETY: its live implementation, not borrowed here.
            unsafe { Greenlet::murder_in_place(this) };
        }
        // SAFETY: the entry's reference, released.
        unsafe { pyo3_ffi::Py_DECREF(g.cast()) };
        // SAFETY: the GIL is held.
        unsafe { write_unraisable_if_set() };
    }
    // SAFETY: GIL held.
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
    /// The GIL is held.
    pub(crate) unsafe fn delete_when_thread_running(&mut self, g: *mut PyGreenlet) {
        // SAFETY: GIL held; the list keeps a reference.
        unsafe { pyo3_ffi::Py_INCREF(g.cast()) };
        self.deleteme.push(g);
    }

    /// Replaces the trace function (`None` or null clears it). The old one is released
    /// after the write, with no borrow of the state live (its release can run code).
    ///
    /// # Safety
    /// The GIL is held; `this` is a live state; `func` is null or live.
    pub(crate) unsafe fn set_tracefunc(this: *mut Self, func: *mut PyObject) {
        // SAFETY: GIL held.
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

/// Destroys the state of an exited thread. Fields are reached through the raw pointer
/// (no `&mut` to the state): each release below can run code.
///
/// # Safety
/// The GIL is held; `state` was queued by the exit hook and is not used elsewhere.
unsafe fn destroy(state: *mut ThreadState) {
    // SAFETY: reads a runtime global (the GIL is held).
    if unsafe { pyo3_ffi::PyInterpreterState_Head() }.is_null() {
        return;
    }
    // Each release below can run code; the fields are reached through the raw pointer
    // every time. SAFETY (for every block): the GIL is held and `state` is live and ours
    // alone (contract) until the `Box::from_raw` at the end.
    // SAFETY: as above. No borrow is created.
    let slot = unsafe { &raw mut (*state).tracefunc };
    // SAFETY: the GIL is held; the field owns its reference.
    unsafe { clear_owned(slot) };
    if crate::cpython::pystate::is_finalizing() {
        // SAFETY: as above.
        unsafe { murder_and_clear_current(state) };
        // SAFETY: as above. No borrow is created.
        let slot = unsafe { &raw mut (*state).main_greenlet };
        // SAFETY: the GIL is held; the field owns its reference.
        unsafe { clear_owned(slot) };
        // SAFETY: as above; from `Box::into_raw` in `create_slow`.
        drop(unsafe { Box::from_raw(state) });
        return;
    }
    // SAFETY: as above.
    unsafe { clear_deleteme_list(state, true) };
    // SAFETY: as above; a short read.
    let st = unsafe { &*state };
    let (current, main) = (st.current, st.main_greenlet);
    if !current.is_null() && current == main {
        // SAFETY: as above. No borrow is created.
        let slot = unsafe { &raw mut (*state).current };
        // SAFETY: the GIL is held; the field owns its reference.
        unsafe { clear_owned(slot) };
        // SAFETY: the state's own reference keeps `main` alive here.
        let count = unsafe { pyo3_ffi::Py_REFCNT(main.cast()) };
        // SAFETY: as above. No borrow is created.
        let slot = unsafe { &raw mut (*state).main_greenlet };
        // SAFETY: the GIL is held; the field owns its reference.
        unsafe { clear_owned(slot) };
        if CLOCKS_USED_DOING_GC.load(Ordering::Relaxed) != -1 && count == 2 {
            // SAFETY: `count == 2` means one reference is left after ours went away.
            if unsafe { pyo3_ffi::Py_REFCNT(main.cast()) } == 1 {
                // SAFETY: the GIL is held; `main` is alive with one reference.
                unsafe { drop_stray_main_reference(main) };
            }
        }
    }
    // SAFETY: as above.
    unsafe { murder_and_clear_current(state) };
    // SAFETY: as above. No borrow is created.
    let slot = unsafe { &raw mut (*state).main_greenlet };
    // SAFETY: the GIL is held; the field owns its reference.
    unsafe { clear_owned(slot) };
    // SAFETY: the GIL is held.
    unsafe { crate::util::write_unraisable_if_set() };
    // SAFETY: as above; from `Box::into_raw` in `create_slow`.
    drop(unsafe { Box::from_raw(state) });
}

/// Kills the dead thread's current greenlet in place (if any) and drops the state's
/// reference to it.
///
/// # Safety
/// As for [`destroy`].
unsafe fn murder_and_clear_current(state: *mut ThreadState) {
    // SAFETY: a live state (contract).
    let current = unsafe { (*state).current };
    if current.is_null() {
        return;
    }
    // SAFETY: the state owns a reference to `current`, so it is alive.
    let this = unsafe { (*current).pimpl };
    // SAFETY: its live implementation, not borrowed here.
    unsafe { Greenlet::murder_in_place(this) };
    // SAFETY: a live state; the field owns its reference. No borrow is created.
    let slot = unsafe { &raw mut (*state).current };
    // SAFETY: the GIL is held; the field owns its reference.
    unsafe { clear_owned(slot) };
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
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: C's `clock()` has no preconditions.
    let begin = unsafe { clock() };
    // SAFETY: the GIL is held.
    let gc = unsafe { pyo3_ffi::PyImport_ImportModule(c"gc".as_ptr()) };
    // SAFETY: a new reference or null with an exception set.
    let Ok(gc) = (unsafe { Owned::from_raw(py, gc) }) else {
        return;
    };
    // SAFETY: the GIL is held; a live module.
    let get_referrers =
        unsafe { pyo3_ffi::PyObject_GetAttrString(gc.as_object(), c"get_referrers".as_ptr()) };
    drop(gc);
    // SAFETY: a new reference or null with an exception set.
    let Ok(get_referrers) = (unsafe { Owned::from_raw(py, get_referrers) }) else {
        return;
    };
    let referrers_of = |obj: *mut PyObject| {
        // SAFETY: the GIL is held; a live callable and a live object.
        let list = unsafe { pyo3_ffi::PyObject_CallOneArg(get_referrers.as_object(), obj) };
        // SAFETY: a new reference (a list) or null with an exception set.
        unsafe { Owned::from_raw(py, list) }
    };
    if let Ok(refs) = referrers_of(old_main.cast()) {
        // SAFETY: the GIL is held; `gc.get_referrers` returns a list.
        let n = unsafe { pyo3_ffi::PyList_Size(refs.as_object()) };
        if n == 0 {
            drop(refs);
            // SAFETY: nothing the GC sees refers to `old_main`: the reference left on the
            // dead thread's stack is the one we drop.
            unsafe { pyo3_ffi::Py_DECREF(old_main.cast()) };
        } else if n == 1 {
            // SAFETY: the GIL is held; index 0 of a one-item list (borrowed).
            let item = unsafe { pyo3_ffi::PyList_GetItem(refs.as_object(), 0) };
            // SAFETY: the GIL is held; `item` is live (the list holds it).
            let is_switch = unsafe { pyo3_ffi::PyCFunction_Check(item) } != 0
                // SAFETY: as above.
                && unsafe { pyo3_ffi::Py_REFCNT(item) } == 2
                // SAFETY: as above; a C function object.
                && unsafe { crate::globals::is_switch_method(item) };
            if is_switch {
                // The bound method outlives the list: its other reference is the stray one.
                drop(refs);
                if let Ok(refs2) = referrers_of(item) {
                    // SAFETY: the GIL is held; a list.
                    if unsafe { pyo3_ffi::PyList_Size(refs2.as_object()) } == 0 {
                        // SAFETY: nothing the GC sees refers to the method: the reference
                        // left on the dead thread's stack is the one we drop.
                        unsafe { pyo3_ffi::Py_DECREF(item) };
                    }
                    drop(refs2);
                }
            }
        }
    }
    drop(get_referrers);
    // SAFETY: as above.
    let end = unsafe { clock() };
    CLOCKS_USED_DOING_GC.fetch_add((end - begin) as i64, Ordering::Relaxed);
}
