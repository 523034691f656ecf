//! Small helpers shared by the extension: GIL-protected globals, error setting and
//! reference-count shorthands.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::ptr;
use pyo3_ffi::PyObject;

/// A global that is only ever touched with the GIL held (this crate does not support
/// free-threaded builds, see `cpython/mod.rs`).
pub(crate) struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose contract requires the GIL, which
// serialises all threads.
unsafe impl<T> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// # Safety
    /// The GIL is held for as long as the pointer is used.
    #[inline(always)]
    pub(crate) unsafe fn get(&self) -> *mut T {
        self.0.get()
    }
}

pub(crate) use crate::py::{PyErrSet, PyResult};

/// Sets `exc` with a fixed message and returns the error marker.
///
/// # Safety
/// The GIL is held and `exc` is an exception type.
pub(crate) unsafe fn set_error(exc: *mut PyObject, msg: &CStr) -> PyErrSet {
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { crate::py::Gil::assume() };
    // SAFETY: `exc` is an exception type (this function's contract).
    unsafe { py.raise(exc, msg) }
}

/// `Py_XINCREF` returning its argument.
///
/// # Safety
/// The GIL is held and `obj` is null or a live object.
#[inline(always)]
pub(crate) unsafe fn xnewref<T>(obj: *mut T) -> *mut T {
    // SAFETY: `obj` is null or live and the GIL is held (this function's contract); the new
    // reference goes to the caller.
    unsafe { pyo3_ffi::Py_XINCREF(obj.cast()) };
    obj
}

/// Replaces `*slot` with `value` (owned) and drops the old reference afterwards, so that
/// code run by the drop sees a consistent slot. `slot` is a raw pointer so that no borrow
/// of the object holding it is live while that code runs (it may reach the same object);
/// pass `&raw mut object.field`, or `&mut` for a borrow that ends at the call.
///
/// # Safety
/// The GIL is held; `slot` is valid and `*slot` is null or an owned reference.
#[inline]
pub(crate) unsafe fn replace_owned<T>(slot: *mut *mut T, value: *mut T) {
    // SAFETY: `slot` is valid (contract); the write ends before the release below.
    let old = unsafe { ptr::replace(slot, value) };
    // SAFETY: `old` was owned by the slot; the GIL is held.
    unsafe { pyo3_ffi::Py_XDECREF(old.cast()) };
}

/// `Py_CLEAR`.
///
/// # Safety
/// As for [`replace_owned`].
#[inline]
pub(crate) unsafe fn clear_owned<T>(slot: *mut *mut T) {
    // SAFETY: `slot` is valid and owns what it holds, with the GIL held (this function's
    // contract); null is a valid new value.
    unsafe { replace_owned(slot, ptr::null_mut()) }
}

/// A fetched (saved) exception, restored explicitly or dropped.
pub(crate) struct SavedError {
    ty: *mut PyObject,
    value: *mut PyObject,
    tb: *mut PyObject,
}

impl SavedError {
    /// Takes the current exception (if any) out of the thread state.
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    #[allow(
        deprecated,
        reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
    )]
    pub(crate) unsafe fn fetch() -> Self {
        let mut s = Self {
            ty: ptr::null_mut(),
            value: ptr::null_mut(),
            tb: ptr::null_mut(),
        };
        // SAFETY: the GIL is held (this function's contract); the out-pointers are fields of
        // `s`, which takes over the three references.
        unsafe { pyo3_ffi::PyErr_Fetch(&mut s.ty, &mut s.value, &mut s.tb) };
        s
    }

    /// Puts the exception back (or clears the error indicator if there was none).
    ///
    /// # Safety
    /// The GIL is held.
    #[inline]
    #[allow(
        deprecated,
        reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
    )]
    pub(crate) unsafe fn restore(self) {
        let s = core::mem::ManuallyDrop::new(self);
        // SAFETY: the GIL is held (this function's contract); the three references `s` owned
        // move to the thread state, and `ManuallyDrop` keeps them from being released twice.
        unsafe { pyo3_ffi::PyErr_Restore(s.ty, s.value, s.tb) };
    }

    /// Drops the saved exception.
    ///
    /// # Safety
    /// The GIL is held.
    pub(crate) unsafe fn discard(self) {
        let s = core::mem::ManuallyDrop::new(self);
        // SAFETY: the GIL is held (this function's contract); `s` owned the three references,
        // and `ManuallyDrop` keeps its `Drop` from releasing them again.
        unsafe { release_three(s.ty, s.value, s.tb) };
    }
}

impl Drop for SavedError {
    fn drop(&mut self) {
        // Only reached on paths that forgot to restore or discard; never without the GIL
        // because a SavedError is only created with it.
        // SAFETY: the GIL is held whenever a SavedError exists (see `fetch`); it owns the
        // three references.
        unsafe { release_three(self.ty, self.value, self.tb) };
    }
}

/// Releases three owned references (each may be null).
///
/// # Safety
/// The GIL is held; each pointer is null or an owned reference.
unsafe fn release_three(a: *mut PyObject, b: *mut PyObject, c: *mut PyObject) {
    for p in [a, b, c] {
        // SAFETY: `p` is null or a reference the caller hands over to be released, with the
        // GIL held (this function's contract).
        unsafe { pyo3_ffi::Py_XDECREF(p) };
    }
}

/// `Py_SET_REFCNT` (not bound by pyo3-ffi).
///
/// # Safety
/// The GIL is held and `ob` is a live (or being-deallocated) object.
#[inline]
pub(crate) unsafe fn set_refcnt(ob: *mut PyObject, n: pyo3_ffi::Py_ssize_t) {
    // SAFETY: a live (or being-deallocated) object, not borrowed elsewhere (contract); the
    // borrow ends with the write.
    let ob = unsafe { &mut *ob };
    #[cfg(Py_3_12)]
    {
        ob.ob_refcnt.ob_refcnt = n;
    }
    #[cfg(not(Py_3_12))]
    {
        ob.ob_refcnt = n;
    }
}
