//! Mirror of `Include/cpython/pystate.h`: `struct _ts` (`PyThreadState`), `_PyCFrame`,
//! `_PyErr_StackItem` and `_PyStackChunk`, for CPython 3.10 to 3.15 (GIL builds).
//!
//! Every field up to the last one any supported version needs is mirrored, in header
//! order, in version groups declared with [`mirrors!`](super::mirror), so that
//! `tools/layout-check` compares each offset with the real headers. Fields after that
//! point are listed as `// skipped`: patch releases append to this struct (3.13.x and
//! 3.14.x added `datastack_cached_chunk` at the end), so its total size is not a stable
//! fact and nothing here depends on it.

#[cfg(Py_3_12)]
use core::ffi::c_uint;
use core::ffi::{c_int, c_ulong, c_void};
use pyo3_ffi::PyObject;

use super::mirror::mirrors;

mirrors! {
    /// `_PyErr_StackItem`: one entry of the handled-exception stack (`sys.exc_info()`).
    #[mirror(c_type = "_PyErr_StackItem")]
    #[derive(Clone, Copy)]
    pub struct ErrStackItem {
        // 3.10 only: 3.11 (bpo-45711) stores just the exception value; its type and
        // traceback are read from the value.
        #[cfg(not(Py_3_11))] {
            pub exc_type: *mut PyObject,
        }
        pub exc_value: *mut PyObject,
        // 3.10 only (as `exc_type`).
        #[cfg(not(Py_3_11))] {
            pub exc_traceback: *mut PyObject,
        }
        pub previous_item: *mut ErrStackItem,
    }

    // 3.11+: the data stack (bpo-45829). Interpreter frames live in chunks of a
    // per-thread stack instead of separately allocated frame objects.
    #[cfg(Py_3_11)] {
        /// `_PyStackChunk`: a chunk of the per-thread data stack that holds interpreter
        /// frames. Chunks come from the object arena allocator.
        #[mirror(
            c_type = "_PyStackChunk",
            size_unchecked = "the flexible `data[]` array is not mirrored: it starts at \
                              `size_of::<StackChunk>()`, where `chunk.add(1)` points"
        )]
        pub struct StackChunk {
            pub previous: *mut StackChunk,
            pub size: usize,
            pub top: usize,
            // skipped data (PyObject *data[1]): the flexible array, see the size note
        }
    }

    // 3.10 to 3.12: the C frame record. 3.13 (gh-108035) removed the struct: the
    // thread state points at the current interpreter frame directly.
    #[cfg(not(Py_3_13))] {
        /// `CFrame` (3.10) / `_PyCFrame` (3.11, 3.12): a record in the C frame of each
        /// `_PyEval_EvalFrameDefault` call, linked through `previous`.
        #[mirror(c_type = if cfg!(Py_3_11) { "_PyCFrame" } else { "CFrame" })]
        #[derive(Clone, Copy)]
        pub struct CFrame {
            // 3.10 (bpo-43760) moved `use_tracing` here from the thread state, as an int.
            #[cfg(not(Py_3_11))] {
                pub use_tracing: c_int,
            }
            // 3.11 made it a byte and added `current_frame` (the frame split,
            // bpo-44590); 3.12 (PEP 669, sys.monitoring) dropped `use_tracing`.
            #[cfg(all(Py_3_11, not(Py_3_12)))] {
                pub use_tracing: u8,
            }
            #[cfg(Py_3_11)] {
                pub current_frame: *mut crate::cpython::frame::InterpreterFrame,
            }
            pub previous: *mut CFrame,
        }
    }

    // 3.11 only: the line-number cache of the tracing machinery, embedded in the
    // thread state; 3.12 (PEP 669) removed it. Opaque to us, mirrored for its size.
    #[cfg(all(Py_3_11, not(Py_3_12)))] {
        /// `PyTraceInfo`.
        #[mirror(c_type = "PyTraceInfo")]
        pub struct TraceInfo {
            pub code: *mut PyObject,
            pub bounds: CodeAddressRange,
        }

        /// `PyCodeAddressRange` (from `Include/cpython/code.h`).
        #[mirror(c_type = "PyCodeAddressRange")]
        pub struct CodeAddressRange {
            pub ar_start: c_int,
            pub ar_end: c_int,
            pub ar_line: c_int,
            pub opaque: AddressRangeOpaque,
        }

        /// `struct _opaque`, nested in `PyCodeAddressRange`: its own alignment matters.
        #[mirror(c_type = "struct _opaque")]
        pub struct AddressRangeOpaque {
            pub computed_line: c_int,
            pub lo_next: *const u8,
            pub limit: *const u8,
        }
    }

    // 3.12 only: 3.11's two loose trashcan fields became this struct; 3.13 (gh-115491)
    // keeps only `delete_later`, in the thread state itself.
    #[cfg(all(Py_3_12, not(Py_3_13)))] {
        /// `struct _py_trashcan`.
        #[mirror(c_type = "struct _py_trashcan")]
        pub struct Trashcan {
            pub delete_nesting: c_int,
            pub delete_later: *mut PyObject,
        }
    }

    /// `struct _ts`.
    #[mirror(
        c_type = "PyThreadState",
        size_unchecked(Py_3_13) = "3.13.x and 3.14.x patch releases append fields, so \
                                   the total size is not a stable fact; nothing needs it"
    )]
    pub struct PyThreadState {
        pub prev: *mut PyThreadState,
        pub next: *mut PyThreadState,
        pub interp: *mut c_void,
        // 3.13: the eval-breaker word (instrumentation version plus break-out flags) is
        // kept per thread rather than per interpreter.
        #[cfg(Py_3_13)] {
            pub eval_breaker: usize,
        }
        // 3.12: 3.11's `_initialized`/`_static` ints became the `_status` bit-field
        // struct, which tracks the thread state's whole lifecycle (initialized, bound,
        // active, finalizing, ...).
        #[cfg(Py_3_12)] {
            /// The `_status` bit-field struct (one `unsigned int` of bits).
            pub _status: c_uint,
        }
        // 3.14: whether this thread holds the GIL, in a field of its own (to avoid data
        // races).
        #[cfg(Py_3_14)] {
            pub holds_gil: c_int,
        }
        // 3.15: and whether it is waiting for it.
        #[cfg(Py_3_15)] {
            pub gil_requested: c_int,
        }
        // 3.13: how the thread state was created (`_PyThreadState_WHENCE_*`), and its
        // attached/detached/suspended state (the attach/detach model from PEP 703).
        #[cfg(Py_3_13)] {
            pub _whence: c_int,
            pub state: c_int,
        }

        // 3.10 only: the frame object chain and the recursion counter. 3.11 (bpo-44590)
        // reaches frames through `cframe` and counts recursion down.
        #[cfg(not(Py_3_11))] {
            /// Borrowed: the running frame (the frames are linked through `f_back`).
            pub frame: *mut pyo3_ffi::PyFrameObject,
            pub recursion_depth: c_int,
        }
        // 3.11 only: lifecycle ints (see `_status`) and the countdown recursion limit.
        #[cfg(all(Py_3_11, not(Py_3_12)))] {
            pub _initialized: c_int,
            pub _static: c_int,
            pub recursion_remaining: c_int,
            pub recursion_limit: c_int,
        }
        // 3.12: Python and C recursion are counted separately (gh-91079).
        #[cfg(Py_3_12)] {
            pub py_recursion_remaining: c_int,
            pub py_recursion_limit: c_int,
        }
        // 3.12, 3.13: 3.14 (gh-130396) checks C-stack overflow by address instead.
        #[cfg(all(Py_3_12, not(Py_3_14)))] {
            pub c_recursion_remaining: c_int,
        }
        pub recursion_headroom: c_int,
        // 3.10 only: the `USE_STACKCHECK` counter, dropped with the 3.11 rework.
        #[cfg(not(Py_3_11))] {
            pub stackcheck_counter: c_int,
        }
        pub tracing: c_int,
        // 3.11 `tracing_what` became 3.12's `what_event` (PEP 669).
        #[cfg(all(Py_3_11, not(Py_3_12)))] {
            pub tracing_what: c_int,
        }
        #[cfg(Py_3_12)] {
            pub what_event: c_int,
        }

        // 3.10 to 3.12 point at the C frame record; 3.13 (gh-108035) removed it and
        // points at the current interpreter frame.
        #[cfg(not(Py_3_13))] {
            pub cframe: *mut CFrame,
        }
        #[cfg(Py_3_13)] {
            pub current_frame: *mut crate::cpython::frame::InterpreterFrame,
        }
        // 3.15: the bottommost sentinel frame (so profilers can tell an unwinding is
        // complete) and the sampling profiler's bookmarks.
        #[cfg(Py_3_15)] {
            pub base_frame: *mut crate::cpython::frame::InterpreterFrame,
            pub last_profiled_frame: *mut crate::cpython::frame::InterpreterFrame,
            pub last_profiled_frame_seq: usize,
        }

        pub c_profilefunc: *mut c_void,
        pub c_tracefunc: *mut c_void,
        pub c_profileobj: *mut PyObject,
        pub c_traceobj: *mut PyObject,

        // 3.10, 3.11: the raised exception as a (type, value, traceback) triple; 3.12
        // (gh-101578) keeps only the normalized exception.
        #[cfg(not(Py_3_12))] {
            pub curexc_type: *mut PyObject,
            pub curexc_value: *mut PyObject,
            pub curexc_traceback: *mut PyObject,
        }
        #[cfg(Py_3_12)] {
            pub current_exception: *mut PyObject,
        }

        // 3.10: the base exception item sits here; 3.11 moved it after the data stack.
        #[cfg(not(Py_3_11))] {
            pub exc_state: ErrStackItem,
        }
        pub exc_info: *mut ErrStackItem,
        pub dict: *mut PyObject,
        pub gilstate_counter: c_int,
        pub async_exc: *mut PyObject,
        pub thread_id: c_ulong,
        // 3.11: the OS thread id, next to the pthread one.
        #[cfg(Py_3_11)] {
            pub native_thread_id: c_ulong,
        }

        // The trashcan (deferred deallocation of deep structures): two loose fields up
        // to 3.11, a struct in 3.12 (see `Trashcan`), only the chain from 3.13
        // (gh-115491).
        #[cfg(not(Py_3_12))] {
            pub trash_delete_nesting: c_int,
            pub trash_delete_later: *mut PyObject,
        }
        #[cfg(all(Py_3_12, not(Py_3_13)))] {
            pub trash: Trashcan,
        }
        #[cfg(Py_3_13)] {
            /// Objects whose deallocation is deferred are chained from here.
            pub delete_later: *mut PyObject,
            /// 3.13 (PEP 703): tagged pointer to the innermost `PyCriticalSection`;
            /// present, and always zero, on GIL builds.
            pub critical_section: usize,
        }

        // 3.10 to 3.12: the `threading` module's deletion callback; 3.13 tracks thread
        // ends otherwise and removed it.
        #[cfg(not(Py_3_13))] {
            pub on_delete: *mut c_void,
            pub on_delete_data: *mut c_void,
        }

        pub coroutine_origin_tracking_depth: c_int,
        pub async_gen_firstiter: *mut PyObject,
        pub async_gen_finalizer: *mut PyObject,
        pub context: *mut PyObject,
        pub context_ver: u64,
        pub id: u64,

        // 3.11 only (see `TraceInfo`).
        #[cfg(all(Py_3_11, not(Py_3_12)))] {
            pub trace_info: TraceInfo,
        }
        // 3.11+: the data stack (bpo-45829, see `StackChunk`).
        #[cfg(Py_3_11)] {
            pub datastack_chunk: *mut StackChunk,
            pub datastack_top: *mut *mut PyObject,
            pub datastack_limit: *mut *mut PyObject,
        }
        // 3.15: a spare chunk kept for reuse (3.13.x and 3.14.x patch releases append it
        // at the end instead; not mirrored there).
        #[cfg(Py_3_15)] {
            pub datastack_cached_chunk: *mut StackChunk,
        }
        // 3.11+: the base exception item, moved here from after `curexc_*`.
        #[cfg(Py_3_11)] {
            pub exc_state: ErrStackItem,
        }
        // 3.10 to 3.12: the C frame record of the thread's outermost frame.
        #[cfg(not(Py_3_13))] {
            pub root_cframe: CFrame,
        }
        // 3.10 to 3.12 end here.

        // Tier-2/JIT executors: 3.13 records the previous one, 3.14 the one running
        // (greenlet issue #460).
        #[cfg(all(Py_3_13, not(Py_3_14)))] {
            pub previous_executor: *mut PyObject,
        }
        #[cfg(Py_3_14)] {
            /// The JIT/tier-2 executor running in this thread.
            pub current_executor: *mut PyObject,
        }
        // 3.15: JIT-internal side-exit data.
        #[cfg(Py_3_15)] {
            pub jit_exit: *mut c_void,
        }
        // 3.13: the dict-watcher version counter and `threading.local` cleanup keys.
        #[cfg(Py_3_13)] {
            pub dict_global_version: u64,
            pub threading_local_key: *mut PyObject,
            pub threading_local_sentinel: *mut PyObject,
        }
        // skipped remote_debugger_support (3.14+): _PyRemoteDebuggerSupport
        // skipped datastack_cached_chunk (3.13.x, 3.14.x): appended by patch releases
        // skipped pystats (3.15, Py_STATS builds only), ensure (3.15)
    }
}

impl ErrStackItem {
    /// No exception, and nothing below.
    // SAFETY: every field is a raw pointer, for which all-zero (null) is valid.
    pub const EMPTY: Self = unsafe { core::mem::zeroed() };
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
    crate::cpython::libpython::extern_libpython! {
        fn _Py_IsFinalizing() -> c_int;
    }
    // SAFETY: reads a runtime flag; callable with or without the GIL.
    #[cfg(not(Py_3_13))]
    let r = unsafe { _Py_IsFinalizing() };
    // SAFETY: reads a runtime flag; documented as callable with or without the GIL.
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
    #[cfg(not(Py_3_11))]
    {
        // SAFETY: `ts` is the live current thread state (contract), touched by no one
        // else while this thread runs.
        let ts = unsafe { &mut *ts };
        ts.tracing += 1;
        // SAFETY: on 3.10 `cframe` is the record of the innermost running eval loop,
        // valid while Python runs on this thread.
        unsafe { (*ts.cframe).use_tracing = 0 };
    }
    // SAFETY: `ts` is the current thread state (contract).
    #[cfg(Py_3_11)]
    unsafe {
        pyo3_ffi::PyThreadState_EnterTracing(ts.cast())
    };
}

/// `PyThreadState_LeaveTracing` (3.11+), with its 3.10 equivalent.
///
/// # Safety
/// `ts` is the current thread state, inside [`enter_tracing`].
#[inline]
pub unsafe fn leave_tracing(ts: *mut PyThreadState) {
    #[cfg(not(Py_3_11))]
    {
        // SAFETY: `ts` is the live current thread state (contract), touched by no one
        // else while this thread runs.
        let ts = unsafe { &mut *ts };
        ts.tracing -= 1;
        let tracing = !ts.c_tracefunc.is_null() || !ts.c_profilefunc.is_null();
        // SAFETY: on 3.10 `cframe` is the record of the innermost running eval loop,
        // valid while Python runs on this thread.
        unsafe { (*ts.cframe).use_tracing = tracing as c_int };
    }
    // SAFETY: `ts` is the current thread state, inside `enter_tracing` (contract).
    #[cfg(Py_3_11)]
    unsafe {
        pyo3_ffi::PyThreadState_LeaveTracing(ts.cast())
    };
}
