//! The greenlet trace function (`greenlet.settrace`), called on every switch.

use crate::greenlet::PyGreenlet;
use crate::py::{Gil, Owned, PyErrSet, PyResult};
use crate::thread_state::{self, ThreadState};
use crate::util::SavedError;
use core::ptr;
use pyo3_ffi::PyObject;

/// Calls the greenlet trace function with `(event, (origin, target))`, with tracing
/// suspended and any pending exception preserved. A failing trace function is removed.
///
/// # Safety
/// The GIL is held; all four objects are live.
pub(super) unsafe fn call_trace(
    tracefunc: *mut PyObject,
    event: *mut PyObject,
    origin: *mut PyGreenlet,
    target: *mut PyGreenlet,
) -> PyResult<()> {
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: the GIL is held.
    let saved = unsafe { SavedError::fetch() };
    // SAFETY: the GIL is held, so there is a current thread state.
    let ts = unsafe { pyo3_ffi::PyThreadState_Get() }.cast();
    // SAFETY: `ts` is the live current thread state.
    unsafe { crate::cpython::pystate::enter_tracing(ts) };
    // SAFETY: the GIL is held; both greenlets are live.
    let pair = unsafe { Owned::from_raw(py, pyo3_ffi::PyTuple_Pack(2, origin, target)) };
    let r = pair.and_then(|pair| {
        // SAFETY: the GIL is held; the callable and its arguments are live; the
        // argument list ends with null.
        let r = unsafe {
            pyo3_ffi::PyObject_CallFunctionObjArgs(
                tracefunc,
                event,
                pair.as_ptr(),
                ptr::null_mut::<PyObject>(),
            )
        };
        // SAFETY: a new reference or null with an exception set.
        unsafe { Owned::from_raw(py, r) }
    });
    // SAFETY: as for `enter_tracing`.
    unsafe { crate::cpython::pystate::leave_tracing(ts) };
    match r {
        Ok(r) => {
            drop(r);
            // SAFETY: the GIL is held.
            unsafe { saved.restore() };
            Ok(())
        }
        Err(PyErrSet) => {
            // SAFETY: the GIL is held.
            if let Ok(state) = unsafe { thread_state::current() } {
                // SAFETY: this thread's live state, not borrowed here.
                unsafe { ThreadState::set_tracefunc(state, ptr::null_mut()) };
            }
            // SAFETY: the GIL is held.
            unsafe { saved.discard() };
            Err(PyErrSet)
        }
    }
}
