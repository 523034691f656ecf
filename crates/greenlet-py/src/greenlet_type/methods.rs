//! The type's methods: `switch`, `throw` and `__getstate__`.

use crate::globals::globals;
use crate::py::{Borrowed, Gil, PyErrSet, into_ptr};
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
    // SAFETY: the GIL is held and `args`/`kwnames` are as CPython passes them (contract).
    let packed = unsafe { switch::vectorcall_args_to_tuple_dict(args, nargs, kwnames) };
    let Ok((tuple, kwargs)) = packed else {
        return ptr::null_mut();
    };
    // SAFETY: `slf` is a live greenlet (contract); a tuple and a dict or null.
    let result = unsafe { switch::switch_to(slf.cast(), tuple, kwargs) };
    // SAFETY: we own the tuple, and the dict if any (made above).
    unsafe { Py_DECREF(tuple) };
    // SAFETY: as above.
    unsafe { Py_XDECREF(kwargs) };
    result
}

/// `throw([typ[, val[, tb]]])`.
pub(super) unsafe extern "C" fn green_throw(
    slf: *mut PyObject,
    args: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython calls methods with the GIL held.
    let py = unsafe { Gil::assume() };
    let mut typ = globals().greenlet_exit;
    let mut val: *mut PyObject = ptr::null_mut();
    let mut tb: *mut PyObject = ptr::null_mut();
    // SAFETY: the GIL is held; `args` is the arguments tuple; borrowed out-values.
    let parsed =
        unsafe { PyArg_ParseTuple(args, c"|OOO:throw".as_ptr(), &mut typ, &mut val, &mut tb) };
    if parsed == 0 {
        return ptr::null_mut();
    }
    // SAFETY: the GIL is held.
    unsafe { crate::python_state::materialize_frame() };
    // SAFETY: the parsed arguments are borrowed from `args`, live for the call.
    match unsafe { switch::normalize_throw_args(py, typ, val, tb) } {
        // SAFETY: `slf` is a live greenlet; the three pieces are owned and normalised.
        Ok((t, v, b)) => unsafe { switch::throw_into(slf.cast(), t, v, b) },
        Err(PyErrSet) => ptr::null_mut(),
    }
}

pub(super) unsafe extern "C" fn green_getstate(
    slf: *mut PyObject,
    _unused: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython calls methods with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: `slf` is live for the call.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    // SAFETY: one `%s`.
    into_ptr::<PyObject>(Err(unsafe {
        py.type_error_naming_type(c"cannot serialize '%s' object", slf)
    }))
}
