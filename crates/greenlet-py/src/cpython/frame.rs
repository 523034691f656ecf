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

/// `_PyStackRef` (3.14+): a tagged object pointer. On GIL builds the low bit set
/// (`Py_TAG_REFCNT`) means the reference is borrowed or deferred; both low bits set
/// (`Py_INT_TAG`) means a tagged integer; `bits == Py_TAG_REFCNT` is the NULL ref.
#[cfg(Py_3_14)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StackRef {
    pub bits: usize,
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

/// `_PyInterpreterFrame`.
#[cfg(Py_3_11)]
#[repr(C)]
pub struct InterpreterFrame {
    #[cfg(not(Py_3_12))]
    pub f_func: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub f_globals: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub f_builtins: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub f_locals: *mut PyObject,
    #[cfg(not(Py_3_13))]
    pub f_code: *mut PyObject,
    #[cfg(not(Py_3_12))]
    pub frame_obj: *mut FrameObject,
    #[cfg(all(Py_3_13, not(Py_3_14)))]
    pub f_executable: *mut PyObject,
    #[cfg(Py_3_14)]
    pub f_executable: StackRef,
    pub previous: *mut InterpreterFrame,
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    pub f_funcobj: *mut PyObject,
    #[cfg(Py_3_14)]
    pub f_funcobj: StackRef,
    #[cfg(Py_3_12)]
    pub f_globals: *mut PyObject,
    #[cfg(Py_3_12)]
    pub f_builtins: *mut PyObject,
    #[cfg(Py_3_12)]
    pub f_locals: *mut PyObject,
    #[cfg(Py_3_12)]
    pub frame_obj: *mut FrameObject,
    #[cfg(not(Py_3_13))]
    pub prev_instr: *mut u16,
    #[cfg(Py_3_13)]
    pub instr_ptr: *mut u16,
    #[cfg(not(Py_3_14))]
    pub stacktop: c_int,
    #[cfg(Py_3_14)]
    pub stackpointer: *mut StackRef,
    // skipped (free-threaded 3.14+): int32_t tlbc_index
    #[cfg(not(Py_3_12))]
    pub is_entry: bool,
    #[cfg(Py_3_12)]
    pub return_offset: u16,
    pub owner: c_char,
    /// A one-byte bit-field on debug builds, a plain byte otherwise.
    #[cfg(Py_3_14)]
    pub visited: u8,
    /// `localsplus[1]`: the locals, then the evaluation stack.
    #[cfg(not(Py_3_14))]
    pub localsplus: [*mut PyObject; 1],
    #[cfg(Py_3_14)]
    pub localsplus: [StackRef; 1],
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
    // SAFETY: see the function contract; the owner byte is initialised in every frame.
    unsafe {
        if frame.is_null()
            || !matches!(
                (*frame).owner,
                FRAME_OWNED_BY_THREAD | FRAME_OWNED_BY_GENERATOR
            )
        {
            core::ptr::null_mut()
        } else {
            (*frame).frame_obj
        }
    }
}

/// `struct _frame`, the layout behind `PyFrameObject`.
#[cfg(Py_3_11)]
#[repr(C)]
pub struct FrameObject {
    pub ob_base: PyObject,
    pub f_back: *mut FrameObject,
    pub f_frame: *mut InterpreterFrame,
    pub f_trace: *mut PyObject,
    pub f_lineno: c_int,
    pub f_trace_lines: c_char,
    pub f_trace_opcodes: c_char,
    #[cfg(not(Py_3_13))]
    pub f_fast_as_locals: c_char,
    #[cfg(Py_3_13)]
    pub f_extra_locals: *mut PyObject,
    #[cfg(Py_3_13)]
    pub f_locals_cache: *mut PyObject,
    #[cfg(Py_3_14)]
    pub f_overwritten_fast_locals: *mut PyObject,
    /// Storage for the interpreter frame once the frame object owns it (after the
    /// call returned); unused while the frame runs.
    pub _f_frame_data: [*mut PyObject; 1],
}
