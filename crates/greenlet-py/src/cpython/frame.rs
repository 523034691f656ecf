//! Mirror of the interpreter-frame structs: `_PyInterpreterFrame` and `struct _frame`
//! (`PyFrameObject`'s layout), from `Include/internal/pycore_frame.h` (3.11 to 3.13) and
//! `Include/internal/pycore_interpframe_structs.h` + `pycore_frame.h` (3.14+).
//!
//! 3.11 (bpo-44590) split frames into these two: the interpreter frame lives in a
//! data-stack chunk (or a generator, or on the C stack for "entry" frames) and the frame
//! object is created lazily. greenlet needs them on 3.12+ to "expose" a suspended
//! greenlet's frames (see `python_state.rs`), and on 3.15 to traverse them.

#[cfg(Py_3_11)]
use core::ffi::c_char;
#[cfg(Py_3_11)]
use core::ffi::c_int;
#[cfg(Py_3_11)]
use pyo3_ffi::PyObject;

use super::mirror::mirrors;

mirrors! {
    // 3.14+: frames hold tagged `_PyStackRef`s instead of object pointers (the stack-ref
    // work towards deferred reference counting, PEP 703).
    #[cfg(Py_3_14)] {
        /// `_PyStackRef` (a union of one member on GIL builds): a tagged object pointer.
        /// The low bit set (`Py_TAG_REFCNT`) means the reference is borrowed or deferred;
        /// both low bits set (`Py_INT_TAG`) means a tagged integer; `bits ==
        /// Py_TAG_REFCNT` is the NULL ref.
        #[mirror(c_type = "_PyStackRef")]
        #[derive(Clone, Copy)]
        pub struct StackRef {
            pub bits: usize,
        }
    }

    // 3.11 (bpo-44590) split frames into the interpreter frame and the lazily created
    // frame object; 3.10 has only `PyFrameObject`, which pyo3-ffi declares.
    #[cfg(Py_3_11)] {
        /// `_PyInterpreterFrame`.
        #[mirror(c_type = "_PyInterpreterFrame")]
        pub struct InterpreterFrame {
            // 3.11 (the frame split, bpo-44590): function, namespaces, code object and
            // frame object, then the `previous` link.
            #[cfg(not(Py_3_12))] {
                pub f_func: *mut PyObject,
                pub f_globals: *mut PyObject,
                pub f_builtins: *mut PyObject,
                pub f_locals: *mut PyObject,
                pub f_code: *mut PyObject,
                pub frame_obj: *mut FrameObject,
            }
            // 3.12 reordered the struct: code object and `previous` link first, then
            // the function (`f_funcobj`, NULL-able for frames on the C stack), the
            // namespaces and the frame object.
            #[cfg(all(Py_3_12, not(Py_3_13)))] {
                pub f_code: *mut PyObject,
            }
            // 3.13: the code object became `f_executable` ("code object or None");
            // 3.14 holds it, and the function, as a `StackRef`.
            #[cfg(all(Py_3_13, not(Py_3_14)))] {
                pub f_executable: *mut PyObject,
            }
            #[cfg(Py_3_14)] {
                pub f_executable: StackRef,
            }
            pub previous: *mut InterpreterFrame,
            #[cfg(all(Py_3_12, not(Py_3_14)))] {
                pub f_funcobj: *mut PyObject,
            }
            #[cfg(Py_3_14)] {
                pub f_funcobj: StackRef,
            }
            // 3.12+: after the function (see the 3.12 note above).
            #[cfg(Py_3_12)] {
                pub f_globals: *mut PyObject,
                pub f_builtins: *mut PyObject,
                pub f_locals: *mut PyObject,
                pub frame_obj: *mut FrameObject,
            }
            // 3.13 points at the next instruction rather than the previous one.
            #[cfg(not(Py_3_13))] {
                pub prev_instr: *mut u16,
            }
            #[cfg(Py_3_13)] {
                pub instr_ptr: *mut u16,
            }
            // 3.14 replaces the stack depth by a pointer to the stack top.
            #[cfg(not(Py_3_14))] {
                pub stacktop: c_int,
            }
            #[cfg(Py_3_14)] {
                pub stackpointer: *mut StackRef,
            }
            // skipped tlbc_index (free-threaded 3.14+): int32_t
            // 3.12 dropped the entry flag (entry frames are their own owner kind) and
            // records where to resume the caller.
            #[cfg(not(Py_3_12))] {
                pub is_entry: bool,
            }
            #[cfg(Py_3_12)] {
                pub return_offset: u16,
            }
            pub owner: c_char,
            // 3.14: a GC mark byte; on debug builds it shares the byte with `lltrace` as
            // bit-fields, which `offsetof` cannot name.
            #[cfg(all(Py_3_14, not(py_sys_config = "Py_DEBUG")))] {
                pub visited: u8,
            }
            #[cfg(all(Py_3_14, py_sys_config = "Py_DEBUG"))] {
                /// `visited:1` and `lltrace:7`.
                #[unchecked = "a bit-field on debug builds (`offsetof` cannot name it)"]
                pub visited: u8,
            }
            // `localsplus[1]`: the locals, then the evaluation stack.
            #[cfg(not(Py_3_14))] {
                pub localsplus: [*mut PyObject; 1],
            }
            #[cfg(Py_3_14)] {
                pub localsplus: [StackRef; 1],
            }
        }
    }

    // 3.11+ (bpo-44590): the frame object wraps an interpreter frame.
    #[cfg(Py_3_11)] {
        /// `struct _frame`, the layout behind `PyFrameObject`.
        #[mirror(c_type = "struct _frame")]
        pub struct FrameObject {
            pub ob_base: PyObject,
            pub f_back: *mut FrameObject,
            pub f_frame: *mut InterpreterFrame,
            pub f_trace: *mut PyObject,
            pub f_lineno: c_int,
            pub f_trace_lines: c_char,
            pub f_trace_opcodes: c_char,
            // 3.13 (PEP 667): `frame.f_locals` became a write-through proxy; the
            // fast-to-locals flag gave way to a dict of extra locals and a cache kept
            // for `PyEval_GetLocals`'s compatibility.
            #[cfg(not(Py_3_13))] {
                pub f_fast_as_locals: c_char,
            }
            #[cfg(Py_3_13)] {
                pub f_extra_locals: *mut PyObject,
                pub f_locals_cache: *mut PyObject,
            }
            // 3.14: fast locals overwritten through the proxy, kept alive.
            #[cfg(Py_3_14)] {
                pub f_overwritten_fast_locals: *mut PyObject,
            }
            /// Storage for the interpreter frame once the frame object owns it (after
            /// the call returned); unused while the frame runs.
            pub _f_frame_data: [*mut PyObject; 1],
        }
    }
}

#[cfg(Py_3_14)]
impl StackRef {
    const TAG_REFCNT: usize = 1;
    const TAG_BITS: usize = 3;

    /// `PyStackRef_IsNullOrInt` on GIL builds: nothing for the GC to see.
    pub fn is_null_or_int(self) -> bool {
        self.bits == Self::TAG_REFCNT || self.bits & Self::TAG_BITS == Self::TAG_BITS
    }

    /// `PyStackRef_RefcountOnObject`: the reference owns a count on the object.
    pub fn owns_reference(self) -> bool {
        self.bits & Self::TAG_REFCNT == 0
    }

    pub fn as_ptr(self) -> *mut PyObject {
        (self.bits & !Self::TAG_BITS) as *mut PyObject
    }

    pub const NULL: Self = Self {
        bits: Self::TAG_REFCNT,
    };
}

/// `enum _frameowner` (the same values on 3.11-3.15): the frame is a function call of
/// the thread.
#[cfg(Py_3_11)]
pub const FRAME_OWNED_BY_THREAD: c_char = 0;
/// The frame lives inside a generator or coroutine object.
#[cfg(Py_3_11)]
pub const FRAME_OWNED_BY_GENERATOR: c_char = 1;

/// The frame object of `frame` if it has one, else null.
///
/// Only frames owned by the thread or by a generator are looked at: from 3.12 on a frame
/// chain also holds the C-stack "entry" frames of eval loops, whose `frame_obj` is never
/// initialised. A frame that has a frame object is complete (objects are only ever made
/// for complete frames).
///
/// # Safety
/// `frame` is null or a live interpreter frame (or one still in place on the C stack).
#[cfg(Py_3_11)]
#[inline(always)]
pub unsafe fn frame_object_of(frame: *mut InterpreterFrame) -> *mut FrameObject {
    if frame.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `frame` is a live frame (contract; not null), and `owner` is initialised in
    // every frame.
    let owner = unsafe { (*frame).owner };
    if !matches!(owner, FRAME_OWNED_BY_THREAD | FRAME_OWNED_BY_GENERATOR) {
        return core::ptr::null_mut();
    }
    // SAFETY: a live frame owned by a thread or a generator, whose `frame_obj` is always
    // initialised (null or its frame object).
    unsafe { (*frame).frame_obj }
}
