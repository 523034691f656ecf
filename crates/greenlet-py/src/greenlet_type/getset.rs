//! The type's properties (`PyGetSetDef`): `__dict__`, `run`, `parent`, `gr_frame`,
//! `gr_context`, `dead` and `_stack_saved`.

use super::slots::is_not_dead;
use super::{new_bool, pimpl, to_int, to_obj};
use crate::greenlet::PyGreenlet;
use crate::util::{set_error, xnewref};
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

pub(super) unsafe extern "C" fn green_getdict(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let o: *mut PyGreenlet = slf.cast();
        if (*o).dict.is_null() {
            (*o).dict = PyDict_New();
            if (*o).dict.is_null() {
                return ptr::null_mut();
            }
        }
        xnewref((*o).dict)
    }
}

pub(super) unsafe extern "C" fn green_setdict(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        if val.is_null() {
            return to_int(Err(set_error(
                PyExc_TypeError,
                c"__dict__ may not be deleted",
            )));
        }
        if PyDict_Check(val) == 0 {
            return to_int(Err(set_error(
                PyExc_TypeError,
                c"__dict__ must be a dictionary",
            )));
        }
        let o: *mut PyGreenlet = slf.cast();
        crate::util::replace_owned(&mut (*o).dict, xnewref(val));
        0
    }
}

pub(super) unsafe extern "C" fn green_getrun(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_obj(pimpl(slf).get_run()) }
}

pub(super) unsafe extern "C" fn green_setrun(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_run(val)) }
}

pub(super) unsafe extern "C" fn green_getparent(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let p = pimpl(slf).parent();
        if p.is_null() {
            xnewref(Py_None())
        } else {
            xnewref(p.cast())
        }
    }
}

pub(super) unsafe extern "C" fn green_setparent(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_parent(val)) }
}

pub(super) unsafe extern "C" fn green_getcontext(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_obj(pimpl(slf).get_context()) }
}

pub(super) unsafe extern "C" fn green_setcontext(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_context(val)) }
}

pub(super) unsafe extern "C" fn green_getframe(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let f = pimpl(slf).python.top_frame();
        if f.is_null() {
            xnewref(Py_None())
        } else {
            xnewref(f.cast())
        }
    }
}

pub(super) unsafe extern "C" fn green_getdead(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { new_bool(!is_not_dead(pimpl(slf))) }
}

pub(super) unsafe extern "C" fn green_get_stack_saved(
    slf: *mut PyObject,
    _c: *mut c_void,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { PyLong_FromSsize_t(pimpl(slf).stack.saved_bytes() as Py_ssize_t) }
}
