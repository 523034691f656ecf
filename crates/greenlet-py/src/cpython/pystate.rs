//! Mirror of `Include/cpython/pystate.h`: `struct _ts` (`PyThreadState`), `_PyCFrame`,
//! `_PyErr_StackItem` and `_PyStackChunk`, for CPython 3.10 to 3.15 (GIL builds).
//!
//! Every field up to the last one any supported version needs is mirrored, gated one by
//! one with the `Py_3_x` cfgs, in header order, so `tools/layout-check` can compare each
//! offset with the real headers. Fields after that point are listed as `// skipped`: patch
//! releases append to this struct (3.13.x and 3.14.x added `datastack_cached_chunk` at the
//! end), so its total size is not a stable fact and nothing here depends on it.

#[cfg(Py_3_12)]
use core::ffi::c_uint;
use core::ffi::{c_int, c_ulong, c_void};
use pyo3_ffi::PyObject;

/// `_PyErr_StackItem`: one entry of the handled-exception stack (`sys.exc_info()`).
/// Since 3.11 (bpo-45711) only the exception value is stored.
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
/// (3.11+, bpo-45829). Chunks come from the object arena allocator.
#[cfg(Py_3_11)]
#[repr(C)]
pub struct StackChunk {
    pub previous: *mut StackChunk,
    pub size: usize,
    pub top: usize,
    // skipped: PyObject *data[1] (flexible array)
}

/// `CFrame` (3.10) / `_PyCFrame` (3.11, 3.12): a record in the C frame of each
/// `_PyEval_EvalFrameDefault` call, linked through `previous`. 3.10 (bpo-43760) moved
/// `use_tracing` here from the thread state; 3.11 added `current_frame`; 3.12 (PEP 669)
/// dropped `use_tracing`; 3.13 (gh-108035) removed the struct.
#[cfg(not(Py_3_13))]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CFrame {
    #[cfg(not(Py_3_11))]
    pub use_tracing: c_int,
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub use_tracing: u8,
    #[cfg(Py_3_11)]
    pub current_frame: *mut crate::cpython::frame::InterpreterFrame,
    pub previous: *mut CFrame,
}

/// `PyTraceInfo` (3.11 only): opaque to us, mirrored for its size.
#[cfg(all(Py_3_11, not(Py_3_12)))]
#[repr(C)]
pub struct TraceInfo {
    pub code: *mut PyObject,
    pub bounds: CodeAddressRange,
}

/// `PyCodeAddressRange` (3.11 only, from `Include/cpython/code.h`).
#[cfg(all(Py_3_11, not(Py_3_12)))]
#[repr(C)]
pub struct CodeAddressRange {
    pub ar_start: c_int,
    pub ar_end: c_int,
    pub ar_line: c_int,
    pub opaque: AddressRangeOpaque,
}

/// `PyCodeAddressRange.opaque` (3.11 only), a nested struct: its own alignment matters.
#[cfg(all(Py_3_11, not(Py_3_12)))]
#[repr(C)]
pub struct AddressRangeOpaque {
    pub computed_line: c_int,
    pub lo_next: *const u8,
    pub limit: *const u8,
}

/// `struct _py_trashcan` (3.12 only: 3.11 had two loose fields, 3.13 keeps only
/// `delete_later`, in the thread state itself).
#[cfg(all(Py_3_12, not(Py_3_13)))]
#[repr(C)]
pub struct Trashcan {
    pub delete_nesting: c_int,
    pub delete_later: *mut PyObject,
}

/// `struct _ts`.
#[repr(C)]
pub struct PyThreadState {
    pub prev: *mut PyThreadState,
    pub next: *mut PyThreadState,
    pub interp: *mut c_void,
    #[cfg(Py_3_13)]
    pub eval_breaker: usize,
    /// The `_status` bit-field struct (one `unsigned int` of bits).
    #[cfg(Py_3_12)]
    pub _status: c_uint,
    #[cfg(Py_3_14)]
    pub holds_gil: c_int,
    #[cfg(Py_3_15)]
    pub gil_requested: c_int,
    #[cfg(Py_3_13)]
    pub _whence: c_int,
    #[cfg(Py_3_13)]
    pub state: c_int,

    /// Borrowed: the running frame (the frames are linked through `f_back`).
    #[cfg(not(Py_3_11))]
    pub frame: *mut pyo3_ffi::PyFrameObject,
    #[cfg(not(Py_3_11))]
    pub recursion_depth: c_int,

    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub _initialized: c_int,
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub _static: c_int,
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub recursion_remaining: c_int,
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub recursion_limit: c_int,

    #[cfg(Py_3_12)]
    pub py_recursion_remaining: c_int,
    #[cfg(Py_3_12)]
    pub py_recursion_limit: c_int,
    /// Removed in 3.14 (gh-130396): C-stack overflow checks became address based.
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    pub c_recursion_remaining: c_int,

    pub recursion_headroom: c_int,
    #[cfg(not(Py_3_11))]
    pub stackcheck_counter: c_int,
    pub tracing: c_int,
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub tracing_what: c_int,
    #[cfg(Py_3_12)]
    pub what_event: c_int,

    #[cfg(not(Py_3_13))]
    pub cframe: *mut CFrame,
    #[cfg(Py_3_13)]
    pub current_frame: *mut crate::cpython::frame::InterpreterFrame,
    #[cfg(Py_3_15)]
    pub base_frame: *mut crate::cpython::frame::InterpreterFrame,
    #[cfg(Py_3_15)]
    pub last_profiled_frame: *mut crate::cpython::frame::InterpreterFrame,
    #[cfg(Py_3_15)]
    pub last_profiled_frame_seq: usize,

    pub c_profilefunc: *mut c_void,
    pub c_tracefunc: *mut c_void,
    pub c_profileobj: *mut PyObject,
    pub c_traceobj: *mut PyObject,

    #[cfg(not(Py_3_12))]
    pub curexc_type: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub curexc_value: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub curexc_traceback: *mut PyObject,
    #[cfg(Py_3_12)]
    pub current_exception: *mut PyObject,

    /// 3.10: the base exception item sits here; 3.11 moved it after the data stack.
    #[cfg(not(Py_3_11))]
    pub exc_state: ErrStackItem,
    pub exc_info: *mut ErrStackItem,
    pub dict: *mut PyObject,
    pub gilstate_counter: c_int,
    pub async_exc: *mut PyObject,
    pub thread_id: c_ulong,
    #[cfg(Py_3_11)]
    pub native_thread_id: c_ulong,

    #[cfg(not(Py_3_12))]
    pub trash_delete_nesting: c_int,
    #[cfg(not(Py_3_12))]
    pub trash_delete_later: *mut PyObject,
    #[cfg(all(Py_3_12, not(Py_3_13)))]
    pub trash: Trashcan,
    /// 3.13 (gh-115491) dropped the nesting counter; objects whose deallocation is
    /// deferred are chained from here.
    #[cfg(Py_3_13)]
    pub delete_later: *mut PyObject,
    /// Tagged pointer to the innermost `PyCriticalSection` (used even on GIL builds).
    #[cfg(Py_3_13)]
    pub critical_section: usize,

    #[cfg(not(Py_3_13))]
    pub on_delete: *mut c_void,
    #[cfg(not(Py_3_13))]
    pub on_delete_data: *mut c_void,

    pub coroutine_origin_tracking_depth: c_int,
    pub async_gen_firstiter: *mut PyObject,
    pub async_gen_finalizer: *mut PyObject,
    pub context: *mut PyObject,
    pub context_ver: u64,
    pub id: u64,

    #[cfg(all(Py_3_11, not(Py_3_12)))]
    pub trace_info: TraceInfo,
    #[cfg(Py_3_11)]
    pub datastack_chunk: *mut StackChunk,
    #[cfg(Py_3_11)]
    pub datastack_top: *mut *mut PyObject,
    #[cfg(Py_3_11)]
    pub datastack_limit: *mut *mut PyObject,
    #[cfg(Py_3_15)]
    pub datastack_cached_chunk: *mut StackChunk,
    #[cfg(Py_3_11)]
    pub exc_state: ErrStackItem,
    #[cfg(not(Py_3_13))]
    pub root_cframe: CFrame,
    // 3.10 to 3.12 end here.
    #[cfg(all(Py_3_13, not(Py_3_14)))]
    pub previous_executor: *mut PyObject,
    /// The JIT/tier-2 executor running in this thread (3.14, greenlet issue #460).
    #[cfg(Py_3_14)]
    pub current_executor: *mut PyObject,
    #[cfg(Py_3_15)]
    pub jit_exit: *mut c_void,
    #[cfg(Py_3_13)]
    pub dict_global_version: u64,
    #[cfg(Py_3_13)]
    pub threading_local_key: *mut PyObject,
    #[cfg(Py_3_13)]
    pub threading_local_sentinel: *mut PyObject,
    // skipped (3.14+): _PyRemoteDebuggerSupport remote_debugger_support
    // skipped (3.13.x, 3.14): _PyStackChunk *datastack_cached_chunk (appended by patch releases)
    // skipped (3.15): PyStats *pystats (Py_STATS builds only), struct ensure
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

/// `PyThreadState_EnterTracing` (3.11+, bpo-43760), with its 3.10 equivalent.
///
/// # Safety
/// `ts` is the current thread state.
#[inline]
pub unsafe fn enter_tracing(ts: *mut PyThreadState) {
    // SAFETY: live current thread state; its cframe is valid while Python runs.
    unsafe {
        #[cfg(not(Py_3_11))]
        {
            (*ts).tracing += 1;
            (*(*ts).cframe).use_tracing = 0;
        }
        #[cfg(Py_3_11)]
        pyo3_ffi::PyThreadState_EnterTracing(ts.cast());
    }
}

/// `PyThreadState_LeaveTracing` (3.11+), with its 3.10 equivalent.
///
/// # Safety
/// `ts` is the current thread state, inside [`enter_tracing`].
#[inline]
pub unsafe fn leave_tracing(ts: *mut PyThreadState) {
    // SAFETY: as for `enter_tracing`.
    unsafe {
        #[cfg(not(Py_3_11))]
        {
            (*ts).tracing -= 1;
            let tracing = !(*ts).c_tracefunc.is_null() || !(*ts).c_profilefunc.is_null();
            (*(*ts).cframe).use_tracing = tracing as c_int;
        }
        #[cfg(Py_3_11)]
        pyo3_ffi::PyThreadState_LeaveTracing(ts.cast());
    }
}
