//! The Rust half of the layout check: `offset_of!`/`size_of` of every field we mirror
//! from CPython, as lines `offset|<C type>|<C field>|<bytes>` and `size|<C type>|<bytes>`.
//!
//! Built as a cdylib against one interpreter (`PYO3_PYTHON`) and loaded into that
//! interpreter with ctypes by `run.sh`, which also turns the same lines into a C program
//! of `offsetof`/`sizeof` compiled against the interpreter's headers, and diffs the two
//! outputs. (A cdylib, not a binary: it needs no libpython at link time, so it works for
//! interpreters whose libpython cannot be loaded by the host's dynamic loader.)

#[cfg(Py_3_11)]
use _greenlet::cpython::frame;
use _greenlet::cpython::pystate;
use core::fmt::Write;
use std::ffi::{CString, c_char};
use std::sync::OnceLock;

/// Prints the offset of each listed field of `$t`, spelled `$cty` in C. A field may carry
/// `#[cfg]` attributes, mirroring the gates on the struct.
macro_rules! offsets {
    ($out:ident, $cty:literal, $t:ty, [$($(#[$m:meta])* $($f:ident).+),* $(,)?]) => {
        $(
            $(#[$m])*
            writeln!(
                $out,
                "offset|{}|{}|{}",
                $cty,
                stringify!($($f).+).replace(' ', ""),
                core::mem::offset_of!($t, $($f).+)
            )
            .unwrap();
        )*
    };
}

macro_rules! size {
    ($out:ident, $cty:literal, $t:ty) => {
        writeln!($out, "size|{}|{}", $cty, core::mem::size_of::<$t>()).unwrap();
    };
}

fn table() -> String {
    let mut o = String::new();
    offsets!(
        o,
        "_PyErr_StackItem",
        pystate::ErrStackItem,
        [
            #[cfg(not(Py_3_11))]
            exc_type,
            exc_value,
            #[cfg(not(Py_3_11))]
            exc_traceback,
            previous_item,
        ]
    );
    size!(o, "_PyErr_StackItem", pystate::ErrStackItem);

    #[cfg(Py_3_11)]
    offsets!(
        o,
        "_PyStackChunk",
        pystate::StackChunk,
        [previous, size, top]
    );

    #[cfg(not(Py_3_11))]
    {
        offsets!(o, "CFrame", pystate::CFrame, [use_tracing, previous]);
        size!(o, "CFrame", pystate::CFrame);
    }
    #[cfg(all(Py_3_11, not(Py_3_13)))]
    {
        offsets!(
            o,
            "_PyCFrame",
            pystate::CFrame,
            [
                #[cfg(not(Py_3_12))]
                use_tracing,
                current_frame,
                previous,
            ]
        );
        size!(o, "_PyCFrame", pystate::CFrame);
    }
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    {
        offsets!(
            o,
            "PyTraceInfo",
            pystate::TraceInfo,
            [
                code,
                bounds.ar_start,
                bounds.ar_end,
                bounds.ar_line,
                bounds.opaque.computed_line,
                bounds.opaque.lo_next,
                bounds.opaque.limit,
            ]
        );
        size!(o, "PyTraceInfo", pystate::TraceInfo);
    }
    #[cfg(all(Py_3_12, not(Py_3_13)))]
    {
        offsets!(
            o,
            "struct _py_trashcan",
            pystate::Trashcan,
            [delete_nesting, delete_later]
        );
        size!(o, "struct _py_trashcan", pystate::Trashcan);
    }

    offsets!(
        o,
        "PyThreadState",
        pystate::PyThreadState,
        [
            prev,
            next,
            interp,
            #[cfg(Py_3_13)]
            eval_breaker,
            #[cfg(Py_3_12)]
            _status,
            #[cfg(Py_3_14)]
            holds_gil,
            #[cfg(Py_3_15)]
            gil_requested,
            #[cfg(Py_3_13)]
            _whence,
            #[cfg(Py_3_13)]
            state,
            #[cfg(not(Py_3_11))]
            frame,
            #[cfg(not(Py_3_11))]
            recursion_depth,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            _initialized,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            _static,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            recursion_remaining,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            recursion_limit,
            #[cfg(Py_3_12)]
            py_recursion_remaining,
            #[cfg(Py_3_12)]
            py_recursion_limit,
            #[cfg(all(Py_3_12, not(Py_3_14)))]
            c_recursion_remaining,
            recursion_headroom,
            #[cfg(not(Py_3_11))]
            stackcheck_counter,
            tracing,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            tracing_what,
            #[cfg(Py_3_12)]
            what_event,
            #[cfg(not(Py_3_13))]
            cframe,
            #[cfg(Py_3_13)]
            current_frame,
            #[cfg(Py_3_15)]
            base_frame,
            #[cfg(Py_3_15)]
            last_profiled_frame,
            #[cfg(Py_3_15)]
            last_profiled_frame_seq,
            c_profilefunc,
            c_tracefunc,
            c_profileobj,
            c_traceobj,
            #[cfg(not(Py_3_12))]
            curexc_type,
            #[cfg(not(Py_3_12))]
            curexc_value,
            #[cfg(not(Py_3_12))]
            curexc_traceback,
            #[cfg(Py_3_12)]
            current_exception,
            exc_state,
            exc_info,
            dict,
            gilstate_counter,
            async_exc,
            thread_id,
            #[cfg(Py_3_11)]
            native_thread_id,
            #[cfg(not(Py_3_12))]
            trash_delete_nesting,
            #[cfg(not(Py_3_12))]
            trash_delete_later,
            #[cfg(all(Py_3_12, not(Py_3_13)))]
            trash,
            #[cfg(Py_3_13)]
            delete_later,
            #[cfg(Py_3_13)]
            critical_section,
            #[cfg(not(Py_3_13))]
            on_delete,
            #[cfg(not(Py_3_13))]
            on_delete_data,
            coroutine_origin_tracking_depth,
            async_gen_firstiter,
            async_gen_finalizer,
            context,
            context_ver,
            id,
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            trace_info,
            #[cfg(Py_3_11)]
            datastack_chunk,
            #[cfg(Py_3_11)]
            datastack_top,
            #[cfg(Py_3_11)]
            datastack_limit,
            #[cfg(Py_3_15)]
            datastack_cached_chunk,
            #[cfg(not(Py_3_13))]
            root_cframe,
            #[cfg(all(Py_3_13, not(Py_3_14)))]
            previous_executor,
            #[cfg(Py_3_14)]
            current_executor,
            #[cfg(Py_3_15)]
            jit_exit,
            #[cfg(Py_3_13)]
            dict_global_version,
            #[cfg(Py_3_13)]
            threading_local_key,
            #[cfg(Py_3_13)]
            threading_local_sentinel,
        ]
    );
    // Up to 3.12 the mirror is complete; later patch releases append fields.
    #[cfg(not(Py_3_13))]
    size!(o, "PyThreadState", pystate::PyThreadState);

    #[cfg(Py_3_11)]
    {
        offsets!(
            o,
            "_PyInterpreterFrame",
            frame::InterpreterFrame,
            [
                #[cfg(not(Py_3_12))]
                f_func,
                #[cfg(not(Py_3_13))]
                f_code,
                #[cfg(Py_3_13)]
                f_executable,
                previous,
                #[cfg(Py_3_12)]
                f_funcobj,
                f_globals,
                f_builtins,
                f_locals,
                frame_obj,
                #[cfg(not(Py_3_13))]
                prev_instr,
                #[cfg(Py_3_13)]
                instr_ptr,
                #[cfg(not(Py_3_14))]
                stacktop,
                #[cfg(Py_3_14)]
                stackpointer,
                #[cfg(not(Py_3_12))]
                is_entry,
                #[cfg(Py_3_12)]
                return_offset,
                owner,
                localsplus,
            ]
        );
        size!(o, "_PyInterpreterFrame", frame::InterpreterFrame);
        offsets!(
            o,
            "struct _frame",
            frame::FrameObject,
            [
                f_back,
                f_frame,
                f_trace,
                f_lineno,
                f_trace_lines,
                f_trace_opcodes,
                #[cfg(not(Py_3_13))]
                f_fast_as_locals,
                #[cfg(Py_3_13)]
                f_extra_locals,
                #[cfg(Py_3_13)]
                f_locals_cache,
                #[cfg(Py_3_14)]
                f_overwritten_fast_locals,
                _f_frame_data,
            ]
        );
        size!(o, "struct _frame", frame::FrameObject);
    }

    #[cfg(Py_3_13)]
    {
        use _greenlet::cpython::debug_offsets::DebugOffsets;
        offsets!(
            o,
            "_Py_DebugOffsets",
            DebugOffsets,
            [
                cookie,
                version,
                free_threaded,
                runtime_state.size,
                runtime_state.finalizing,
                runtime_state.interpreters_head,
                interpreter_state,
                interpreter_state.gil_runtime_state_holder,
                thread_state,
                thread_state.current_frame,
                thread_state.datastack_chunk,
                thread_state.status,
                #[cfg(Py_3_15)]
                thread_state.exc_state,
                #[cfg(Py_3_15)]
                err_stackitem.exc_value,
                interpreter_frame,
                interpreter_frame.previous,
                interpreter_frame.owner,
                #[cfg(Py_3_14)]
                interpreter_frame.stackpointer,
            ]
        );
    }
    o
}

/// The table, for ctypes.
#[unsafe(no_mangle)]
pub extern "C" fn layout_check_table() -> *const c_char {
    static TABLE: OnceLock<CString> = OnceLock::new();
    TABLE
        .get_or_init(|| CString::new(table()).expect("no NUL in the table"))
        .as_ptr()
}
