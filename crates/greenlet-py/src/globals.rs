//! Objects created once at module import and used on hot paths without lookups.

use crate::py::{Borrowed, Gil, PyResult};
use crate::util::GilCell;
use core::ffi::c_void;
use core::ptr;
use pyo3_ffi::{PyObject, PyTypeObject};

pub(crate) struct Globals {
    pub(crate) greenlet_type: *mut PyTypeObject,
    pub(crate) unswitchable_type: *mut PyTypeObject,
    pub(crate) greenlet_error: *mut PyObject,
    pub(crate) greenlet_exit: *mut PyObject,
    pub(crate) str_run: *mut PyObject,
    pub(crate) event_switch: *mut PyObject,
    pub(crate) event_throw: *mut PyObject,
    pub(crate) empty_tuple: *mut PyObject,
    pub(crate) empty_dict: *mut PyObject,
    /// The C function behind `greenlet.switch` (see [`is_switch_method`]).
    pub(crate) switch_method: *const c_void,
}

static GLOBALS: GilCell<Globals> = GilCell::new(Globals {
    greenlet_type: ptr::null_mut(),
    unswitchable_type: ptr::null_mut(),
    greenlet_error: ptr::null_mut(),
    greenlet_exit: ptr::null_mut(),
    str_run: ptr::null_mut(),
    event_switch: ptr::null_mut(),
    event_throw: ptr::null_mut(),
    empty_tuple: ptr::null_mut(),
    empty_dict: ptr::null_mut(),
    switch_method: ptr::null(),
});

/// The objects of [`Globals`] that are used as Python objects, for [`Globals::object`].
#[derive(Clone, Copy)]
pub(crate) enum GlobalObject {
    /// The interned `"run"`.
    StrRun,
    /// `()`.
    EmptyTuple,
    /// `greenlet.greenlet`.
    GreenletType,
    /// `greenlet._greenlet.UnswitchableGreenlet`.
    UnswitchableType,
    /// `greenlet.error`.
    Error,
    /// `greenlet.GreenletExit`.
    Exit,
}

impl Globals {
    /// One of the objects module init made, borrowed for as long as the process lives.
    #[inline(always)]
    pub(crate) fn object<'py>(&self, py: Gil<'py>, which: GlobalObject) -> Borrowed<'static, 'py> {
        let p = match which {
            GlobalObject::StrRun => self.str_run,
            GlobalObject::EmptyTuple => self.empty_tuple,
            GlobalObject::GreenletType => self.greenlet_type.cast(),
            GlobalObject::UnswitchableType => self.unswitchable_type.cast(),
            GlobalObject::Error => self.greenlet_error,
            GlobalObject::Exit => self.greenlet_exit,
        };
        // SAFETY: module init fails unless it made every one of these objects (see
        // `module::init_globals`; `UnswitchableType` is made, and checked, before anything
        // asks for it), nothing reaches the globals before init succeeds, and the globals
        // keep their references for the life of the process.
        unsafe { Borrowed::from_ptr(py, p) }
    }
}

/// The module globals. They are written once, during module init, and never freed.
#[inline(always)]
pub(crate) fn globals() -> &'static Globals {
    // SAFETY: `get` only gives the cell's address; the one use is the shared read below, of
    // data that nothing writes after module init (see there), so it needs no GIL.
    let p = unsafe { GLOBALS.get() };
    // SAFETY: written only by `globals_mut` during module init (with the GIL, before any
    // other use); afterwards read-only.
    unsafe { &*p }
}

/// # Safety
/// Only during module initialisation, with the GIL held.
pub(crate) unsafe fn globals_mut() -> &'static mut Globals {
    // SAFETY: module init holds the GIL (contract).
    let p = unsafe { GLOBALS.get() };
    // SAFETY: nothing else reads the globals during module init (contract).
    unsafe { &mut *p }
}

/// Whether `obj` (null allowed) is an instance of `greenlet.greenlet` or a subclass. The
/// one type check of the crate.
///
/// # Safety
/// The GIL is held; `obj` is null or a live object.
#[inline]
pub(crate) unsafe fn is_greenlet(obj: *mut PyObject) -> bool {
    // SAFETY: the GIL is held and `obj` is live (this function's contract); our type object
    // is kept alive by the globals for the life of the process.
    !obj.is_null() && unsafe { pyo3_ffi::PyObject_TypeCheck(obj, globals().greenlet_type) } != 0
}

/// Raises upstream's `TypeError` unless `obj` is a greenlet.
///
/// # Safety
/// The GIL is held and `obj` is a live object.
#[inline]
pub(crate) unsafe fn check_greenlet(obj: *mut PyObject) -> PyResult<()> {
    // SAFETY: the GIL is held and `obj` is live (this function's contract).
    if unsafe { is_greenlet(obj) } {
        return Ok(());
    }
    // SAFETY: the GIL is held for the whole call (this function's contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: `obj` is live for the whole call (this function's contract).
    let obj = unsafe { Borrowed::from_ptr(py, obj) };
    // SAFETY: the format holds exactly one `%s`.
    Err(unsafe {
        py.type_error_naming_type(
            c"GreenletChecker: Expected any type of greenlet, not %s",
            obj,
        )
    })
}

/// Whether the C function object `f` is a bound `switch` method of some greenlet.
///
/// # Safety
/// The GIL is held and `f` is a C function object.
pub(crate) unsafe fn is_switch_method(f: *mut PyObject) -> bool {
    // SAFETY: `f` is a C function object and the GIL is held (this function's contract);
    // this reads its `PyMethodDef`.
    let func = unsafe { pyo3_ffi::PyCFunction_GetFunction(f) };
    func.map(|p| p as *const c_void) == Some(globals().switch_method)
}
