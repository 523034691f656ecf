//! 3.15: suspended greenlets are always GC objects (no `tp_is_gc`), so the collector must
//! see what their frames hold, including the borrowed and deferred stack references it
//! would otherwise only find on the running thread's frame stack (upstream PRs #511/#512).

use crate::cpython::frame::{FRAME_OWNED_BY_THREAD, FrameObject, InterpreterFrame, StackRef};
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::{PyFrameObject, visitproc};

crate::cpython::libpython::extern_libpython! {
    fn _PyGC_VisitFrameStack(
        frame: *mut InterpreterFrame,
        visit: visitproc,
        arg: *mut c_void,
    ) -> c_int;
    fn _PyGC_VisitStackRef(r: *mut StackRef, visit: visitproc, arg: *mut c_void) -> c_int;
}

/// The exposed chain from `top`: only frames the thread owns (generator frames are
/// traversed by their generator).
///
/// # Safety
/// `top` is null or the top frame of a suspended (exposed) greenlet.
unsafe fn thread_frames(top: *mut PyFrameObject) -> impl Iterator<Item = *mut InterpreterFrame> {
    let first = if top.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: see the function contract.
        unsafe { (*top.cast::<FrameObject>()).f_frame }
    };
    core::iter::successors((!first.is_null()).then_some(first), |&f| {
        // SAFETY: each exposed frame is complete and alive while the greenlet is
        // suspended; `previous` links only such frames.
        let p = unsafe { (*f).previous };
        (!p.is_null()).then_some(p)
    })
    // SAFETY: as above.
    .filter(|&f| unsafe { (*f).owner } == FRAME_OWNED_BY_THREAD)
}

/// # Safety
/// Called from `tp_traverse`; `top` as for [`thread_frames`].
pub(crate) unsafe fn traverse(
    top: *mut PyFrameObject,
    visit: visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: see the function contract; every visited pointer is a reference the
    // frame holds.
    unsafe {
        for f in thread_frames(top) {
            for o in [(*f).frame_obj.cast(), (*f).f_locals] {
                if !o.is_null() {
                    let r = visit(o, arg);
                    if r != 0 {
                        return r;
                    }
                }
            }
            for r in [&raw mut (*f).f_funcobj, &raw mut (*f).f_executable] {
                if !(*r).is_null_or_int() {
                    let r = _PyGC_VisitStackRef(r, visit, arg);
                    if r != 0 {
                        return r;
                    }
                }
            }
            let r = _PyGC_VisitFrameStack(f, visit, arg);
            if r != 0 {
                return r;
            }
        }
    }
    0
}

/// Releases everything the suspended frames of a greenlet from a dead thread hold;
/// the frames themselves then die with their data-stack chunks.
///
/// # Safety
/// The GIL is held; `top` as for [`thread_frames`], and those frames never run again.
pub(crate) unsafe fn clear(top: *mut PyFrameObject) {
    // SAFETY: see the function contract. Collect first: releasing a reference can
    // free the frame object we came from, but not the interpreter frames, which live
    // in the data stack.
    unsafe {
        let frames: Vec<*mut InterpreterFrame> = thread_frames(top).collect();
        for f in frames {
            let locals = (*f).localsplus.as_mut_ptr();
            let mut sp = (*f).stackpointer;
            if !sp.is_null() {
                while sp > locals {
                    sp = sp.sub(1);
                    close(sp);
                }
                (*f).stackpointer = locals;
            }
            pyo3_ffi::Py_XDECREF(core::mem::replace(&mut (*f).f_locals, ptr::null_mut()));
            let fo = core::mem::replace(&mut (*f).frame_obj, ptr::null_mut());
            pyo3_ffi::Py_XDECREF(fo.cast());
            close(&raw mut (*f).f_funcobj);
            close(&raw mut (*f).f_executable);
        }
    }
}

/// `PyStackRef_CLEAR` on a GIL build.
unsafe fn close(r: *mut StackRef) {
    // SAFETY: `r` points at a stack reference of a frame we are clearing.
    unsafe {
        let old = core::mem::replace(&mut *r, StackRef::NULL);
        if old.owns_reference() && !old.as_ptr().is_null() {
            pyo3_ffi::Py_DECREF(old.as_ptr());
        }
    }
}
