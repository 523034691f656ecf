//! The `greenlet._greenlet` module: its functions, constants and initialisation.

use crate::globals::{GlobalObject, globals, globals_mut};
use crate::greenlet::TOTAL_MAIN_GREENLETS;
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult, check_success, into_ptr, opt_into_raw};
use crate::thread_state::{self, CLOCKS_USED_DOING_GC};
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
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { PyExc_TypeError };
        let msg = c"greenlet._greenlet.getcurrent() takes no arguments (%zd given)";
        // SAFETY: CPython calls module functions with the GIL held; `exc` is an exception
        // type and the one conversion, `%zd`, takes the `Py_ssize_t` passed.
        unsafe { PyErr_Format(exc, msg.as_ptr(), nargs) };
        return ptr::null_mut();
    }
    // SAFETY: CPython calls module functions with the GIL held, which is all
    // `capi_getcurrent` needs.
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

module_fn!(mod_settrace, |py, args| {
    let mut tracefunc: *mut PyObject = ptr::null_mut();
    // SAFETY: the GIL is held (`py`); `args` is the live arguments tuple and "O" stores one
    // borrowed object in `tracefunc`.
    check_success(unsafe { PyArg_ParseTuple(args, c"O".as_ptr(), &mut tracefunc) })?;
    // SAFETY: the arguments tuple, which the caller keeps alive for the call, holds it.
    let tracefunc = unsafe { Borrowed::from_ptr(py, tracefunc) };
    thread_state::replace_tracefunc(py, tracefunc)
});

module_fn!(mod_gettrace, |py, _unused| { thread_state::tracefunc(py) });

module_fn!(mod_set_thread_local, |py, args| {
    let mut key: *mut PyObject = ptr::null_mut();
    let mut value: *mut PyObject = ptr::null_mut();
    // SAFETY: the GIL is held (`py`); `args` is the live arguments tuple and "OO" stores two
    // borrowed objects in `key` and `value`.
    check_success(unsafe { PyArg_ParseTuple(args, c"OO".as_ptr(), &mut key, &mut value) })?;
    // SAFETY: the arguments tuple, which the caller keeps alive for the call, holds it.
    let key = unsafe { Borrowed::from_ptr(py, key) };
    // SAFETY: as for `key`.
    let value = unsafe { Borrowed::from_ptr(py, value) };
    py.thread_state_dict()?.dict_set_item(key, value)?;
    Ok(py.none().to_owned())
});

module_fn!(mod_get_pending_cleanup_count, |py, _unused| {
    py.int_from_usize(thread_state::pending_cleanup_count())
});

module_fn!(mod_get_total_main_greenlets, |py, _unused| {
    let n = TOTAL_MAIN_GREENLETS.load(Ordering::Relaxed) as Py_ssize_t;
    py.int_from_isize(n)
});

module_fn!(mod_dedicated_stack_size, |py, _unused| {
    py.int_from_usize(crate::stacks::dedicated_size().unwrap_or(0))
});

/// `get_stack_policy(*, thread=False)`.
unsafe extern "C" fn mod_get_stack_policy(
    _module: *mut PyObject,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython calls module functions with the GIL held.
    let py = unsafe { Gil::assume() };
    let mut thread: c_int = 0;
    let mut kwlist: [*mut core::ffi::c_char; 2] = [c"thread".as_ptr().cast_mut(), ptr::null_mut()];
    // SAFETY: the GIL is held; the call's arguments tuple and keywords (null or a dict);
    // "p" stores an int.
    let ok = unsafe {
        PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            c"|$p:get_stack_policy".as_ptr(),
            kwlist.as_mut_ptr().cast(),
            &mut thread,
        )
    };
    if ok == 0 {
        return ptr::null_mut();
    }
    into_ptr(crate::stacks::get_stack_policy(py, thread != 0))
}

/// `set_stack_policy(mode, size=None, *, thread=False)`.
unsafe extern "C" fn mod_set_stack_policy(
    _module: *mut PyObject,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython calls module functions with the GIL held.
    let py = unsafe { Gil::assume() };
    let mut mode: *mut PyObject = ptr::null_mut();
    let mut size: *mut PyObject = ptr::null_mut();
    let mut thread: c_int = 0;
    let mut kwlist: [*mut core::ffi::c_char; 4] = [
        c"mode".as_ptr().cast_mut(),
        c"size".as_ptr().cast_mut(),
        c"thread".as_ptr().cast_mut(),
        ptr::null_mut(),
    ];
    // SAFETY: the GIL is held; the call's arguments tuple and keywords (null or a dict);
    // "O" stores borrowed objects, "p" an int.
    let ok = unsafe {
        PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            c"O|O$p:set_stack_policy".as_ptr(),
            kwlist.as_mut_ptr().cast(),
            &mut mode,
            &mut size,
            &mut thread,
        )
    };
    if ok == 0 {
        return ptr::null_mut();
    }
    // SAFETY: held by the arguments, alive for the call.
    let mode = unsafe { Borrowed::from_ptr(py, mode) };
    // SAFETY: as above (null when not given).
    let size = unsafe { Borrowed::from_ptr_opt(py, size) };
    into_ptr(crate::stacks::set_stack_policy(py, mode, size, thread != 0))
}

module_fn!(mod_stack_auto_stats, |py, cls| {
    // SAFETY: the `METH_O` argument, which the caller keeps alive for the call.
    let cls = unsafe { Borrowed::from_ptr(py, cls) };
    crate::stacks::auto_stats(py, cls)
});

module_fn!(mod_stack_bounds, |py, g| {
    // SAFETY: the GIL is held (`py`); the `METH_O` argument is live for the call.
    unsafe { crate::globals::check_greenlet(g)? };
    // SAFETY: a greenlet (checked), whose implementation lives as long as the object.
    let imp = unsafe { crate::greenlet::PyGreenlet::imp(g.cast()) };
    match imp.stack.stack_bounds() {
        None => Ok(py.none().to_owned()),
        Some((lo, hi)) => {
            let (lo, hi) = (
                py.int_from_usize(lo as usize)?,
                py.int_from_usize(hi as usize)?,
            );
            // SAFETY: the GIL is held; two live objects, referenced by the new tuple.
            let t = unsafe { pyo3_ffi::PyTuple_Pack(2, lo.as_object(), hi.as_object()) };
            // SAFETY: a new reference, or null with an exception set.
            unsafe { Owned::from_raw(py, t) }
        }
    }
});

module_fn!(mod_get_clocks_used_doing_optional_cleanup, |py, _unused| {
    let clocks = CLOCKS_USED_DOING_GC.load(Ordering::Relaxed);
    if clocks == -1 {
        return Ok(py.none().to_owned());
    }
    py.int_from_i64(clocks)
});

module_fn!(mod_enable_optional_cleanup, |py, flag| {
    // SAFETY: the `METH_O` argument, which the caller keeps alive for the call.
    let flag = unsafe { Borrowed::from_ptr(py, flag) };
    if flag.is_true()? {
        // Re-enabling keeps an existing count.
        let _ = CLOCKS_USED_DOING_GC.compare_exchange(-1, 0, Ordering::Relaxed, Ordering::Relaxed);
    } else {
        CLOCKS_USED_DOING_GC.store(-1, Ordering::Relaxed);
    }
    Ok(py.none().to_owned())
});

#[cfg(not(Py_3_13))]
module_fn!(mod_get_tstate_trash_delete_nesting, |py, _unused| {
    // SAFETY: reads this thread's `PyThreadState`, which exists while the GIL is held (`py`).
    let ts = unsafe { crate::cpython::pystate::tstate() };
    // SAFETY: `ts` is this thread's live thread state (above); a field read.
    let nesting = unsafe { crate::python_state::trash_delete_nesting(ts) };
    py.int_from_long(nesting as _)
});

#[cfg(Py_3_11)]
module_fn!(mod_cached_data_stack_chunks, |py, _unused| {
    py.int_from_usize(crate::datastack::cached_chunk_count())
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
            c"_dedicated_stack_size",
            mod_dedicated_stack_size,
            METH_NOARGS,
            c"_dedicated_stack_size() -> int\n\nThe size of the stack a new greenlet starts on (GREENLET_STACKS), or 0 when greenlets are sliced (provisional; for tests).",
        ),
        PyMethodDef {
            ml_name: c"get_stack_policy".as_ptr(),
            ml_meth: PyMethodDefPointer {
                PyCFunctionWithKeywords: mod_get_stack_policy,
            },
            ml_flags: METH_VARARGS | METH_KEYWORDS,
            ml_doc: c"get_stack_policy(*, thread=False) -> str or None\n\nThe stack policy new greenlets start with: 'sliced', 'dedicated:SIZE' or 'auto:SIZE' (SIZE in bytes). With thread=True, this thread's own policy, or None if it has none (then the process-wide one applies). A greenlet's stack= / gr_stack and its class's __greenlet_stack__ take precedence over both.".as_ptr(),
        },
        PyMethodDef {
            ml_name: c"set_stack_policy".as_ptr(),
            ml_meth: PyMethodDefPointer {
                PyCFunctionWithKeywords: mod_set_stack_policy,
            },
            ml_flags: METH_VARARGS | METH_KEYWORDS,
            ml_doc: c"set_stack_policy(mode, size=None, *, thread=False) -> str or None\n\nSets the stack policy of greenlets that start from now on, process-wide or (thread=True) for this thread only, and returns the previous one (as get_stack_policy() gives it, so it can be passed back). mode is 'sliced', 'dedicated' or 'auto', optionally with ':SIZE' (bytes, or a k/m suffix), or None with thread=True to drop this thread's own policy. size is the size in bytes of a dedicated stack (64k to 1g; default 1 MiB). Dedicated stacks need CPython 3.10-3.13: elsewhere a mode other than 'sliced' warns (RuntimeWarning) and changes nothing.".as_ptr(),
        },
        method(
            c"_stack_auto_stats",
            mod_stack_auto_stats,
            METH_O,
            c"_stack_auto_stats(cls) -> (dedicated, mean, samples) or None\n\nWhat the 'auto' policy learnt about greenlets of type cls: whether later ones start on dedicated stacks, the mean bytes per switch away, and the switches seen since its last change (provisional; for tests).",
        ),
        method(
            c"_stack_bounds",
            mod_stack_bounds,
            METH_O,
            c"_stack_bounds(g) -> (lo, hi) or None\n\nThe dedicated stack greenlet g runs on, or None if it runs on its thread's stack, has not started or is dead (provisional; for tests).",
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

/// Creates the objects of [`crate::globals::Globals`].
///
/// # Safety
/// Module init, before anything reads the globals.
unsafe fn init_globals(py: Gil<'_>) -> PyResult<()> {
    // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
    // changes them.
    let base_exception = unsafe { PyExc_BaseException };
    let empty_tuple = opt_into_raw(py.empty_tuple().ok());
    let empty_dict = opt_into_raw(py.new_dict().ok());
    let error_name = c"greenlet.error".as_ptr();
    // SAFETY: the GIL is held (`py`); a NUL-terminated dotted name and null base and dict
    // (`Exception` and none).
    let greenlet_error =
        unsafe { PyErr_NewException(error_name, ptr::null_mut(), ptr::null_mut()) };
    let exit_name = c"greenlet.GreenletExit".as_ptr();
    // SAFETY: as for `greenlet.error`, with the live type `BaseException` as the base.
    let greenlet_exit = unsafe { PyErr_NewException(exit_name, base_exception, ptr::null_mut()) };
    // SAFETY: the GIL is held (`py`); module init, the one call.
    let greenlet_type = unsafe { greenlet_type::create_type() };
    // SAFETY: module init: nothing else reads or writes the globals now (contract).
    let gm = unsafe { globals_mut() };
    // The interned strings live for the process (the globals never release them).
    gm.str_run = opt_into_raw(py.intern(c"run").ok());
    gm.event_switch = opt_into_raw(py.intern(c"switch").ok());
    gm.event_throw = opt_into_raw(py.intern(c"throw").ok());
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
        || gm.str_run.is_null()
        || gm.event_switch.is_null()
        || gm.event_throw.is_null()
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
    // SAFETY: the import machinery calls `PyInit__greenlet` with the GIL held (contract).
    let py = unsafe { Gil::assume() };
    crate::selfcheck::check(py)?;
    #[cfg(Py_3_14)]
    {
        // SAFETY: the GIL is held (`py`), so this thread has a thread state.
        let ts = unsafe { crate::cpython::pystate::tstate() };
        // SAFETY: the GIL is held (`py`); `ts` is this thread's live thread state.
        unsafe { crate::python_state::c_stack::measure(ts) };
    }
    crate::stacks::init_from_env(py)?;
    #[cfg(Py_3_11)]
    // SAFETY: the GIL is held (`py`); the one call, at import.
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
    // SAFETY: the GIL is held (`py`); a leaked ('static) definition with a zero-terminated
    // method table.
    let module = unsafe { PyModule_Create(def) };
    // SAFETY: null, or the new module, whose reference we hold until we return it.
    let Some(m) = (unsafe { Borrowed::from_ptr_opt(py, module) }) else {
        return Err(PyErrSet);
    };
    // SAFETY: module init; nothing has read the globals yet.
    unsafe { init_globals(py)? };
    let (getcurrent, settrace, gettrace) = (
        m.getattr(c"getcurrent")?,
        m.getattr(c"settrace")?,
        m.getattr(c"gettrace")?,
    );
    let g = globals();
    let class_attrs = [
        (c"getcurrent", getcurrent.as_object()),
        (c"error", g.greenlet_error),
        (c"GreenletExit", g.greenlet_exit),
        (c"settrace", settrace.as_object()),
        (c"gettrace", gettrace.as_object()),
    ];
    // SAFETY: the GIL is held (`py`); the type was just created and every value is live.
    unsafe { greenlet_type::finish_type(g.greenlet_type, &class_attrs)? };
    // SAFETY: the GIL is held (`py`); the one call, at module init.
    let unswitchable = unsafe { greenlet_type::create_unswitchable_type(g.greenlet_type) };
    if unswitchable.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: module init: no reference to the globals is live (`g` is not used again).
    unsafe { globals_mut() }.unswitchable_type = unswitchable;
    let g = globals();
    for (name, which) in [
        (c"greenlet", GlobalObject::GreenletType),
        (c"UnswitchableGreenlet", GlobalObject::UnswitchableType),
        (c"error", GlobalObject::Error),
        (c"GreenletExit", GlobalObject::Exit),
    ] {
        m.module_add(name, g.object(py, which))?;
    }
    for name in [
        c"GREENLET_USE_GC",
        c"GREENLET_USE_TRACING",
        c"GREENLET_USE_CONTEXT_VARS",
        c"GREENLET_USE_STANDARD_THREADING",
    ] {
        m.module_add(name, py.int_from_long(1)?.borrow())?;
    }
    let clocks = py.int_from_long(thread_state::CLOCKS_PER_SEC as _)?;
    m.module_add(c"CLOCKS_PER_SEC", clocks.borrow())?;
    // SAFETY: the GIL is held (`py`); the globals are initialised.
    let capsule = unsafe { capi::create_capsule() };
    // SAFETY: `PyCapsule_New` returns a new reference, or null with an exception set.
    let capsule = unsafe { Owned::from_raw(py, capsule) }?;
    m.module_add(c"_C_API", capsule.borrow())?;
    Ok(module)
}
