//! The values a switch carries: pending arguments on the target, and their packing into
//! what `switch()` returns on the other side.

use crate::globals::globals;
use crate::greenlet::Greenlet;
use crate::py::{PyErrSet, PyResult};
use crate::util::xnewref;
use core::ptr;
use pyo3_ffi::PyObject;

/// Packs pending switch arguments into the value `switch()` returns (before
/// [`single_result`]): the args tuple, the kwargs dict, or `(args, kwargs)`.
///
/// # Safety
/// The GIL is held; takes ownership of both (either may be null, not both).
pub(crate) unsafe fn pack_args(args: *mut PyObject, kwargs: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held; ownership as documented.
    unsafe {
        if kwargs.is_null() {
            return args;
        }
        if pyo3_ffi::PyDict_Size(kwargs) == 0 {
            pyo3_ffi::Py_DECREF(kwargs);
            return args;
        }
        if args.is_null() || pyo3_ffi::PySequence_Length(args) == 0 {
            pyo3_ffi::Py_XDECREF(args);
            return kwargs;
        }
        let pair = pyo3_ffi::PyTuple_Pack(2, args, kwargs);
        pyo3_ffi::Py_DECREF(args);
        pyo3_ffi::Py_DECREF(kwargs);
        pair
    }
}

/// Unwraps a 1-tuple. Takes ownership of `result` (which may be null).
///
/// # Safety
/// The GIL is held.
#[inline]
pub(crate) unsafe fn single_result(result: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held; ownership as documented.
    unsafe {
        if !result.is_null()
            && pyo3_ffi::PyTuple_CheckExact(result) != 0
            && pyo3_ffi::PyTuple_GET_SIZE(result) == 1
        {
            let item = pyo3_ffi::PyTuple_GET_ITEM(result, 0);
            pyo3_ffi::Py_INCREF(item);
            pyo3_ffi::Py_DECREF(result);
            return item;
        }
        result
    }
}

/// Turns the outcome of `run` into what the parent receives: a 1-tuple of the result, or
/// of the `GreenletExit` instance (or None) if that was raised, or null to propagate the
/// exception. Takes ownership of `result`.
///
/// # Safety
/// The GIL is held.
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub(super) unsafe fn handle_exit(result: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held.
    unsafe {
        if result.is_null() && pyo3_ffi::PyErr_ExceptionMatches(globals().greenlet_exit) != 0 {
            let mut ty = ptr::null_mut();
            let mut val = ptr::null_mut();
            let mut tb = ptr::null_mut();
            pyo3_ffi::PyErr_Fetch(&mut ty, &mut val, &mut tb);
            pyo3_ffi::Py_XDECREF(ty);
            pyo3_ffi::Py_XDECREF(tb);
            if val.is_null() {
                val = xnewref(pyo3_ffi::Py_None());
            }
            // A 1-tuple like any other result: a running parent gets the instance back
            // unwrapped (`single_result`), and an unstarted one is started as `run(exc)`
            // (upstream hands over the bare instance, which CPython then reads as an
            // argument tuple: an assertion failure or a crash).
            let packed = pyo3_ffi::PyTuple_Pack(1, val);
            pyo3_ffi::Py_DECREF(val);
            return packed;
        }
        if !result.is_null() {
            let packed = pyo3_ffi::PyTuple_Pack(1, result);
            pyo3_ffi::Py_DECREF(result);
            return packed;
        }
        ptr::null_mut()
    }
}

/// Replaces the pending arguments of `g` (taking ownership of both).
#[inline]
pub(super) unsafe fn set_args(g: *mut Greenlet, args: *mut PyObject, kwargs: *mut PyObject) {
    // SAFETY: GIL held (caller); `g` is live.
    unsafe {
        Greenlet::release_args(g);
        (*g).args = args;
        (*g).kwargs = kwargs;
    }
}

/// Moves the pending arguments of `from` to `to`.
#[inline]
pub(super) unsafe fn move_args(to: *mut Greenlet, from: *mut Greenlet) {
    // SAFETY: GIL held (caller); both live.
    unsafe {
        let args = core::mem::replace(&mut (*from).args, ptr::null_mut());
        let kwargs = core::mem::replace(&mut (*from).kwargs, ptr::null_mut());
        set_args(to, args, kwargs);
    }
}

/// The `(args, kwargs)` a `METH_VARARGS | METH_KEYWORDS` function would get for a
/// vectorcall: a new tuple (the shared empty one when there are no positional
/// arguments) and a new dict, or null when there are no keywords.
///
/// # Safety
/// The GIL is held; `args` holds `nargs` positional values followed by one per name in
/// `kwnames` (null or a tuple of strings).
pub(crate) unsafe fn vectorcall_args_to_tuple_dict(
    args: *const *mut PyObject,
    nargs: pyo3_ffi::Py_ssize_t,
    kwnames: *mut PyObject,
) -> PyResult<(*mut PyObject, *mut PyObject)> {
    // SAFETY: see the function contract; the tuple and dict are fresh and filled with
    // new references.
    unsafe {
        let tuple = if nargs == 0 {
            xnewref(globals().empty_tuple)
        } else {
            let t = pyo3_ffi::PyTuple_New(nargs);
            if t.is_null() {
                return Err(PyErrSet);
            }
            for i in 0..nargs {
                pyo3_ffi::PyTuple_SET_ITEM(t, i, xnewref(*args.offset(i)));
            }
            t
        };
        if kwnames.is_null() || pyo3_ffi::PyTuple_GET_SIZE(kwnames) == 0 {
            return Ok((tuple, ptr::null_mut()));
        }
        let kwargs = pyo3_ffi::PyDict_New();
        if kwargs.is_null() {
            pyo3_ffi::Py_DECREF(tuple);
            return Err(PyErrSet);
        }
        for i in 0..pyo3_ffi::PyTuple_GET_SIZE(kwnames) {
            let key = pyo3_ffi::PyTuple_GET_ITEM(kwnames, i);
            if pyo3_ffi::PyDict_SetItem(kwargs, key, *args.offset(nargs + i)) < 0 {
                pyo3_ffi::Py_DECREF(tuple);
                pyo3_ffi::Py_DECREF(kwargs);
                return Err(PyErrSet);
            }
        }
        Ok((tuple, kwargs))
    }
}
