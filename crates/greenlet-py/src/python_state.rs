//! Per-greenlet interpreter state: the parts of `PyThreadState` that describe "where the
//! Python code of this greenlet is", moved out of the thread state when a greenlet is
//! switched away from and moved back in when it resumes.
//!
//! Which fields these are depends on the CPython version; all version differences of this
//! concern live in this file (the struct layouts themselves are in `cpython/`).
//!
//! | CPython | fields (besides `context`, which every version moves) |
//! |---|---|
//! | 3.11 | `cframe` and `cframe->use_tracing`, `cframe->current_frame`, recursion depth (`limit - remaining`), the data-stack chunk/top/limit, `trash_delete_nesting` |

use crate::cpython::pystate::{CFrame, PyThreadState, StackChunk};
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::{PyFrameObject, PyObject, visitproc};

pub struct PythonState {
    /// The greenlet's `contextvars` context (owned), while it is not running.
    context: *mut PyObject,
    /// The frame the greenlet will resume in (3.11: borrowed; the interpreter frame owns it).
    top_frame: *mut PyFrameObject,
    cframe: *mut CFrame,
    use_tracing: u8,
    recursion_depth: c_int,
    current_frame: *mut c_void,
    datastack_chunk: *mut StackChunk,
    datastack_top: *mut *mut PyObject,
    datastack_limit: *mut *mut PyObject,
    trash_delete_nesting: c_int,
}

impl PythonState {
    pub const fn new() -> Self {
        Self {
            context: ptr::null_mut(),
            top_frame: ptr::null_mut(),
            cframe: ptr::null_mut(),
            use_tracing: 0,
            recursion_depth: 0,
            current_frame: ptr::null_mut(),
            datastack_chunk: ptr::null_mut(),
            datastack_top: ptr::null_mut(),
            datastack_limit: ptr::null_mut(),
            trash_delete_nesting: 0,
        }
    }

    /// Moves the running greenlet's interpreter state out of `tstate` into `self`.
    ///
    /// # Safety
    /// `tstate` is the current thread state, the GIL is held, and `self` is empty.
    #[inline]
    pub unsafe fn save(&mut self, tstate: *mut PyThreadState) {
        // SAFETY: `tstate` is live (caller); moving the context reference transfers ownership.
        unsafe {
            let ts = &mut *tstate;
            self.context = ts.context;
            ts.context = ptr::null_mut();
            self.cframe = ts.cframe;
            self.use_tracing = (*ts.cframe).use_tracing;
            self.recursion_depth = ts.recursion_limit - ts.recursion_remaining;
            self.current_frame = (*ts.cframe).current_frame;
            self.datastack_chunk = ts.datastack_chunk;
            self.datastack_top = ts.datastack_top;
            self.datastack_limit = ts.datastack_limit;
            // The frame object already exists (see `materialize_frame`), so this does not
            // allocate; the reference is dropped because the interpreter frame owns it.
            let frame = pyo3_ffi::PyThreadState_GetFrame(tstate.cast());
            pyo3_ffi::Py_XDECREF(frame.cast());
            self.top_frame = frame;
            self.trash_delete_nesting = ts.trash_delete_nesting;
        }
    }

    /// Moves `self` back into `tstate`.
    ///
    /// # Safety
    /// `tstate` is the current thread state whose previous contents were saved elsewhere.
    #[inline]
    pub unsafe fn restore(&mut self, tstate: *mut PyThreadState) {
        // SAFETY: `tstate` is live; `cframe` points at a `_PyCFrame` on this greenlet's
        // stack, which has just been restored.
        unsafe {
            let ts = &mut *tstate;
            ts.context = self.context;
            self.context = ptr::null_mut();
            // Invalidate the contextvars cache, which is keyed on the version.
            ts.context_ver = ts.context_ver.wrapping_add(1);
            ts.cframe = self.cframe;
            (*ts.cframe).use_tracing = self.use_tracing;
            ts.recursion_remaining = ts.recursion_limit - self.recursion_depth;
            (*ts.cframe).current_frame = self.current_frame;
            ts.datastack_chunk = self.datastack_chunk;
            ts.datastack_top = self.datastack_top;
            ts.datastack_limit = self.datastack_limit;
            self.top_frame = ptr::null_mut();
            ts.trash_delete_nesting = self.trash_delete_nesting;
        }
    }

    /// Tracing continuity: the greenlet being switched to keeps the tracing flag of the
    /// greenlet it is switched from.
    ///
    /// # Safety
    /// `origin` is the current thread state.
    #[inline]
    pub unsafe fn will_switch_from(&mut self, origin: *mut PyThreadState) {
        // SAFETY: `origin->cframe` is always valid while Python runs.
        self.use_tracing = unsafe { (*(*origin).cframe).use_tracing };
    }

    /// Prepares the `_PyCFrame` that a new greenlet uses while it runs: a copy of the
    /// current one that unlinks to the thread's root frame.
    ///
    /// # Safety
    /// `frame` lives on the new greenlet's part of the C stack for as long as it runs.
    pub unsafe fn set_new_cframe(&mut self, frame: &mut CFrame) {
        // SAFETY: the current thread state and its cframe are live.
        unsafe {
            let ts = crate::cpython::pystate::tstate();
            *frame = *(*ts).cframe;
            frame.previous = ptr::addr_of_mut!((*ts).root_cframe);
        }
        self.cframe = frame;
    }

    /// The state a greenlet starts with: no frames, no data stack, and the recursion
    /// depth of the greenlet that starts it.
    ///
    /// # Safety
    /// `tstate` is the current thread state.
    pub unsafe fn set_initial_state(&mut self, tstate: *mut PyThreadState) {
        self.top_frame = ptr::null_mut();
        // SAFETY: live thread state.
        unsafe {
            self.recursion_depth = (*tstate).recursion_limit - (*tstate).recursion_remaining;
        }
        self.current_frame = ptr::null_mut();
        // SAFETY: GIL held (function contract).
        match unsafe { crate::datastack::take_root_chunk() } {
            Some((chunk, top, limit)) => {
                self.datastack_chunk = chunk;
                self.datastack_top = top;
                self.datastack_limit = limit;
            }
            None => {
                self.datastack_chunk = ptr::null_mut();
                self.datastack_top = ptr::null_mut();
                self.datastack_limit = ptr::null_mut();
            }
        }
    }

    /// Frees data-stack chunks that can never be used again: the running greenlet's when
    /// it has finished (`tstate` non-null), or a suspended greenlet's own when it is
    /// deallocated without finishing (`tstate` null).
    ///
    /// # Safety
    /// The GIL is held; with a non-null `tstate` the calling greenlet has no Python frames
    /// left and will never run Python code again.
    pub unsafe fn did_finish(&mut self, tstate: *mut PyThreadState) {
        let chunk;
        if !tstate.is_null() {
            // SAFETY: live thread state; its chunks belong to the finishing greenlet.
            unsafe {
                chunk = (*tstate).datastack_chunk;
                (*tstate).datastack_chunk = ptr::null_mut();
                (*tstate).datastack_top = ptr::null_mut();
                (*tstate).datastack_limit = ptr::null_mut();
            }
        } else {
            chunk = self.datastack_chunk;
        }
        self.datastack_chunk = ptr::null_mut();
        self.datastack_top = ptr::null_mut();
        self.datastack_limit = ptr::null_mut();
        // SAFETY: GIL held; the chain can never be used again (function contract).
        unsafe { crate::datastack::free_chain(chunk) };
    }

    pub fn top_frame(&self) -> *mut PyFrameObject {
        self.top_frame
    }

    pub fn context(&self) -> *mut PyObject {
        self.context
    }

    /// Replaces the saved context, taking ownership of `context` and returning the old one.
    pub fn replace_context(&mut self, context: *mut PyObject) -> *mut PyObject {
        core::mem::replace(&mut self.context, context)
    }

    /// # Safety
    /// Called from `tp_traverse`.
    pub unsafe fn traverse(
        &self,
        visit: visitproc,
        arg: *mut c_void,
        visit_top_frame: bool,
    ) -> c_int {
        if !self.context.is_null() {
            // SAFETY: GC visit of an owned reference.
            let r = unsafe { visit(self.context, arg) };
            if r != 0 {
                return r;
            }
        }
        if visit_top_frame && !self.top_frame.is_null() {
            // SAFETY: as above.
            let r = unsafe { visit(self.top_frame.cast(), arg) };
            if r != 0 {
                return r;
            }
        }
        0
    }

    /// Drops the context and, for a greenlet of a dead thread (`own_top_frame`), the frame.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn clear(&mut self, own_top_frame: bool) {
        let context = core::mem::replace(&mut self.context, ptr::null_mut());
        let frame = if own_top_frame {
            core::mem::replace(&mut self.top_frame, ptr::null_mut())
        } else {
            ptr::null_mut()
        };
        // SAFETY: references we held; dropping them may run arbitrary code, after our
        // fields are already consistent.
        unsafe {
            pyo3_ffi::Py_XDECREF(context);
            pyo3_ffi::Py_XDECREF(frame.cast());
        }
    }
}

impl Default for PythonState {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes sure the current frame object exists before a switch, with the GC disabled:
/// creating it allocates, and a collection at that point could run `__del__` methods that
/// switch greenlets in the middle of saving our state.
///
/// # Safety
/// The GIL is held.
#[inline]
pub unsafe fn materialize_frame() {
    // SAFETY: plain C-API calls with the GIL held.
    unsafe {
        let was_enabled = pyo3_ffi::PyGC_Disable();
        let frame = pyo3_ffi::PyThreadState_GetFrame(pyo3_ffi::PyThreadState_Get());
        pyo3_ffi::Py_XDECREF(frame.cast());
        if was_enabled != 0 {
            pyo3_ffi::PyGC_Enable();
        }
    }
}
