//! Import-time check that the interpreter we are loaded into is the one we were built
//! for, before any mirrored struct is touched.

use crate::util::{PyErrSet, PyResult};

const BUILT_FOR_MINOR: &str = env!("GREENLET_BUILT_FOR_MINOR");

/// # Safety
/// The GIL is held.
pub unsafe fn check() -> PyResult<()> {
    // SAFETY: `Py_Version` is a constant exported by libpython (3.11+).
    let running = unsafe { pyo3_ffi::Py_Version };
    let (major, minor) = ((running >> 24) & 0xff, (running >> 16) & 0xff);
    if major != 3 || minor.to_string() != BUILT_FOR_MINOR {
        // SAFETY: GIL held.
        unsafe {
            pyo3_ffi::PyErr_Format(
                pyo3_ffi::PyExc_ImportError,
                c"greenlet-rs was built for CPython 3.%s but is running on %d.%d".as_ptr(),
                concat!(env!("GREENLET_BUILT_FOR_MINOR"), "\0").as_ptr(),
                major as core::ffi::c_int,
                minor as core::ffi::c_int,
            );
        }
        return Err(PyErrSet);
    }
    Ok(())
}
