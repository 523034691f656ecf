//! The type's slots: creation (`tp_new`, `tp_init`, the type's vectorcall), the
//! collector's (`tp_traverse`, `tp_clear`, `tp_is_gc`), deallocation (which may kill a
//! suspended greenlet first), `tp_repr` and `nb_bool`.

use super::pimpl;
use crate::globals::globals;
use crate::greenlet::{Greenlet, Kind, PyGreenlet};
use crate::py::{Borrowed, Gil, Owned, into_status, opt_as_object};
use crate::switch;
use crate::thread_state;
use crate::util::{SavedError, clear_owned, set_refcnt, xnewref};
use core::ffi::{c_char, c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

crate::cpython::libpython::extern_libpython! {
    /// Re-initialises the reference bookkeeping of a resurrected object (exported by
    /// libpython on every supported version; not bound by pyo3-ffi). A debug build also
    /// counts it in its total of references, which the resurrection did not take.
    #[cfg(not(Py_3_12))]
    fn _Py_NewReference(op: *mut PyObject);
    /// The same without counting it in a debug build's total (3.12+), so that total comes
    /// back to where it was once the resurrected greenlet is gone.
    #[cfg(Py_3_12)]
    fn _Py_NewReferenceNoTotal(op: *mut PyObject);
}

/// Re-registers a resurrected object (its deallocation had started) as alive. On 3.12+
/// the debug build's total of references is left alone, as CPython's own resurrection
/// leaves it; before 3.12 it grows by one per resurrection (no exported way to avoid it;
/// no debug build of those versions is tested).
///
/// # Safety
/// The GIL is held; `op` is an object whose deallocation resurrected it.
unsafe fn renew_reference(op: *mut PyObject) {
    // SAFETY: this function's contract.
    #[cfg(Py_3_12)]
    unsafe {
        _Py_NewReferenceNoTotal(op)
    };
    // SAFETY: this function's contract.
    #[cfg(not(Py_3_12))]
    unsafe {
        _Py_NewReference(op)
    };
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
    let g = globals();
    // Getting the current greenlet also kills greenlets queued for this thread.
    // SAFETY: called with the GIL held (contract).
    let Ok(current) = (unsafe { thread_state::borrow_current() }) else {
        return ptr::null_mut();
    };
    // `object.__new__` only adds the abstract-class check to allocating; skip its
    // argument handling when the type cannot be abstract.
    // SAFETY: `ty` is a live type (contract).
    let new = if unsafe { PyType_HasFeature(ty, Py_TPFLAGS_IS_ABSTRACT) } != 0 {
        // SAFETY: `PyBaseObject_Type` is a static type, ready before any extension loads.
        let object_new = unsafe { PyBaseObject_Type.tp_new }.expect("object.__new__");
        // SAFETY: the GIL is held; a subtype of `object` and empty arguments.
        unsafe { object_new(ty, g.empty_tuple, g.empty_dict) }
    } else {
        // SAFETY: `ty` is a live, ready type (contract).
        let alloc = unsafe { (*ty).tp_alloc }.expect("tp_alloc");
        // SAFETY: the GIL is held; the type's own allocator.
        unsafe { alloc(ty, 0) }
    };
    if new.is_null() {
        return ptr::null_mut();
    }
    let o: *mut PyGreenlet = new.cast();
    // SAFETY: the GIL is held; the thread state owns its current greenlet, and the new
    // implementation takes a reference to it as its parent.
    let parent = unsafe { xnewref(current) };
    // SAFETY: the GIL is held.
    let pimpl = unsafe { Greenlet::alloc_user(o, parent) };
    // SAFETY: a fresh instance nobody else has seen.
    unsafe { (*o).pimpl = pimpl };
    new
}

/// `tp_init`: `greenlet(run=None, parent=None)`.
pub(super) unsafe extern "C" fn green_init(
    slf: *mut PyObject,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> c_int {
    let mut run: *mut PyObject = ptr::null_mut();
    let mut parent: *mut PyObject = ptr::null_mut();
    // SAFETY: CPython calls `tp_init` with the GIL held, a live instance, a tuple of
    // arguments and null or a dict of keywords (as for the calls below).
    let nargs = unsafe { PyTuple_GET_SIZE(args) };
    // SAFETY: as above.
    if (kwargs.is_null() || unsafe { PyDict_Size(kwargs) } == 0) && nargs <= 2 {
        // The common `greenlet(run[, parent])`: no parsing needed, same semantics.
        if nargs >= 1 {
            // SAFETY: as above; in bounds.
            run = unsafe { PyTuple_GET_ITEM(args, 0) };
        }
        if nargs == 2 {
            // SAFETY: as above; in bounds.
            parent = unsafe { PyTuple_GET_ITEM(args, 1) };
        }
        // SAFETY: as above; `run` and `parent` are borrowed from `args`.
        return unsafe { init_fields(slf, run, parent) };
    }
    // `stack=` is taken out of the keywords first, so that every other call parses (and
    // fails) exactly as upstream's `greenlet(run=None, parent=None)`.
    // SAFETY: as above.
    let (kwargs, stack) = match unsafe { take_stack_keyword(kwargs) } {
        Ok(v) => v,
        Err(()) => return -1,
    };
    // SAFETY: CPython calls `tp_init` with the GIL held.
    let py = unsafe { Gil::assume() };
    // SAFETY: a new reference (a copy of the keywords) or null.
    let kwargs = unsafe { Owned::from_raw_opt(py, kwargs) };
    let kwargs_ptr = opt_as_object(&kwargs);
    // SAFETY: a new reference to the value of `stack=`, or null.
    let stack = unsafe { Owned::from_raw_opt(py, stack) };
    if let Some(stack) = &stack {
        let set = crate::stacks::policy_from_object(py, stack.borrow(), "stack=").map(|choice| {
            // SAFETY: a greenlet after `tp_new` (CPython calls `tp_init` on one).
            let this = unsafe { pimpl(slf) };
            // SAFETY: its live implementation, not started (it was just made); a short
            // write.
            unsafe { (*this).stack_choice = crate::stacks::encode_choice(choice) };
        });
        if set.is_err() {
            return -1;
        }
    }
    let mut kwlist: [*mut c_char; 3] = [
        c"run".as_ptr().cast_mut(),
        c"parent".as_ptr().cast_mut(),
        ptr::null_mut(),
    ];
    // SAFETY: as above; borrowed out-values.
    let parsed = unsafe {
        PyArg_ParseTupleAndKeywords(
            args,
            kwargs_ptr,
            c"|OO:green".as_ptr(),
            // `char **` before 3.13, `char *const *` after.
            kwlist.as_mut_ptr().cast(),
            &mut run,
            &mut parent,
        )
    };
    if parsed == 0 {
        return -1;
    }
    // SAFETY: as above; `run` and `parent` are borrowed from the arguments.
    unsafe { init_fields(slf, run, parent) }
}

/// Splits `stack=` off the constructor's keywords: returns a new reference to a copy of
/// `kwargs` without it (or null if there are no others, or `kwargs` was null) and a new
/// reference to its value (or null if absent).
///
/// # Safety
/// The GIL is held; `kwargs` is null or a dict.
unsafe fn take_stack_keyword(kwargs: *mut PyObject) -> Result<(*mut PyObject, *mut PyObject), ()> {
    if kwargs.is_null() {
        return Ok((ptr::null_mut(), ptr::null_mut()));
    }
    // SAFETY: the GIL is held; a dict (contract) and a C string key.
    let stack = unsafe { PyDict_GetItemString(kwargs, c"stack".as_ptr()) };
    if stack.is_null() {
        // SAFETY: the GIL is held; the caller keeps `kwargs` alive, and we return a new
        // reference to it.
        return Ok((unsafe { xnewref(kwargs) }, ptr::null_mut()));
    }
    // SAFETY: as above; `stack` is borrowed from the dict, and we take our own reference.
    let stack = unsafe { xnewref(stack) };
    // SAFETY: as above; a copy we own.
    let rest = unsafe { PyDict_Copy(kwargs) };
    // SAFETY: as above; removing a key we know is there, from our copy.
    if rest.is_null() || unsafe { PyDict_DelItemString(rest, c"stack".as_ptr()) } < 0 {
        // SAFETY: our references.
        unsafe { Py_XDECREF(rest) };
        // SAFETY: as above.
        unsafe { Py_DECREF(stack) };
        return Err(());
    }
    Ok((rest, stack))
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
    // SAFETY: called by CPython with the GIL held (contract).
    let py = unsafe { Gil::assume() };
    let ty: *mut PyTypeObject = ty.cast();
    // SAFETY: plain arithmetic on the flags word.
    let nargs = unsafe { PyVectorcall_NARGS(nargsf) };
    if kwnames.is_null() && nargs <= 2 {
        // SAFETY: the GIL is held; `ty` is our type.
        let new = unsafe { green_new(ty, ptr::null_mut(), ptr::null_mut()) };
        // SAFETY: a new reference or null with an exception set.
        let Ok(new) = (unsafe { Owned::from_raw(py, new) }) else {
            return ptr::null_mut();
        };
        let run = if nargs >= 1 {
            // SAFETY: `args` holds `nargs` live arguments (contract).
            unsafe { *args }
        } else {
            ptr::null_mut()
        };
        let parent = if nargs == 2 {
            // SAFETY: in bounds of the `nargs` arguments.
            let second = unsafe { args.add(1) };
            // SAFETY: `args` holds `nargs` live arguments (contract).
            unsafe { *second }
        } else {
            ptr::null_mut()
        };
        // SAFETY: a fresh greenlet; the arguments are live for the call.
        if unsafe { init_fields(new.as_object(), run, parent) } < 0 {
            return ptr::null_mut();
        }
        return new.into_raw();
    }
    // The generic path: what `type_call` would do with a tuple and a dict.
    // SAFETY: the GIL is held; `args` and `kwnames` as CPython passes them (contract).
    let packed = unsafe { crate::switch::vectorcall_args_to_tuple_dict(args, nargs, kwnames) };
    let Ok((tuple, kwargs)) = packed else {
        return ptr::null_mut();
    };
    // SAFETY: a new reference (to a tuple).
    let tuple = unsafe { Owned::from_raw_unchecked(py, tuple) };
    // SAFETY: a new reference (to a dict) or null.
    let kwargs = unsafe { Owned::from_raw_opt(py, kwargs) };
    let kw = opt_as_object(&kwargs);
    // SAFETY: the GIL is held; `ty` is our type.
    let new = unsafe { green_new(ty, tuple.as_object(), kw) };
    // SAFETY: a new reference or null with an exception set.
    let new = unsafe { Owned::from_raw(py, new) }.and_then(|new| {
        // SAFETY: a fresh greenlet and its arguments.
        let status = unsafe { green_init(new.as_object(), tuple.as_object(), kw) };
        crate::py::check_status(status).map(|_| new)
    });
    crate::py::into_ptr(new)
}

/// Applies the parsed `run` and `parent` arguments (each may be null).
///
/// # Safety
/// The GIL is held; `slf` is a greenlet after `tp_new`; `run` and `parent` are null or
/// live for the call.
unsafe fn init_fields(slf: *mut PyObject, run: *mut PyObject, parent: *mut PyObject) -> c_int {
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: a greenlet after `tp_new` (contract).
    let this = unsafe { pimpl(slf) };
    // SAFETY: null or live for the call (contract).
    let run = unsafe { Borrowed::from_ptr_opt(py, run) };
    // SAFETY: as above.
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent) };
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
    // SAFETY: the collector calls this on a live greenlet, with the GIL held.
    let o = unsafe { &*slf.cast::<PyGreenlet>() };
    if !o.dict.is_null() {
        // SAFETY: a GC visit of a reference the object owns.
        let r = unsafe { visit(o.dict, arg) };
        if r != 0 {
            return r;
        }
    }
    if o.pimpl.is_null() {
        return 0;
    }
    // SAFETY: the object's live implementation.
    let imp = unsafe { &*o.pimpl };
    // SAFETY: forwarded (a traversal runs no Python code).
    unsafe { imp.traverse(visit, arg) }
}

/// Only greenlets that cannot run again are collectable: suspended greenlets own frames
/// the GC cannot see, and collecting them would break their stacks.
#[cfg(not(Py_3_15))]
pub(super) unsafe extern "C" fn green_is_gc(slf: *mut PyObject) -> c_int {
    // SAFETY: the collector calls this on a live greenlet, with the GIL held.
    let p = unsafe { (*slf.cast::<PyGreenlet>()).pimpl };
    if p.is_null() {
        return 1;
    }
    // SAFETY: the object's live implementation; a short read.
    let g = unsafe { &*p };
    (g.is_main() || !g.active() || g.was_running_in_dead_thread()) as c_int
}

pub(super) unsafe extern "C" fn green_clear(slf: *mut PyObject) -> c_int {
    let o: *mut PyGreenlet = slf.cast();
    // SAFETY: the collector calls this on a live greenlet, with the GIL held; no borrow
    // is created.
    let dict = unsafe { &raw mut (*o).dict };
    // SAFETY: the field owns its reference, released after the field is cleared.
    unsafe { clear_owned(dict) };
    // SAFETY: a live greenlet (reached again: the release may have run code).
    let p = unsafe { (*o).pimpl };
    if !p.is_null() {
        // SAFETY: its live implementation, not borrowed here.
        unsafe { Greenlet::clear(p) };
    }
    0
}

/// Whether this dealloc owes the release of the instance's reference to its type.
///
/// Since CPython 3.8 instances of heap types own a reference to their type. For a Python
/// subclass, `subtype_dealloc` releases it only if the nearest base with a real
/// `tp_dealloc` is a static type; otherwise that base's dealloc must. So we release it
/// when we are that base: the type is a heap type and every type between it and ours
/// uses the instance type's own dealloc (our type, Python subclasses of it). A static C
/// (Cython) class in between means CPython or that class takes care of it.
///
/// # Safety
/// The GIL is held and `ty` is a live type.
unsafe fn owes_type_reference(ty: *mut PyTypeObject) -> bool {
    // SAFETY: a live type (the caller's instance's).
    if unsafe { PyType_HasFeature(ty, Py_TPFLAGS_HEAPTYPE) } == 0 {
        return false;
    }
    // SAFETY: as above; a short read.
    let own = unsafe { &*ty }.tp_dealloc.map(|f| f as usize);
    let ours = Some(green_dealloc as *const () as usize);
    let mut t = ty;
    while !t.is_null() {
        // SAFETY: the base chain of a live type is live.
        let tr = unsafe { &*t };
        let d = tr.tp_dealloc.map(|f| f as usize);
        if d == ours {
            return true;
        }
        if d != own {
            return false;
        }
        t = tr.tp_base;
    }
    false
}

/// Kills a started, suspended user greenlet whose last reference is going away. Returns
/// false if the greenlet was resurrected by the code that ran.
///
/// # Safety
/// Called from `green_dealloc` with the GIL held; `slf` has refcount 0 and its
/// implementation is set.
unsafe fn kill_on_dealloc(slf: *mut PyObject) -> bool {
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: a greenlet being deallocated whose implementation is still set (contract).
    let this = unsafe { pimpl(slf) };
    if crate::cpython::pystate::is_finalizing() {
        // SAFETY: the live implementation, not borrowed here.
        unsafe { Greenlet::murder_in_place(this) };
        return true;
    }
    // Temporarily resurrect the object while its code runs.
    // SAFETY: we are deallocating the object; the GIL is held.
    unsafe { set_refcnt(slf, 1) };
    // SAFETY: the GIL is held.
    let saved = unsafe { SavedError::fetch() };
    // SAFETY: the live implementation; a short read.
    let owner = unsafe { &*this }.thread_state();
    let here = if owner.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: the GIL is held.
        unsafe { thread_state::current() }.unwrap_or(ptr::null_mut())
    };
    // SAFETY: the live implementation; a short read.
    let main_greenlet = match unsafe { &(*this).kind } {
        Kind::User { main_greenlet, .. } => Some(*main_greenlet),
        Kind::Main { .. } => None,
    };
    let same_thread = match main_greenlet {
        // SAFETY: this thread's state is live while the thread runs.
        Some(m) => !owner.is_null() && !here.is_null() && m == unsafe { &*here }.main_greenlet(),
        None => false,
    };
    if same_thread {
        // SAFETY: a started, active user greenlet of this thread, resurrected above.
        if unsafe { switch::throw_greenlet_exit_during_dealloc(this) }.is_err() {
            // SAFETY: the GIL is held; `slf` is alive (resurrected).
            unsafe { PyErr_WriteUnraisable(slf) };
        }
    } else if !owner.is_null() {
        // SAFETY: the owning thread's state is alive while the pointer to it is set; the
        // borrow ends with the push, which runs no Python code.
        let owner = unsafe { &mut *owner };
        // SAFETY: the GIL is held; `slf` is alive (resurrected).
        unsafe { owner.delete_when_thread_running(slf.cast()) };
    } else {
        // SAFETY: the live implementation, not borrowed here; it can never run again.
        unsafe { Greenlet::deactivate_and_free(this) };
    }
    // SAFETY: `slf` is alive (we still hold the resurrection reference), and so is its
    // implementation.
    if unsafe { Py_REFCNT(slf) } == 1 && unsafe { &*this }.active() {
        // Not resurrected, yet still alive: complain and leak it.
        // SAFETY: the GIL is held; a borrowed reference or null.
        let f = unsafe { PySys_GetObject(c"stderr".as_ptr()) };
        // SAFETY: the leaked reference keeps the greenlet alive for good.
        unsafe { Py_INCREF(slf) };
        // SAFETY: `sys.stderr` is alive while we use it (we take a reference).
        if let Some(f) = unsafe { Borrowed::from_ptr_opt(py, f) } {
            let f = f.to_owned();
            // SAFETY: the GIL is held; a live file object and a C string.
            unsafe { PyFile_WriteString(c"GreenletExit did not kill ".as_ptr(), f.as_object()) };
            // SAFETY: as above; `slf` is alive.
            unsafe { PyFile_WriteObject(slf, f.as_object(), 0) };
            // SAFETY: as above.
            unsafe { PyFile_WriteString(c"\n".as_ptr(), f.as_object()) };
        }
    }
    // SAFETY: the GIL is held.
    unsafe { saved.restore() };
    // SAFETY: `slf` is alive (resurrected).
    let refcnt = unsafe { Py_REFCNT(slf) } - 1;
    // SAFETY: drops our resurrection reference.
    unsafe { set_refcnt(slf, refcnt) };
    if refcnt != 0 {
        // Resurrected. If someone after us (`subtype_dealloc` above a static C
        // class) will drop the instance's type reference, give it one to drop.
        // SAFETY: a resurrected object whose reference bookkeeping the deallocation
        // reset.
        unsafe { renew_reference(slf) };
        // SAFETY: as above.
        unsafe { set_refcnt(slf, refcnt) };
        // SAFETY: a live object.
        let ty = unsafe { Py_TYPE(slf) };
        // SAFETY: its live type.
        let heap_type = unsafe { PyType_HasFeature(ty, Py_TPFLAGS_HEAPTYPE) } != 0;
        // SAFETY: as above.
        if heap_type && !unsafe { owes_type_reference(ty) } {
            // SAFETY: as above; the reference the later deallocator will drop.
            unsafe { Py_INCREF(ty.cast()) };
        }
        // SAFETY: a live GC object, untracked by `green_dealloc`.
        unsafe { PyObject_GC_Track(slf.cast()) };
        return false;
    }
    true
}

/// `tp_dealloc`. Works for instances of our type, of Python subclasses, and of static C
/// subclasses (which call it after freeing their own fields).
///
/// # Safety
/// Called by CPython with the GIL held, once, when the refcount of `slf` reached zero.
pub(crate) unsafe extern "C" fn green_dealloc(slf: *mut PyObject) {
    // SAFETY: the GIL is held and `slf` is still allocated (contract) until `tp_free`,
    // as for the blocks below.
    unsafe { PyObject_GC_UnTrack(slf.cast()) };
    let o: *mut PyGreenlet = slf.cast();
    // SAFETY: as above.
    let p = unsafe { (*o).pimpl };
    if !p.is_null() {
        // SAFETY: the object's live implementation; a short read.
        let g = unsafe { &*p };
        let must_kill = g.active() && g.started() && !g.is_main();
        // SAFETY: as above; not borrowed here.
        if must_kill && !unsafe { kill_on_dealloc(slf) } {
            return;
        }
    }
    // SAFETY: as above.
    if !unsafe { (*o).weakreflist }.is_null() {
        // SAFETY: as above.
        unsafe { PyObject_ClearWeakRefs(slf) };
    }
    // SAFETY: as above; no borrow is created.
    let dict = unsafe { &raw mut (*o).dict };
    // SAFETY: the field owns its reference.
    unsafe { clear_owned(dict) };
    if !p.is_null() {
        // SAFETY: as above; nothing reaches the implementation through the object now.
        unsafe { (*o).pimpl = ptr::null_mut() };
        // SAFETY: the live implementation; a short read.
        if !unsafe { &*p }.is_main() {
            // SAFETY: as above; the borrow ends with the statement.
            let python = unsafe { &mut (*p).python };
            // SAFETY: the greenlet can never run again.
            unsafe { python.did_finish(ptr::null_mut()) };
        }
        // SAFETY: the live implementation, not borrowed here.
        unsafe { Greenlet::clear(p) };
        // SAFETY: from `alloc_user` or `new_main`; not used afterwards.
        unsafe { Greenlet::free(p) };
    }
    // SAFETY: as above.
    let ty = unsafe { Py_TYPE(slf) };
    // SAFETY: the instance's live type.
    let release_type = unsafe { owes_type_reference(ty) };
    // SAFETY: as above.
    let free = unsafe { (*ty).tp_free }.expect("tp_free");
    // SAFETY: the type's own deallocator, once.
    unsafe { free(slf.cast()) };
    if release_type {
        // SAFETY: the instance's reference to its type, which we owe (see
        // `owes_type_reference`).
        unsafe { Py_DECREF(ty.cast()) };
    }
}

pub(super) unsafe extern "C" fn green_repr(slf: *mut PyObject) -> *mut PyObject {
    // SAFETY: called by CPython with the GIL held, on a live greenlet.
    let py = unsafe { Gil::assume() };
    // SAFETY: as above.
    let this = unsafe { pimpl(slf) };
    // SAFETY: as above.
    let tp_name = unsafe { Borrowed::from_ptr(py, slf) }.type_name();
    // SAFETY: the live implementation, not borrowed here.
    let alive = unsafe { is_not_dead(this) };
    // SAFETY: the live implementation; short reads, none across `is_current` (which may
    // create this thread's state, and so run code).
    let g = || unsafe { &*this };
    if alive {
        let never_started = !g().started() && !g().active();
        let state_in_thread: &core::ffi::CStr = if g().was_running_in_dead_thread() {
            c" (thread exited)"
        // SAFETY: the GIL is held.
        } else if unsafe { thread_state::is_current(g().self_) }.unwrap_or(false) {
            c" current"
        } else if g().started() {
            c" suspended"
        } else {
            c""
        };
        let g = g();
        // SAFETY: the GIL is held; the format's conversions match the arguments (C
        // strings and pointers).
        unsafe {
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
        }
    } else {
        let g = g();
        // SAFETY: as above.
        unsafe {
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
    // SAFETY: called by CPython with the GIL held, on a live greenlet; a flag read.
    unsafe { PyGreenlet::imp(slf.cast()) }.active() as c_int
}
