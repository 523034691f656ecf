//! The Python-visible attributes of a greenlet that need more than a field read:
//! `run`, `parent` and `gr_context`, with upstream's checks and messages.
//!
//! The setters take the implementation as a raw pointer, not `&mut self`: releasing the
//! old value can run `__del__`, which can reach this same greenlet again. Each setter
//! writes the field through a borrow that ends at once and releases the old reference
//! afterwards, when no reference into the greenlet is live.

use super::{Greenlet, Kind, PyGreenlet};
use crate::globals::{check_greenlet, globals};
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult, opt_into_raw};
use crate::thread_state;
use core::mem;
use core::ptr;

const NO_RUN_ON_MAIN: &core::ffi::CStr = c"Main greenlets do not have a run attribute.";

impl Greenlet {
    /// The `run` getter.
    pub(crate) fn get_run<'py>(&self, py: Gil<'py>) -> PyResult<Owned<'py>> {
        match self.kind {
            Kind::Main { .. } => Err(py.attribute_error(NO_RUN_ON_MAIN)),
            Kind::User { run_callable, .. } => {
                if self.started() || run_callable.is_null() {
                    // SAFETY: CPython's `PyExc_*` statics are set before any extension loads.
                    let exc = unsafe { pyo3_ffi::PyExc_AttributeError };
                    // SAFETY: the GIL is held (`py`); both objects live for the process.
                    unsafe { pyo3_ffi::PyErr_SetObject(exc, globals().str_run) };
                    return Err(PyErrSet);
                }
                // SAFETY: the field owns a reference, so the object is alive.
                Ok(unsafe { Borrowed::from_ptr(py, run_callable) }.to_owned())
            }
        }
    }

    /// The `run` setter (`None` means delete).
    ///
    /// # Safety
    /// `this` points at a live implementation; the caller holds no reference into it.
    pub(crate) unsafe fn set_run(
        this: *mut Self,
        py: Gil<'_>,
        value: Option<Borrowed<'_, '_>>,
    ) -> PyResult<()> {
        let old = {
            // SAFETY: live (contract); the borrow ends with this block, before any code
            // can run.
            let me = unsafe { &mut *this };
            let started = me.started();
            match &mut me.kind {
                Kind::Main { .. } => return Err(py.attribute_error(NO_RUN_ON_MAIN)),
                Kind::User { run_callable, .. } => {
                    if started {
                        return Err(py.attribute_error(
                            c"run cannot be set after the start of the greenlet",
                        ));
                    }
                    mem::replace(run_callable, opt_into_raw(value.map(Borrowed::to_owned)))
                }
            }
        };
        // SAFETY: the field owned `old`; released with no borrow of the greenlet live.
        drop(unsafe { Owned::from_raw_opt(py, old) });
        Ok(())
    }

    /// The `parent` setter (`None` means delete).
    ///
    /// # Safety
    /// `this` points at a live implementation; the caller holds no reference into it.
    pub(crate) unsafe fn set_parent(
        this: *mut Self,
        py: Gil<'_>,
        value: Option<Borrowed<'_, '_>>,
    ) -> PyResult<()> {
        let Some(value) = value else {
            return Err(py.attribute_error(c"can't delete attribute"));
        };
        // SAFETY: live (contract); a short read.
        let me = unsafe { &*this };
        let (is_main, self_) = (me.is_main(), me.self_);
        if is_main {
            return Err(py.attribute_error(c"cannot set the parent of a main greenlet"));
        }
        // SAFETY: the GIL is held and `value` is live.
        unsafe { check_greenlet(value.as_ptr())? };
        let new_parent: *mut PyGreenlet = value.as_ptr().cast();
        let mut main_of_new_parent: *mut PyGreenlet = ptr::null_mut();
        let mut p = new_parent;
        while !p.is_null() {
            if p == self_ {
                return Err(py.value_error(c"cyclic parent chain"));
            }
            // SAFETY: `p` is a live greenlet (each parent is owned by its child).
            let pi = unsafe { (*p).pimpl };
            // SAFETY: so its implementation is live too; a short read.
            let pi = unsafe { &*pi };
            main_of_new_parent = pi.main_greenlet();
            p = pi.parent();
        }
        if main_of_new_parent.is_null() {
            return Err(py.value_error(c"parent must not be garbage collected"));
        }
        let old = {
            // SAFETY: live (contract); the borrow ends with this block.
            let me = unsafe { &mut *this };
            let started = me.started();
            match &mut me.kind {
                Kind::User {
                    parent,
                    main_greenlet,
                    ..
                } => {
                    if started && *main_greenlet != main_of_new_parent {
                        return Err(py.value_error(c"parent cannot be on a different thread"));
                    }
                    // SAFETY: `value` is a live greenlet (checked above).
                    let new = unsafe { Borrowed::from_ptr(py, new_parent) }.to_owned();
                    mem::replace(parent, new.into_raw())
                }
                Kind::Main { .. } => ptr::null_mut(),
            }
        };
        // SAFETY: the field owned `old`; released with no borrow of the greenlet live.
        drop(unsafe { Owned::from_raw_opt(py, old) });
        Ok(())
    }

    /// The `gr_context` getter.
    ///
    /// # Safety
    /// `this` points at a live implementation.
    pub(crate) unsafe fn get_context<'py>(this: *const Self, py: Gil<'py>) -> PyResult<Owned<'py>> {
        // SAFETY: live (contract); short reads only, since `is_current` may run code.
        let me = unsafe { &*this };
        let (running, self_) = (me.is_currently_running_in_some_thread(), me.self_);
        let result = if running {
            // SAFETY: the GIL is held.
            if unsafe { !thread_state::is_current(self_)? } {
                return Err(py.value_error(
                    c"cannot get context of a greenlet that is running in a different thread",
                ));
            }
            // SAFETY: the GIL is held.
            let ts = unsafe { crate::cpython::pystate::tstate() };
            // SAFETY: the running greenlet's context is in the (live) thread state.
            unsafe { (*ts).context }
        } else {
            // SAFETY: live (contract).
            unsafe { (*this).python.context() }
        };
        // SAFETY: the thread state or the greenlet owns the context, if any.
        let result = unsafe { Borrowed::from_ptr_opt(py, result) }.unwrap_or(py.none());
        Ok(result.to_owned())
    }

    /// The `gr_context` setter (`None` means delete).
    ///
    /// # Safety
    /// `this` points at a live implementation; the caller holds no reference into it.
    pub(crate) unsafe fn set_context(
        this: *mut Self,
        py: Gil<'_>,
        given: Option<Borrowed<'_, '_>>,
    ) -> PyResult<()> {
        let Some(given) = given else {
            return Err(py.attribute_error(c"can't delete context attribute"));
        };
        let given = (given.as_ptr() != py.none().as_ptr()).then_some(given);
        if let Some(given) = given {
            // SAFETY: the GIL is held; a type check of a live object.
            if unsafe { pyo3_ffi::PyContext_CheckExact(given.as_ptr()) } == 0 {
                return Err(
                    py.type_error(c"greenlet context must be a contextvars.Context or None")
                );
            }
        }
        let new = || opt_into_raw(given.map(Borrowed::to_owned));
        // SAFETY: live (contract); short reads.
        let me = unsafe { &*this };
        let (running, self_) = (me.is_currently_running_in_some_thread(), me.self_);
        let old = if running {
            // SAFETY: the GIL is held.
            if unsafe { !thread_state::is_current(self_)? } {
                return Err(py.value_error(
                    c"cannot set context of a greenlet that is running in a different thread",
                ));
            }
            let new = new();
            // SAFETY: the GIL is held.
            let ts = unsafe { crate::cpython::pystate::tstate() };
            // SAFETY: the current thread state is live and not borrowed elsewhere; the new
            // reference moves into it (the old one is released below).
            let ts = unsafe { &mut *ts };
            let old = mem::replace(&mut ts.context, new);
            // Invalidate the contextvars cache, which is keyed on the version.
            ts.context_ver = ts.context_ver.wrapping_add(1);
            old
        } else {
            // SAFETY: live (contract); the borrow ends with the statement.
            unsafe { (*this).python.replace_context(new()) }
        };
        // SAFETY: `old` was owned by the slot it was taken from.
        drop(unsafe { Owned::from_raw_opt(py, old) });
        Ok(())
    }
}
