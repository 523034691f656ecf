//! Switching between greenlets: the Python-level protocol around the stack switch of
//! `greenlet-core`.
//!
//! A switch from the running greenlet *cur* to *target*:
//! 1. the pending arguments (or a pending exception) are stored on the target;
//! 2. if the target is dead, the arguments move up to the first live or unstarted parent;
//! 3. *cur*'s interpreter and exception state are moved out of the thread state;
//! 4. the C stack is switched (`greenlet_core::switch`), which returns in the target;
//! 5. the target's state is moved back in, it becomes current, the trace function is
//!    called, and the arguments are returned from the target's own `switch()` call.
//!
//! After step 4 returns, only this greenlet's own locals are meaningful: who switched to
//! us is read from [`SWITCHING`], a global (the GIL serialises all switches).

#[cfg(not(Py_3_13))]
use crate::cpython::pystate::CFrame;
use crate::cpython::pystate::tstate;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::thread_state;
use crate::util::{PyErrSet, PyResult, SavedError, clear_owned, set_error, xnewref};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use greenlet_core::SwitchOutcome;
use pyo3_ffi::PyObject;

unsafe extern "C-unwind" {
    /// `PyObject_Call`, declared as able to unwind: a C++ exception escaping `run` (from
    /// a C++ extension) must travel up to the C++ runtime, which reports it and aborts,
    /// as it does for any unhandled C++ exception.
    #[link_name = "PyObject_Call"]
    fn call_run(
        callable: *mut PyObject,
        args: *mut PyObject,
        kwargs: *mut PyObject,
    ) -> *mut PyObject;
}

/// The greenlet being switched to, valid between saving *cur* and restoring the target.
static SWITCHING: AtomicPtr<Greenlet> = AtomicPtr::new(ptr::null_mut());

/// What a stack switch reports back in the greenlet that now runs. Two words, so that it
/// comes back in registers rather than through a slot in the caller's frame: the frames
/// of the switch path are part of every suspended greenlet's saved stack.
struct Switched {
    /// The greenlet that is now current; null if the switch failed (and did not happen).
    new_current: *mut Greenlet,
    /// The greenlet we came from (owned reference), null on failure.
    origin: *mut PyGreenlet,
}

impl Switched {
    const FAILED: Self = Self {
        new_current: ptr::null_mut(),
        origin: ptr::null_mut(),
    };

    fn failed(&self) -> bool {
        self.new_current.is_null()
    }
}

enum StubError {
    Py,
    /// `run` lookup ran code that started this greenlet: retry as an ordinary switch.
    StartedWhileInPython,
}

/// Packs pending switch arguments into the value `switch()` returns (before
/// [`single_result`]): the args tuple, the kwargs dict, or `(args, kwargs)`.
///
/// # Safety
/// The GIL is held; takes ownership of both (either may be null, not both).
pub unsafe fn pack_args(args: *mut PyObject, kwargs: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held; ownership as documented.
    unsafe {
        if kwargs.is_null() {
            return args;
        }
        if pyo3_ffi::PyDict_Size(kwargs) == 0 {
            pyo3_ffi::Py_DECREF(kwargs);
            return args;
        }
        if args.is_null() || pyo3_ffi::PySequence_Length(args) == 0 {
            pyo3_ffi::Py_XDECREF(args);
            return kwargs;
        }
        let pair = pyo3_ffi::PyTuple_Pack(2, args, kwargs);
        pyo3_ffi::Py_DECREF(args);
        pyo3_ffi::Py_DECREF(kwargs);
        pair
    }
}

/// Unwraps a 1-tuple. Takes ownership of `result` (which may be null).
///
/// # Safety
/// The GIL is held.
#[inline]
pub unsafe fn single_result(result: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held; ownership as documented.
    unsafe {
        if !result.is_null()
            && pyo3_ffi::PyTuple_CheckExact(result) != 0
            && pyo3_ffi::PyTuple_GET_SIZE(result) == 1
        {
            let item = pyo3_ffi::PyTuple_GET_ITEM(result, 0);
            pyo3_ffi::Py_INCREF(item);
            pyo3_ffi::Py_DECREF(result);
            return item;
        }
        result
    }
}

/// Turns the outcome of `run` into what the parent receives: a 1-tuple of the result,
/// the `GreenletExit` instance (or None) if that was raised, or null to propagate the
/// exception. Takes ownership of `result`.
///
/// # Safety
/// The GIL is held.
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
unsafe fn handle_exit(result: *mut PyObject) -> *mut PyObject {
    // SAFETY: GIL held.
    unsafe {
        if result.is_null() && pyo3_ffi::PyErr_ExceptionMatches(globals().greenlet_exit) != 0 {
            let mut ty = ptr::null_mut();
            let mut val = ptr::null_mut();
            let mut tb = ptr::null_mut();
            pyo3_ffi::PyErr_Fetch(&mut ty, &mut val, &mut tb);
            pyo3_ffi::Py_XDECREF(ty);
            pyo3_ffi::Py_XDECREF(tb);
            if val.is_null() {
                return xnewref(pyo3_ffi::Py_None());
            }
            return val;
        }
        if !result.is_null() {
            let packed = pyo3_ffi::PyTuple_Pack(1, result);
            pyo3_ffi::Py_DECREF(result);
            return packed;
        }
        ptr::null_mut()
    }
}

/// Replaces the pending arguments of `g` (taking ownership of both).
#[inline]
unsafe fn set_args(g: *mut Greenlet, args: *mut PyObject, kwargs: *mut PyObject) {
    // SAFETY: GIL held (caller); `g` is live.
    unsafe {
        (*g).release_args();
        (*g).args = args;
        (*g).kwargs = kwargs;
    }
}

/// Moves the pending arguments of `from` to `to`.
#[inline]
unsafe fn move_args(to: *mut Greenlet, from: *mut Greenlet) {
    // SAFETY: GIL held (caller); both live.
    unsafe {
        let args = core::mem::replace(&mut (*from).args, ptr::null_mut());
        let kwargs = core::mem::replace(&mut (*from).kwargs, ptr::null_mut());
        set_args(to, args, kwargs);
    }
}

/// `greenlet.switch(*args, **kwargs)`: returns a new reference, or null with an exception.
///
/// # Safety
/// The GIL is held; `g` is a greenlet; `args` is null or a tuple, `kwargs` null or a dict
/// (borrowed).
pub unsafe fn switch_to(
    g: *mut PyGreenlet,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let this = (*g).pimpl;
        crate::python_state::materialize_frame();
        let args = if args.is_null() {
            xnewref(globals().empty_tuple)
        } else {
            xnewref(args)
        };
        set_args(this, args, xnewref(kwargs));
        let result = match g_switch(this) {
            Ok(r) => single_result(r),
            Err(PyErrSet) => ptr::null_mut(),
        };
        if result.is_null() && pyo3_ffi::PyErr_Occurred().is_null() {
            set_error(
                globals().greenlet_error,
                c"Greenlet.switch() returned NULL without an exception set.",
            );
        }
        result
    }
}

/// `greenlet.throw(typ, val, tb)` after argument normalisation: raises the exception in
/// `g` (or, if it is dead, delivers `GreenletExit` as a value to its parent chain).
///
/// # Safety
/// The GIL is held; `g` is a greenlet; the three pieces are owned and normalised.
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub unsafe fn throw_into(
    g: *mut PyGreenlet,
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let this = (*g).pimpl;
        pyo3_ffi::PyErr_Restore(typ, val, tb);
        let mut result = ptr::null_mut();
        if (*this).started() && !(*this).active() {
            // Dead: GreenletExit becomes an ordinary return value.
            result = handle_exit(ptr::null_mut());
        }
        set_args(this, result, ptr::null_mut());
        match g_switch(this) {
            Ok(r) => single_result(r),
            Err(PyErrSet) => ptr::null_mut(),
        }
    }
}

/// Normalises `throw()` arguments as upstream does, returning owned pieces.
///
/// # Safety
/// The GIL is held; arguments are borrowed (null allowed for `val` and `tb`).
#[allow(
    deprecated,
    reason = "the (type, value, traceback) error API is deprecated from 3.12 but still exact on every version we support, and 3.10/3.11 have nothing else"
)]
pub unsafe fn normalize_throw_args(
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> PyResult<(*mut PyObject, *mut PyObject, *mut PyObject)> {
    // SAFETY: GIL held; all pointers are live or null.
    unsafe {
        let none = pyo3_ffi::Py_None();
        let mut typ = xnewref(typ);
        let mut val = xnewref(val);
        let mut tb = if tb == none {
            ptr::null_mut()
        } else {
            xnewref(tb)
        };
        let fail = |t: *mut PyObject, v: *mut PyObject, b: *mut PyObject| {
            pyo3_ffi::Py_XDECREF(t);
            pyo3_ffi::Py_XDECREF(v);
            pyo3_ffi::Py_XDECREF(b);
            PyErrSet
        };
        if !tb.is_null() && pyo3_ffi::PyTraceBack_Check(tb) == 0 {
            set_error(
                pyo3_ffi::PyExc_TypeError,
                c"throw() third argument must be a traceback object",
            );
            return Err(fail(typ, val, tb));
        }
        if pyo3_ffi::PyExceptionClass_Check(typ) != 0 {
            pyo3_ffi::PyErr_NormalizeException(&mut typ, &mut val, &mut tb);
        } else if pyo3_ffi::PyExceptionInstance_Check(typ) != 0 {
            if !val.is_null() && val != none {
                set_error(
                    pyo3_ffi::PyExc_TypeError,
                    c"instance exception may not have a separate value",
                );
                return Err(fail(typ, val, tb));
            }
            pyo3_ffi::Py_XDECREF(val);
            val = typ;
            typ = xnewref(pyo3_ffi::PyExceptionInstance_Class(val));
        } else {
            pyo3_ffi::PyErr_Format(
                pyo3_ffi::PyExc_TypeError,
                c"exceptions must be classes, or instances, not %s".as_ptr(),
                (*pyo3_ffi::Py_TYPE(typ)).tp_name,
            );
            return Err(fail(typ, val, tb));
        }
        Ok((typ, val, tb))
    }
}

/// Switches to `this` (or its first live ancestor), delivering its pending arguments or
/// the pending exception. Returns the packed value received when this greenlet resumes.
///
/// # Safety
/// The GIL is held; `this` is live.
pub unsafe fn g_switch(this: *mut Greenlet) -> PyResult<*mut PyObject> {
    // SAFETY: see the function contract; every greenlet reached through parents is owned
    // by its child.
    unsafe {
        if !(*this).is_main() && !(*this).has_args() && pyo3_ffi::PyErr_Occurred().is_null() {
            (*this).release_args();
            return Err(set_error(
                globals().greenlet_error,
                c"cannot switch with no pending arguments or exception",
            ));
        }
        if let Err(e) = (*this).check_switch_allowed() {
            (*this).release_args();
            return Err(e);
        }
        let mut dummymarker: usize = 0;
        // The new greenlet's stack starts below this frame.
        let mark: *mut u8 = core::hint::black_box(ptr::addr_of_mut!(dummymarker)).cast();
        let mut target = this;
        let mut target_was_me = true;
        let mut was_initial_stub = false;
        let err = loop {
            if (*target).active() {
                if !target_was_me {
                    move_args(target, this);
                }
                break g_switchstack(target);
            }
            if !(*target).started() {
                was_initial_stub = true;
                if !target_was_me {
                    move_args(target, this);
                }
                match prepare_start(target) {
                    Ok(run) => break g_initialstub(target, mark, run),
                    Err(StubError::Py) => {
                        (*this).release_args();
                        return Err(PyErrSet);
                    }
                    Err(StubError::StartedWhileInPython) => continue,
                }
            }
            let parent = (*target).parent();
            if parent.is_null() {
                // Unreachable after `check_switch_allowed`, which found a main greenlet
                // (always active) in this lineage.
                break Switched::FAILED;
            }
            target = (*parent).pimpl;
            target_was_me = false;
        };
        core::hint::black_box(&dummymarker);
        if err.failed() {
            return Err(switch_failed(this, target, target_was_me, was_initial_stub));
        }
        g_switch_finish(err.new_current, err.origin)
    }
}

/// The error path of [`g_switch`], out of line: whatever the switch path keeps in its
/// frame is copied with every suspended greenlet's stack.
///
/// # Safety
/// As for [`g_switch`]; `target` is the greenlet the failed switch went to.
#[cold]
#[inline(never)]
unsafe fn switch_failed(
    this: *mut Greenlet,
    target: *mut Greenlet,
    target_was_me: bool,
    was_initial_stub: bool,
) -> PyErrSet {
    // SAFETY: see the function contract.
    unsafe {
        if pyo3_ffi::PyErr_Occurred().is_null() {
            set_error(
                pyo3_ffi::PyExc_SystemError,
                if was_initial_stub {
                    c"Failed to switch stacks into a greenlet for the first time."
                } else {
                    c"Failed to switch stacks into a running greenlet."
                },
            );
        }
        (*this).release_args();
        if !target_was_me {
            (*target).murder_in_place();
        }
        PyErrSet
    }
}

/// Performs the stack switch to `this`, which is active or has just been set up to start.
///
/// # Safety
/// The GIL is held; `this` belongs to the current thread.
#[inline(never)]
unsafe fn g_switchstack(this: *mut Greenlet) -> Switched {
    // SAFETY: see the function contract.
    unsafe {
        if let Kind::User {
            force_switch_error: true,
            ..
        } = (*this).kind
        {
            return Switched::FAILED;
        }
        let state = (*this).thread_state();
        let current = match thread_state::borrow_current() {
            Ok(c) => c,
            Err(PyErrSet) => return Switched::FAILED,
        };
        if current == (*this).self_ {
            return Switched {
                new_current: this,
                origin: xnewref(current),
            };
        }
        let cur = (*current).pimpl;
        let ts = tstate();
        (*cur).python.save(ts);
        (*cur).exception.save(ts);
        (*this).python.will_switch_from(ts);
        SWITCHING.store(this, Ordering::Relaxed);
        // While `cur`'s stack is still in place, make its suspended frames walkable.
        #[cfg(Py_3_12)]
        (*cur).python.expose_frames();
        let forced_failure = matches!(
            (*this).kind,
            Kind::User {
                force_slp_switch_error: true,
                ..
            }
        );
        let outcome = if forced_failure {
            Err(greenlet_core::SwitchError::OutOfMemory)
        } else {
            greenlet_core::switch(
                ptr::addr_of_mut!((*state).switch_ctx),
                ptr::addr_of_mut!((*cur).stack),
                ptr::addr_of_mut!((*this).stack),
            )
        };
        match outcome {
            // A new greenlet starting (in `g_initialstub`) tells itself apart by being
            // `now`.
            Ok(SwitchOutcome::Resumed | SwitchOutcome::Started) => {}
            Err(_) => pyo3_ffi::Py_FatalError(
                c"greenlet: Failed low-level slp_switch(). The stack is probably corrupt.".as_ptr(),
            ),
        }
        // Only this greenlet's own locals are valid now; `this` above is whatever we
        // switched to last time. Who is running is in the global.
        let now = SWITCHING.swap(ptr::null_mut(), Ordering::Relaxed);
        let origin = switchstack_success(now);
        Switched {
            new_current: now,
            origin,
        }
    }
}

/// Restores the state of the greenlet that was just switched in and makes it current.
/// Returns the previous current greenlet (owned).
#[inline]
unsafe fn switchstack_success(now: *mut Greenlet) -> *mut PyGreenlet {
    // SAFETY: GIL held; `now` is the greenlet whose stack we are running on.
    unsafe {
        let ts = tstate();
        (*now).python.restore(ts);
        (*now).exception.restore(ts);
        let state = (*now).thread_state();
        let origin = (*state).current;
        (*state).current = xnewref((*now).self_);
        origin
    }
}

/// Before a first switch into `this`: looks up its `run` (owned) and checks, after that
/// lookup (which can run Python code), that the start may still go ahead. Out of line so
/// that none of this stays in the frames under the new greenlet's stack.
///
/// # Safety
/// The GIL is held; `this` is an unstarted user greenlet.
#[inline(never)]
unsafe fn prepare_start(this: *mut Greenlet) -> Result<*mut PyObject, StubError> {
    // SAFETY: see the function contract.
    unsafe {
        // Keep our own references to the arguments: looking up `run` can run code that
        // switches into this greenlet and consumes them.
        let saved_args = xnewref((*this).args);
        let saved_kwargs = xnewref((*this).kwargs);
        let drop_saved = || {
            pyo3_ffi::Py_XDECREF(saved_args);
            pyo3_ffi::Py_XDECREF(saved_kwargs);
        };
        let saved_err = SavedError::fetch();
        let run = pyo3_ffi::PyObject_GetAttr((*this).self_.cast(), globals().str_run);
        if run.is_null() {
            saved_err.discard();
            drop_saved();
            return Err(StubError::Py);
        }
        saved_err.restore();
        if (*this).check_switch_allowed().is_err() {
            pyo3_ffi::Py_DECREF(run);
            drop_saved();
            return Err(StubError::Py);
        }
        if (*this).started() {
            pyo3_ffi::Py_DECREF(run);
            set_args(this, saved_args, saved_kwargs);
            return Err(StubError::StartedWhileInPython);
        }
        drop_saved();
        Ok(run)
    }
}

/// First switch into a greenlet, whose `run` (owned) [`prepare_start`] found: sets up its
/// stack bookkeeping below `mark` (a local of the caller's frame) and switches. In the new
/// greenlet this never returns; in the starting greenlet it returns when something
/// switches back.
///
/// # Safety
/// The GIL is held; `this` is an unstarted user greenlet; `mark` is in the caller's frame;
/// no Python code ran since `prepare_start`.
#[inline(never)]
unsafe fn g_initialstub(this: *mut Greenlet, mark: *mut u8, run: *mut PyObject) -> Switched {
    // SAFETY: see the function contract.
    unsafe {
        // From here on nothing may run Python code before the switch.
        // Before 3.13 the new greenlet needs a `_PyCFrame` of its own, on its own stack.
        #[cfg(not(Py_3_13))]
        let mut cframe: CFrame = core::mem::zeroed();
        #[cfg(not(Py_3_13))]
        (*this).python.set_new_cframe(&mut cframe);
        let state = match thread_state::current() {
            Ok(s) => s,
            Err(PyErrSet) => {
                pyo3_ffi::Py_DECREF(run);
                return Switched::FAILED;
            }
        };
        let current = (*state).current;
        (*this).stack =
            greenlet_core::StackState::for_new_greenlet(mark, &(*(*current).pimpl).stack);
        (*this).python.set_initial_state(tstate());
        (*this).exception.clear_without_decref();
        if let Kind::User { main_greenlet, .. } = &mut (*this).kind {
            crate::util::replace_owned(main_greenlet, xnewref((*state).main_greenlet));
        }
        let err = g_switchstack(this);
        if err.new_current == this {
            // We are the new greenlet, running on the stack below `mark`. (The starting
            // greenlet, when it resumes here, is another live greenlet.)
            inner_bootstrap(err.new_current, err.origin, run);
        }
        #[cfg(not(Py_3_13))]
        core::hint::black_box(&mut cframe);
        if err.failed() {
            // The start failed: back to "never started".
            (*this).stack = greenlet_core::StackState::unstarted();
            (*this).python.did_finish(ptr::null_mut());
            if let Kind::User { main_greenlet, .. } = &mut (*this).kind {
                clear_owned(main_greenlet);
            }
            pyo3_ffi::Py_DECREF(run);
        }
        // Otherwise the new greenlet took over the reference to `run`.
        err
    }
}

/// The body of a new greenlet: calls `run`, then hands the result (or exception) to the
/// parent chain. Never returns: the frames below it belong to nobody once it is dead.
#[inline(never)]
unsafe fn inner_bootstrap(
    this: *mut Greenlet,
    mut origin: *mut PyGreenlet,
    run: *mut PyObject,
) -> ! {
    // SAFETY: GIL held; `this` is the current greenlet; `origin` and `run` are owned.
    unsafe {
        let g = globals();
        (*this).stack.set_active();
        let mut args = core::mem::replace(&mut (*this).args, ptr::null_mut());
        let mut kwargs = core::mem::replace(&mut (*this).kwargs, ptr::null_mut());
        if let Kind::User { run_callable, .. } = &mut (*this).kind {
            crate::util::replace_owned(run_callable, run);
        }
        let state = (*this).thread_state();
        let tracefunc = xnewref((*state).tracefunc);
        if !tracefunc.is_null() {
            let event = if args.is_null() && kwargs.is_null() {
                g.event_throw
            } else {
                g.event_switch
            };
            if call_trace(tracefunc, event, origin, (*this).self_).is_err() {
                // A failing trace function turns the switch into a throw.
                clear_owned(&mut args);
                clear_owned(&mut kwargs);
            }
            pyo3_ffi::Py_DECREF(tracefunc);
        }
        clear_owned(&mut origin);

        let mut result = if args.is_null() && kwargs.is_null() {
            ptr::null_mut()
        } else {
            let callable = match (*this).kind {
                Kind::User { run_callable, .. } => run_callable,
                Kind::Main { .. } => ptr::null_mut(),
            };
            let call_args = if args.is_null() { g.empty_tuple } else { args };
            call_run(callable, call_args, kwargs)
        };
        clear_owned(&mut args);
        clear_owned(&mut kwargs);
        if let Kind::User { run_callable, .. } = &mut (*this).kind {
            clear_owned(run_callable);
        }

        if result.is_null()
            && pyo3_ffi::PyErr_ExceptionMatches(g.greenlet_exit) != 0
            && (*this).has_args()
        {
            // Killed while a switch into us was pending (e.g. our last reference went
            // away after we switched to the parent): deliver those arguments instead.
            let killed = SavedError::fetch();
            let a = core::mem::replace(&mut (*this).args, ptr::null_mut());
            let k = core::mem::replace(&mut (*this).kwargs, ptr::null_mut());
            result = single_result(pack_args(a, k));
            killed.discard();
        }
        (*this).release_args();
        (*this).python.did_finish(tstate());
        let mut result = handle_exit(result);
        if let Kind::User {
            killed_by_dealloc: true,
            ..
        } = (*this).kind
        {
            drop_traceback_here(result);
        }

        (*this).stack.set_inactive();
        let mut parent = (*this).parent();
        while !parent.is_null() {
            let p = (*parent).pimpl;
            set_args(p, result, ptr::null_mut());
            result = ptr::null_mut();
            // Only returns if the switch failed; then the error goes to the next parent.
            if let Ok(r) = g_switch(p) {
                result = r;
            }
            parent = (*p).parent();
        }
        pyo3_ffi::PyErr_WriteUnraisable((*this).self_.cast());
        pyo3_ffi::Py_FatalError(
            c"greenlet: ran out of parent greenlets while propagating exception; cannot continue"
                .as_ptr(),
        )
    }
}

/// The end of every switch, in the greenlet that now runs: take the delivered value, call
/// the trace function, and raise if an exception was delivered.
///
/// Out of line so that its locals do not enlarge [`g_switch`]'s frame, which is on the
/// stack of every suspended greenlet.
///
/// # Safety
/// The GIL is held; `this` is the current greenlet; `origin` is owned.
#[inline(never)]
unsafe fn g_switch_finish(this: *mut Greenlet, origin: *mut PyGreenlet) -> PyResult<*mut PyObject> {
    // SAFETY: see the function contract.
    unsafe {
        let g = globals();
        let mut result = ptr::null_mut();
        if (*this).has_args() {
            let a = core::mem::replace(&mut (*this).args, ptr::null_mut());
            let k = core::mem::replace(&mut (*this).kwargs, ptr::null_mut());
            result = pack_args(a, k);
        }
        let state = (*this).thread_state();
        let tracefunc = xnewref((*state).tracefunc);
        let mut failed = false;
        if !tracefunc.is_null() {
            let event = if result.is_null() {
                g.event_throw
            } else {
                g.event_switch
            };
            failed = call_trace(tracefunc, event, origin, (*this).self_).is_err();
            pyo3_ffi::Py_DECREF(tracefunc);
        }
        pyo3_ffi::Py_XDECREF(origin.cast());
        if failed || !pyo3_ffi::PyErr_Occurred().is_null() {
            pyo3_ffi::Py_XDECREF(result);
            (*this).release_args();
            return Err(PyErrSet);
        }
        Ok(result)
    }
}

/// Calls the greenlet trace function with `(event, (origin, target))`, with tracing
/// suspended and any pending exception preserved. A failing trace function is removed.
unsafe fn call_trace(
    tracefunc: *mut PyObject,
    event: *mut PyObject,
    origin: *mut PyGreenlet,
    target: *mut PyGreenlet,
) -> PyResult<()> {
    // SAFETY: GIL held (caller); all objects live.
    unsafe {
        let saved = SavedError::fetch();
        let ts = pyo3_ffi::PyThreadState_Get();
        crate::cpython::pystate::enter_tracing(ts.cast());
        let pair = pyo3_ffi::PyTuple_Pack(2, origin, target);
        let r = if pair.is_null() {
            ptr::null_mut()
        } else {
            let r = pyo3_ffi::PyObject_CallFunctionObjArgs(
                tracefunc,
                event,
                pair,
                ptr::null_mut::<PyObject>(),
            );
            pyo3_ffi::Py_DECREF(pair);
            r
        };
        crate::cpython::pystate::leave_tracing(ts.cast());
        if r.is_null() {
            if let Ok(state) = thread_state::current() {
                (*state).set_tracefunc(ptr::null_mut());
            }
            saved.discard();
            return Err(PyErrSet);
        }
        pyo3_ffi::Py_DECREF(r);
        saved.restore();
        Ok(())
    }
}

/// Kills a suspended greenlet of the current thread whose last reference went away, by
/// raising `GreenletExit` in it. Its parent is the current greenlet for the duration, so
/// it returns here when it dies.
///
/// # Safety
/// The GIL is held; `this` is a started, active user greenlet of this thread, temporarily
/// resurrected by the caller.
pub unsafe fn throw_greenlet_exit_during_dealloc(this: *mut Greenlet) -> PyResult<()> {
    // SAFETY: see the function contract.
    unsafe {
        let current = thread_state::borrow_current()?;
        let old_parent = match &mut (*this).kind {
            Kind::User {
                parent,
                killed_by_dealloc,
                ..
            } => {
                *killed_by_dealloc = true;
                core::mem::replace(parent, xnewref(current))
            }
            Kind::Main { .. } => return Ok(()),
        };
        set_error(
            globals().greenlet_exit,
            c"Killing the greenlet because all references have vanished.",
        );
        let r = g_switch(this);
        if let Kind::User {
            parent,
            killed_by_dealloc,
            ..
        } = &mut (*this).kind
        {
            *killed_by_dealloc = false;
            crate::util::replace_owned(parent, old_parent);
        }
        let r = r?;
        pyo3_ffi::Py_DECREF(r);
        Ok(())
    }
}

/// In a greenlet that was killed because its last reference went away, and has now
/// finished: drops the traceback of the `GreenletExit` it hands to its killer, here, on
/// its own stack.
///
/// That traceback keeps the greenlet's finished frames, and with them its locals,
/// alive. Released in the killer instead, a local that held the last reference to
/// another suspended greenlet kills that one from inside the killer's deallocation, one
/// level deeper each time: freeing a chain of N greenlets that hold each other then nests
/// N deep on the C stack, copying ever larger stack slices on every switch (quadratic
/// time, and on 3.13+, where the trash can no longer bounds this nesting, unbounded
/// stack). Released here, each kill starts again from a greenlet's own shallow stack.
unsafe fn drop_traceback_here(result: *mut PyObject) {
    // SAFETY: GIL held (caller); `result` is null, None, a tuple, or the exception.
    unsafe {
        if !result.is_null() && pyo3_ffi::PyExceptionInstance_Check(result) != 0 {
            pyo3_ffi::PyException_SetTraceback(result, pyo3_ffi::Py_None());
        }
    }
}
