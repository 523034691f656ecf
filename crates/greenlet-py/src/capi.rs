//! `greenlet._C_API`: the capsule of 12 pointers that C and Cython clients (gevent among
//! them) reach through `PyGreenlet_Import()` in `greenlet.h`. The order is ABI.

use crate::globals::{GlobalObject, globals, is_greenlet};
use crate::greenlet::{Greenlet, PyGreenlet};
use crate::greenlet_type;
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult, into_ptr, into_status, opt_into_raw};
use crate::switch;
use crate::thread_state;
use core::ffi::{c_int, c_void};
use core::ptr;
use pyo3_ffi::*;

/// Slot 3: `PyGreenlet_New(run, parent)`; goes through `tp_new` and `tp_init`.
unsafe extern "C-unwind" fn capi_new(
    run: *mut PyObject,
    parent: *mut PyGreenlet,
) -> *mut PyGreenlet {
    // SAFETY: `greenlet.h` callers hold the GIL for every `_C_API` call (as for all C-API
    // calls); this is the entry from C.
    let py = unsafe { Gil::assume() };
    // SAFETY: `run` is null or an object the caller keeps alive for the call (API contract).
    let run = unsafe { Borrowed::from_ptr_opt(py, run) };
    // SAFETY: as for `run`.
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent.cast()) };
    into_ptr(new_greenlet(py, run, parent)).cast()
}

/// `greenlet(run=run, parent=parent)` through `tp_new` and `tp_init`, leaving out the
/// arguments that are `None` here (null in C).
fn new_greenlet<'py>(
    py: Gil<'py>,
    run: Option<Borrowed<'_, 'py>>,
    parent: Option<Borrowed<'_, 'py>>,
) -> PyResult<Owned<'py>> {
    let g = globals();
    // SAFETY: `green_new` needs the GIL (`py`) and a greenlet type, here ours; it ignores
    // its arguments.
    let new =
        unsafe { greenlet_type::green_new(g.greenlet_type, ptr::null_mut(), ptr::null_mut()) };
    // SAFETY: `tp_new` returns a new reference, or null with an exception set.
    let new = unsafe { Owned::from_raw(py, new) }?;
    let kwargs = py.new_dict()?;
    if let Some(run) = run {
        kwargs
            .borrow()
            .dict_set_item(g.object(py, GlobalObject::StrRun), run)?;
    }
    if let Some(parent) = parent {
        kwargs.borrow().dict_set_item_str(c"parent", parent)?;
    }
    // SAFETY: `new` holds a reference to its type (every object does), so the type is live;
    // `tp_init` is set on every heap type (inherited from `object` at worst).
    let init = unsafe { (*new.borrow().type_object()).tp_init }.expect("tp_init");
    let empty = g.object(py, GlobalObject::EmptyTuple);
    // SAFETY: `tp_init` of the instance's own type, called as CPython calls it: the GIL held,
    // the instance, an args tuple and a kwargs dict, all live for the call.
    let status = unsafe { init(new.as_object(), empty.as_object(), kwargs.as_object()) };
    if status != 0 {
        return Err(PyErrSet);
    }
    Ok(new)
}

/// Slot 4: `PyGreenlet_GetCurrent()`; a new reference.
///
/// # Safety
/// Called with the GIL held.
pub(crate) unsafe extern "C" fn capi_getcurrent() -> *mut PyGreenlet {
    // SAFETY: the GIL is held for the whole call (this function's contract, and every
    // `greenlet.h` caller's).
    let py = unsafe { Gil::assume() };
    if crate::cpython::pystate::is_finalizing() {
        return into_ptr(Err(py.runtime_error(c"greenlet is being finalized")));
    }
    // SAFETY: the GIL is held (`py`); no reference into any greenlet or thread state is live
    // here, so the queued greenlets it may kill can run any code.
    let current = unsafe { thread_state::borrow_current() };
    // SAFETY: the thread state holds a reference to its current greenlet, and nothing runs
    // between reading it and the incref of `to_owned`.
    into_ptr(current.map(|c| unsafe { Borrowed::from_ptr(py, c) }.to_owned()))
}

/// Slot 5: `PyGreenlet_Throw(g, typ, val, tb)`.
unsafe extern "C-unwind" fn capi_throw(
    g: *mut PyGreenlet,
    typ: *mut PyObject,
    val: *mut PyObject,
    tb: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: the entry of `PyGreenlet_Throw`: its caller holds the GIL and keeps `g` (null
    // or an object) alive for the call.
    let (py, this) = unsafe { enter(g) };
    if this.is_err() {
        return ptr::null_mut();
    }
    // SAFETY: needs only the GIL (`py`).
    unsafe { crate::python_state::materialize_frame() };
    // SAFETY: the caller keeps `typ` (an object) and `val`, `tb` (null or objects) alive
    // for the call (API contract).
    match unsafe { switch::normalize_throw_args(py, typ, val, tb) } {
        // SAFETY: `g` is a greenlet (checked by `enter`) the caller keeps alive; the three
        // pieces are owned and normalised.
        Ok((t, v, b)) => unsafe { switch::throw_into(g, t, v, b) },
        Err(PyErrSet) => ptr::null_mut(),
    }
}

/// Slot 6: `PyGreenlet_Switch(g, args, kwargs)`: NULL args mean `()`, and kwargs that
/// are NULL or not a dict are ignored.
unsafe extern "C-unwind" fn capi_switch(
    g: *mut PyGreenlet,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: the entry of `PyGreenlet_Switch`: its caller holds the GIL and keeps `g` (null
    // or an object) alive for the call.
    let (py, this) = unsafe { enter(g) };
    if this.is_err() {
        return ptr::null_mut();
    }
    let kwargs = if kwargs.is_null()
        // SAFETY: the caller keeps `kwargs`, not null here, alive for the call.
        || !unsafe { Borrowed::from_ptr(py, kwargs) }.is_dict()
    {
        ptr::null_mut()
    } else {
        kwargs
    };
    // SAFETY: `g` is a greenlet (checked by `enter`) the caller keeps alive; `args` is null
    // or a tuple (API contract) and `kwargs` null or a dict, both alive for the call.
    unsafe { switch::switch_to(g, args, kwargs) }
}

/// Slot 7: `PyGreenlet_SetParent(g, parent)`; 0 or -1.
unsafe extern "C" fn capi_setparent(g: *mut PyGreenlet, parent: *mut PyGreenlet) -> c_int {
    // SAFETY: `greenlet.h` callers hold the GIL for every `_C_API` call; this is the entry
    // from C.
    let py = unsafe { Gil::assume() };
    // SAFETY: `g` is a greenlet the caller keeps alive (API contract, not checked, as
    // upstream), so its implementation is set.
    let this = unsafe { (*g).pimpl };
    // SAFETY: the caller keeps `parent` (null or an object) alive for the call.
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent.cast()) };
    // SAFETY: `this` is the live implementation of `g`; nothing here holds a reference into it.
    into_status(unsafe { Greenlet::set_parent(this, py, parent) })
}

/// The entry of a `_C_API` function that takes a greenlet: the GIL proof, and `g`'s
/// implementation, or `TypeError` ("bad argument") if `g` is not a greenlet.
///
/// # Safety
/// The caller is a `_C_API` function called from C: its caller holds the GIL for the whole
/// call (`'py` ends with it) and keeps `g`, null or an object, alive.
#[inline(always)]
unsafe fn enter<'py>(g: *mut PyGreenlet) -> (Gil<'py>, PyResult<*mut Greenlet>) {
    // SAFETY: the GIL is held for `'py` (this function's contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: the GIL is held and `g` is null or live (this function's contract).
    if !unsafe { is_greenlet(g.cast()) } {
        return (py, Err(py.bad_argument()));
    }
    // SAFETY: a live greenlet; `tp_new` set its implementation.
    (py, Ok(unsafe { (*g).pimpl }))
}

macro_rules! predicate {
    ($name:ident, $doc:literal, |$gr:ident| $e:expr) => {
        #[doc = $doc]
        unsafe extern "C" fn $name(g: *mut PyGreenlet) -> c_int {
            // SAFETY: the entry of this `_C_API` function: its caller holds the GIL and keeps
            // `g` (null or an object) alive for the call.
            match unsafe { enter(g) }.1 {
                Ok(this) => {
                    // SAFETY: the live implementation of `g`; a flag read that runs no code,
                    // so no other reference to it can appear while this one lives.
                    let $gr = unsafe { &*this };
                    $e as c_int
                }
                Err(PyErrSet) => -1,
            }
        }
    };
}

predicate!(capi_main, "Slot 8: `PyGreenlet_MAIN(g)`.", |gr| gr
    .is_main());
predicate!(capi_started, "Slot 9: `PyGreenlet_STARTED(g)`.", |gr| gr
    .started());
predicate!(capi_active, "Slot 10: `PyGreenlet_ACTIVE(g)`.", |gr| gr
    .active());

/// Slot 11: `PyGreenlet_GetParent(g)`: a new reference, or NULL *without* an exception
/// for a greenlet without a parent.
unsafe extern "C" fn capi_getparent(g: *mut PyGreenlet) -> *mut PyGreenlet {
    // SAFETY: the entry of `PyGreenlet_GetParent`: its caller holds the GIL and keeps `g`
    // (null or an object) alive for the call.
    let (py, this) = unsafe { enter(g) };
    let Ok(this) = this else {
        return ptr::null_mut();
    };
    // SAFETY: the live implementation of `g`; a short read.
    let parent = unsafe { (*this).parent() };
    // SAFETY: the greenlet holds a reference to its parent, if any, and nothing runs before
    // the incref of `to_owned`.
    let parent = unsafe { Borrowed::from_ptr_opt(py, parent) };
    opt_into_raw(parent.map(Borrowed::to_owned))
}

/// Builds the capsule. The table is leaked: the capsule has no destructor and clients
/// keep the raw pointer for the life of the process.
///
/// # Safety
/// The GIL is held and the globals are initialised.
pub(crate) unsafe fn create_capsule() -> *mut PyObject {
    let g = globals();
    let table: Box<[*mut c_void; 12]> = Box::new([
        g.greenlet_type.cast(),
        g.greenlet_error.cast(),
        g.greenlet_exit.cast(),
        capi_new as *mut c_void,
        capi_getcurrent as *mut c_void,
        capi_throw as *mut c_void,
        capi_switch as *mut c_void,
        capi_setparent as *mut c_void,
        capi_main as *mut c_void,
        capi_started as *mut c_void,
        capi_active as *mut c_void,
        capi_getparent as *mut c_void,
    ]);
    let table = Box::leak(table);
    // SAFETY: the GIL is held (this function's contract); the table and the name are
    // 'static, as a capsule without destructor needs.
    unsafe { PyCapsule_New(table.as_mut_ptr().cast(), c"greenlet._C_API".as_ptr(), None) }
}
