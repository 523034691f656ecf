//! Per-greenlet interpreter state: the parts of `PyThreadState` that describe "where the
//! Python code of this greenlet is", moved out of the thread state when a greenlet is
//! switched away from and moved back in when it resumes.
//!
//! Which fields these are depends on the CPython version; all version differences of this
//! concern live in this file (the struct layouts themselves are in `cpython/`). Every
//! version also moves `context` (bumping `context_ver`), and `exception_state.rs` moves
//! the handled exception.
//!
//! | CPython | fields |
//! |---|---|
//! | 3.10 | `cframe` and `cframe->use_tracing`, `frame`, `recursion_depth`, `trash_delete_nesting` |
//! | 3.11 | `cframe` and `cframe->use_tracing`, `cframe->current_frame`, recursion depth (`limit - remaining`), the data-stack chunk/top/limit, `trash_delete_nesting` |
//! | 3.12 | `cframe`, `cframe->current_frame`, Python recursion depth, `c_recursion_remaining`, data stack, `trash.delete_nesting`; frames exposed while suspended |
//! | 3.13 | `current_frame`, Python recursion depth, `c_recursion_remaining`, data stack, `delete_later`, `critical_section`; frames exposed |
//! | 3.14 | as 3.13 without `c_recursion_remaining` (C-stack checks became address based), plus `current_executor` |
//! | 3.15 | as 3.14; the GC also traverses the suspended frames |
//!
//! Fields never moved: the tracing flags and functions, `recursion_headroom` and the
//! recursion *limits* (thread-wide; only the depth moves). The 3.14+ C-stack limits belong
//! to the stack, not to the greenlet: they change only when a switch lands on another
//! stack domain (`c_stack.rs`).

#[cfg(not(Py_3_13))]
use crate::cpython::pystate::CFrame;
use crate::cpython::pystate::PyThreadState;
#[cfg(Py_3_11)]
use crate::cpython::{frame::InterpreterFrame, pystate::StackChunk};
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::{PyFrameObject, PyObject, visitproc};

#[cfg(Py_3_14)]
pub(crate) mod c_stack;
#[cfg(Py_3_12)]
mod expose;
#[cfg(Py_3_15)]
mod frames315;

/// `cframe->use_tracing`: an `int` in 3.10, a `uint8_t` in 3.11, gone in 3.12 (PEP 669).
#[cfg(not(Py_3_11))]
type UseTracing = c_int;
#[cfg(all(Py_3_11, not(Py_3_12)))]
type UseTracing = u8;

/// `repr(C)`: `context` comes first, on the cache line the collector reads (see
/// [`crate::greenlet::Greenlet`]).
#[repr(C)]
pub(crate) struct PythonState {
    /// The greenlet's `contextvars` context (owned), while it is not running.
    context: *mut PyObject,
    /// The frame the greenlet will resume in, while it is suspended. Borrowed: the
    /// interpreter frame (3.11+) or the frame chain (3.10) keeps it alive; only a
    /// greenlet of a dead thread, whose frames nobody else will ever release, treats it as
    /// owned (`clear(true)`).
    top_frame: *mut PyFrameObject,
    /// Points into the greenlet's own C stack (see [`Self::set_new_cframe`]).
    #[cfg(not(Py_3_13))]
    cframe: *mut CFrame,
    #[cfg(not(Py_3_12))]
    use_tracing: UseTracing,
    /// How deep the greenlet's Python calls are. Stored as a depth, not as the
    /// "remaining" counter, so that a `sys.setrecursionlimit` while the greenlet is
    /// suspended applies to it when it resumes.
    recursion_depth: c_int,
    /// The C recursion counter (3.12, 3.13). Its limit is a compile-time constant, so
    /// moving the counter itself is the same as moving the depth.
    #[cfg(all(Py_3_12, not(Py_3_14)))]
    c_recursion_remaining: c_int,
    #[cfg(Py_3_11)]
    current_frame: *mut InterpreterFrame,
    #[cfg(Py_3_11)]
    datastack_chunk: *mut StackChunk,
    #[cfg(Py_3_11)]
    datastack_top: *mut *mut PyObject,
    #[cfg(Py_3_11)]
    datastack_limit: *mut *mut PyObject,
    #[cfg(not(Py_3_13))]
    trash_delete_nesting: c_int,
    /// The greenlet's chain of objects whose deallocation the trash can deferred (3.13+).
    /// Those objects have a reference count of zero and are linked through their GC
    /// headers; the chain is moved as a plain pointer, never INCREF'd: a count taken here
    /// and dropped later would deallocate an object that is still on the chain.
    #[cfg(Py_3_13)]
    delete_later: *mut PyObject,
    /// The innermost critical section (3.13+; always 0 on GIL builds in practice).
    #[cfg(Py_3_13)]
    critical_section: usize,
    /// The JIT executor the greenlet was running in (3.14+, greenlet issue #460).
    #[cfg(Py_3_14)]
    current_executor: *mut PyObject,
    /// The links [`Self::expose_frames`] changed, as (frame, original `previous`), so
    /// that resuming restores just those: the first `relinked_len` here, any more in
    /// `relinked_spill`.
    #[cfg(Py_3_12)]
    relinked: [(*mut InterpreterFrame, *mut InterpreterFrame); RELINKED_SLOTS],
    #[cfg(Py_3_12)]
    relinked_len: u8,
    /// Whether the frames were left as they are at the last switch away (see
    /// [`Self::needs_exposing`]): the greenlet's own stack stays in place while it is
    /// suspended, so its chain stays walkable without relinking.
    #[cfg(Py_3_12)]
    left_unexposed: bool,
    #[cfg(Py_3_12)]
    #[allow(
        clippy::box_collection,
        reason = "one pointer per greenlet instead of three: few greenlets ever spill"
    )]
    relinked_spill: Option<Box<Vec<(*mut InterpreterFrame, *mut InterpreterFrame)>>>,
    // Not kept (3.14+): `top_frame->f_frame->stackpointer`. Upstream saves it on every
    // build but only writes it back on free-threaded builds, which we do not support; on
    // GIL builds nothing changes it while the greenlet is suspended.
}

/// Relinked frames remembered inline (the bottom frame's link to its C-stack entry frame
/// is one; every C-level re-entry of the eval loop in the greenlet adds one).
#[cfg(Py_3_12)]
const RELINKED_SLOTS: usize = 4;

impl Default for PythonState {
    fn default() -> Self {
        Self::new()
    }
}

impl PythonState {
    pub(crate) const fn new() -> Self {
        Self {
            context: ptr::null_mut(),
            top_frame: ptr::null_mut(),
            #[cfg(not(Py_3_13))]
            cframe: ptr::null_mut(),
            #[cfg(not(Py_3_12))]
            use_tracing: 0,
            recursion_depth: 0,
            #[cfg(all(Py_3_12, not(Py_3_14)))]
            c_recursion_remaining: 0,
            #[cfg(Py_3_11)]
            current_frame: ptr::null_mut(),
            #[cfg(Py_3_11)]
            datastack_chunk: ptr::null_mut(),
            #[cfg(Py_3_11)]
            datastack_top: ptr::null_mut(),
            #[cfg(Py_3_11)]
            datastack_limit: ptr::null_mut(),
            #[cfg(not(Py_3_13))]
            trash_delete_nesting: 0,
            #[cfg(Py_3_13)]
            delete_later: ptr::null_mut(),
            #[cfg(Py_3_13)]
            critical_section: 0,
            #[cfg(Py_3_14)]
            current_executor: ptr::null_mut(),
            #[cfg(Py_3_12)]
            relinked: [(ptr::null_mut(), ptr::null_mut()); RELINKED_SLOTS],
            #[cfg(Py_3_12)]
            relinked_len: 0,
            #[cfg(Py_3_12)]
            left_unexposed: false,
            #[cfg(Py_3_12)]
            relinked_spill: None,
        }
    }

    /// Moves the running greenlet's interpreter state out of `tstate` into `self`.
    ///
    /// # Safety
    /// `tstate` is the current thread state, the GIL is held, `self` is empty, and (3.11+)
    /// the current frame object exists already (see [`materialize_frame`]).
    #[inline]
    pub(crate) unsafe fn save(&mut self, tstate: *mut PyThreadState) {
        // SAFETY:
        // - `tstate` is the live current thread state (caller);
        // - `cframe` (before 3.13) points at a `_PyCFrame` of the running greenlet's
        //   live stack;
        // - moving the context reference transfers its ownership to `self`.
        unsafe {
            let ts = &mut *tstate;
            self.context = core::mem::replace(&mut ts.context, ptr::null_mut());
            #[cfg(not(Py_3_13))]
            {
                self.cframe = ts.cframe;
            }
            #[cfg(not(Py_3_12))]
            {
                self.use_tracing = (*ts.cframe).use_tracing;
            }
            self.recursion_depth = current_recursion_depth(ts);
            #[cfg(all(Py_3_12, not(Py_3_14)))]
            {
                self.c_recursion_remaining = ts.c_recursion_remaining;
            }
            #[cfg(not(Py_3_11))]
            {
                self.top_frame = ts.frame;
            }
            #[cfg(Py_3_11)]
            {
                #[cfg(not(Py_3_13))]
                {
                    self.current_frame = (*ts.cframe).current_frame;
                }
                #[cfg(Py_3_13)]
                {
                    self.current_frame = ts.current_frame;
                }
                self.datastack_chunk = ts.datastack_chunk;
                self.datastack_top = ts.datastack_top;
                self.datastack_limit = ts.datastack_limit;
                // The frame object already exists (`materialize_frame`), so this does not
                // allocate; the new reference is dropped because the interpreter frame
                // owns the object.
                let mut frame = materialized_frame_object(tstate);
                if frame.is_null() {
                    frame = pyo3_ffi::PyThreadState_GetFrame(tstate.cast());
                    pyo3_ffi::Py_XDECREF(frame.cast());
                }
                self.top_frame = frame;
            }
            #[cfg(not(Py_3_12))]
            {
                self.trash_delete_nesting = ts.trash_delete_nesting;
            }
            #[cfg(all(Py_3_12, not(Py_3_13)))]
            {
                self.trash_delete_nesting = ts.trash.delete_nesting;
            }
            #[cfg(Py_3_13)]
            {
                self.delete_later = core::mem::replace(&mut ts.delete_later, ptr::null_mut());
                self.critical_section = ts.critical_section;
            }
            #[cfg(Py_3_14)]
            {
                self.current_executor = ts.current_executor;
            }
        }
    }

    /// Moves `self` back into `tstate` (and, 3.12+, undoes `expose_frames`).
    ///
    /// # Safety
    /// `tstate` is the current thread state whose previous contents were saved elsewhere,
    /// and this greenlet's stack has just been restored.
    #[inline]
    pub(crate) unsafe fn restore(&mut self, tstate: *mut PyThreadState) {
        // SAFETY:
        // - `tstate` is the live current thread state (caller);
        // - `cframe` points at a `_PyCFrame` on this greenlet's stack, restored just now;
        // - the frames unexposed were exposed by this greenlet and are still alive (they
        //   are executing, as far as the interpreter knows).
        unsafe {
            #[cfg(Py_3_12)]
            self.unexpose_frames();
            let ts = &mut *tstate;
            ts.context = core::mem::replace(&mut self.context, ptr::null_mut());
            // Invalidate the contextvars cache, which is keyed on the version.
            ts.context_ver = ts.context_ver.wrapping_add(1);
            #[cfg(not(Py_3_13))]
            {
                ts.cframe = self.cframe;
            }
            #[cfg(not(Py_3_12))]
            {
                (*ts.cframe).use_tracing = self.use_tracing;
            }
            #[cfg(not(Py_3_11))]
            {
                ts.recursion_depth = self.recursion_depth;
                ts.frame = self.top_frame;
            }
            #[cfg(all(Py_3_11, not(Py_3_12)))]
            {
                ts.recursion_remaining = ts.recursion_limit - self.recursion_depth;
            }
            #[cfg(Py_3_12)]
            {
                ts.py_recursion_remaining = ts.py_recursion_limit - self.recursion_depth;
            }
            #[cfg(all(Py_3_12, not(Py_3_14)))]
            {
                ts.c_recursion_remaining = self.c_recursion_remaining;
            }
            #[cfg(Py_3_11)]
            {
                #[cfg(not(Py_3_13))]
                {
                    (*ts.cframe).current_frame = self.current_frame;
                }
                #[cfg(Py_3_13)]
                {
                    ts.current_frame = self.current_frame;
                }
                ts.datastack_chunk = self.datastack_chunk;
                ts.datastack_top = self.datastack_top;
                ts.datastack_limit = self.datastack_limit;
            }
            self.top_frame = ptr::null_mut();
            #[cfg(not(Py_3_12))]
            {
                ts.trash_delete_nesting = self.trash_delete_nesting;
            }
            #[cfg(all(Py_3_12, not(Py_3_13)))]
            {
                ts.trash.delete_nesting = self.trash_delete_nesting;
            }
            #[cfg(Py_3_13)]
            {
                // `save` of the greenlet we came from emptied the field, so nothing on
                // the thread state's chain can be lost here.
                debug_assert!(ts.delete_later.is_null());
                ts.delete_later = core::mem::replace(&mut self.delete_later, ptr::null_mut());
                ts.critical_section = self.critical_section;
            }
            #[cfg(Py_3_14)]
            {
                ts.current_executor = self.current_executor;
            }
        }
    }

    /// Tracing continuity (3.10, 3.11): the greenlet being switched to keeps the tracing
    /// flag of the greenlet it is switched from.
    ///
    /// # Safety
    /// `origin` is the current thread state.
    #[inline]
    pub(crate) unsafe fn will_switch_from(&mut self, origin: *mut PyThreadState) {
        #[cfg(not(Py_3_12))]
        {
            // SAFETY: `origin->cframe` is always valid while Python runs.
            self.use_tracing = unsafe { (*(*origin).cframe).use_tracing };
        }
        #[cfg(Py_3_12)]
        let _ = origin;
    }

    /// Prepares the `_PyCFrame` that a new greenlet uses while it runs (before 3.13): a
    /// copy of the current one that unlinks to the thread's root frame. It lives in
    /// `g_initialstub`'s frame, which stays on the new greenlet's stack until it dies.
    ///
    /// # Safety
    /// `frame` lives on the new greenlet's part of the C stack for as long as it runs.
    #[cfg(not(Py_3_13))]
    pub(crate) unsafe fn set_new_cframe(&mut self, frame: &mut CFrame) {
        // SAFETY: the current thread state and its cframe are live.
        unsafe {
            let ts = crate::cpython::pystate::tstate();
            *frame = *(*ts).cframe;
            frame.previous = ptr::addr_of_mut!((*ts).root_cframe);
        }
        self.cframe = frame;
    }

    /// For a greenlet starting on a stack of its own of `bytes` bytes (3.12, 3.13): a fresh
    /// C recursion budget that the stack can hold, instead of what is left of the starting
    /// greenlet's (whose C frames are on another stack). CPython sizes its constant limit for
    /// an 8 MiB thread stack (`C_RECURSION_LIMIT` 1500 on 3.12, `Py_C_RECURSION_LIMIT` 10000
    /// on 3.13 release builds); here a unit gets 2 KiB of stack on 3.12 and 1 KiB on 3.13 —
    /// measured: one nested `sorted(key=...)` level takes about 5 KiB and 2–3 units — capped
    /// at CPython's own limit, so that deep C recursion raises `RecursionError` before the
    /// guard page. Before 3.12 the one recursion counter also limits C recursion (the default
    /// limit of 1000 needs about 416 KiB on 3.10, which the default size holds); 3.14+ checks
    /// addresses.
    pub(crate) fn fit_c_recursion_to_stack(&mut self, bytes: usize) {
        #[cfg(all(Py_3_12, not(Py_3_13)))]
        let units = (bytes / 2048).min(1500);
        #[cfg(all(Py_3_13, not(Py_3_14)))]
        let units = (bytes / 1024).min(10_000);
        #[cfg(all(Py_3_12, not(Py_3_14)))]
        {
            self.c_recursion_remaining = c_int::try_from(units).unwrap_or(c_int::MAX);
        }
        #[cfg(any(not(Py_3_12), Py_3_14))]
        let _ = bytes;
    }

    /// The state a greenlet starts with: no frames, no data stack, and the recursion
    /// depth (and 3.14+ JIT executor) of the greenlet that starts it.
    ///
    /// # Safety
    /// `tstate` is the current thread state.
    pub(crate) unsafe fn set_initial_state(&mut self, tstate: *mut PyThreadState) {
        self.top_frame = ptr::null_mut();
        // SAFETY: live thread state.
        let ts = unsafe { &*tstate };
        self.recursion_depth = current_recursion_depth(ts);
        #[cfg(all(Py_3_12, not(Py_3_14)))]
        {
            self.c_recursion_remaining = ts.c_recursion_remaining;
        }
        #[cfg(Py_3_11)]
        {
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
        #[cfg(Py_3_14)]
        {
            self.current_executor = ts.current_executor;
        }
    }

    /// Frees data-stack chunks that can never be used again (3.11+): the running
    /// greenlet's when it has finished (`tstate` non-null), or a suspended greenlet's own
    /// when it is deallocated without finishing (`tstate` null).
    ///
    /// # Safety
    /// The GIL is held; with a non-null `tstate` the calling greenlet has no Python frames
    /// left and will never run Python code again.
    pub(crate) unsafe fn did_finish(&mut self, tstate: *mut PyThreadState) {
        #[cfg(not(Py_3_11))]
        let _ = tstate;
        #[cfg(Py_3_11)]
        {
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
    }

    pub(crate) fn top_frame(&self) -> *mut PyFrameObject {
        self.top_frame
    }

    pub(crate) fn context(&self) -> *mut PyObject {
        self.context
    }

    /// Replaces the saved context, taking ownership of `context` and returning the old one.
    pub(crate) fn replace_context(&mut self, context: *mut PyObject) -> *mut PyObject {
        core::mem::replace(&mut self.context, context)
    }

    /// Visits `top_frame`, which only a greenlet of a dead thread owns. Out of line so
    /// that the collector's usual traversal never loads it: it sits on the second cache
    /// line of the implementation object, which a traversal otherwise does not touch
    /// (see [`crate::greenlet::Greenlet`]'s layout).
    ///
    /// # Safety
    /// As for [`Self::traverse`].
    #[cold]
    #[inline(never)]
    unsafe fn traverse_owned_top_frame(&self, visit: visitproc, arg: *mut c_void) -> c_int {
        // A volatile read, or the optimiser hands the callee the loaded value instead of
        // `&self` and the caller loads it after all.
        // SAFETY: reading a field of a live `&self`.
        let top_frame = unsafe { ptr::read_volatile(&raw const self.top_frame) };
        if top_frame.is_null() {
            return 0;
        }
        // SAFETY: GC visit of a reference the dead thread's greenlet owns.
        unsafe { visit(top_frame.cast(), arg) }
    }

    /// # Safety
    /// Called from `tp_traverse`.
    pub(crate) unsafe fn traverse(
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
        if visit_top_frame {
            // SAFETY: forwarded.
            let r = unsafe { self.traverse_owned_top_frame(visit, arg) };
            if r != 0 {
                return r;
            }
        }
        #[cfg(Py_3_15)]
        {
            // SAFETY: a suspended greenlet's frames are exposed, so the chain holds only
            // complete frames, which live in data-stack chunks or generators.
            let r = unsafe { frames315::traverse(self.top_frame, visit, arg) };
            if r != 0 {
                return r;
            }
        }
        // `delete_later` is not visited: its objects already died once (refcount 0) and
        // are untracked.
        0
    }

    /// Takes out the context and, for a greenlet of a dead thread (`own_top_frame`), the
    /// top frame, for [`Cleared::release`] once no borrow of the owner is live.
    pub(crate) fn take_for_clear(&mut self, own_top_frame: bool) -> Cleared {
        let context = core::mem::replace(&mut self.context, ptr::null_mut());
        let frame = if own_top_frame {
            core::mem::replace(&mut self.top_frame, ptr::null_mut())
        } else {
            ptr::null_mut()
        };
        Cleared { context, frame }
    }
}

/// References taken out of a [`PythonState`] by [`PythonState::take_for_clear`].
#[must_use = "the references are only released by `release`"]
pub(crate) struct Cleared {
    context: *mut PyObject,
    frame: *mut PyFrameObject,
}

impl Cleared {
    /// Drops the context and (3.15: everything the frames hold) the frame.
    ///
    /// # Safety
    /// The GIL is held. Dropping may run arbitrary code, so no borrow of the greenlet the
    /// references came from may be live.
    pub(crate) unsafe fn release(self) {
        let Cleared { context, frame } = self;
        // SAFETY: references we held; dropping them may run arbitrary code, after our
        // fields are already consistent.
        unsafe {
            pyo3_ffi::Py_XDECREF(context);
            #[cfg(not(Py_3_15))]
            pyo3_ffi::Py_XDECREF(frame.cast());
            // 3.15: the frame objects are released along with everything else the frames
            // hold (the top one through its interpreter frame's `frame_obj`).
            #[cfg(Py_3_15)]
            frames315::clear(frame);
        }
    }
}

/// The running greenlet's Python recursion depth.
#[inline(always)]
fn current_recursion_depth(ts: &PyThreadState) -> c_int {
    #[cfg(not(Py_3_11))]
    return ts.recursion_depth;
    #[cfg(all(Py_3_11, not(Py_3_12)))]
    return ts.recursion_limit - ts.recursion_remaining;
    #[cfg(Py_3_12)]
    return ts.py_recursion_limit - ts.py_recursion_remaining;
}

/// The thread state's trash-can nesting level (before 3.13, which removed it), for
/// `greenlet._greenlet.get_tstate_trash_delete_nesting`.
///
/// # Safety
/// `tstate` is the current thread state.
#[cfg(not(Py_3_13))]
pub(crate) unsafe fn trash_delete_nesting(tstate: *mut PyThreadState) -> c_int {
    // SAFETY: live thread state (caller).
    unsafe {
        #[cfg(not(Py_3_12))]
        return (*tstate).trash_delete_nesting;
        #[cfg(Py_3_12)]
        return (*tstate).trash.delete_nesting;
    }
}

/// The frame object of the thread's current interpreter frame, if that frame has one
/// (borrowed), else null. When it is not null it is what `PyThreadState_GetFrame` would
/// return: it returns the innermost complete frame, and only complete frames ever get a
/// frame object (see [`frame_object_of`](crate::cpython::frame::frame_object_of), which
/// also skips the C-stack entry frame that is current while a frame returning into it is
/// being cleared).
///
/// # Safety
/// `tstate` is the current thread state and the GIL is held.
#[cfg(Py_3_11)]
#[inline(always)]
unsafe fn materialized_frame_object(tstate: *mut PyThreadState) -> *mut PyFrameObject {
    // SAFETY: the current frame pointer of a live thread state is null or a live frame;
    // before 3.13 `cframe` always points at the running greenlet's live `_PyCFrame`.
    unsafe {
        #[cfg(not(Py_3_13))]
        let frame = (*(*tstate).cframe).current_frame;
        #[cfg(Py_3_13)]
        let frame = (*tstate).current_frame;
        crate::cpython::frame::frame_object_of(frame).cast()
    }
}

/// Makes sure the current frame object exists before a switch (3.11+), with the GC
/// disabled: creating it allocates, and a collection at that point could run `__del__`
/// methods that switch greenlets in the middle of saving our state. Before 3.11 the
/// frame object always exists.
///
/// # Safety
/// The GIL is held.
#[inline]
pub(crate) unsafe fn materialize_frame() {
    #[cfg(Py_3_11)]
    // SAFETY: plain C-API calls with the GIL held.
    unsafe {
        if !materialized_frame_object(pyo3_ffi::PyThreadState_Get().cast()).is_null() {
            // The usual case: Python code calling `switch` from a frame that already has
            // its object (from an earlier switch, a traceback, `sys._getframe`, ...).
            return;
        }
        let was_enabled = pyo3_ffi::PyGC_Disable();
        let frame = pyo3_ffi::PyThreadState_GetFrame(pyo3_ffi::PyThreadState_Get());
        pyo3_ffi::Py_XDECREF(frame.cast());
        if was_enabled != 0 {
            pyo3_ffi::PyGC_Enable();
        }
    }
}
