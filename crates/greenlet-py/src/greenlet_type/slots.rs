//! The type's slots: creation (`tp_new`, `tp_init`, the type's vectorcall), the
//! collector's (`tp_traverse`, `tp_clear`, `tp_is_gc`), deallocation (which may kill a
//! suspended greenlet first), `tp_repr` and `nb_bool`.

use super::pimpl;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::py::{Borrowed, Gil, into_status};
use crate::switch;
use crate::thread_state;
use crate::util::{SavedError, clear_owned, set_refcnt, xnewref};
use core::ffi::{c_char, c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

unsafe extern "C" {
    /// Re-initialises the reference bookkeeping of a resurrected object (exported by
    /// libpython on every supported version; not bound by pyo3-ffi).
    fn _Py_NewReference(op: *mut PyObject);
}

/// `tp_new`: allocates the object and its implementation; the parent is the current
/// greenlet. Arguments are handled by `tp_init`.
///
/// # Safety
/// Called by CPython (or [`crate::capi`]) with the GIL held; `ty` is a greenlet type.
pub(crate) unsafe extern "C" fn green_new(
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
pub(super) unsafe extern "C" fn green_init(
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
pub(super) unsafe extern "C" fn green_vectorcall(
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
///
/// # Safety
/// The GIL is held; `slf` is a greenlet after `tp_new`; `run` and `parent` are null or
/// live for the call.
unsafe fn init_fields(slf: *mut PyObject, run: *mut PyObject, parent: *mut PyObject) -> c_int {
    // SAFETY: see the function contract.
    let (py, this) = unsafe { (Gil::assume(), pimpl(slf)) };
    // SAFETY: as above.
    let (run, parent) = unsafe {
        (
            Borrowed::from_ptr_opt(py, run),
            Borrowed::from_ptr_opt(py, parent),
        )
    };
    if let Some(run) = run {
        // SAFETY: a live implementation, not borrowed here.
        if unsafe { Greenlet::set_run(this, py, Some(run)) }.is_err() {
            return -1;
        }
    }
    match parent {
        Some(parent) if parent.as_ptr() != py.none().as_ptr() => {
            // SAFETY: as above.
            into_status(unsafe { Greenlet::set_parent(this, py, Some(parent)) })
        }
        _ => 0,
    }
}

pub(super) unsafe extern "C" fn green_traverse(
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
pub(super) unsafe extern "C" fn green_is_gc(slf: *mut PyObject) -> c_int {
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

pub(super) unsafe extern "C" fn green_clear(slf: *mut PyObject) -> c_int {
    // SAFETY: called by the GC with the GIL held.
    unsafe {
        let o: *mut PyGreenlet = slf.cast();
        clear_owned(&raw mut (*o).dict);
        if !(*o).pimpl.is_null() {
            Greenlet::clear((*o).pimpl);
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
            Greenlet::murder_in_place(this);
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
            Greenlet::deactivate_and_free(this);
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
pub(crate) unsafe extern "C" fn green_dealloc(slf: *mut PyObject) {
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
        clear_owned(&raw mut (*o).dict);
        if !p.is_null() {
            (*o).pimpl = ptr::null_mut();
            if !(*p).is_main() {
                (*p).python.did_finish(ptr::null_mut());
            }
            Greenlet::clear(p);
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

pub(super) unsafe extern "C" fn green_repr(slf: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held.
    unsafe {
        let this = pimpl(slf);
        let tp_name = (*Py_TYPE(slf)).tp_name;
        let alive = is_not_dead(this);
        // Nothing below runs Python code (`is_current` finds this thread's state).
        let g = &*this;
        if alive {
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
///
/// # Safety
/// The GIL is held; `this` is a live implementation the caller holds no reference into.
pub(super) unsafe fn is_not_dead(this: *mut Greenlet) -> bool {
    // SAFETY: live (contract); a short read.
    if unsafe { (*this).was_running_in_dead_thread() } {
        // SAFETY: GIL held; the greenlet cannot run again.
        unsafe { Greenlet::deactivate_and_free(this) };
        return false;
    }
    // SAFETY: live (contract); a short read.
    let g = unsafe { &*this };
    g.active() || !g.started()
}

pub(super) unsafe extern "C" fn green_bool(slf: *mut PyObject) -> c_int {
    // SAFETY: called by CPython with the GIL held.
    unsafe { (*pimpl(slf)).active() as c_int }
}
