//! Objects created once at module import and used on hot paths without lookups.

use crate::util::GilCell;
use core::ptr;
use pyo3_ffi::{PyObject, PyTypeObject};

pub struct Globals {
    pub greenlet_type: *mut PyTypeObject,
    pub unswitchable_type: *mut PyTypeObject,
    pub greenlet_error: *mut PyObject,
    pub greenlet_exit: *mut PyObject,
    pub str_run: *mut PyObject,
    pub event_switch: *mut PyObject,
    pub event_throw: *mut PyObject,
    pub empty_tuple: *mut PyObject,
    pub empty_dict: *mut PyObject,
}

static GLOBALS: GilCell<Globals> = GilCell::new(Globals {
    greenlet_type: ptr::null_mut(),
    unswitchable_type: ptr::null_mut(),
    greenlet_error: ptr::null_mut(),
    greenlet_exit: ptr::null_mut(),
    str_run: ptr::null_mut(),
    event_switch: ptr::null_mut(),
    event_throw: ptr::null_mut(),
    empty_tuple: ptr::null_mut(),
    empty_dict: ptr::null_mut(),
});

/// The module globals. They are written once, during module init, and never freed.
#[inline(always)]
pub fn globals() -> &'static Globals {
    // SAFETY: written only by `globals_mut` during module init (with the GIL, before any
    // other use); afterwards read-only.
    unsafe { &*GLOBALS.get() }
}

/// # Safety
/// Only during module initialisation, with the GIL held.
pub unsafe fn globals_mut() -> &'static mut Globals {
    // SAFETY: see the function contract.
    unsafe { &mut *GLOBALS.get() }
}
