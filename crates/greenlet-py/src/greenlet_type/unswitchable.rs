//! `greenlet._greenlet.UnswitchableGreenlet`: a test double whose switches fail on
//! demand (upstream's `BrokenGreenlet`).

#[cfg(not(Py_3_15))]
use super::slots::green_is_gc;
use super::slots::{green_clear, green_traverse};
use super::{leak, pimpl};
use crate::py::{Gil, into_status};
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

/// The flag a getset's closure names (null: `force_switch_error`), as a raw pointer.
///
/// # Safety
/// `slf` is a live `UnswitchableGreenlet` after `tp_new`.
unsafe fn force_flag(slf: *mut PyObject, closure: *mut c_void) -> *mut bool {
    // SAFETY: a live greenlet (contract).
    let this = unsafe { pimpl(slf) };
    // SAFETY: a live implementation; no borrow is created.
    let hooks = unsafe { &raw mut (*this).test_hooks };
    if closure.is_null() {
        // SAFETY: in bounds of the live `hooks`.
        unsafe { &raw mut (*hooks).fail_switch }
    } else {
        // SAFETY: as above.
        unsafe { &raw mut (*hooks).fail_stack_switch }
    }
}

unsafe extern "C" fn unswitchable_get(slf: *mut PyObject, closure: *mut c_void) -> *mut PyObject {
    // SAFETY: CPython calls a getter with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: only installed on `UnswitchableGreenlet`, called on its live instances.
    let flag = unsafe { force_flag(slf, closure) };
    // SAFETY: a field of a live implementation.
    let flag = unsafe { *flag };
    py.bool(flag).into_raw()
}

unsafe extern "C" fn unswitchable_set(
    slf: *mut PyObject,
    val: *mut PyObject,
    closure: *mut c_void,
) -> c_int {
    // SAFETY: CPython calls a setter with the GIL held.
    let py = unsafe { Gil::assume() };
    if val.is_null() {
        let msg = if closure.is_null() {
            c"Cannot delete force_switch_error"
        } else {
            c"Cannot delete force_slp_switch_error"
        };
        return into_status(Err(py.attribute_error(msg)));
    }
    // SAFETY: the GIL is held and `val` is live for the call.
    let truth = unsafe { PyObject_IsTrue(val) };
    if truth < 0 {
        return -1;
    }
    // SAFETY: as in `unswitchable_get`; taken after `__bool__` ran.
    let flag = unsafe { force_flag(slf, closure) };
    // SAFETY: a field of a live implementation, not borrowed elsewhere.
    unsafe { *flag = truth != 0 };
    0
}

/// Creates `UnswitchableGreenlet`, a subclass of `base`.
///
/// # Safety
/// The GIL is held; called once, at module init.
pub(crate) unsafe fn create_unswitchable_type(base: *mut PyTypeObject) -> *mut PyTypeObject {
    let getsets = leak(vec![
        PyGetSetDef {
            name: c"force_switch_error".as_ptr(),
            get: Some(unswitchable_get),
            set: Some(unswitchable_set),
            doc: ptr::null(),
            closure: ptr::null_mut(),
        },
        PyGetSetDef {
            name: c"force_slp_switch_error".as_ptr(),
            get: Some(unswitchable_get),
            set: Some(unswitchable_set),
            doc: ptr::null(),
            closure: ptr::dangling_mut::<c_void>(),
        },
        PyGetSetDef {
            name: ptr::null(),
            get: None,
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        },
    ]);
    let slots = leak(vec![
        PyType_Slot {
            slot: Py_tp_getset,
            pfunc: getsets.cast(),
        },
        // Declared again because `PyType_FromSpec` checks a GC type for a traverse
        // function before inheriting slots.
        PyType_Slot {
            slot: Py_tp_traverse,
            pfunc: green_traverse as traverseproc as *mut c_void,
        },
        PyType_Slot {
            slot: Py_tp_clear,
            pfunc: green_clear as inquiry as *mut c_void,
        },
        #[cfg(not(Py_3_15))]
        PyType_Slot {
            slot: Py_tp_is_gc,
            pfunc: green_is_gc as inquiry as *mut c_void,
        },
        PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ]);
    let spec = Box::leak(Box::new(PyType_Spec {
        name: c"greenlet._greenlet.UnswitchableGreenlet".as_ptr(),
        basicsize: 0,
        itemsize: 0,
        flags: (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC) as _,
        slots,
    }));
    // SAFETY: leaked 'static spec; `base` is a live type.
    unsafe { PyType_FromSpecWithBases(spec, base.cast()).cast() }
}
