//! Mirror of `Include/cpython/pystate.h` (`struct _ts`, `_PyCFrame`, `_PyErr_StackItem`)
//! and of `_PyStackChunk` from `Include/internal/pycore_frame.h`.
//!
//! Only the versions listed below are mirrored; building against another one fails with
//! a clear message instead of guessing a layout.

use core::ffi::{c_int, c_ulong, c_void};
use pyo3_ffi::PyObject;

/// `_PyErr_StackItem`: one entry of the handled-exception stack (`sys.exc_info()`).
/// Since 3.11 only the exception value is stored.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ErrStackItem {
    #[cfg(not(Py_3_11))]
    pub exc_type: *mut PyObject,
    pub exc_value: *mut PyObject,
    #[cfg(not(Py_3_11))]
    pub exc_traceback: *mut PyObject,
    pub previous_item: *mut ErrStackItem,
}

impl ErrStackItem {
    pub const EMPTY: Self = Self {
        #[cfg(not(Py_3_11))]
        exc_type: core::ptr::null_mut(),
        exc_value: core::ptr::null_mut(),
        #[cfg(not(Py_3_11))]
        exc_traceback: core::ptr::null_mut(),
        previous_item: core::ptr::null_mut(),
    };
}

/// `_PyStackChunk`: a chunk of the per-thread data stack that holds interpreter frames
/// (3.11+). Chunks are allocated from the object arena allocator.
#[cfg(Py_3_11)]
#[repr(C)]
pub struct StackChunk {
    pub previous: *mut StackChunk,
    pub size: usize,
    pub top: usize,
    // skipped: PyObject *data[1] (flexible array)
}

#[cfg(all(Py_3_11, not(Py_3_12)))]
pub use v3_11::*;

#[cfg(not(all(Py_3_11, not(Py_3_12))))]
compile_error!("greenlet-rs currently mirrors the thread state of CPython 3.11 only");

/// CPython 3.11: the frame stack lives in `_PyInterpreterFrame`s inside data-stack chunks;
/// `tstate->cframe` points at a `_PyCFrame` on the C stack that holds `current_frame` and
/// `use_tracing`.
#[cfg(all(Py_3_11, not(Py_3_12)))]
mod v3_11 {
    use super::*;

    /// `_PyCFrame` (3.11).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct CFrame {
        pub use_tracing: u8,
        pub current_frame: *mut c_void,
        pub previous: *mut CFrame,
    }

    /// `PyCodeAddressRange`'s private part (3.11).
    #[repr(C)]
    pub struct AddressRangeOpaque {
        pub computed_line: c_int,
        pub lo_next: *const u8,
        pub limit: *const u8,
    }

    /// `PyTraceInfo` (3.11): opaque to us, mirrored only for its size.
    #[repr(C)]
    pub struct TraceInfo {
        pub code: *mut PyObject,
        pub ar_start: c_int,
        pub ar_end: c_int,
        pub ar_line: c_int,
        pub opaque: AddressRangeOpaque,
    }

    /// `struct _ts` (3.11).
    #[repr(C)]
    pub struct PyThreadState {
        pub prev: *mut PyThreadState,
        pub next: *mut PyThreadState,
        pub interp: *mut c_void,
        pub _initialized: c_int,
        pub _static: c_int,
        pub recursion_remaining: c_int,
        pub recursion_limit: c_int,
        pub recursion_headroom: c_int,
        pub tracing: c_int,
        pub tracing_what: c_int,
        pub cframe: *mut CFrame,
        pub c_profilefunc: *mut c_void,
        pub c_tracefunc: *mut c_void,
        pub c_profileobj: *mut PyObject,
        pub c_traceobj: *mut PyObject,
        pub curexc_type: *mut PyObject,
        pub curexc_value: *mut PyObject,
        pub curexc_traceback: *mut PyObject,
        pub exc_info: *mut ErrStackItem,
        pub dict: *mut PyObject,
        pub gilstate_counter: c_int,
        pub async_exc: *mut PyObject,
        pub thread_id: c_ulong,
        pub native_thread_id: c_ulong,
        pub trash_delete_nesting: c_int,
        pub trash_delete_later: *mut PyObject,
        pub on_delete: *mut c_void,
        pub on_delete_data: *mut c_void,
        pub coroutine_origin_tracking_depth: c_int,
        pub async_gen_firstiter: *mut PyObject,
        pub async_gen_finalizer: *mut PyObject,
        pub context: *mut PyObject,
        pub context_ver: u64,
        pub id: u64,
        pub trace_info: TraceInfo,
        pub datastack_chunk: *mut StackChunk,
        pub datastack_top: *mut *mut PyObject,
        pub datastack_limit: *mut *mut PyObject,
        pub exc_state: ErrStackItem,
        pub root_cframe: CFrame,
    }

    // Measured with offsetof() against 3.11.7's headers (x86-64).
    #[cfg(target_pointer_width = "64")]
    const _: () = {
        assert!(core::mem::offset_of!(PyThreadState, recursion_remaining) == 32);
        assert!(core::mem::offset_of!(PyThreadState, cframe) == 56);
        assert!(core::mem::offset_of!(PyThreadState, exc_info) == 120);
        assert!(core::mem::offset_of!(PyThreadState, trash_delete_nesting) == 168);
        assert!(core::mem::offset_of!(PyThreadState, context) == 224);
        assert!(core::mem::offset_of!(PyThreadState, context_ver) == 232);
        assert!(core::mem::offset_of!(PyThreadState, datastack_chunk) == 296);
        assert!(core::mem::offset_of!(PyThreadState, exc_state) == 320);
        assert!(core::mem::offset_of!(PyThreadState, root_cframe) == 336);
        assert!(core::mem::size_of::<PyThreadState>() == 360);
    };
}

/// The current thread state, viewed through our mirror.
///
/// # Safety
/// The GIL must be held (so the thread has a current thread state).
#[inline(always)]
pub unsafe fn tstate() -> *mut PyThreadState {
    // SAFETY: the caller holds the GIL, so the thread has a current thread state.
    unsafe { pyo3_ffi::PyThreadState_Get().cast() }
}

/// `Py_IsFinalizing()` (public from 3.13; `_Py_IsFinalizing` before).
#[inline]
pub fn is_finalizing() -> bool {
    #[cfg(not(Py_3_13))]
    unsafe extern "C" {
        fn _Py_IsFinalizing() -> c_int;
    }
    // SAFETY: reads a runtime flag; callable with or without the GIL.
    #[cfg(not(Py_3_13))]
    let r = unsafe { _Py_IsFinalizing() };
    // SAFETY: as above.
    #[cfg(Py_3_13)]
    let r = unsafe { pyo3_ffi::Py_IsFinalizing() };
    r != 0
}
