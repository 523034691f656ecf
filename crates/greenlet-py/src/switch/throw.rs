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
            Kind::User {
                parent,
                killed_by_dealloc,
                ..
            } => {
                *killed_by_dealloc = true;
                core::mem::replace(parent, xnewref(current))
            }
            Kind::Main { .. } => return Ok(()),
        };
        set_error(
            globals().greenlet_exit,
            c"Killing the greenlet because all references have vanished.",
        );
        let r = g_switch(this);
        if let Kind::User {
            parent,
            killed_by_dealloc,
            ..
        } = &mut (*this).kind
        {
            *killed_by_dealloc = false;
            crate::util::replace_owned(parent, old_parent);
        }
        let r = r?;
        pyo3_ffi::Py_DECREF(r);
        Ok(())
    }
}
