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

mod args;
mod start;
mod throw;
mod trace;

pub(crate) use args::{pack_args, single_result, vectorcall_args_to_tuple_dict};
pub(crate) use throw::{normalize_throw_args, throw_greenlet_exit_during_dealloc, throw_into};

use args::{move_args, set_args};
use start::{StubError, g_initialstub, prepare_start};
use trace::call_trace;

use crate::cpython::pystate::tstate;
use crate::globals::globals;
use crate::greenlet::{Greenlet, PyGreenlet};
use crate::thread_state::{self, ThreadState};
use crate::util::{PyErrSet, PyResult, set_error, xnewref};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use greenlet_core::SwitchOutcome;
use pyo3_ffi::PyObject;

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

/// `greenlet.switch(*args, **kwargs)`: returns a new reference, or null with an exception.
///
/// # Safety
/// The GIL is held; `g` is a greenlet; `args` is null or a tuple, `kwargs` null or a dict
/// (borrowed).
pub(crate) unsafe fn switch_to(
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

/// Switches to `this` (or its first live ancestor), delivering its pending arguments or
/// the pending exception. Returns the packed value received when this greenlet resumes.
///
/// # Safety
/// The GIL is held; `this` is live.
pub(crate) unsafe fn g_switch(this: *mut Greenlet) -> PyResult<*mut PyObject> {
    // SAFETY: see the function contract; every greenlet reached through parents is owned
    // by its child.
    unsafe {
        if !(*this).is_main() && !(*this).has_args() && pyo3_ffi::PyErr_Occurred().is_null() {
            Greenlet::release_args(this);
            return Err(set_error(
                globals().greenlet_error,
                c"cannot switch with no pending arguments or exception",
            ));
        }
        if let Err(e) = (*this).check_switch_allowed() {
            Greenlet::release_args(this);
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
                        Greenlet::release_args(this);
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
        Greenlet::release_args(this);
        if !target_was_me {
            Greenlet::murder_in_place(target);
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
        if (*this).test_hooks.fail_switch {
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
        // While `cur`'s stack is still in place, make its suspended frames walkable —
        // unless it stays in place for as long as `cur` is suspended.
        #[cfg(Py_3_12)]
        if (*cur).stack.stays_in_place_across(&(*this).stack) {
            (*cur).python.leave_unexposed();
        } else {
            (*cur).python.expose_frames();
        }
        let outcome = if (*this).test_hooks.fail_stack_switch {
            Err(greenlet_core::SwitchError::OutOfMemory)
        } else {
            greenlet_core::switch(
                ThreadState::switch_ctx(state),
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
        let switched = after_stack_switch();
        // `auto`'s bookkeeping for the greenlet that switched away (owned, so live).
        crate::stacks::note_switched_away(switched.origin);
        switched
    }
}

/// The end of a stack switch, in the greenlet that now runs (resumed in
/// [`g_switchstack`], or just started on a stack of its own).
///
/// # Safety
/// The GIL is held; a stack switch just happened.
#[inline]
unsafe fn after_stack_switch() -> Switched {
    let now = SWITCHING.swap(ptr::null_mut(), Ordering::Relaxed);
    // SAFETY: `now` is the greenlet whose stack we are running on (contract).
    let origin = unsafe { switchstack_success(now) };
    Switched {
        new_current: now,
        origin,
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
        // The C-stack limits of the stack we are on now.
        #[cfg(Py_3_14)]
        crate::python_state::c_stack::enter(
            ts,
            (*now).stack.stack_bounds(),
            (*state).c_stack_limits(),
        );
        ThreadState::replace_current(state, xnewref((*now).self_))
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
        let tracefunc = xnewref((*state).tracefunc());
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
            Greenlet::release_args(this);
            return Err(PyErrSet);
        }
        Ok(result)
    }
}
