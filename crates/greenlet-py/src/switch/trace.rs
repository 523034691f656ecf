//! The greenlet trace function (`greenlet.settrace`), called on every switch.

use crate::greenlet::PyGreenlet;
use crate::thread_state;
use crate::util::{PyErrSet, PyResult, SavedError};
use core::ptr;
use pyo3_ffi::PyObject;

/// Calls the greenlet trace function with `(event, (origin, target))`, with tracing
/// suspended and any pending exception preserved. A failing trace function is removed.
pub(super) unsafe fn call_trace(
    tracefunc: *mut PyObject,
    event: *mut PyObject,
    origin: *mut PyGreenlet,
    target: *mut PyGreenlet,
) -> PyResult<()> {
    // SAFETY: GIL held (caller); all objects live.
    unsafe {
        let saved = SavedError::fetch();
        let ts = pyo3_ffi::PyThreadState_Get();
        crate::cpython::pystate::enter_tracing(ts.cast());
        let pair = pyo3_ffi::PyTuple_Pack(2, origin, target);
        let r = if pair.is_null() {
            ptr::null_mut()
        } else {
            let r = pyo3_ffi::PyObject_CallFunctionObjArgs(
                tracefunc,
                event,
                pair,
                ptr::null_mut::<PyObject>(),
            );
            pyo3_ffi::Py_DECREF(pair);
            r
        };
        crate::cpython::pystate::leave_tracing(ts.cast());
        if r.is_null() {
            if let Ok(state) = thread_state::current() {
                (*state).set_tracefunc(ptr::null_mut());
            }
            saved.discard();
            return Err(PyErrSet);
        }
        pyo3_ffi::Py_DECREF(r);
        saved.restore();
        Ok(())
    }
}
