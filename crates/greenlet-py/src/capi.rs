//! `greenlet._C_API`: the capsule of 12 pointers that C and Cython clients (gevent among
//! them) reach through `PyGreenlet_Import()` in `greenlet.h`. The order is ABI.

use crate::globals::{globals, is_greenlet};
use crate::greenlet::{Greenlet, PyGreenlet};
use crate::greenlet_type;
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult, into_ptr, into_status, opt_into_raw};
use crate::switch;
use crate::thread_state;
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

/// Slot 3: `PyGreenlet_New(run, parent)`; goes through `tp_new` and `tp_init`.
unsafe extern "C-unwind" fn capi_new(
    run: *mut PyObject,
    parent: *mut PyGreenlet,
) -> *mut PyGreenlet {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    let g = globals();
    // SAFETY: the GIL is held; our own type.
    let new =
        unsafe { greenlet_type::green_new(g.greenlet_type, ptr::null_mut(), ptr::null_mut()) };
    // SAFETY: a new reference or null with an exception set.
    let Ok(new) = (unsafe { Owned::from_raw(py, new) }) else {
        return ptr::null_mut();
    };
    // SAFETY: the GIL is held.
    let kwargs = unsafe { PyDict_New() };
    // SAFETY: a new reference or null with an exception set.
    let kwargs = unsafe { Owned::from_raw(py, kwargs) };
    let ok = kwargs.is_ok_and(|kwargs| {
        let k = kwargs.as_object();
        (run.is_null()
            // SAFETY: the GIL is held; a fresh dict; `run` and `parent` are null or live
            // (C API contract).
            || unsafe { PyDict_SetItem(k, g.str_run, run) } == 0)
            && (parent.is_null()
                // SAFETY: as above.
                || unsafe { PyDict_SetItemString(k, c"parent".as_ptr(), parent.cast()) } == 0)
            && {
                // SAFETY: `new` is live, so is its type.
                let ty = unsafe { Py_TYPE(new.as_object()) };
                // SAFETY: a live type object.
                let init = unsafe { (*ty).tp_init }.expect("tp_init");
                // SAFETY: the GIL is held; `tp_init` of the instance's own type.
                unsafe { init(new.as_object(), g.empty_tuple, k) == 0 }
            }
    });
    if !ok {
        return ptr::null_mut();
    }
    new.into_raw().cast()
}

/// Slot 4: `PyGreenlet_GetCurrent()`; a new reference.
///
/// # Safety
/// Called with the GIL held.
pub(crate) unsafe extern "C" fn capi_getcurrent() -> *mut PyGreenlet {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    if crate::cpython::pystate::is_finalizing() {
        return into_ptr(Err(py.runtime_error(c"greenlet is being finalized")));
    }
    // SAFETY: the GIL is held.
    let current = unsafe { thread_state::borrow_current() };
    // SAFETY: the thread state owns its current greenlet.
    into_ptr(current.map(|c| unsafe { Borrowed::from_ptr(py, c) }.to_owned()))
}

/// Slot 5: `PyGreenlet_Throw(g, typ, val, tb)`.
unsafe extern "C-unwind" fn capi_throw(
    g: *mut PyGreenlet,
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: C API contract: `g` is null or a live object.
    if unsafe { checked_impl(py, g) }.is_err() {
        return ptr::null_mut();
    }
    // SAFETY: the GIL is held.
    unsafe { crate::python_state::materialize_frame() };
    // SAFETY: C API contract: `typ` is live, `val` and `tb` null or live.
    match unsafe { switch::normalize_throw_args(py, typ, val, tb) } {
        // SAFETY: `g` is a live greenlet; the three pieces are owned and normalised.
        Ok((t, v, b)) => unsafe { switch::throw_into(g, t, v, b) },
        Err(PyErrSet) => ptr::null_mut(),
    }
}

/// Slot 6: `PyGreenlet_Switch(g, args, kwargs)`: NULL args mean `()`, and kwargs that
/// are NULL or not a dict are ignored.
unsafe extern "C-unwind" fn capi_switch(
    g: *mut PyGreenlet,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: C API contract: `g` is null or a live object.
    if unsafe { checked_impl(py, g) }.is_err() {
        return ptr::null_mut();
    }
    // SAFETY: the GIL is held; a type check of a live object.
    let kwargs = if kwargs.is_null() || unsafe { PyDict_Check(kwargs) } == 0 {
        ptr::null_mut()
    } else {
        kwargs
    };
    // SAFETY: `g` is a live greenlet; `args` null or a tuple, `kwargs` null or a dict.
    unsafe { switch::switch_to(g, args, kwargs) }
}

/// Slot 7: `PyGreenlet_SetParent(g, parent)`; 0 or -1.
unsafe extern "C" fn capi_setparent(g: *mut PyGreenlet, parent: *mut PyGreenlet) -> c_int {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: `g` is a live greenlet (not checked, as upstream).
    let this = unsafe { (*g).pimpl };
    // SAFETY: `parent` is null or live (C API contract).
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent.cast()) };
    // SAFETY: a live implementation, not borrowed here.
    into_status(unsafe { Greenlet::set_parent(this, py, parent) })
}

/// The implementation of `g` if it is a greenlet, else `TypeError` ("bad argument").
///
/// # Safety
/// `g` is null or a live object.
unsafe fn checked_impl(py: Gil<'_>, g: *mut PyGreenlet) -> PyResult<*mut Greenlet> {
    // SAFETY: the GIL is held (`py`); `g` is null or live (contract).
    if !unsafe { is_greenlet(g.cast()) } {
        // SAFETY: the GIL is held.
        unsafe { PyErr_BadArgument() };
        return Err(PyErrSet);
    }
    let _ = py;
    // SAFETY: a live greenlet after `tp_new`.
    Ok(unsafe { (*g).pimpl })
}

macro_rules! predicate {
    ($name:ident, $doc:literal, |$gr:ident| $e:expr) => {
        #[doc = $doc]
        unsafe extern "C" fn $name(g: *mut PyGreenlet) -> c_int {
            // SAFETY: C API contract: called with the GIL held.
            let py = unsafe { Gil::assume() };
            // SAFETY: C API contract: `g` is null or a live object.
            match unsafe { checked_impl(py, g) } {
                Ok(this) => {
                    // SAFETY: a live implementation; a flag read that runs no code.
                    let $gr = unsafe { &*this };
                    $e as c_int
                }
                Err(PyErrSet) => -1,
            }
        }
    };
}

predicate!(capi_main, "Slot 8: `PyGreenlet_MAIN(g)`.", |gr| gr
    .is_main());
predicate!(capi_started, "Slot 9: `PyGreenlet_STARTED(g)`.", |gr| gr
    .started());
predicate!(capi_active, "Slot 10: `PyGreenlet_ACTIVE(g)`.", |gr| gr
    .active());

/// Slot 11: `PyGreenlet_GetParent(g)`: a new reference, or NULL *without* an exception
/// for a greenlet without a parent.
unsafe extern "C" fn capi_getparent(g: *mut PyGreenlet) -> *mut PyGreenlet {
    // SAFETY: C API contract: called with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: C API contract: `g` is null or a live object.
    let Ok(this) = (unsafe { checked_impl(py, g) }) else {
        return ptr::null_mut();
    };
    // SAFETY: a live implementation; a short read.
    let parent = unsafe { (*this).parent() };
    // SAFETY: the greenlet owns its parent, if any.
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent) };
    opt_into_raw(parent.map(Borrowed::to_owned))
}

/// Builds the capsule. The table is leaked: the capsule has no destructor and clients
/// keep the raw pointer for the life of the process.
///
/// # Safety
/// The GIL is held and the globals are initialised.
pub(crate) unsafe fn create_capsule() -> *mut PyObject {
    let g = globals();
    let table: Box<[*mut c_void; 12]> = Box::new([
        g.greenlet_type.cast(),
        g.greenlet_error.cast(),
        g.greenlet_exit.cast(),
        capi_new as *mut c_void,
        capi_getcurrent as *mut c_void,
        capi_throw as *mut c_void,
        capi_switch as *mut c_void,
        capi_setparent as *mut c_void,
        capi_main as *mut c_void,
        capi_started as *mut c_void,
        capi_active as *mut c_void,
        capi_getparent as *mut c_void,
    ]);
    let table = Box::leak(table);
    // SAFETY: a 'static table and a 'static name.
    unsafe { PyCapsule_New(table.as_mut_ptr().cast(), c"greenlet._C_API".as_ptr(), None) }
}
