//! 3.12+: making a suspended greenlet's frames walkable (`f_back`, tracebacks,
//! `gr_frame`) while its C stack is elsewhere, and undoing that when it resumes.

use super::{PythonState, RELINKED_SLOTS};
use crate::cpython::frame::InterpreterFrame;
use core::ptr;

impl PythonState {
    /// 3.12+: lets code walk `f_back` from a suspended greenlet's frames.
    ///
    /// The interpreter-frame chain of a greenlet also holds "incomplete" frames (the
    /// entry frames that `_PyEval_EvalFrameDefault` keeps on the C stack, and frames that
    /// have not started yet). Once the greenlet is switched away from, its C stack is
    /// overwritten or moved to the heap, so following `previous` into such a frame reads
    /// garbage (greenlet #388, gevent #1969, CPython #113037). Right before the switch,
    /// while the stack is still in place, we relink the chain so that each complete
    /// frame's `previous` points at the next complete frame, creating the frame objects
    /// on the way. Only the links that change are remembered (in `relinked`), and
    /// [`Self::restore`] puts just those back.
    ///
    /// Along a run of Python-to-Python calls every link already points at a complete
    /// frame, which after the first switch has its frame object: those are only walked
    /// over, one `previous` pointer per frame, so a deep greenlet's switches stay cheap.
    ///
    /// # Safety
    /// Called on the greenlet being switched away from, after [`Self::save`], before the
    /// stack switch, with the GIL held.
    #[cfg(Py_3_12)]
    pub(crate) unsafe fn expose_frames(&mut self) {
        use crate::cpython::frame::{FRAME_OWNED_BY_GENERATOR, FrameObject, frame_object_of};
        self.left_unexposed = false;
        self.relinked_len = 0;
        if let Some(spill) = self.relinked_spill.as_mut() {
            spill.clear();
        }
        let top: *mut FrameObject = self.top_frame.cast();
        if top.is_null() {
            return;
        }
        // The exception being thrown by this switch, if any, must survive the calls below
        // (3.12+ keeps a single exception object, so this is a pointer move).
        // SAFETY: GIL held.
        let pending = unsafe { pyo3_ffi::PyErr_GetRaisedException() };
        // SAFETY: `top` is the frame object of the greenlet's innermost complete frame,
        // which is executing, so `f_frame` points at its interpreter frame.
        let mut iframe = unsafe { (*top).f_frame };
        loop {
            // SAFETY:
            // - `iframe` is a complete, executing frame of this greenlet that has a frame
            //   object (the top one; or reached below through a check or from
            //   `PyFrame_GetBack`), and the frames after it are still in place (the
            //   C stack has not been switched yet);
            // - the owner is checked before `frame_obj`, which C-stack entry frames leave
            //   uninitialised; a frame with a frame object is complete (objects are only
            //   ever made for complete frames);
            // - `PyFrame_GetBack` of a frame object whose `f_back` is null returns the
            //   frame object of the first complete frame after `f_frame->previous`,
            //   creating it if needed; we hand it a stand-in frame so that it starts from
            //   the *original* `previous` even when an executing frame object has an
            //   `f_back` of its own. The stand-in counts as complete because it claims to
            //   belong to a generator (so its code object is never looked at);
            // - creating a frame object cannot start a collection (3.12+ only schedules
            //   one for the next eval-breaker check), so no Python code runs here;
            // - the returned reference is dropped at once: the interpreter frame holds one.
            unsafe {
                let previous = (*iframe).previous;
                if previous.is_null() {
                    break;
                }
                if !frame_object_of(previous).is_null() {
                    iframe = previous;
                    continue;
                }
                let mut stand_in_iframe: InterpreterFrame = core::mem::zeroed();
                stand_in_iframe.owner = FRAME_OWNED_BY_GENERATOR;
                stand_in_iframe.previous = previous;
                let mut stand_in: FrameObject = core::mem::zeroed();
                stand_in.f_frame = &mut stand_in_iframe;
                let back: *mut FrameObject =
                    pyo3_ffi::PyFrame_GetBack(ptr::addr_of_mut!(stand_in).cast()).cast();
                if back.is_null() {
                    // No complete frame left (or, out of memory creating a frame object,
                    // an error we drop below): the chain ends here.
                    pyo3_ffi::PyErr_Clear();
                }
                pyo3_ffi::Py_XDECREF(back.cast());
                let exposed = if back.is_null() {
                    ptr::null_mut()
                } else {
                    (*back).f_frame
                };
                if exposed != previous {
                    self.remember_relink(iframe, previous);
                    (*iframe).previous = exposed;
                }
                if exposed.is_null() {
                    break;
                }
                iframe = exposed;
            }
        }
        // SAFETY: GIL held; hands back the reference taken above (null clears nothing).
        unsafe { pyo3_ffi::PyErr_SetRaisedException(pending) };
    }

    /// Instead of [`Self::expose_frames`], at a switch away from a greenlet whose C stack
    /// nothing can overwrite until it runs again (it owns a dedicated stack that no other
    /// greenlet shares, and the switch goes to another stack): its chain, entry frames
    /// included, stays readable where it is, so the switch costs nothing per frame. If
    /// that stack is to go away while the greenlet is still suspended (its thread died),
    /// [`Self::expose_if_left`] exposes the frames first.
    #[cfg(Py_3_12)]
    pub(crate) fn leave_unexposed(&mut self) {
        self.left_unexposed = true;
        self.relinked_len = 0;
    }

    /// Exposes the frames of a suspended greenlet that were left in place
    /// ([`Self::leave_unexposed`]), before its stack goes away.
    ///
    /// # Safety
    /// The GIL is held; the greenlet is suspended and its stack is still mapped and
    /// untouched since it switched away.
    #[cfg(Py_3_12)]
    pub(crate) unsafe fn expose_if_left(&mut self) {
        if self.left_unexposed {
            // SAFETY: the contract: the state at the switch away, still in place.
            unsafe { self.expose_frames() };
        }
    }

    /// Records that `expose_frames` changed `iframe`'s `previous` from `original`.
    #[cfg(Py_3_12)]
    fn remember_relink(&mut self, iframe: *mut InterpreterFrame, original: *mut InterpreterFrame) {
        let n = self.relinked_len as usize;
        if n < RELINKED_SLOTS {
            self.relinked[n] = (iframe, original);
            self.relinked_len += 1;
        } else {
            // A greenlet suspended under many C-level re-entries of the eval loop; the
            // vector is kept for its next switches.
            self.relinked_spill
                .get_or_insert_with(Default::default)
                .push((iframe, original));
        }
    }

    /// Undoes [`Self::expose_frames`]: puts each changed `previous` back.
    ///
    /// # Safety
    /// `self` is the greenlet being resumed; its frames are exposed.
    #[cfg(Py_3_12)]
    pub(super) unsafe fn unexpose_frames(&mut self) {
        let inline = &self.relinked[..self.relinked_len as usize];
        let spilled = self.relinked_spill.as_deref().map_or(&[][..], |v| &v[..]);
        for &(iframe, original) in inline.iter().chain(spilled) {
            // SAFETY: `iframe` is a live frame of this greenlet (its frames cannot go away
            // while it is suspended), relinked by `expose_frames`.
            unsafe { (*iframe).previous = original };
        }
        self.relinked_len = 0;
        self.left_unexposed = false;
        if let Some(spill) = self.relinked_spill.as_mut() {
            spill.clear();
        }
    }
}
