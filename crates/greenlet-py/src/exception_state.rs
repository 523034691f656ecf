//! Per-greenlet handled-exception state (`sys.exc_info()`), moved out of and back into
//! the thread state on every switch.

use crate::cpython::pystate::{ErrStackItem, PyThreadState};
use core::ptr;
use pyo3_ffi::{PyObject, visitproc};
use std::ffi::c_void;

/// What a suspended greenlet had in `tstate->exc_info` / `tstate->exc_state`.
pub(crate) struct ExceptionState {
    /// Top of the greenlet's handled-exception stack; null for a fresh greenlet.
    exc_info: *mut ErrStackItem,
    /// The greenlet's copy of the base stack item (owns its references).
    exc_state: ErrStackItem,
}

impl ExceptionState {
    pub(crate) const fn new() -> Self {
        Self {
            exc_info: ptr::null_mut(),
            exc_state: ErrStackItem::EMPTY,
        }
    }

    /// Moves the thread's exception state into `self`.
    ///
    /// # Safety
    /// `tstate` is the current thread state and `self` holds nothing (it was restored or
    /// cleared before).
    #[inline]
    pub(crate) unsafe fn save(&mut self, tstate: *mut PyThreadState) {
        // SAFETY: `tstate` is the live current thread state (contract); the copy moves
        // the references of its base item into `self`.
        let ts = unsafe { &*tstate };
        self.exc_info = ts.exc_info;
        self.exc_state = ts.exc_state;
    }

    /// Moves `self` into the thread state and leaves `self` empty.
    ///
    /// # Safety
    /// `tstate` is the current thread state whose previous contents were saved elsewhere.
    #[inline]
    pub(crate) unsafe fn restore(&mut self, tstate: *mut PyThreadState) {
        // SAFETY: `tstate` is the live current thread state (contract), and nothing else
        // borrows it during the switch.
        let ts = unsafe { &mut *tstate };
        ts.exc_state = self.exc_state;
        // A null `exc_info` means "the base item", as for a new thread.
        ts.exc_info = if self.exc_info.is_null() {
            ptr::addr_of_mut!(ts.exc_state)
        } else {
            self.exc_info
        };
        self.clear_without_decref();
    }

    /// Forgets the saved state without dropping references (they were moved).
    #[inline]
    pub(crate) fn clear_without_decref(&mut self) {
        self.exc_info = ptr::null_mut();
        self.exc_state = ErrStackItem::EMPTY;
    }

    /// # Safety
    /// Called from a `tp_traverse` with the GIL held.
    pub(crate) unsafe fn traverse(&self, visit: visitproc, arg: *mut c_void) -> i32 {
        for obj in self.owned_objects() {
            if !obj.is_null() {
                // SAFETY: a GC visit of a reference we own.
                let r = unsafe { visit(obj, arg) };
                if r != 0 {
                    return r;
                }
            }
        }
        0
    }

    /// Takes out the references held by the saved base item, for
    /// [`ClearedExceptions::release`] once no borrow of the owner is live.
    pub(crate) fn take_for_clear(&mut self) -> ClearedExceptions {
        let objs = self.owned_objects();
        self.clear_without_decref();
        ClearedExceptions(objs)
    }

    fn owned_objects(&self) -> [*mut PyObject; 3] {
        #[cfg(Py_3_11)]
        {
            [self.exc_state.exc_value, ptr::null_mut(), ptr::null_mut()]
        }
        #[cfg(not(Py_3_11))]
        {
            [
                self.exc_state.exc_type,
                self.exc_state.exc_value,
                self.exc_state.exc_traceback,
            ]
        }
    }
}

/// References taken out of an [`ExceptionState`] by [`ExceptionState::take_for_clear`].
#[must_use = "the references are only released by `release`"]
pub(crate) struct ClearedExceptions([*mut PyObject; 3]);

impl ClearedExceptions {
    /// Drops the references.
    ///
    /// # Safety
    /// The GIL is held. Dropping may run arbitrary code, so no borrow of the greenlet the
    /// references came from may be live.
    pub(crate) unsafe fn release(self) {
        for obj in self.0 {
            // SAFETY: references owned by the saved state, now forgotten.
            unsafe { pyo3_ffi::Py_XDECREF(obj) };
        }
    }
}

impl Default for ExceptionState {
    fn default() -> Self {
        Self::new()
    }
}
