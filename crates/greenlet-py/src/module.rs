//! The `greenlet._greenlet` module: its functions, constants and initialisation.

use crate::globals::{globals, globals_mut};
use crate::greenlet::TOTAL_MAIN_GREENLETS;
use crate::thread_state::{self, CLOCKS_USED_DOING_GC};
use crate::util::{PyErrSet, xnewref};
use crate::{capi, greenlet_type};
use core::ffi::{CStr, c_int};
use core::ptr;
use core::sync::atomic::Ordering;
use pyo3_ffi::*;

/// `getcurrent()`, as `METH_FASTCALL` rather than `METH_NOARGS`: the interpreter's
/// call specialisations (3.11+) cover fast-call builtins and not no-argument ones, so
/// this skips a generic call. Arguments are refused with `METH_NOARGS`'s message;
/// keywords are refused by CPython itself, with the same message as before.
unsafe extern "C" fn mod_getcurrent(
    _m: *mut PyObject,
    _args: *mut *mut PyObject,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        if nargs != 0 {
            PyErr_Format(
                PyExc_TypeError,
                c"greenlet._greenlet.getcurrent() takes no arguments (%zd given)".as_ptr(),
                nargs,
            );
            return ptr::null_mut();
        }
        capi::capi_getcurrent().cast()
    }
}

unsafe extern "C" fn mod_settrace(_m: *mut PyObject, args: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let mut tracefunc: *mut PyObject = ptr::null_mut();
        if PyArg_ParseTuple(args, c"O".as_ptr(), &mut tracefunc) == 0 {
            return ptr::null_mut();
        }
        let Ok(state) = thread_state::current() else {
            return ptr::null_mut();
        };
        let previous = (*state).tracefunc;
        let previous = if previous.is_null() {
            xnewref(Py_None())
        } else {
            xnewref(previous)
        };
        (*state).set_tracefunc(tracefunc);
        previous
    }
}

unsafe extern "C" fn mod_gettrace(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let Ok(state) = thread_state::current() else {
            return ptr::null_mut();
        };
        let f = (*state).tracefunc;
        xnewref(if f.is_null() { Py_None() } else { f })
    }
}

unsafe extern "C" fn mod_set_thread_local(_m: *mut PyObject, args: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let mut key: *mut PyObject = ptr::null_mut();
        let mut value: *mut PyObject = ptr::null_mut();
        if PyArg_ParseTuple(args, c"OO".as_ptr(), &mut key, &mut value) == 0 {
            return ptr::null_mut();
        }
        let dict = PyThreadState_GetDict();
        if dict.is_null() || PyDict_SetItem(dict, key, value) < 0 {
            return ptr::null_mut();
        }
        xnewref(Py_None())
    }
}

unsafe extern "C" fn mod_get_pending_cleanup_count(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { PyLong_FromSize_t(thread_state::pending_cleanup_count()) }
}

unsafe extern "C" fn mod_get_total_main_greenlets(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { PyLong_FromSsize_t(TOTAL_MAIN_GREENLETS.load(Ordering::Relaxed) as Py_ssize_t) }
}

unsafe extern "C" fn mod_get_clocks_used_doing_optional_cleanup(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let clocks = CLOCKS_USED_DOING_GC.load(Ordering::Relaxed);
        if clocks == -1 {
            return xnewref(Py_None());
        }
        PyLong_FromLongLong(clocks)
    }
}

unsafe extern "C" fn mod_enable_optional_cleanup(
    _m: *mut PyObject,
    flag: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let truth = PyObject_IsTrue(flag);
        if truth < 0 {
            return ptr::null_mut();
        }
        if truth != 0 {
            // Re-enabling keeps an existing count.
            let _ =
                CLOCKS_USED_DOING_GC.compare_exchange(-1, 0, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            CLOCKS_USED_DOING_GC.store(-1, Ordering::Relaxed);
        }
        xnewref(Py_None())
    }
}

#[cfg(not(Py_3_13))]
unsafe extern "C" fn mod_get_tstate_trash_delete_nesting(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        PyLong_FromLong(
            crate::python_state::trash_delete_nesting(crate::cpython::pystate::tstate()) as _,
        )
    }
}

#[cfg(Py_3_11)]
unsafe extern "C" fn mod_cached_data_stack_chunks(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { PyLong_FromSize_t(crate::datastack::cached_chunk_count()) }
}

fn method(name: &'static CStr, f: PyCFunction, flags: c_int, doc: &'static CStr) -> PyMethodDef {
    PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: f },
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }
}

fn module_methods() -> *mut PyMethodDef {
    #[allow(unused_mut)] // extended per version below
    let mut v = vec![
        PyMethodDef {
            ml_name: c"getcurrent".as_ptr(),
            ml_meth: PyMethodDefPointer {
                PyCFunctionFast: mod_getcurrent,
            },
            ml_flags: METH_FASTCALL,
            ml_doc: c"getcurrent() -> greenlet\n\nReturns the greenlet running in this thread (creating this thread's main greenlet if needed).".as_ptr(),
        },
        method(
            c"settrace",
            mod_settrace,
            METH_VARARGS,
            c"settrace(callback) -> object\n\nSets this thread's greenlet trace function, called as callback(event, (origin, target)) on every switch ('switch' or 'throw'). Returns the previous one. None removes it.",
        ),
        method(
            c"gettrace",
            mod_gettrace,
            METH_NOARGS,
            c"gettrace() -> object\n\nReturns this thread's greenlet trace function, or None.",
        ),
        method(
            c"set_thread_local",
            mod_set_thread_local,
            METH_VARARGS,
            c"set_thread_local(key, value) -> None\n\nStores value in the interpreter's per-thread dict (a test hook).",
        ),
        method(
            c"get_pending_cleanup_count",
            mod_get_pending_cleanup_count,
            METH_NOARGS,
            c"get_pending_cleanup_count() -> int\n\nThe number of exited threads whose greenlet state awaits destruction (a test hook).",
        ),
        method(
            c"get_total_main_greenlets",
            mod_get_total_main_greenlets,
            METH_NOARGS,
            c"get_total_main_greenlets() -> int\n\nThe number of live main greenlets (a test hook).",
        ),
        method(
            c"get_clocks_used_doing_optional_cleanup",
            mod_get_clocks_used_doing_optional_cleanup,
            METH_NOARGS,
            c"get_clocks_used_doing_optional_cleanup() -> int or None\n\nclock() ticks spent looking for stray references to main greenlets of exited threads, or None when that is disabled.",
        ),
        method(
            c"enable_optional_cleanup",
            mod_enable_optional_cleanup,
            METH_O,
            c"enable_optional_cleanup(bool) -> None\n\nTurns the search for stray references to main greenlets of exited threads on or off.",
        ),
    ];
    #[cfg(not(Py_3_13))]
    v.push(method(
        c"get_tstate_trash_delete_nesting",
        mod_get_tstate_trash_delete_nesting,
        METH_NOARGS,
        c"get_tstate_trash_delete_nesting() -> int\n\nThe thread state's trash-can nesting level (a test hook).",
    ));
    #[cfg(Py_3_11)]
    v.push(method(
        c"_cached_data_stack_chunks",
        mod_cached_data_stack_chunks,
        METH_NOARGS,
        c"_cached_data_stack_chunks() -> int\n\nHow many of CPython's 16 KiB data-stack chunks greenlet-rs keeps for reuse now (a test hook of greenlet-rs).",
    ));
    v.push(PyMethodDef::zeroed());
    Box::leak(v.into_boxed_slice()).as_mut_ptr()
}

/// Adds `value` (a new reference, stolen) to the module.
unsafe fn add(module: *mut PyObject, name: &CStr, value: *mut PyObject) -> Result<(), PyErrSet> {
    // SAFETY: GIL held (module init).
    unsafe {
        if value.is_null() {
            return Err(PyErrSet);
        }
        let r = PyModule_AddObjectRef(module, name.as_ptr(), value);
        Py_DECREF(value);
        if r < 0 { Err(PyErrSet) } else { Ok(()) }
    }
}

unsafe fn intern(s: &CStr) -> *mut PyObject {
    // SAFETY: GIL held (module init); interned strings live forever.
    unsafe { PyUnicode_InternFromString(s.as_ptr()) }
}

/// Builds the module (single-phase initialisation, like upstream: no sub-interpreters).
///
/// # Safety
/// Called once by the import machinery with the GIL held.
pub unsafe fn init() -> Result<*mut PyObject, PyErrSet> {
    // SAFETY: module init, GIL held.
    unsafe {
        crate::selfcheck::check()?;
        #[cfg(Py_3_11)]
        crate::datastack::install_chunk_cache();
        let def = Box::leak(Box::new(PyModuleDef {
            m_base: PyModuleDef_HEAD_INIT,
            m_name: c"greenlet._greenlet".as_ptr(),
            m_doc: c"The greenlet extension module (greenlet-rs, a Rust implementation).".as_ptr(),
            m_size: -1,
            m_methods: module_methods(),
            m_slots: ptr::null_mut(),
            m_traverse: None,
            m_clear: None,
            m_free: None,
        }));
        let module = PyModule_Create(def);
        if module.is_null() {
            return Err(PyErrSet);
        }
        let gm = globals_mut();
        gm.str_run = intern(c"run");
        gm.event_switch = intern(c"switch");
        gm.event_throw = intern(c"throw");
        gm.empty_tuple = PyTuple_New(0);
        gm.empty_dict = PyDict_New();
        gm.greenlet_error =
            PyErr_NewException(c"greenlet.error".as_ptr(), ptr::null_mut(), ptr::null_mut());
        gm.greenlet_exit = PyErr_NewException(
            c"greenlet.GreenletExit".as_ptr(),
            PyExc_BaseException,
            ptr::null_mut(),
        );
        gm.greenlet_type = greenlet_type::create_type();
        gm.switch_method = greenlet_type::green_switch_fast as *const core::ffi::c_void;
        if gm.greenlet_type.is_null()
            || gm.greenlet_error.is_null()
            || gm.greenlet_exit.is_null()
            || gm.empty_tuple.is_null()
            || gm.empty_dict.is_null()
        {
            return Err(PyErrSet);
        }
        let g = globals();
        let attr = |name: &CStr| PyObject_GetAttrString(module, name.as_ptr());
        let class_attrs = [
            (c"getcurrent", attr(c"getcurrent")),
            (c"error", g.greenlet_error),
            (c"GreenletExit", g.greenlet_exit),
            (c"settrace", attr(c"settrace")),
            (c"gettrace", attr(c"gettrace")),
        ];
        greenlet_type::finish_type(g.greenlet_type, &class_attrs)?;
        gm.unswitchable_type = greenlet_type::create_unswitchable_type(g.greenlet_type);
        if g.unswitchable_type.is_null() {
            return Err(PyErrSet);
        }
        add(module, c"greenlet", xnewref(g.greenlet_type.cast()))?;
        add(
            module,
            c"UnswitchableGreenlet",
            xnewref(g.unswitchable_type.cast()),
        )?;
        add(module, c"error", xnewref(g.greenlet_error))?;
        add(module, c"GreenletExit", xnewref(g.greenlet_exit))?;
        add(module, c"GREENLET_USE_GC", PyLong_FromLong(1))?;
        add(module, c"GREENLET_USE_TRACING", PyLong_FromLong(1))?;
        add(module, c"GREENLET_USE_CONTEXT_VARS", PyLong_FromLong(1))?;
        add(
            module,
            c"GREENLET_USE_STANDARD_THREADING",
            PyLong_FromLong(1),
        )?;
        add(
            module,
            c"CLOCKS_PER_SEC",
            PyLong_FromLong(thread_state::CLOCKS_PER_SEC as _),
        )?;
        add(module, c"_C_API", capi::create_capsule())?;
        for (_, obj) in &class_attrs[..] {
            // the two `attr()` results are new references; the rest are borrowed globals
            let _ = obj;
        }
        Py_XDECREF(class_attrs[0].1);
        Py_XDECREF(class_attrs[3].1);
        Py_XDECREF(class_attrs[4].1);
        Ok(module)
    }
}
