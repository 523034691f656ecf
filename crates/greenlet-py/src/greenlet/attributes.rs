//! The Python-visible attributes of a greenlet that need more than a field read:
//! `run`, `parent` and `gr_context`, with upstream's checks and messages.

use super::{Greenlet, Kind, PyGreenlet};
use crate::globals::{check_greenlet, globals};
use crate::thread_state;
use crate::util::{PyErrSet, PyResult, replace_owned, set_error, xnewref};
use core::ptr;
use pyo3_ffi::PyObject;

impl Greenlet {
    /// The `run` getter.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn get_run(&self) -> PyResult<*mut PyObject> {
        let g = globals();
        match self.kind {
            Kind::Main { .. } => Err(unsafe {
                // SAFETY: GIL held.
                set_error(
                    pyo3_ffi::PyExc_AttributeError,
                    c"Main greenlets do not have a run attribute.",
                )
            }),
            Kind::User { run_callable, .. } => {
                if self.started() || run_callable.is_null() {
                    // SAFETY: GIL held.
                    unsafe { pyo3_ffi::PyErr_SetObject(pyo3_ffi::PyExc_AttributeError, g.str_run) };
                    return Err(PyErrSet);
                }
                // SAFETY: GIL held; a new reference for the caller.
                Ok(unsafe { xnewref(run_callable) })
            }
        }
    }

    /// The `run` setter (`value` null means delete).
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn set_run(&mut self, value: *mut PyObject) -> PyResult<()> {
        let started = self.started();
        match &mut self.kind {
            Kind::Main { .. } => Err(unsafe {
                // SAFETY: GIL held.
                set_error(
                    pyo3_ffi::PyExc_AttributeError,
                    c"Main greenlets do not have a run attribute.",
                )
            }),
            Kind::User { run_callable, .. } => {
                if started {
                    // SAFETY: GIL held.
                    return Err(unsafe {
                        set_error(
                            pyo3_ffi::PyExc_AttributeError,
                            c"run cannot be set after the start of the greenlet",
                        )
                    });
                }
                // SAFETY: GIL held; we take a new reference.
                unsafe { replace_owned(run_callable, xnewref(value)) };
                Ok(())
            }
        }
    }

    /// The `parent` setter (`value` null means delete).
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn set_parent(&mut self, value: *mut PyObject) -> PyResult<()> {
        if value.is_null() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(pyo3_ffi::PyExc_AttributeError, c"can't delete attribute")
            });
        }
        if self.is_main() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    pyo3_ffi::PyExc_AttributeError,
                    c"cannot set the parent of a main greenlet",
                )
            });
        }
        // SAFETY: GIL held.
        unsafe { check_greenlet(value)? };
        let new_parent: *mut PyGreenlet = value.cast();
        let mut main_of_new_parent: *mut PyGreenlet = ptr::null_mut();
        let mut p = new_parent;
        while !p.is_null() {
            if p == self.self_ {
                // SAFETY: GIL held.
                return Err(unsafe {
                    set_error(pyo3_ffi::PyExc_ValueError, c"cyclic parent chain")
                });
            }
            // SAFETY: `p` is a live greenlet (owned by the chain).
            let pi = unsafe { &*(*p).pimpl };
            main_of_new_parent = pi.main_greenlet();
            p = pi.parent();
        }
        if main_of_new_parent.is_null() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    pyo3_ffi::PyExc_ValueError,
                    c"parent must not be garbage collected",
                )
            });
        }
        let started = self.started();
        if let Kind::User {
            parent,
            main_greenlet,
            ..
        } = &mut self.kind
        {
            if started && *main_greenlet != main_of_new_parent {
                // SAFETY: GIL held.
                return Err(unsafe {
                    set_error(
                        pyo3_ffi::PyExc_ValueError,
                        c"parent cannot be on a different thread",
                    )
                });
            }
            // SAFETY: GIL held; a new reference to the new parent.
            unsafe { replace_owned(parent, xnewref(new_parent)) };
        }
        Ok(())
    }

    /// The `gr_context` getter.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn get_context(&self) -> PyResult<*mut PyObject> {
        let result = if self.is_currently_running_in_some_thread() {
            // SAFETY: GIL held.
            if unsafe { !thread_state::is_current(self.self_)? } {
                // SAFETY: GIL held.
                return Err(unsafe {
                    set_error(
                        pyo3_ffi::PyExc_ValueError,
                        c"cannot get context of a greenlet that is running in a different thread",
                    )
                });
            }
            // SAFETY: GIL held; the running greenlet's context is in the thread state.
            unsafe { (*crate::cpython::pystate::tstate()).context }
        } else {
            self.python.context()
        };
        let result = if result.is_null() {
            // SAFETY: the None singleton.
            unsafe { pyo3_ffi::Py_None() }
        } else {
            result
        };
        // SAFETY: GIL held.
        Ok(unsafe { xnewref(result) })
    }

    /// The `gr_context` setter.
    ///
    /// # Safety
    /// The GIL is held.
    pub unsafe fn set_context(&mut self, given: *mut PyObject) -> PyResult<()> {
        if given.is_null() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    pyo3_ffi::PyExc_AttributeError,
                    c"can't delete context attribute",
                )
            });
        }
        // SAFETY: GIL held.
        let given = if given == unsafe { pyo3_ffi::Py_None() } {
            ptr::null_mut()
        } else {
            given
        };
        // SAFETY: GIL held; type check of a live object.
        if !given.is_null() && unsafe { pyo3_ffi::PyContext_CheckExact(given) } == 0 {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    pyo3_ffi::PyExc_TypeError,
                    c"greenlet context must be a contextvars.Context or None",
                )
            });
        }
        if self.is_currently_running_in_some_thread() {
            // SAFETY: GIL held.
            if unsafe { !thread_state::is_current(self.self_)? } {
                // SAFETY: GIL held.
                return Err(unsafe {
                    set_error(
                        pyo3_ffi::PyExc_ValueError,
                        c"cannot set context of a greenlet that is running in a different thread",
                    )
                });
            }
            // SAFETY: GIL held; we move a new reference into the thread state.
            unsafe {
                let ts = crate::cpython::pystate::tstate();
                let old = core::mem::replace(&mut (*ts).context, xnewref(given));
                (*ts).context_ver = (*ts).context_ver.wrapping_add(1);
                pyo3_ffi::Py_XDECREF(old);
            }
        } else {
            // SAFETY: GIL held.
            let old = self.python.replace_context(unsafe { xnewref(given) });
            // SAFETY: the old context was owned.
            unsafe { pyo3_ffi::Py_XDECREF(old) };
        }
        Ok(())
    }
}
