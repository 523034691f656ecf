//! `greenlet._greenlet.UnswitchableGreenlet`: a test double whose switches fail on
//! demand (upstream's `BrokenGreenlet`).

#[cfg(not(Py_3_15))]
use super::slots::green_is_gc;
use super::slots::{green_clear, green_traverse};
use super::{leak, new_bool, pimpl, to_int};
use crate::util::set_error;
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

unsafe fn force_flag<'a>(slf: *mut PyObject, slp: bool) -> &'a mut bool {
    // SAFETY: only reached through the UnswitchableGreenlet getsets, on its instances.
    let hooks = unsafe { &mut pimpl(slf).test_hooks };
    if slp {
        &mut hooks.fail_stack_switch
    } else {
        &mut hooks.fail_switch
    }
}

unsafe extern "C" fn unswitchable_get(slf: *mut PyObject, closure: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { new_bool(*force_flag(slf, !closure.is_null())) }
}

unsafe extern "C" fn unswitchable_set(
    slf: *mut PyObject,
    val: *mut PyObject,
    closure: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let slp = !closure.is_null();
        if val.is_null() {
            let msg = if slp {
                c"Cannot delete force_slp_switch_error"
            } else {
                c"Cannot delete force_switch_error"
            };
            return to_int(Err(set_error(PyExc_AttributeError, msg)));
        }
        let truth = PyObject_IsTrue(val);
        if truth < 0 {
            return -1;
        }
        *force_flag(slf, slp) = truth != 0;
        0
    }
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
