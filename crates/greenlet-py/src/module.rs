//! The `greenlet._greenlet` module: its functions, constants and initialisation.

use crate::globals::{globals, globals_mut};
use crate::greenlet::TOTAL_MAIN_GREENLETS;
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult, check_status, check_success, into_ptr};
use crate::thread_state::{self, CLOCKS_USED_DOING_GC, ThreadState};
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
    if nargs != 0 {
        // SAFETY: CPython's `PyExc_*` statics are set before any extension loads.
        let exc = unsafe { PyExc_TypeError };
        let msg = c"greenlet._greenlet.getcurrent() takes no arguments (%zd given)";
        // SAFETY: called by CPython with the GIL held; `%zd` takes a `Py_ssize_t`.
        unsafe { PyErr_Format(exc, msg.as_ptr(), nargs) };
        return ptr::null_mut();
    }
    // SAFETY: called by CPython with the GIL held.
    unsafe { capi::capi_getcurrent() }.cast()
}

/// Defines a module function (`PyCFunction`) whose body sees the token `$py` and the
/// argument `$arg` (the args tuple, the single `METH_O` argument, or null) and returns a
/// new reference.
macro_rules! module_fn {
    ($name:ident, |$py:ident, $arg:ident| $body:block) => {
        unsafe extern "C" fn $name(_module: *mut PyObject, arg: *mut PyObject) -> *mut PyObject {
            fn body<'py>($py: Gil<'py>, $arg: *mut PyObject) -> PyResult<Owned<'py>> {
                $body
            }
            // SAFETY: CPython calls module functions with the GIL held.
            let py = unsafe { Gil::assume() };
            into_ptr(body(py, arg))
        }
    };
}

/// A new `int` (`$make` is a `PyLong_From*` call).
macro_rules! new_int {
    ($py:expr, $make:expr) => {{
        // SAFETY: the GIL is held (`$py` proves it); a `PyLong_From*` call.
        let v = unsafe { $make };
        // SAFETY: a new reference or null with an exception set.
        unsafe { Owned::from_raw($py, v) }
    }};
}

module_fn!(mod_settrace, |py, args| {
    let mut tracefunc: *mut PyObject = ptr::null_mut();
    // SAFETY: the GIL is held; `args` is the arguments tuple; one borrowed out-value.
    check_success(unsafe { PyArg_ParseTuple(args, c"O".as_ptr(), &mut tracefunc) })?;
    // SAFETY: the GIL is held.
    let state = unsafe { thread_state::current()? };
    // SAFETY: this thread's state is live.
    let previous = unsafe { &*state }.tracefunc();
    // SAFETY: the state owns its trace function, if any.
    let previous = unsafe { Borrowed::from_ptr_opt(py, previous) }
        .unwrap_or(py.none())
        .to_owned();
    // SAFETY: the GIL is held; the state is live and not otherwise borrowed.
    unsafe { ThreadState::set_tracefunc(state, tracefunc) };
    Ok(previous)
});

module_fn!(mod_gettrace, |py, _unused| {
    // SAFETY: the GIL is held.
    let state = unsafe { thread_state::current()? };
    // SAFETY: this thread's state is live.
    let f = unsafe { &*state }.tracefunc();
    // SAFETY: the state owns its trace function, if any.
    let f = unsafe { Borrowed::from_ptr_opt(py, f) };
    Ok(f.unwrap_or(py.none()).to_owned())
});

module_fn!(mod_set_thread_local, |py, args| {
    let mut key: *mut PyObject = ptr::null_mut();
    let mut value: *mut PyObject = ptr::null_mut();
    // SAFETY: the GIL is held; `args` is the arguments tuple; borrowed out-values.
    check_success(unsafe { PyArg_ParseTuple(args, c"OO".as_ptr(), &mut key, &mut value) })?;
    // SAFETY: the GIL is held; a borrowed dict, or null with an exception set.
    let dict = unsafe { PyThreadState_GetDict() };
    if dict.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: the GIL is held; all three objects are live.
    check_status(unsafe { PyDict_SetItem(dict, key, value) })?;
    Ok(py.none().to_owned())
});

module_fn!(mod_get_pending_cleanup_count, |py, _unused| {
    new_int!(py, PyLong_FromSize_t(thread_state::pending_cleanup_count()))
});

module_fn!(mod_get_total_main_greenlets, |py, _unused| {
    let n = TOTAL_MAIN_GREENLETS.load(Ordering::Relaxed) as Py_ssize_t;
    new_int!(py, PyLong_FromSsize_t(n))
});

module_fn!(mod_get_clocks_used_doing_optional_cleanup, |py, _unused| {
    let clocks = CLOCKS_USED_DOING_GC.load(Ordering::Relaxed);
    if clocks == -1 {
        return Ok(py.none().to_owned());
    }
    new_int!(py, PyLong_FromLongLong(clocks))
});

module_fn!(mod_enable_optional_cleanup, |py, flag| {
    // SAFETY: the GIL is held; `flag` is the live `METH_O` argument.
    let truth = check_status(unsafe { PyObject_IsTrue(flag) })?;
    if truth != 0 {
        // Re-enabling keeps an existing count.
        let _ = CLOCKS_USED_DOING_GC.compare_exchange(-1, 0, Ordering::Relaxed, Ordering::Relaxed);
    } else {
        CLOCKS_USED_DOING_GC.store(-1, Ordering::Relaxed);
    }
    Ok(py.none().to_owned())
});

#[cfg(not(Py_3_13))]
module_fn!(mod_get_tstate_trash_delete_nesting, |py, _unused| {
    // SAFETY: the GIL is held.
    let ts = unsafe { crate::cpython::pystate::tstate() };
    // SAFETY: the current thread state is live.
    let nesting = unsafe { crate::python_state::trash_delete_nesting(ts) };
    new_int!(py, PyLong_FromLong(nesting as _))
});

#[cfg(Py_3_11)]
module_fn!(mod_cached_data_stack_chunks, |py, _unused| {
    new_int!(
        py,
        PyLong_FromSize_t(crate::datastack::cached_chunk_count())
    )
});

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

/// Adds `value` to the module.
///
/// # Safety
/// `module` is the module being initialised.
unsafe fn add(
    py: Gil<'_>,
    module: *mut PyObject,
    name: &CStr,
    value: PyResult<Owned<'_>>,
) -> PyResult<()> {
    let value = value?;
    // SAFETY: the GIL is held (`py`); the module is live; the function takes its own
    // reference.
    check_status(unsafe { PyModule_AddObjectRef(module, name.as_ptr(), value.as_object()) })?;
    let _ = py;
    Ok(())
}

/// Adds `value`, an object the module globals keep alive, to the module.
///
/// # Safety
/// `module` is the module being initialised; `value` is live.
unsafe fn add_ref(module: *mut PyObject, name: &CStr, value: *mut PyObject) -> PyResult<()> {
    // SAFETY: the GIL is held (module init); both objects live; the function takes its
    // own reference.
    check_status(unsafe { PyModule_AddObjectRef(module, name.as_ptr(), value) })?;
    Ok(())
}

/// A new `int`.
fn int(py: Gil<'_>, v: core::ffi::c_long) -> PyResult<Owned<'_>> {
    // SAFETY: the GIL is held (`py`).
    let v = unsafe { PyLong_FromLong(v) };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Owned::from_raw(py, v) }
}

/// An interned string that lives for the process (null with an exception on failure).
fn intern(py: Gil<'_>, s: &CStr) -> *mut PyObject {
    let _ = py;
    // SAFETY: the GIL is held (`py`); a C string.
    unsafe { PyUnicode_InternFromString(s.as_ptr()) }
}

/// Creates the objects of [`crate::globals::Globals`].
///
/// # Safety
/// Module init, before anything reads the globals.
unsafe fn init_globals(py: Gil<'_>) -> PyResult<()> {
    // SAFETY: CPython's `PyExc_*` statics are set before any extension loads.
    let base_exception = unsafe { PyExc_BaseException };
    // SAFETY: the GIL is held (`py`), as for the calls below (with C strings and live
    // objects).
    let empty_tuple = unsafe { PyTuple_New(0) };
    // SAFETY: as above.
    let empty_dict = unsafe { PyDict_New() };
    let error_name = c"greenlet.error".as_ptr();
    // SAFETY: as above.
    let greenlet_error =
        unsafe { PyErr_NewException(error_name, ptr::null_mut(), ptr::null_mut()) };
    let exit_name = c"greenlet.GreenletExit".as_ptr();
    // SAFETY: as above.
    let greenlet_exit = unsafe { PyErr_NewException(exit_name, base_exception, ptr::null_mut()) };
    // SAFETY: as above; once, at module init.
    let greenlet_type = unsafe { greenlet_type::create_type() };
    // SAFETY: module init: nothing else reads or writes the globals now (contract).
    let gm = unsafe { globals_mut() };
    gm.str_run = intern(py, c"run");
    gm.event_switch = intern(py, c"switch");
    gm.event_throw = intern(py, c"throw");
    gm.empty_tuple = empty_tuple;
    gm.empty_dict = empty_dict;
    gm.greenlet_error = greenlet_error;
    gm.greenlet_exit = greenlet_exit;
    gm.greenlet_type = greenlet_type;
    gm.switch_method = greenlet_type::green_switch_fast as *const core::ffi::c_void;
    if gm.greenlet_type.is_null()
        || gm.greenlet_error.is_null()
        || gm.greenlet_exit.is_null()
        || gm.empty_tuple.is_null()
        || gm.empty_dict.is_null()
    {
        return Err(PyErrSet);
    }
    Ok(())
}

/// Builds the module (single-phase initialisation, like upstream: no sub-interpreters).
///
/// # Safety
/// Called once by the import machinery with the GIL held.
pub(crate) unsafe fn init() -> PyResult<*mut PyObject> {
    // SAFETY: module init, called by the import machinery with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: the GIL is held.
    unsafe { crate::selfcheck::check()? };
    #[cfg(Py_3_11)]
    // SAFETY: the GIL is held; once, at import.
    unsafe {
        crate::datastack::install_chunk_cache()
    };
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
    // SAFETY: the GIL is held; a leaked ('static) definition.
    let module = unsafe { PyModule_Create(def) };
    if module.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: module init; nothing has read the globals yet.
    unsafe { init_globals(py)? };
    let attr = |name: &CStr| {
        // SAFETY: the GIL is held; the module is live.
        let a = unsafe { PyObject_GetAttrString(module, name.as_ptr()) };
        // SAFETY: a new reference or null with an exception set.
        unsafe { Owned::from_raw(py, a) }
    };
    let (getcurrent, settrace, gettrace) =
        (attr(c"getcurrent")?, attr(c"settrace")?, attr(c"gettrace")?);
    let g = globals();
    let class_attrs = [
        (c"getcurrent", getcurrent.as_object()),
        (c"error", g.greenlet_error),
        (c"GreenletExit", g.greenlet_exit),
        (c"settrace", settrace.as_object()),
        (c"gettrace", gettrace.as_object()),
    ];
    // SAFETY: the GIL is held; the type was just created.
    unsafe { greenlet_type::finish_type(g.greenlet_type, &class_attrs)? };
    // SAFETY: the GIL is held; once, at module init.
    let unswitchable = unsafe { greenlet_type::create_unswitchable_type(g.greenlet_type) };
    if unswitchable.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: module init: no reference to the globals is live (`g` is not used again).
    unsafe { globals_mut() }.unswitchable_type = unswitchable;
    let g = globals();
    // SAFETY: `module` is being initialised; the globals are live (as for the `add`s
    // below).
    unsafe { add_ref(module, c"greenlet", g.greenlet_type.cast())? };
    // SAFETY: as above.
    unsafe { add_ref(module, c"UnswitchableGreenlet", g.unswitchable_type.cast())? };
    // SAFETY: as above.
    unsafe { add_ref(module, c"error", g.greenlet_error)? };
    // SAFETY: as above.
    unsafe { add_ref(module, c"GreenletExit", g.greenlet_exit)? };
    for name in [
        c"GREENLET_USE_GC",
        c"GREENLET_USE_TRACING",
        c"GREENLET_USE_CONTEXT_VARS",
        c"GREENLET_USE_STANDARD_THREADING",
    ] {
        // SAFETY: as above.
        unsafe { add(py, module, name, int(py, 1))? };
    }
    let clocks = int(py, thread_state::CLOCKS_PER_SEC as _);
    // SAFETY: as above.
    unsafe { add(py, module, c"CLOCKS_PER_SEC", clocks)? };
    // SAFETY: the GIL is held; the globals are initialised.
    let capsule = unsafe { capi::create_capsule() };
    // SAFETY: a new reference or null with an exception set.
    let capsule = unsafe { Owned::from_raw(py, capsule) };
    // SAFETY: as for the other `add`s.
    unsafe { add(py, module, c"_C_API", capsule)? };
    Ok(module)
}
