//! Throwing into a greenlet: `throw()`'s argument normalisation, the throw itself, and
//! the `GreenletExit` a greenlet gets when its last reference goes away.

use super::args::{handle_exit, set_args, single_result};
use super::g_switch;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::py::{Borrowed, Gil, Owned, opt_into_raw};
use crate::thread_state;
use crate::util::{PyErrSet, PyResult, set_error, xnewref};
use core::ptr;
use pyo3_ffi::PyObject;

/// `greenlet.throw(typ, val, tb)` after argument normalisation: raises the exception in
/// `g` (or, if it is dead, delivers `GreenletExit` as a value to its parent chain).
///
/// # Safety
/// The GIL is held; `g` is a greenlet; the three pieces are owned and normalised.
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub(crate) unsafe fn throw_into(
    g: *mut PyGreenlet,
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let this = (*g).pimpl;
        pyo3_ffi::PyErr_Restore(typ, val, tb);
        let mut result = ptr::null_mut();
        if (*this).started() && !(*this).active() {
            // Dead: GreenletExit becomes an ordinary return value.
            result = handle_exit(ptr::null_mut());
        }
        set_args(this, result, ptr::null_mut());
        match g_switch(this) {
            Ok(r) => single_result(r),
            Err(PyErrSet) => ptr::null_mut(),
        }
    }
}

/// Normalises `throw()` arguments as upstream does, returning owned pieces.
///
/// # Safety
/// `typ` is live; `val` and `tb` are null or live (all borrowed).
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub(crate) unsafe fn normalize_throw_args(
    py: Gil<'_>,
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> PyResult<(*mut PyObject, *mut PyObject, *mut PyObject)> {
    let none = py.none().as_ptr();
    let tb = if tb == none { ptr::null_mut() } else { tb };
    // SAFETY: the GIL is held; a type check of a live object.
    if !tb.is_null() && unsafe { pyo3_ffi::PyTraceBack_Check(tb) } == 0 {
        return Err(py.type_error(c"throw() third argument must be a traceback object"));
    }
    // SAFETY: the arguments are null or live for the call (contract).
    let (typ_ref, val_ref, tb_ref) = unsafe {
        (
            Borrowed::from_ptr(py, typ),
            Borrowed::from_ptr_opt(py, val),
            Borrowed::from_ptr_opt(py, tb),
        )
    };
    let tb = opt_into_raw(tb_ref.map(Borrowed::to_owned));
    // SAFETY: the GIL is held; a type check of a live object.
    if unsafe { pyo3_ffi::PyExceptionClass_Check(typ) } != 0 {
        let mut typ = typ_ref.to_owned().into_raw();
        let mut val = opt_into_raw(val_ref.map(Borrowed::to_owned));
        let mut tb = tb;
        // SAFETY: the GIL is held; three owned references, replaced in place.
        unsafe { pyo3_ffi::PyErr_NormalizeException(&mut typ, &mut val, &mut tb) };
        return Ok((typ, val, tb));
    }
    // SAFETY: `tb` was made an owned reference above; released if we fail below.
    let tb = unsafe { Owned::from_raw_opt(py, tb) };
    // SAFETY: the GIL is held; a type check of a live object.
    if unsafe { pyo3_ffi::PyExceptionInstance_Check(typ) } != 0 {
        if val_ref.is_some_and(|v| v.as_ptr() != none) {
            return Err(py.type_error(c"instance exception may not have a separate value"));
        }
        // SAFETY: an exception instance's class is alive as long as the instance.
        let class = unsafe { Borrowed::from_ptr(py, pyo3_ffi::PyExceptionInstance_Class(typ)) };
        return Ok((
            class.to_owned().into_raw(),
            typ_ref.to_owned().into_raw(),
            opt_into_raw(tb),
        ));
    }
    // SAFETY: one `%s`.
    Err(unsafe {
        py.type_error_naming_type(c"exceptions must be classes, or instances, not %s", typ_ref)
    })
}

/// Kills a suspended greenlet of the current thread whose last reference went away, by
/// raising `GreenletExit` in it. Its parent is the current greenlet for the duration, so
/// it returns here when it dies.
///
/// # Safety
/// The GIL is held; `this` is a started, active user greenlet of this thread, temporarily
/// resurrected by the caller.
pub(crate) unsafe fn throw_greenlet_exit_during_dealloc(this: *mut Greenlet) -> PyResult<()> {
    // SAFETY: see the function contract.
    unsafe {
        let current = thread_state::borrow_current()?;
        let old_parent = match &mut (*this).kind {
            Kind::User { parent, .. } => core::mem::replace(parent, xnewref(current)),
            Kind::Main { .. } => return Ok(()),
        };
        set_error(
            globals().greenlet_exit,
            c"Killing the greenlet because all references have vanished.",
        );
        let r = g_switch(this);
        if let Kind::User { parent, .. } = &mut (*this).kind {
            crate::util::replace_owned(parent, old_parent);
        }
        release_kill_result(r?);
        Ok(())
    }
}

/// How many releases of a killed greenlet's result may nest in one greenlet before further
/// ones wait for an outer release to finish (CPython's trash can uses the same bound).
const KILL_RELEASE_NESTING: u32 = 50;

std::thread_local! {
    /// Results whose release was put off because the nesting bound was reached.
    static KILL_RELEASE_LATER: core::cell::Cell<Vec<usize>> = const { core::cell::Cell::new(Vec::new()) };
}

/// Releases the value a greenlet killed by deallocation handed back (its `GreenletExit`,
/// in a 1-tuple).
///
/// Upstream releases it here, in the killer, after the trace function has seen the switch
/// back: its traceback holds the dead greenlet's frames, so their locals go only now (and
/// a trace function sees the switch before they go). A local holding the last reference
/// to another suspended greenlet then kills that one from inside this release, one level
/// deeper on this stack each time: a chain of N greenlets that hold each other would nest
/// N deep (copying ever larger stack slices on every switch, and unbounded stack on 3.13+,
/// whose trash can no longer bounds it). So past `KILL_RELEASE_NESTING` levels *in the
/// running greenlet* the release is queued, and every release drains the queue when it is
/// done, each from the same depth.
///
/// The depth is the running greenlet's own (`Greenlet::kill_release_depth`): a release can
/// run any code, including a switch away that never comes back, and a thread-wide count
/// would then stay raised for good, queueing every later release for ever.
///
/// # Safety
/// The GIL is held; `r` is an owned reference.
unsafe fn release_kill_result(r: *mut PyObject) {
    // SAFETY: the GIL is held (contract).
    let me = match unsafe { thread_state::borrow_current() } {
        // SAFETY: the running greenlet's implementation, alive while it runs (and while
        // it is suspended inside this function: only its death frees it, after this).
        Ok(cur) => unsafe { (*cur).pimpl },
        Err(_) => ptr::null_mut(),
    };
    let depth = if me.is_null() {
        0
    } else {
        // SAFETY: live (above); a read.
        unsafe { (*me).kill_release_depth }
    };
    // (`try_with`: during the thread's own teardown the queue may be gone; then the
    // release happens at once.)
    if depth >= KILL_RELEASE_NESTING
        && KILL_RELEASE_LATER
            .try_with(|later| {
                let mut v = later.take();
                v.push(r as usize);
                later.set(v);
            })
            .is_ok()
    {
        return;
    }
    if !me.is_null() {
        // SAFETY: live (above); a plain write, no borrow kept.
        unsafe { (*me).kill_release_depth = depth + 1 };
    }
    // SAFETY: GIL held; we own `r`. This can run any Python code, including switches;
    // no borrow of the thread-locals is live across it.
    unsafe { pyo3_ffi::Py_DECREF(r) };
    loop {
        let next = KILL_RELEASE_LATER
            .try_with(|later| {
                let mut v = later.take();
                let next = v.pop();
                later.set(v);
                next
            })
            .ok()
            .flatten();
        let Some(next) = next else { break };
        // SAFETY: GIL held; the queue owned this reference.
        unsafe { pyo3_ffi::Py_DECREF(next as *mut PyObject) };
    }
    if !me.is_null() {
        // SAFETY: still the greenlet that entered this function (a switch away from it
        // returns here only in it), alive; a plain write.
        unsafe { (*me).kill_release_depth = depth };
    }
}
