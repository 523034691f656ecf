//! Throwing into a greenlet: `throw()`'s argument normalisation, the throw itself, and
//! the `GreenletExit` a greenlet gets when its last reference goes away.

use super::args::{handle_exit, set_args, single_result};
use super::g_switch;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
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
/// The GIL is held; arguments are borrowed (null allowed for `val` and `tb`).
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub(crate) unsafe fn normalize_throw_args(
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> PyResult<(*mut PyObject, *mut PyObject, *mut PyObject)> {
    // SAFETY: GIL held; all pointers are live or null.
    unsafe {
        let none = pyo3_ffi::Py_None();
        let mut typ = xnewref(typ);
        let mut val = xnewref(val);
        let mut tb = if tb == none {
            ptr::null_mut()
        } else {
            xnewref(tb)
        };
        let fail = |t: *mut PyObject, v: *mut PyObject, b: *mut PyObject| {
            pyo3_ffi::Py_XDECREF(t);
            pyo3_ffi::Py_XDECREF(v);
            pyo3_ffi::Py_XDECREF(b);
            PyErrSet
        };
        if !tb.is_null() && pyo3_ffi::PyTraceBack_Check(tb) == 0 {
            set_error(
                pyo3_ffi::PyExc_TypeError,
                c"throw() third argument must be a traceback object",
            );
            return Err(fail(typ, val, tb));
        }
        if pyo3_ffi::PyExceptionClass_Check(typ) != 0 {
            pyo3_ffi::PyErr_NormalizeException(&mut typ, &mut val, &mut tb);
        } else if pyo3_ffi::PyExceptionInstance_Check(typ) != 0 {
            if !val.is_null() && val != none {
                set_error(
                    pyo3_ffi::PyExc_TypeError,
                    c"instance exception may not have a separate value",
                );
                return Err(fail(typ, val, tb));
            }
            pyo3_ffi::Py_XDECREF(val);
            val = typ;
            typ = xnewref(pyo3_ffi::PyExceptionInstance_Class(val));
        } else {
            pyo3_ffi::PyErr_Format(
                pyo3_ffi::PyExc_TypeError,
                c"exceptions must be classes, or instances, not %s".as_ptr(),
                (*pyo3_ffi::Py_TYPE(typ)).tp_name,
            );
            return Err(fail(typ, val, tb));
        }
        Ok((typ, val, tb))
    }
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
