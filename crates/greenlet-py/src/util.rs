//! Small helpers shared by the extension: GIL-protected globals, error setting and
//! reference-count shorthands.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::ptr;
use pyo3_ffi::PyObject;

/// A global that is only ever touched with the GIL held (this crate does not support
/// free-threaded builds, see `cpython/mod.rs`).
pub struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose contract requires the GIL, which
// serialises all threads.
unsafe impl<T> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// # Safety
    /// The GIL is held for as long as the pointer is used.
    #[inline(always)]
    pub unsafe fn get(&self) -> *mut T {
        self.0.get()
    }
}

pub use crate::py::{PyErrSet, PyResult};

/// Sets `exc` with a fixed message and returns the error marker.
///
/// # Safety
/// The GIL is held and `exc` is an exception type.
pub unsafe fn set_error(exc: *mut PyObject, msg: &CStr) -> PyErrSet {
    // SAFETY: the caller holds the GIL; both pointers are valid.
    unsafe { pyo3_ffi::PyErr_SetString(exc, msg.as_ptr()) };
    PyErrSet
}

/// `Py_XINCREF` returning its argument.
///
/// # Safety
/// The GIL is held and `obj` is null or a live object.
#[inline(always)]
pub unsafe fn xnewref<T>(obj: *mut T) -> *mut T {
    // SAFETY: see the function contract.
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
pub unsafe fn replace_owned<T>(slot: *mut *mut T, value: *mut T) {
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
pub unsafe fn clear_owned<T>(slot: *mut *mut T) {
    // SAFETY: forwarded contract.
    unsafe { replace_owned(slot, ptr::null_mut()) }
}

/// A fetched (saved) exception, restored explicitly or dropped.
pub struct SavedError {
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
    pub unsafe fn fetch() -> Self {
        let mut s = Self {
            ty: ptr::null_mut(),
            value: ptr::null_mut(),
            tb: ptr::null_mut(),
        };
        // SAFETY: GIL held; the out-pointers are valid.
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
    pub unsafe fn restore(self) {
        let s = core::mem::ManuallyDrop::new(self);
        // SAFETY: GIL held; ownership of the three references moves to the thread state.
        unsafe { pyo3_ffi::PyErr_Restore(s.ty, s.value, s.tb) };
    }

    /// Drops the saved exception.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn discard(self) {
        let s = core::mem::ManuallyDrop::new(self);
        // SAFETY: GIL held; the references were owned by `s`.
        unsafe {
            pyo3_ffi::Py_XDECREF(s.ty);
            pyo3_ffi::Py_XDECREF(s.value);
            pyo3_ffi::Py_XDECREF(s.tb);
        }
    }
}

impl Drop for SavedError {
    fn drop(&mut self) {
        // Only reached on paths that forgot to restore or discard; never without the GIL
        // because a SavedError is only created with it.
        // SAFETY: the GIL is held whenever a SavedError exists (see `fetch`).
        unsafe {
            pyo3_ffi::Py_XDECREF(self.ty);
            pyo3_ffi::Py_XDECREF(self.value);
            pyo3_ffi::Py_XDECREF(self.tb);
        }
    }
}

/// `Py_SET_REFCNT` (not bound by pyo3-ffi).
///
/// # Safety
/// The GIL is held and `ob` is a live (or being-deallocated) object.
#[inline]
pub unsafe fn set_refcnt(ob: *mut PyObject, n: pyo3_ffi::Py_ssize_t) {
    // SAFETY: see the function contract.
    unsafe {
        #[cfg(Py_3_12)]
        {
            (*ob).ob_refcnt.ob_refcnt = n;
        }
        #[cfg(not(Py_3_12))]
        {
            (*ob).ob_refcnt = n;
        }
    }
}

/// The `(args, kwargs)` a `METH_VARARGS | METH_KEYWORDS` function would get for a
/// vectorcall: a new tuple (the shared empty one when there are no positional
/// arguments) and a new dict, or null when there are no keywords.
///
/// # Safety
/// The GIL is held; `args` holds `nargs` positional values followed by one per name in
/// `kwnames` (null or a tuple of strings).
pub unsafe fn vectorcall_args_to_tuple_dict(
    args: *const *mut PyObject,
    nargs: pyo3_ffi::Py_ssize_t,
    kwnames: *mut PyObject,
) -> PyResult<(*mut PyObject, *mut PyObject)> {
    // SAFETY: see the function contract; the tuple and dict are fresh and filled with
    // new references.
    unsafe {
        let tuple = if nargs == 0 {
            xnewref(crate::globals::globals().empty_tuple)
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
