//! Mirror of `_Py_DebugOffsets` (3.13+): the table of struct offsets CPython publishes
//! at the start of `_PyRuntime` for out-of-process debuggers and profilers
//! (`Include/internal/pycore_runtime.h` in 3.13, `pycore_debug_offsets.h` from 3.14).
//!
//! We read it in-process at import time (`selfcheck.rs`) to confirm that the running
//! interpreter agrees with the layouts we were compiled with. Only the prefix up to the
//! interpreter-frame section is mirrored; everything after it is skipped.

use super::mirror::mirrors;

/// The cookie that starts the table.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

mirrors! {
    /// `struct _runtime_state`: offsets into `_PyRuntimeState`.
    #[mirror(c_type = "struct _runtime_state")]
    #[derive(Clone, Copy)]
    pub struct RuntimeStateOffsets {
        pub size: u64,
        pub finalizing: u64,
        pub interpreters_head: u64,
    }

    /// `struct _interpreter_state`: offsets into `PyInterpreterState`.
    #[mirror(c_type = "struct _interpreter_state")]
    #[derive(Clone, Copy)]
    pub struct InterpreterStateOffsets {
        pub size: u64,
        pub id: u64,
        pub next: u64,
        pub threads_head: u64,
        // 3.14: the main thread, for remote debuggers attaching to it.
        #[cfg(Py_3_14)] {
            pub threads_main: u64,
        }
        pub gc: u64,
        pub imports_modules: u64,
        pub sysdict: u64,
        pub builtins: u64,
        pub ceval_gil: u64,
        pub gil_runtime_state: u64,
        pub gil_runtime_state_enabled: u64,
        pub gil_runtime_state_locked: u64,
        pub gil_runtime_state_holder: u64,
        // 3.14: generation counters that tell a remote reader its caches are stale.
        #[cfg(Py_3_14)] {
            pub code_object_generation: u64,
            pub tlbc_generation: u64,
        }
    }

    /// `struct _thread_state`: offsets into `PyThreadState`.
    #[mirror(c_type = "struct _thread_state")]
    #[derive(Clone, Copy)]
    pub struct ThreadStateOffsets {
        pub size: u64,
        pub prev: u64,
        pub next: u64,
        pub interp: u64,
        pub current_frame: u64,
        // 3.15: the new frame-chain fields of the thread state (see `PyThreadState`).
        #[cfg(Py_3_15)] {
            pub base_frame: u64,
            pub last_profiled_frame: u64,
            pub last_profiled_frame_seq: u64,
        }
        pub thread_id: u64,
        pub native_thread_id: u64,
        pub datastack_chunk: u64,
        pub status: u64,
        // 3.15: GIL ownership and the exception state, for the sampling profiler.
        #[cfg(Py_3_15)] {
            pub holds_gil: u64,
            pub gil_requested: u64,
            pub current_exception: u64,
            pub exc_state: u64,
        }
    }

    // 3.15: offsets into `_PyErr_StackItem`. The section is an untagged struct, so C
    // can only name its type through the member.
    #[cfg(Py_3_15)] {
        /// The `err_stackitem` section.
        #[mirror(c_type = "__typeof__(((_Py_DebugOffsets *)0)->err_stackitem)")]
        #[derive(Clone, Copy)]
        pub struct ErrStackItemOffsets {
            pub exc_value: u64,
        }
    }

    /// `struct _interpreter_frame`: offsets into `_PyInterpreterFrame`.
    #[mirror(c_type = "struct _interpreter_frame")]
    #[derive(Clone, Copy)]
    pub struct InterpreterFrameOffsets {
        pub size: u64,
        pub previous: u64,
        pub executable: u64,
        pub instr_ptr: u64,
        pub localsplus: u64,
        pub owner: u64,
        // 3.14: the stack pointer that replaced `stacktop`, and the free-threaded
        // per-thread bytecode index.
        #[cfg(Py_3_14)] {
            pub stackpointer: u64,
            pub tlbc_index: u64,
        }
    }

    /// `_Py_DebugOffsets`, up to its interpreter-frame section.
    #[mirror(
        c_type = "_Py_DebugOffsets",
        size_unchecked = "only the prefix up to the interpreter-frame section is mirrored"
    )]
    #[derive(Clone, Copy)]
    pub struct DebugOffsets {
        pub cookie: [u8; 8],
        /// `PY_VERSION_HEX` of the runtime.
        pub version: u64,
        pub free_threaded: u64,
        pub runtime_state: RuntimeStateOffsets,
        pub interpreter_state: InterpreterStateOffsets,
        pub thread_state: ThreadStateOffsets,
        // 3.15: the exception-state section, before the frame section.
        #[cfg(Py_3_15)] {
            pub err_stackitem: ErrStackItemOffsets,
        }
        pub interpreter_frame: InterpreterFrameOffsets,
        // skipped code_object, pyobject, type_object, tuple_object, ... (not used)
    }
}

crate::cpython::libpython::extern_libpython! {
    /// `_PyRuntime`, whose first member is `debug_offsets` (kept first on purpose so
    /// that debuggers find it).
    #[link_name = "_PyRuntime"]
    static PY_RUNTIME: DebugOffsets;
}

/// The running interpreter's table.
pub fn runtime_debug_offsets() -> DebugOffsets {
    // SAFETY: `_PyRuntime` is a static of libpython, initialised at compile time, and
    // `debug_offsets` is its first member; we only read the mirrored prefix.
    unsafe { core::ptr::addr_of!(PY_RUNTIME).read() }
}
