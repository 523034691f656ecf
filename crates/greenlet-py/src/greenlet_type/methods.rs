//! The type's methods: `switch`, `throw` and `__getstate__`.

use crate::globals::globals;
use crate::py::{Gil, PyErrSet};
use crate::switch;
use core::ptr;
use pyo3_ffi::*;

/// `switch(*args, **kwargs)` as `METH_FASTCALL | METH_KEYWORDS`: Python callers skip
/// CPython's generic call of a `METH_VARARGS` method, and `switch()` with no arguments
/// allocates nothing. The tuple and dict built here are what the `METH_VARARGS` call
/// would have passed.
///
/// # Safety
/// Called by CPython with the GIL held; `slf` is a greenlet; `args` holds `nargs`
/// positional values followed by one per name in `kwnames` (null or a tuple).
pub(crate) unsafe extern "C-unwind" fn green_switch_fast(
    slf: *mut PyObject,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let Ok((tuple, kwargs)) = crate::util::vectorcall_args_to_tuple_dict(args, nargs, kwnames)
        else {
            return ptr::null_mut();
        };
        let result = switch::switch_to(slf.cast(), tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        result
    }
}

/// `throw([typ[, val[, tb]]])`.
pub(super) unsafe extern "C" fn green_throw(
    slf: *mut PyObject,
    args: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let mut typ = globals().greenlet_exit;
        let mut val: *mut PyObject = ptr::null_mut();
        let mut tb: *mut PyObject = ptr::null_mut();
        if PyArg_ParseTuple(args, c"|OOO:throw".as_ptr(), &mut typ, &mut val, &mut tb) == 0 {
            return ptr::null_mut();
        }
        crate::python_state::materialize_frame();
        match switch::normalize_throw_args(Gil::assume(), typ, val, tb) {
            Ok((t, v, b)) => switch::throw_into(slf.cast(), t, v, b),
            Err(PyErrSet) => ptr::null_mut(),
        }
    }
}

pub(super) unsafe extern "C" fn green_getstate(
    slf: *mut PyObject,
    _unused: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        PyErr_Format(
            PyExc_TypeError,
            c"cannot serialize '%s' object".as_ptr(),
            (*Py_TYPE(slf)).tp_name,
        );
    }
    ptr::null_mut()
}
