//! The `greenlet.greenlet` type, built by hand with `PyType_FromSpec` so that its layout
//! is exactly upstream's `PyGreenlet` (see [`crate::greenlet::PyGreenlet`]) and its
//! slots work for Python subclasses and for static C (Cython) subclasses alike.

use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::switch;
use crate::thread_state;
use crate::util::{PyErrSet, PyResult, SavedError, clear_owned, set_error, set_refcnt, xnewref};
use core::ffi::{c_char, c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

unsafe extern "C" {
    /// Re-initialises the reference bookkeeping of a resurrected object (exported by
    /// libpython on every supported version; not bound by pyo3-ffi).
    fn _Py_NewReference(op: *mut PyObject);
}

/// Raises the upstream `TypeError` unless `obj` is a greenlet.
///
/// # Safety
/// The GIL is held.
#[inline]
pub unsafe fn check_greenlet(obj: *mut PyObject) -> PyResult<()> {
    // SAFETY: GIL held; `obj` is live.
    unsafe {
        if PyObject_TypeCheck(obj, globals().greenlet_type) != 0 {
            return Ok(());
        }
        PyErr_Format(
            PyExc_TypeError,
            c"GreenletChecker: Expected any type of greenlet, not %s".as_ptr(),
            (*Py_TYPE(obj)).tp_name,
        );
        Err(PyErrSet)
    }
}

#[inline(always)]
unsafe fn pimpl<'a>(slf: *mut PyObject) -> &'a mut Greenlet {
    // SAFETY: called only on greenlet instances after `tp_new`, which always sets pimpl.
    unsafe { &mut *(*slf.cast::<PyGreenlet>()).pimpl }
}

fn to_int(r: PyResult<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(PyErrSet) => -1,
    }
}

fn to_obj(r: PyResult<*mut PyObject>) -> *mut PyObject {
    r.unwrap_or(ptr::null_mut())
}

unsafe fn new_bool(b: bool) -> *mut PyObject {
    // SAFETY: GIL held (caller).
    unsafe { PyBool_FromLong(b as _) }
}

/// `tp_new`: allocates the object and its implementation; the parent is the current
/// greenlet. Arguments are handled by `tp_init`.
///
/// # Safety
/// Called by CPython (or [`crate::capi`]) with the GIL held; `ty` is a greenlet type.
pub unsafe extern "C" fn green_new(
    ty: *mut PyTypeObject,
    _args: *mut PyObject,
    _kwds: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let g = globals();
        // Getting the current greenlet also kills greenlets queued for this thread.
        let Ok(current) = thread_state::borrow_current() else {
            return ptr::null_mut();
        };
        // `object.__new__` only adds the abstract-class check to allocating; skip its
        // argument handling when the type cannot be abstract.
        let new = if PyType_HasFeature(ty, Py_TPFLAGS_IS_ABSTRACT) != 0 {
            PyBaseObject_Type.tp_new.expect("object.__new__")(ty, g.empty_tuple, g.empty_dict)
        } else {
            (*ty).tp_alloc.expect("tp_alloc")(ty, 0)
        };
        if new.is_null() {
            return ptr::null_mut();
        }
        let o: *mut PyGreenlet = new.cast();
        (*o).pimpl = Greenlet::alloc_user(o, xnewref(current));
        new
    }
}

/// `tp_init`: `greenlet(run=None, parent=None)`.
unsafe extern "C" fn green_init(
    slf: *mut PyObject,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let mut run: *mut PyObject = ptr::null_mut();
        let mut parent: *mut PyObject = ptr::null_mut();
        let nargs = PyTuple_GET_SIZE(args);
        if (kwargs.is_null() || PyDict_Size(kwargs) == 0) && nargs <= 2 {
            // The common `greenlet(run[, parent])`: no parsing needed, same semantics.
            if nargs >= 1 {
                run = PyTuple_GET_ITEM(args, 0);
            }
            if nargs == 2 {
                parent = PyTuple_GET_ITEM(args, 1);
            }
            return init_fields(slf, run, parent);
        }
        let mut kwlist: [*mut c_char; 3] = [
            c"run".as_ptr().cast_mut(),
            c"parent".as_ptr().cast_mut(),
            ptr::null_mut(),
        ];
        if PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            c"|OO:green".as_ptr(),
            // `char **` before 3.13, `char *const *` after.
            kwlist.as_mut_ptr().cast(),
            &mut run,
            &mut parent,
        ) == 0
        {
            return -1;
        }
        init_fields(slf, run, parent)
    }
}

/// `type.__call__` for exactly `greenlet.greenlet`, as vectorcall (`tp_vectorcall`
/// of the type object, which CPython never inherits, so subclasses keep the ordinary
/// `tp_new` + `tp_init` path and any `__init__`/`__new__` of their own).
///
/// `greenlet()`, `greenlet(run)` and `greenlet(run, parent)` skip the argument tuple
/// and the generic `type_call`; the same observable steps happen in the same order
/// (allocation with the current greenlet as parent, then `run`, then `parent`). Other
/// calls (keywords, too many arguments) take the generic path, so their errors are
/// the ones `green_init` raises.
///
/// # Safety
/// Called by CPython with the GIL held; `args` holds `nargsf`'s count of arguments
/// followed by one per name in `kwnames` (null or a tuple).
unsafe extern "C" fn green_vectorcall(
    ty: *mut PyObject,
    args: *const *mut PyObject,
    nargsf: usize,
    kwnames: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let ty: *mut PyTypeObject = ty.cast();
        let nargs = PyVectorcall_NARGS(nargsf);
        if kwnames.is_null() && nargs <= 2 {
            let new = green_new(ty, ptr::null_mut(), ptr::null_mut());
            if new.is_null() {
                return ptr::null_mut();
            }
            let run = if nargs >= 1 { *args } else { ptr::null_mut() };
            let parent = if nargs == 2 {
                *args.add(1)
            } else {
                ptr::null_mut()
            };
            if init_fields(new, run, parent) < 0 {
                Py_DECREF(new);
                return ptr::null_mut();
            }
            return new;
        }
        // The generic path: what `type_call` would do with a tuple and a dict.
        let Ok((tuple, kwargs)) = crate::util::vectorcall_args_to_tuple_dict(args, nargs, kwnames)
        else {
            return ptr::null_mut();
        };
        let mut new = green_new(ty, tuple, kwargs);
        if !new.is_null() && green_init(new, tuple, kwargs) < 0 {
            Py_DECREF(new);
            new = ptr::null_mut();
        }
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        new
    }
}

/// Applies the parsed `run` and `parent` arguments (each may be null).
unsafe fn init_fields(slf: *mut PyObject, run: *mut PyObject, parent: *mut PyObject) -> c_int {
    // SAFETY: GIL held (caller); `slf` is a greenlet after `tp_new`.
    unsafe {
        if !run.is_null() && pimpl(slf).set_run(run).is_err() {
            return -1;
        }
        if !parent.is_null() && parent != Py_None() {
            return to_int(pimpl(slf).set_parent(parent));
        }
        0
    }
}

unsafe extern "C" fn green_traverse(
    slf: *mut PyObject,
    visit: visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: called by the GC with the GIL held.
    unsafe {
        let o: *mut PyGreenlet = slf.cast();
        if !(*o).dict.is_null() {
            let r = visit((*o).dict, arg);
            if r != 0 {
                return r;
            }
        }
        if (*o).pimpl.is_null() {
            return 0;
        }
        (*(*o).pimpl).traverse(visit, arg)
    }
}

/// Only greenlets that cannot run again are collectable: suspended greenlets own frames
/// the GC cannot see, and collecting them would break their stacks.
#[cfg(not(Py_3_15))]
unsafe extern "C" fn green_is_gc(slf: *mut PyObject) -> c_int {
    // SAFETY: called by the GC with the GIL held.
    unsafe {
        let p = (*slf.cast::<PyGreenlet>()).pimpl;
        if p.is_null() {
            return 1;
        }
        let g = &*p;
        (g.is_main() || !g.active() || g.was_running_in_dead_thread()) as c_int
    }
}

unsafe extern "C" fn green_clear(slf: *mut PyObject) -> c_int {
    // SAFETY: called by the GC with the GIL held.
    unsafe {
        let o: *mut PyGreenlet = slf.cast();
        clear_owned(&mut (*o).dict);
        if !(*o).pimpl.is_null() {
            (*(*o).pimpl).clear();
        }
        0
    }
}

/// Whether this dealloc owes the release of the instance's reference to its type.
///
/// Since CPython 3.8 instances of heap types own a reference to their type. For a Python
/// subclass, `subtype_dealloc` releases it only if the nearest base with a real
/// `tp_dealloc` is a static type; otherwise that base's dealloc must. So we release it
/// when we are that base: the type is a heap type and every type between it and ours
/// uses the instance type's own dealloc (our type, Python subclasses of it). A static C
/// (Cython) class in between means CPython or that class takes care of it.
unsafe fn owes_type_reference(ty: *mut PyTypeObject) -> bool {
    // SAFETY: GIL held (caller); the base chain of a live type is live.
    unsafe {
        if PyType_HasFeature(ty, Py_TPFLAGS_HEAPTYPE) == 0 {
            return false;
        }
        let own = (*ty).tp_dealloc.map(|f| f as usize);
        let ours = Some(green_dealloc as *const () as usize);
        let mut t = ty;
        while !t.is_null() {
            let d = (*t).tp_dealloc.map(|f| f as usize);
            if d == ours {
                return true;
            }
            if d != own {
                return false;
            }
            t = (*t).tp_base;
        }
        false
    }
}

/// Kills a started, suspended user greenlet whose last reference is going away. Returns
/// false if the greenlet was resurrected by the code that ran.
unsafe fn kill_on_dealloc(slf: *mut PyObject) -> bool {
    // SAFETY: called from `green_dealloc` with the GIL held; `slf` has refcount 0.
    unsafe {
        let this = (*slf.cast::<PyGreenlet>()).pimpl;
        if crate::cpython::pystate::is_finalizing() {
            (*this).murder_in_place();
            return true;
        }
        // Temporarily resurrect the object while its code runs.
        set_refcnt(slf, 1);
        let saved = SavedError::fetch();
        let owner = (*this).thread_state();
        let here = if owner.is_null() {
            ptr::null_mut()
        } else {
            thread_state::current().unwrap_or(ptr::null_mut())
        };
        let same_thread = match (*this).kind {
            Kind::User { main_greenlet, .. } => {
                !owner.is_null() && !here.is_null() && main_greenlet == (*here).main_greenlet
            }
            Kind::Main { .. } => false,
        };
        if same_thread {
            if switch::throw_greenlet_exit_during_dealloc(this).is_err() {
                PyErr_WriteUnraisable(slf);
            }
        } else if !owner.is_null() {
            (*owner).delete_when_thread_running(slf.cast());
        } else {
            (*this).deactivate_and_free();
        }
        if Py_REFCNT(slf) == 1 && (*this).active() {
            // Not resurrected, yet still alive: complain and leak it.
            let f = PySys_GetObject(c"stderr".as_ptr());
            Py_INCREF(slf);
            if !f.is_null() {
                Py_INCREF(f);
                PyFile_WriteString(c"GreenletExit did not kill ".as_ptr(), f);
                PyFile_WriteObject(slf, f, 0);
                PyFile_WriteString(c"\n".as_ptr(), f);
                Py_DECREF(f);
            }
        }
        saved.restore();
        let refcnt = Py_REFCNT(slf) - 1;
        set_refcnt(slf, refcnt);
        if refcnt != 0 {
            // Resurrected. If someone after us (`subtype_dealloc` above a static C
            // class) will drop the instance's type reference, give it one to drop.
            _Py_NewReference(slf);
            set_refcnt(slf, refcnt);
            let ty = Py_TYPE(slf);
            if PyType_HasFeature(ty, Py_TPFLAGS_HEAPTYPE) != 0 && !owes_type_reference(ty) {
                Py_INCREF(ty.cast());
            }
            PyObject_GC_Track(slf.cast());
            return false;
        }
        true
    }
}

/// `tp_dealloc`. Works for instances of our type, of Python subclasses, and of static C
/// subclasses (which call it after freeing their own fields).
///
/// # Safety
/// Called by CPython with the GIL held, once, when the refcount of `slf` reached zero.
pub unsafe extern "C" fn green_dealloc(slf: *mut PyObject) {
    // SAFETY: called by CPython with the GIL held when the refcount reached zero.
    unsafe {
        PyObject_GC_UnTrack(slf.cast());
        let o: *mut PyGreenlet = slf.cast();
        let p = (*o).pimpl;
        if !p.is_null()
            && (*p).active()
            && (*p).started()
            && !(*p).is_main()
            && !kill_on_dealloc(slf)
        {
            return;
        }
        if !(*o).weakreflist.is_null() {
            PyObject_ClearWeakRefs(slf);
        }
        clear_owned(&mut (*o).dict);
        if !p.is_null() {
            (*o).pimpl = ptr::null_mut();
            if !(*p).is_main() {
                (*p).python.did_finish(ptr::null_mut());
            }
            (*p).clear();
            Greenlet::free(p);
        }
        let ty = Py_TYPE(slf);
        let release_type = owes_type_reference(ty);
        (*ty).tp_free.expect("tp_free")(slf.cast());
        if release_type {
            Py_DECREF(ty.cast());
        }
    }
}

unsafe extern "C" fn green_repr(slf: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let g = pimpl(slf);
        let tp_name = (*Py_TYPE(slf)).tp_name;
        if is_not_dead(g) {
            let never_started = !g.started() && !g.active();
            let state_in_thread: &core::ffi::CStr = if g.was_running_in_dead_thread() {
                c" (thread exited)"
            } else if thread_state::is_current(g.self_).unwrap_or(false) {
                c" current"
            } else if g.started() {
                c" suspended"
            } else {
                c""
            };
            PyUnicode_FromFormat(
                c"<%s object at %p (otid=%p)%s%s%s%s>".as_ptr(),
                tp_name,
                slf,
                g.thread_state(),
                state_in_thread.as_ptr(),
                if g.active() { c" active" } else { c"" }.as_ptr(),
                if never_started {
                    c" pending"
                } else {
                    c" started"
                }
                .as_ptr(),
                if g.is_main() { c" main" } else { c"" }.as_ptr(),
            )
        } else {
            PyUnicode_FromFormat(
                c"<%s object at %p (otid=%p) %sdead>".as_ptr(),
                tp_name,
                slf,
                g.thread_state(),
                if g.was_running_in_dead_thread() {
                    c"(thread exited) "
                } else {
                    c""
                }
                .as_ptr(),
            )
        }
    }
}

/// Not dead; frees the state of a greenlet whose thread exited as a side effect.
unsafe fn is_not_dead(g: &mut Greenlet) -> bool {
    if g.was_running_in_dead_thread() {
        // SAFETY: GIL held (caller); the greenlet cannot run again.
        unsafe { g.deactivate_and_free() };
        return false;
    }
    g.active() || !g.started()
}

unsafe extern "C" fn green_bool(slf: *mut PyObject) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { pimpl(slf).active() as c_int }
}

/// `switch(*args, **kwargs)` as `METH_FASTCALL | METH_KEYWORDS`: Python callers skip
/// CPython's generic call of a `METH_VARARGS` method, and `switch()` with no arguments
/// allocates nothing. The tuple and dict built here are what the `METH_VARARGS` call
/// would have passed.
///
/// # Safety
/// Called by CPython with the GIL held; `slf` is a greenlet; `args` holds `nargs`
/// positional values followed by one per name in `kwnames` (null or a tuple).
pub unsafe extern "C-unwind" fn green_switch_fast(
    slf: *mut PyObject,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: see the function contract.
    unsafe {
        let Ok((tuple, kwargs)) = crate::util::vectorcall_args_to_tuple_dict(args, nargs, kwnames)
        else {
            return ptr::null_mut();
        };
        let result = switch::switch_to(slf.cast(), tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        result
    }
}

/// Whether `f` is a bound `switch` method of some greenlet.
///
/// # Safety
/// The GIL is held and `f` is a C function object.
pub unsafe fn is_switch_method(f: *mut PyObject) -> bool {
    // SAFETY: see the function contract.
    let func = unsafe { PyCFunction_GetFunction(f) };
    func.map(|p| p as usize) == Some(green_switch_fast as *const () as usize)
}

/// `throw([typ[, val[, tb]]])`.
unsafe extern "C" fn green_throw(slf: *mut PyObject, args: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let mut typ = globals().greenlet_exit;
        let mut val: *mut PyObject = ptr::null_mut();
        let mut tb: *mut PyObject = ptr::null_mut();
        if PyArg_ParseTuple(args, c"|OOO:throw".as_ptr(), &mut typ, &mut val, &mut tb) == 0 {
            return ptr::null_mut();
        }
        crate::python_state::materialize_frame();
        match switch::normalize_throw_args(typ, val, tb) {
            Ok((t, v, b)) => switch::throw_into(slf.cast(), t, v, b),
            Err(PyErrSet) => ptr::null_mut(),
        }
    }
}

unsafe extern "C" fn green_getstate(slf: *mut PyObject, _unused: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        PyErr_Format(
            PyExc_TypeError,
            c"cannot serialize '%s' object".as_ptr(),
            (*Py_TYPE(slf)).tp_name,
        );
    }
    ptr::null_mut()
}

unsafe extern "C" fn green_getdict(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let o: *mut PyGreenlet = slf.cast();
        if (*o).dict.is_null() {
            (*o).dict = PyDict_New();
            if (*o).dict.is_null() {
                return ptr::null_mut();
            }
        }
        xnewref((*o).dict)
    }
}

unsafe extern "C" fn green_setdict(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        if val.is_null() {
            return to_int(Err(set_error(
                PyExc_TypeError,
                c"__dict__ may not be deleted",
            )));
        }
        if PyDict_Check(val) == 0 {
            return to_int(Err(set_error(
                PyExc_TypeError,
                c"__dict__ must be a dictionary",
            )));
        }
        let o: *mut PyGreenlet = slf.cast();
        crate::util::replace_owned(&mut (*o).dict, xnewref(val));
        0
    }
}

unsafe extern "C" fn green_getrun(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_obj(pimpl(slf).get_run()) }
}

unsafe extern "C" fn green_setrun(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_run(val)) }
}

unsafe extern "C" fn green_getparent(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let p = pimpl(slf).parent();
        if p.is_null() {
            xnewref(Py_None())
        } else {
            xnewref(p.cast())
        }
    }
}

unsafe extern "C" fn green_setparent(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_parent(val)) }
}

unsafe extern "C" fn green_getcontext(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_obj(pimpl(slf).get_context()) }
}

unsafe extern "C" fn green_setcontext(
    slf: *mut PyObject,
    val: *mut PyObject,
    _c: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { to_int(pimpl(slf).set_context(val)) }
}

unsafe extern "C" fn green_getframe(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let f = pimpl(slf).python.top_frame();
        if f.is_null() {
            xnewref(Py_None())
        } else {
            xnewref(f.cast())
        }
    }
}

unsafe extern "C" fn green_getdead(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { new_bool(!is_not_dead(pimpl(slf))) }
}

unsafe extern "C" fn green_get_stack_saved(slf: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { PyLong_FromSsize_t(pimpl(slf).stack.saved_bytes() as Py_ssize_t) }
}

const GREENLET_DOC: &core::ffi::CStr = c"greenlet(run=None, parent=None) -> greenlet\n\n\
Creates a new greenlet object (without running it).\n\n \
- *run* -- The callable to invoke.\n \
- *parent* -- The parent greenlet. The default is the current greenlet.";

const SWITCH_DOC: &core::ffi::CStr = c"switch(*args, **kwargs)\n\n\
Switch execution to this greenlet.\n\n\
If this greenlet has never been run, it starts by calling ``self.run(*args, **kwargs)``.\n\
If it is suspended, the ``switch()`` call it is suspended in returns the arguments:\n\
``()`` for none, the argument itself for exactly one, the kwargs dict for only keyword\n\
arguments, or ``(args, kwargs)`` for both.\n\
If it is dead, the arguments go to its parent instead.";

const THROW_DOC: &core::ffi::CStr = c"throw([typ[, val[, tb]]])\n\n\
Switch to this greenlet and raise the given exception in it at once.\n\
Without arguments, raises ``greenlet.GreenletExit``, which the greenlet's parent receives\n\
as an ordinary value if the greenlet does not catch it.";

fn getset(name: &'static core::ffi::CStr, get: getter, set: Option<setter>) -> PyGetSetDef {
    PyGetSetDef {
        name: name.as_ptr(),
        get: Some(get),
        set,
        doc: ptr::null(),
        closure: ptr::null_mut(),
    }
}

fn leak<T>(v: Vec<T>) -> *mut T {
    Box::leak(v.into_boxed_slice()).as_mut_ptr()
}

/// Creates the `greenlet.greenlet` type.
///
/// # Safety
/// The GIL is held; called once, at module init.
pub unsafe fn create_type() -> *mut PyTypeObject {
    let methods = leak(vec![
        PyMethodDef {
            ml_name: c"switch".as_ptr(),
            ml_meth: PyMethodDefPointer {
                // SAFETY: the same signature; "C-unwind" only lets foreign (C++) exceptions pass.
                PyCFunctionFastWithKeywords: unsafe {
                    core::mem::transmute::<
                        unsafe extern "C-unwind" fn(
                            *mut PyObject,
                            *const *mut PyObject,
                            Py_ssize_t,
                            *mut PyObject,
                        ) -> *mut PyObject,
                        PyCFunctionFastWithKeywords,
                    >(green_switch_fast)
                },
            },
            ml_flags: METH_FASTCALL | METH_KEYWORDS,
            ml_doc: SWITCH_DOC.as_ptr(),
        },
        PyMethodDef {
            ml_name: c"throw".as_ptr(),
            ml_meth: PyMethodDefPointer {
                PyCFunction: green_throw,
            },
            ml_flags: METH_VARARGS,
            ml_doc: THROW_DOC.as_ptr(),
        },
        PyMethodDef {
            ml_name: c"__getstate__".as_ptr(),
            ml_meth: PyMethodDefPointer {
                PyCFunction: green_getstate,
            },
            ml_flags: METH_NOARGS,
            ml_doc: ptr::null(),
        },
        PyMethodDef::zeroed(),
    ]);
    let getsets = leak(vec![
        getset(c"__dict__", green_getdict, Some(green_setdict)),
        getset(c"run", green_getrun, Some(green_setrun)),
        getset(c"parent", green_getparent, Some(green_setparent)),
        getset(c"gr_frame", green_getframe, None),
        getset(c"gr_context", green_getcontext, Some(green_setcontext)),
        getset(c"dead", green_getdead, None),
        getset(c"_stack_saved", green_get_stack_saved, None),
        PyGetSetDef {
            name: ptr::null(),
            get: None,
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        },
    ]);
    let members = leak(vec![
        PyMemberDef {
            name: c"__weaklistoffset__".as_ptr(),
            type_code: Py_T_PYSSIZET,
            offset: core::mem::offset_of!(PyGreenlet, weakreflist) as Py_ssize_t,
            flags: Py_READONLY,
            doc: ptr::null(),
        },
        PyMemberDef {
            name: c"__dictoffset__".as_ptr(),
            type_code: Py_T_PYSSIZET,
            offset: core::mem::offset_of!(PyGreenlet, dict) as Py_ssize_t,
            flags: Py_READONLY,
            doc: ptr::null(),
        },
        PyMemberDef {
            name: ptr::null(),
            type_code: 0,
            offset: 0,
            flags: 0,
            doc: ptr::null(),
        },
    ]);
    macro_rules! slot {
        ($s:expr, $f:expr) => {
            PyType_Slot {
                slot: $s,
                pfunc: $f as *mut c_void,
            }
        };
    }
    let slots = leak(vec![
        slot!(Py_tp_new, green_new as newfunc),
        slot!(Py_tp_init, green_init as initproc),
        slot!(Py_tp_dealloc, green_dealloc as destructor),
        slot!(Py_tp_traverse, green_traverse as traverseproc),
        slot!(Py_tp_clear, green_clear as inquiry),
        // 3.15 (upstream PRs #511/#512): every greenlet is a GC object; tp_traverse
        // shows the collector what suspended frames hold instead.
        #[cfg(not(Py_3_15))]
        slot!(Py_tp_is_gc, green_is_gc as inquiry),
        slot!(Py_tp_repr, green_repr as reprfunc),
        slot!(Py_nb_bool, green_bool as inquiry),
        slot!(Py_tp_methods, methods),
        slot!(Py_tp_getset, getsets),
        slot!(Py_tp_members, members),
        slot!(Py_tp_doc, GREENLET_DOC.as_ptr()),
        PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ]);
    let spec = Box::leak(Box::new(PyType_Spec {
        name: c"greenlet.greenlet".as_ptr(),
        basicsize: core::mem::size_of::<PyGreenlet>() as c_int,
        itemsize: 0,
        flags: (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC) as _,
        slots,
    }));
    // SAFETY: the spec and everything it points to are leaked, hence 'static.
    let ty: *mut PyTypeObject = unsafe { PyType_FromSpec(spec).cast() };
    if !ty.is_null() {
        // No type slot sets this before 3.14; the field itself exists since 3.8 and is
        // honoured for type objects since 3.9.
        // SAFETY: a fresh type nobody else has seen yet.
        unsafe { (*ty).tp_vectorcall = Some(green_vectorcall) };
    }
    ty
}

/// Stores class attributes in the type's dict and then makes the type immutable, like
/// upstream's static type (`greenlet.greenlet.x = 1` raises `TypeError`).
///
/// # Safety
/// The GIL is held; `ty` was just created by [`create_type`].
pub unsafe fn finish_type(
    ty: *mut PyTypeObject,
    attrs: &[(&core::ffi::CStr, *mut PyObject)],
) -> PyResult<()> {
    // SAFETY: see the function contract.
    unsafe {
        for (name, value) in attrs {
            if PyObject_SetAttrString(ty.cast(), name.as_ptr(), *value) < 0 {
                return Err(PyErrSet);
            }
        }
        (*ty).tp_flags |= Py_TPFLAGS_IMMUTABLETYPE;
        PyType_Modified(ty);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// `greenlet._greenlet.UnswitchableGreenlet`: a test double whose switches fail on demand.

unsafe fn force_flag<'a>(slf: *mut PyObject, slp: bool) -> &'a mut bool {
    // SAFETY: only reached through the UnswitchableGreenlet getsets, on user greenlets.
    match unsafe { &mut pimpl(slf).kind } {
        Kind::User {
            force_switch_error,
            force_slp_switch_error,
            ..
        } => {
            if slp {
                force_slp_switch_error
            } else {
                force_switch_error
            }
        }
        Kind::Main { .. } => unreachable!("UnswitchableGreenlet instances are user greenlets"),
    }
}

unsafe extern "C" fn unswitchable_get(slf: *mut PyObject, closure: *mut c_void) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe { new_bool(*force_flag(slf, !closure.is_null())) }
}

unsafe extern "C" fn unswitchable_set(
    slf: *mut PyObject,
    val: *mut PyObject,
    closure: *mut c_void,
) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let slp = !closure.is_null();
        if val.is_null() {
            let msg = if slp {
                c"Cannot delete force_slp_switch_error"
            } else {
                c"Cannot delete force_switch_error"
            };
            return to_int(Err(set_error(PyExc_AttributeError, msg)));
        }
        let truth = PyObject_IsTrue(val);
        if truth < 0 {
            return -1;
        }
        *force_flag(slf, slp) = truth != 0;
        0
    }
}

/// Creates `UnswitchableGreenlet`, a subclass of `base`.
///
/// # Safety
/// The GIL is held; called once, at module init.
pub unsafe fn create_unswitchable_type(base: *mut PyTypeObject) -> *mut PyTypeObject {
    let getsets = leak(vec![
        PyGetSetDef {
            name: c"force_switch_error".as_ptr(),
            get: Some(unswitchable_get),
            set: Some(unswitchable_set),
            doc: ptr::null(),
            closure: ptr::null_mut(),
        },
        PyGetSetDef {
            name: c"force_slp_switch_error".as_ptr(),
            get: Some(unswitchable_get),
            set: Some(unswitchable_set),
            doc: ptr::null(),
            closure: ptr::dangling_mut::<c_void>(),
        },
        PyGetSetDef {
            name: ptr::null(),
            get: None,
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        },
    ]);
    let slots = leak(vec![
        PyType_Slot {
            slot: Py_tp_getset,
            pfunc: getsets.cast(),
        },
        // Declared again because `PyType_FromSpec` checks a GC type for a traverse
        // function before inheriting slots.
        PyType_Slot {
            slot: Py_tp_traverse,
            pfunc: green_traverse as traverseproc as *mut c_void,
        },
        PyType_Slot {
            slot: Py_tp_clear,
            pfunc: green_clear as inquiry as *mut c_void,
        },
        #[cfg(not(Py_3_15))]
        PyType_Slot {
            slot: Py_tp_is_gc,
            pfunc: green_is_gc as inquiry as *mut c_void,
        },
        PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ]);
    let spec = Box::leak(Box::new(PyType_Spec {
        name: c"greenlet._greenlet.UnswitchableGreenlet".as_ptr(),
        basicsize: 0,
        itemsize: 0,
        flags: (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC) as _,
        slots,
    }));
    // SAFETY: leaked 'static spec; `base` is a live type.
    unsafe { PyType_FromSpecWithBases(spec, base.cast()).cast() }
}
