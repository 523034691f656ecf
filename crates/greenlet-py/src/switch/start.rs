//! Starting a greenlet: the `run` lookup, the first stack switch (`g_initialstub`) and
//! the body every greenlet runs until it dies (`inner_bootstrap`).

use super::args::{handle_exit, pack_args, set_args, single_result};
use super::{Switched, call_trace, g_switch, g_switchstack};
#[cfg(not(Py_3_13))]
use crate::cpython::pystate::CFrame;
use crate::cpython::pystate::tstate;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::thread_state::{self, ThreadState};
use crate::util::{PyErrSet, SavedError, clear_owned, xnewref};
use core::ffi::c_void;
use core::ptr;
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

pub(super) enum StubError {
    Py,
    /// `run` lookup ran code that started this greenlet: retry as an ordinary switch.
    StartedWhileInPython,
}

/// Before a first switch into `this`: looks up its `run` (owned) and checks, after that
/// lookup (which can run Python code), that the start may still go ahead. Out of line so
/// that none of this stays in the frames under the new greenlet's stack.
///
/// # Safety
/// The GIL is held; `this` is an unstarted user greenlet.
#[inline(never)]
pub(super) unsafe fn prepare_start(this: *mut Greenlet) -> Result<*mut PyObject, StubError> {
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
pub(super) unsafe fn g_initialstub(
    this: *mut Greenlet,
    mark: *mut u8,
    run: *mut PyObject,
) -> Switched {
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
        let current = (*state).current();
        // On a stack of its own if the policy says so and one can be had; else sliced.
        let stack = match crate::stacks::size_for_start(this) {
            Ok(Some(size)) => (*ThreadState::switch_ctx(state)).take_stack(size),
            Ok(None) => None,
            Err(PyErrSet) => {
                pyo3_ffi::Py_DECREF(run);
                return Switched::FAILED;
            }
        };
        #[cfg(Py_3_14)]
        if stack.is_some() {
            crate::python_state::c_stack::note_dedicated_stack();
        }
        let mut fresh = FreshStart { this, run };
        (*this).stack = match stack {
            Some(stack) => greenlet_core::StackState::for_new_dedicated(
                stack,
                fresh_entry,
                ptr::addr_of_mut!(fresh).cast(),
            ),
            None => greenlet_core::StackState::for_new_greenlet(mark, &(*(*current).pimpl).stack),
        };
        (*this).python.set_initial_state(tstate());
        if let Some((lo, hi)) = (*this).stack.stack_bounds() {
            (*this)
                .python
                .fit_c_recursion_to_stack(hi as usize - lo as usize);
        }
        (*this).exception.clear_without_decref();
        if let Kind::User { main_greenlet, .. } = &mut (*this).kind {
            crate::util::replace_owned(main_greenlet, xnewref((*state).main_greenlet()));
        }
        let err = g_switchstack(this);
        if err.new_current == this {
            // We are the new greenlet, running on the stack below `mark`. (The starting
            // greenlet, when it resumes here, is another live greenlet. A greenlet started
            // on a stack of its own never gets here: it runs in `fresh_entry`.)
            inner_bootstrap(err.new_current, err.origin, run);
        }
        core::hint::black_box(&mut fresh);
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

/// What a greenlet starting on a stack of its own needs, read by [`fresh_entry`] from the
/// starting greenlet's frame before anything else runs.
struct FreshStart {
    this: *mut Greenlet,
    run: *mut PyObject,
}

/// The bottom frame of a greenlet started on a stack of its own: the part of
/// [`g_switchstack`] after the switch, as the new greenlet, then its whole life.
///
/// # Safety
/// Called only by greenlet-core, on the new stack, with the `FreshStart` that
/// [`g_initialstub`] put in its frame (still intact: the starting greenlet is suspended,
/// and nothing ran on its stack since).
unsafe extern "C-unwind" fn fresh_entry(arg: *mut c_void) -> ! {
    // SAFETY: see the function contract; GIL held (the switch happened under it).
    unsafe {
        let FreshStart { this, run } = ptr::read(arg.cast::<FreshStart>());
        // Before 3.13 the new greenlet's `_PyCFrame` lives on its own stack, here.
        #[cfg(not(Py_3_13))]
        let mut cframe: CFrame = core::mem::zeroed();
        #[cfg(not(Py_3_13))]
        (*this).python.set_new_cframe(&mut cframe);
        let switched = super::after_stack_switch();
        debug_assert!(switched.new_current == this);
        inner_bootstrap(switched.new_current, switched.origin, run)
    }
}

/// The body of a new greenlet: calls `run`, then hands the result (or exception) to the
/// parent chain. Never returns: the frames below it belong to nobody once it is dead.
#[inline(never)]
pub(super) unsafe fn inner_bootstrap(
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
        let tracefunc = xnewref((*state).tracefunc());
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
        Greenlet::release_args(this);
        (*this).python.did_finish(tstate());
        let mut result = handle_exit(result);

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
