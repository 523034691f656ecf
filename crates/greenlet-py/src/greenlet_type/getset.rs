//! The type's properties (`PyGetSetDef`): `__dict__`, `run`, `parent`, `gr_frame`,
//! `gr_context`, `dead`, `_stack_saved`, `gr_stack` and `gr_stack_dedicated`.
//!
//! Each C entry point only makes the [`Gil`] token and borrows its arguments; the body
//! is a safe function of those (see `getter!` and `setter!` below).

use super::pimpl;
use super::slots::is_not_dead;
use crate::greenlet::{Greenlet, PyGreenlet};
use crate::py::{Borrowed, Gil, Owned, PyResult};
use core::mem;
use pyo3_ffi::PyObject;

/// Defines the `getter` `$name`, whose body sees the token `$py` and the borrowed greenlet
/// `$slf` and returns a new reference.
macro_rules! getter {
    ($name:ident, |$py:ident, $slf:ident| $body:block) => {
        pub(super) unsafe extern "C" fn $name(
            slf: *mut PyObject,
            _closure: *mut core::ffi::c_void,
        ) -> *mut PyObject {
            fn body<'py>(
                $py: Gil<'py>,
                $slf: Borrowed<'_, 'py, PyGreenlet>,
            ) -> PyResult<Owned<'py>> {
                $body
            }
            // SAFETY: CPython calls a getter with the GIL held, on a live instance.
            let py = unsafe { Gil::assume() };
            // SAFETY: as above; the instance outlives the call.
            let slf = unsafe { Borrowed::from_ptr(py, slf.cast()) };
            crate::py::into_ptr(body(py, slf))
        }
    };
}

/// Defines the `setter` `$name`, whose body sees the token `$py`, the borrowed greenlet
/// `$slf` and the value `$val` (`None` for `del`).
macro_rules! setter {
    ($name:ident, |$py:ident, $slf:ident, $val:ident| $body:block) => {
        pub(super) unsafe extern "C" fn $name(
            slf: *mut PyObject,
            val: *mut PyObject,
            _closure: *mut core::ffi::c_void,
        ) -> core::ffi::c_int {
            fn body<'py>(
                $py: Gil<'py>,
                $slf: Borrowed<'_, 'py, PyGreenlet>,
                $val: Option<Borrowed<'_, 'py>>,
            ) -> PyResult<()> {
                $body
            }
            // SAFETY: CPython calls a setter with the GIL held, on a live instance.
            let py = unsafe { Gil::assume() };
            // SAFETY: as above; the instance and the value outlive the call.
            let (slf, val) = unsafe {
                (
                    Borrowed::from_ptr(py, slf.cast()),
                    Borrowed::from_ptr_opt(py, val),
                )
            };
            crate::py::into_status(body(py, slf, val))
        }
    };
}

/// The implementation of a live greenlet.
fn imp(slf: Borrowed<'_, '_, PyGreenlet>) -> *mut Greenlet {
    // SAFETY: a live greenlet after `tp_new`.
    unsafe { pimpl(slf.as_object()) }
}

getter!(green_getdict, |py, slf| {
    let o = slf.as_ptr();
    // SAFETY: a live greenlet.
    let dict = unsafe { (*o).dict };
    // SAFETY: the field is null or owned by the greenlet (so alive).
    if let Some(dict) = unsafe { Borrowed::from_ptr_opt(py, dict) } {
        return Ok(dict.to_owned());
    }
    // SAFETY: the GIL is held.
    let dict = unsafe { pyo3_ffi::PyDict_New() };
    // SAFETY: a new reference or null with an exception set.
    let dict = unsafe { Owned::from_raw(py, dict)? };
    // SAFETY: the field was null; the object keeps the new reference.
    unsafe { (*o).dict = dict.clone().into_raw() };
    Ok(dict)
});

setter!(green_setdict, |py, slf, val| {
    let Some(val) = val else {
        return Err(py.type_error(c"__dict__ may not be deleted"));
    };
    // SAFETY: the GIL is held; a type check of a live object.
    if unsafe { pyo3_ffi::PyDict_Check(val.as_ptr()) } == 0 {
        return Err(py.type_error(c"__dict__ must be a dictionary"));
    }
    // SAFETY: a live greenlet; the field owns what it holds. The old dict is released
    // after the write.
    let old = unsafe { mem::replace(&mut (*slf.as_ptr()).dict, val.to_owned().into_raw()) };
    // SAFETY: owned by the field until now.
    drop(unsafe { Owned::from_raw_opt(py, old) });
    Ok(())
});

getter!(green_getrun, |py, slf| {
    // SAFETY: a live implementation; `get_run` runs no Python code.
    unsafe { (*imp(slf)).get_run(py) }
});

setter!(green_setrun, |py, slf, val| {
    // SAFETY: a live implementation, not borrowed here.
    unsafe { Greenlet::set_run(imp(slf), py, val) }
});

getter!(green_getparent, |py, slf| {
    // SAFETY: a live implementation; a short read.
    let parent = unsafe { (*imp(slf)).parent() };
    // SAFETY: the child owns its parent.
    Ok(unsafe { Borrowed::from_ptr_opt(py, parent.cast()) }
        .unwrap_or(py.none())
        .to_owned())
});

setter!(green_setparent, |py, slf, val| {
    // SAFETY: a live implementation, not borrowed here.
    unsafe { Greenlet::set_parent(imp(slf), py, val) }
});

getter!(green_getcontext, |py, slf| {
    // SAFETY: a live implementation.
    unsafe { Greenlet::get_context(imp(slf), py) }
});

setter!(green_setcontext, |py, slf, val| {
    // SAFETY: a live implementation, not borrowed here.
    unsafe { Greenlet::set_context(imp(slf), py, val) }
});

getter!(green_getframe, |py, slf| {
    // SAFETY: a live implementation; a short read.
    let frame = unsafe { (*imp(slf)).python.top_frame() };
    // SAFETY: a suspended greenlet's frame is kept alive by its frame chain.
    Ok(unsafe { Borrowed::from_ptr_opt(py, frame.cast()) }
        .unwrap_or(py.none())
        .to_owned())
});

getter!(green_getdead, |py, slf| {
    // SAFETY: a live implementation, not borrowed here.
    Ok(py.bool(!unsafe { is_not_dead(imp(slf)) }))
});

getter!(green_get_stack_saved, |py, slf| {
    // SAFETY: a live implementation; a short borrow.
    let this = unsafe { &*imp(slf) };
    let state = this.thread_state();
    let saved = if state.is_null() {
        this.stack.saved_bytes()
    } else {
        // SAFETY: the state of a live thread; a short borrow under the GIL (`py`).
        let state = unsafe { &*state };
        // SAFETY: the running greenlet is live, and so is its implementation.
        let running = unsafe { PyGreenlet::imp(state.current()) };
        this.stack
            .held_bytes(Some(&running.stack), state.thread_stack_top())
    };
    // SAFETY: the GIL is held.
    let saved = unsafe { pyo3_ffi::PyLong_FromSsize_t(saved as pyo3_ffi::Py_ssize_t) };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Owned::from_raw(py, saved) }
});

getter!(green_getstack, |py, slf| {
    // SAFETY: a live implementation; a short read.
    let word = unsafe { (*imp(slf)).stack_choice };
    crate::stacks::policy_to_object(py, crate::stacks::decode_choice(word))
});

setter!(green_setstack, |py, slf, val| {
    let choice = match val {
        None => None,
        Some(v) => crate::stacks::policy_from_object(py, v, "gr_stack")?,
    };
    // SAFETY: a live implementation; a short borrow, no Python code runs.
    let this = unsafe { &mut *imp(slf) };
    if this.started() {
        return Err(py.value_error(c"gr_stack cannot be changed after the greenlet has started"));
    }
    this.stack_choice = crate::stacks::encode_choice(choice);
    Ok(())
});

getter!(green_get_stack_dedicated, |py, slf| {
    // SAFETY: a live implementation; a short borrow.
    let this = unsafe { &*imp(slf) };
    if !this.stack.active() {
        return Ok(py.none().to_owned());
    }
    Ok(py.bool(this.stack.owns_stack()))
});
