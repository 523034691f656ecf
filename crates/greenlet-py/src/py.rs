//! Reference ownership and "this thread holds the GIL" as types, so that the compiler
//! checks what comments used to promise.
//!
//! - [`Gil<'py>`]: a zero-sized, `Copy`, `!Send` proof that the calling thread holds the
//!   GIL for the lifetime `'py`. It is made in exactly one unsafe place per entry from C
//!   ([`Gil::assume`] at the top of a slot, a method, a C-API function, module init, or a
//!   new greenlet's bootstrap) and passed down; everything that needs the GIL asks for it.
//! - [`Owned<'py, T>`]: a strong reference. Dropping it decrefs; it cannot outlive `'py`;
//!   it crosses into C only through [`Owned::into_raw`] (the reference moves) and comes
//!   back only through [`Owned::from_raw`] (a new reference; null means an exception is
//!   set) or [`Owned::from_borrowed`] (an incref).
//! - [`Borrowed<'a, 'py, T>`]: a reference someone else owns for `'a` (an argument of a
//!   slot, a field read for a moment).
//! - [`PyResult`] with [`PyErrSet`]: "a Python exception is set", the C convention of a
//!   null or -1 return, with [`into_ptr`] and [`into_status`] to go back.
//!
//! The switch path itself stays on raw pointers (see `switch/`): none of this costs
//! anything there, but neither does it help, and its frames are copied with every
//! suspended greenlet's stack.
//!
//! None of these values is scope-bound in the sense that matters for switching (no
//! guard, no pool): an [`Owned`] kept in a frame across a switch is a reference that
//! frame holds, exactly like a C local, and a [`Gil`] is only a proof.

use core::ffi::{CStr, c_int};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use pyo3_ffi::PyObject;

/// Marker for "a Python exception is set" (the C convention of returning NULL / -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PyErrSet;

/// The result of anything that can raise.
pub(crate) type PyResult<T> = Result<T, PyErrSet>;

/// Proof that the current thread holds the GIL (has an attached thread state) for `'py`.
///
/// Zero-sized and `Copy`; not `Send` or `Sync` (checked below), so it cannot travel to a
/// thread that might not hold the GIL.
#[derive(Clone, Copy)]
pub(crate) struct Gil<'py>(PhantomData<(&'py (), *mut ())>);

// `Gil` is not `Send`: were it, `some_item` would resolve through both impls and this
// would not compile.
const _: fn() = || {
    trait AmbiguousIfSend<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    let _ = <Gil<'static> as AmbiguousIfSend<_>>::some_item;
};

impl<'py> Gil<'py> {
    /// The proof, at an entry point from C.
    ///
    /// # Safety
    /// The calling thread holds the GIL for all of `'py` (CPython calls every slot,
    /// method and C-API function with it held), and `'py` does not outlive the call.
    #[inline(always)]
    pub(crate) unsafe fn assume() -> Self {
        Gil(PhantomData)
    }

    /// `None`, borrowed (it is immortal or kept alive by the interpreter).
    #[inline(always)]
    pub(crate) fn none(self) -> Borrowed<'py, 'py> {
        // SAFETY: the GIL is held (`self`); `Py_None` reads the address of a static object.
        let none = unsafe { pyo3_ffi::Py_None() };
        // SAFETY: that object is never null and lives as long as the interpreter.
        unsafe { Borrowed::from_ptr(self, none) }
    }

    /// A new reference to `True` or `False`.
    #[inline]
    pub(crate) fn bool(self, b: bool) -> Owned<'py> {
        // SAFETY: the GIL is held (`self`).
        let b = unsafe { pyo3_ffi::PyBool_FromLong(b as _) };
        // SAFETY: a new reference to a bool singleton; `PyBool_FromLong` cannot fail.
        unsafe { Owned::from_raw_unchecked(self, b) }
    }

    /// Sets `exc` (a live exception type) with a fixed message.
    ///
    /// # Safety
    /// `exc` is an exception type (one of the `PyExc_*` statics or a global of ours).
    #[inline]
    pub(crate) unsafe fn raise(self, exc: *mut PyObject, msg: &CStr) -> PyErrSet {
        // SAFETY: the GIL is held (`self`); `exc` is a type (contract), `msg` a C string.
        unsafe { pyo3_ffi::PyErr_SetString(exc, msg.as_ptr()) };
        PyErrSet
    }

    /// Raises `TypeError(msg)`.
    #[inline]
    pub(crate) fn type_error(self, msg: &CStr) -> PyErrSet {
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { pyo3_ffi::PyExc_TypeError };
        // SAFETY: `PyExc_TypeError` is an exception type, as `raise` requires.
        unsafe { self.raise(exc, msg) }
    }

    /// Raises `TypeError(fmt % type(obj).__name__)`, with the C `tp_name` as CPython's
    /// own messages do.
    ///
    /// # Safety
    /// `fmt` holds exactly one conversion, `%s`.
    #[inline]
    pub(crate) unsafe fn type_error_naming_type(
        self,
        fmt: &CStr,
        obj: Borrowed<'_, 'py>,
    ) -> PyErrSet {
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { pyo3_ffi::PyExc_TypeError };
        // SAFETY: the GIL is held; `%s` (contract) takes the C string `tp_name`.
        unsafe { pyo3_ffi::PyErr_Format(exc, fmt.as_ptr(), obj.type_name()) };
        PyErrSet
    }

    /// Raises `ValueError(msg)`.
    #[inline]
    pub(crate) fn value_error(self, msg: &CStr) -> PyErrSet {
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { pyo3_ffi::PyExc_ValueError };
        // SAFETY: `PyExc_ValueError` is an exception type, as `raise` requires.
        unsafe { self.raise(exc, msg) }
    }

    /// Raises `RuntimeError(msg)`.
    #[inline]
    pub(crate) fn runtime_error(self, msg: &CStr) -> PyErrSet {
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { pyo3_ffi::PyExc_RuntimeError };
        // SAFETY: `PyExc_RuntimeError` is an exception type, as `raise` requires.
        unsafe { self.raise(exc, msg) }
    }

    /// Issues a `RuntimeWarning` with `msg`; fails only if the warning was turned into an
    /// exception (`-W error`).
    pub(crate) fn warn_runtime(self, msg: &str) -> PyResult<()> {
        let Ok(msg) = std::ffi::CString::new(msg) else {
            return Ok(());
        };
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads.
        let category = unsafe { pyo3_ffi::PyExc_RuntimeWarning };
        // SAFETY: the GIL is held (`self`); a warning category and a C string.
        if unsafe { pyo3_ffi::PyErr_WarnEx(category, msg.as_ptr(), 1) } < 0 {
            Err(PyErrSet)
        } else {
            Ok(())
        }
    }

    /// Raises `TypeError("bad argument type for built-in operation")`, as
    /// `PyErr_BadArgument` does.
    #[inline]
    pub(crate) fn bad_argument(self) -> PyErrSet {
        // SAFETY: `PyErr_BadArgument` only sets an exception, which needs the GIL (`self`).
        unsafe { pyo3_ffi::PyErr_BadArgument() };
        PyErrSet
    }

    /// Whether an exception is set.
    #[inline]
    pub(crate) fn err_occurred(self) -> bool {
        // SAFETY: reads this thread's exception; needs only the GIL (`self`).
        !unsafe { pyo3_ffi::PyErr_Occurred() }.is_null()
    }

    /// Reports the pending exception, if any, as unraisable (`sys.unraisablehook`) and
    /// clears it.
    pub(crate) fn write_unraisable_if_set(self) {
        if !self.err_occurred() {
            return;
        }
        // SAFETY: an exception is set (checked above), as `PyErr_WriteUnraisable` requires;
        // a null object is allowed; the GIL is held (`self`).
        unsafe { pyo3_ffi::PyErr_WriteUnraisable(ptr::null_mut()) };
        // SAFETY: needs only the GIL (`self`).
        unsafe { pyo3_ffi::PyErr_Clear() };
    }

    /// A new, empty `dict`.
    #[inline]
    pub(crate) fn new_dict(self) -> PyResult<Owned<'py>> {
        // SAFETY: `PyDict_New` needs only the GIL (`self`).
        let d = unsafe { pyo3_ffi::PyDict_New() };
        // SAFETY: `PyDict_New` returns a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, d) }
    }

    /// A new reference to the empty tuple.
    #[inline]
    pub(crate) fn empty_tuple(self) -> PyResult<Owned<'py>> {
        // SAFETY: `PyTuple_New` needs only the GIL (`self`).
        let t = unsafe { pyo3_ffi::PyTuple_New(0) };
        // SAFETY: `PyTuple_New` returns a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, t) }
    }

    /// A new `int` from a C `long`.
    #[inline]
    pub(crate) fn int_from_long(self, v: core::ffi::c_long) -> PyResult<Owned<'py>> {
        // SAFETY: `PyLong_FromLong` needs only the GIL (`self`).
        let v = unsafe { pyo3_ffi::PyLong_FromLong(v) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, v) }
    }

    /// A new `int` from a `usize` (`size_t`).
    #[inline]
    pub(crate) fn int_from_usize(self, v: usize) -> PyResult<Owned<'py>> {
        // SAFETY: `PyLong_FromSize_t` needs only the GIL (`self`).
        let v = unsafe { pyo3_ffi::PyLong_FromSize_t(v) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, v) }
    }

    /// A new `int` from an `isize` (`Py_ssize_t`).
    #[inline]
    pub(crate) fn int_from_isize(self, v: isize) -> PyResult<Owned<'py>> {
        // SAFETY: `PyLong_FromSsize_t` needs only the GIL (`self`).
        let v = unsafe { pyo3_ffi::PyLong_FromSsize_t(v) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, v) }
    }

    /// A new `int` from an `i64` (`long long`).
    #[inline]
    pub(crate) fn int_from_i64(self, v: i64) -> PyResult<Owned<'py>> {
        // SAFETY: `PyLong_FromLongLong` needs only the GIL (`self`).
        let v = unsafe { pyo3_ffi::PyLong_FromLongLong(v) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, v) }
    }

    /// The interned `str` for `s`.
    #[inline]
    pub(crate) fn intern(self, s: &CStr) -> PyResult<Owned<'py>> {
        // SAFETY: the GIL is held (`self`); `s` is a NUL-terminated string.
        let v = unsafe { pyo3_ffi::PyUnicode_InternFromString(s.as_ptr()) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, v) }
    }

    /// `import name`.
    pub(crate) fn import(self, name: &CStr) -> PyResult<Owned<'py>> {
        // SAFETY: the GIL is held (`self`); `name` is a NUL-terminated string.
        let m = unsafe { pyo3_ffi::PyImport_ImportModule(name.as_ptr()) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self, m) }
    }

    /// This thread's dict of the interpreter (`PyThreadState_GetDict`), borrowed from the
    /// thread state, which outlives `'py`; an error (with no exception set, as in C) when
    /// there is none.
    pub(crate) fn thread_state_dict(self) -> PyResult<Borrowed<'py, 'py>> {
        // SAFETY: needs only the GIL (`self`); returns a borrowed reference or null.
        let d = unsafe { pyo3_ffi::PyThreadState_GetDict() };
        // SAFETY: null, or a dict the thread state owns for the rest of the thread's life.
        unsafe { Borrowed::from_ptr_opt(self, d) }.ok_or(PyErrSet)
    }

    /// Raises `AttributeError(msg)`.
    #[inline]
    pub(crate) fn attribute_error(self, msg: &CStr) -> PyErrSet {
        // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
        // changes them.
        let exc = unsafe { pyo3_ffi::PyExc_AttributeError };
        // SAFETY: `PyExc_AttributeError` is an exception type, as `raise` requires.
        unsafe { self.raise(exc, msg) }
    }
}

/// A strong reference to a `T` (a `PyObject` or an object struct that starts with one),
/// released when dropped. It cannot outlive the [`Gil`] it was made under.
#[repr(transparent)]
pub(crate) struct Owned<'py, T = PyObject> {
    ptr: NonNull<T>,
    _gil: PhantomData<Gil<'py>>,
}

impl<'py, T> Owned<'py, T> {
    /// Takes over the new reference a C-API call returned; null means the call failed and
    /// set an exception.
    ///
    /// # Safety
    /// `ptr` is null or a new (strong) reference to a live object laid out as a `T`.
    #[inline]
    pub(crate) unsafe fn from_raw(py: Gil<'py>, ptr: *mut T) -> PyResult<Self> {
        let _ = py;
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Owned {
                ptr,
                _gil: PhantomData,
            }),
            None => Err(PyErrSet),
        }
    }

    /// Takes over a new reference, or `None` for null (no exception involved: a field
    /// that may be empty).
    ///
    /// # Safety
    /// As for [`Self::from_raw`].
    #[inline]
    pub(crate) unsafe fn from_raw_opt(py: Gil<'py>, ptr: *mut T) -> Option<Self> {
        // SAFETY: `ptr` is null or a new reference to a live `T` (this function's contract),
        // as `from_raw` requires.
        unsafe { Self::from_raw(py, ptr) }.ok()
    }

    /// Takes over a new reference that cannot be null.
    ///
    /// # Safety
    /// As for [`Self::from_raw`], and `ptr` is not null.
    #[inline]
    pub(crate) unsafe fn from_raw_unchecked(py: Gil<'py>, ptr: *mut T) -> Self {
        let _ = py;
        debug_assert!(!ptr.is_null());
        Owned {
            // SAFETY: not null (contract).
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _gil: PhantomData,
        }
    }

    /// A new reference to what `b` borrows.
    #[inline]
    pub(crate) fn from_borrowed(b: Borrowed<'_, 'py, T>) -> Self {
        // SAFETY: the GIL is held (`b` carries the proof) and `b` is live.
        unsafe { pyo3_ffi::Py_INCREF(b.as_ptr().cast()) };
        Owned {
            ptr: b.ptr,
            _gil: PhantomData,
        }
    }

    /// Gives the reference away (to C, or to a field that owns it).
    #[inline]
    pub(crate) fn into_raw(self) -> *mut T {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p
    }

    /// The pointer, still owned by `self`.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The pointer as a `PyObject`, still owned by `self`.
    #[inline(always)]
    pub(crate) fn as_object(&self) -> *mut PyObject {
        self.ptr.as_ptr().cast()
    }

    /// Borrows the reference.
    #[inline(always)]
    pub(crate) fn borrow(&self) -> Borrowed<'_, 'py, T> {
        Borrowed {
            ptr: self.ptr,
            _marker: PhantomData,
        }
    }
}

/// `into_raw` of an optional reference: null for `None`.
#[inline]
pub(crate) fn opt_into_raw<T>(o: Option<Owned<'_, T>>) -> *mut T {
    o.map_or(ptr::null_mut(), Owned::into_raw)
}

impl<T> Drop for Owned<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: an `Owned<'py>` only exists while its `Gil<'py>` is valid, so the GIL is
        // held; the reference is ours to release.
        unsafe { pyo3_ffi::Py_DECREF(self.ptr.as_ptr().cast()) }
    }
}

impl<'py, T> Clone for Owned<'py, T> {
    #[inline]
    fn clone(&self) -> Self {
        Owned::from_borrowed(self.borrow())
    }
}

/// A reference owned by someone else for `'a` (an argument of the current call, or a
/// field that nothing can change while it is used).
pub(crate) struct Borrowed<'a, 'py, T = PyObject> {
    ptr: NonNull<T>,
    _marker: PhantomData<(&'a T, Gil<'py>)>,
}

impl<T> Clone for Borrowed<'_, '_, T> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Borrowed<'_, '_, T> {}

impl<'a, 'py, T> Borrowed<'a, 'py, T> {
    /// Borrows a pointer C gave us.
    ///
    /// # Safety
    /// `ptr` is not null and points at a live object laid out as a `T` that stays alive
    /// for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(py: Gil<'py>, ptr: *mut T) -> Self {
        let _ = py;
        debug_assert!(!ptr.is_null());
        Borrowed {
            // SAFETY: not null (contract).
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _marker: PhantomData,
        }
    }

    /// Borrows a pointer that may be null.
    ///
    /// # Safety
    /// `ptr` is null or as for [`Self::from_ptr`].
    #[inline(always)]
    pub(crate) unsafe fn from_ptr_opt(py: Gil<'py>, ptr: *mut T) -> Option<Self> {
        let _ = py;
        NonNull::new(ptr).map(|ptr| Borrowed {
            ptr,
            _marker: PhantomData,
        })
    }

    #[inline(always)]
    pub(crate) fn as_ptr(self) -> *mut T {
        self.ptr.as_ptr()
    }

    #[inline(always)]
    pub(crate) fn as_object(self) -> *mut PyObject {
        self.ptr.as_ptr().cast()
    }

    /// The C name of the object's type (`tp_name`), valid while the object lives.
    #[inline]
    pub(crate) fn type_name(self) -> *const core::ffi::c_char {
        // SAFETY: the object is live (`self`), and so is its type.
        let ty = unsafe { pyo3_ffi::Py_TYPE(self.as_object()) };
        // SAFETY: a live type object.
        unsafe { (*ty).tp_name }
    }

    /// A new reference.
    #[inline]
    pub(crate) fn to_owned(self) -> Owned<'py, T> {
        Owned::from_borrowed(self)
    }
}

/// Operations on any live object. Each needs the GIL, which the [`Gil`] inside a
/// `Borrowed` proves, and a live object, which its lifetime `'a` guarantees.
impl<'a, 'py> Borrowed<'a, 'py> {
    /// The GIL proof this reference carries.
    #[inline(always)]
    pub(crate) fn py(self) -> Gil<'py> {
        Gil(PhantomData)
    }

    /// The object's type, kept alive by the object.
    #[inline(always)]
    pub(crate) fn type_object(self) -> *mut pyo3_ffi::PyTypeObject {
        // SAFETY: reads the header of a live object (`'a`).
        unsafe { pyo3_ffi::Py_TYPE(self.as_object()) }
    }

    /// The object's reference count.
    #[inline]
    pub(crate) fn refcnt(self) -> pyo3_ffi::Py_ssize_t {
        // SAFETY: reads the header of a live object (`'a`).
        unsafe { pyo3_ffi::Py_REFCNT(self.as_object()) }
    }

    /// `isinstance(self, dict)`.
    #[inline]
    pub(crate) fn is_dict(self) -> bool {
        // SAFETY: a type check of a live object (`'a`) under the GIL.
        unsafe { pyo3_ffi::PyDict_Check(self.as_object()) != 0 }
    }

    /// Whether this is a built-in function or method object (`PyCFunction_Check`).
    #[inline]
    pub(crate) fn is_cfunction(self) -> bool {
        // SAFETY: a type check of a live object (`'a`) under the GIL.
        unsafe { pyo3_ffi::PyCFunction_Check(self.as_object()) != 0 }
    }

    /// `bool(self)`; may run Python code.
    #[inline]
    pub(crate) fn is_true(self) -> PyResult<bool> {
        // SAFETY: a live object (`'a`); the GIL is held (the `Gil` in `self`).
        let r = unsafe { pyo3_ffi::PyObject_IsTrue(self.as_object()) };
        check_status(r).map(|r| r != 0)
    }

    /// `getattr(self, name)`.
    pub(crate) fn getattr(self, name: &CStr) -> PyResult<Owned<'py>> {
        // SAFETY: a live object (`'a`), a NUL-terminated name, the GIL held.
        let a = unsafe { pyo3_ffi::PyObject_GetAttrString(self.as_object(), name.as_ptr()) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self.py(), a) }
    }

    /// `self(arg)`.
    pub(crate) fn call1(self, arg: Borrowed<'_, 'py>) -> PyResult<Owned<'py>> {
        // SAFETY: two live objects; the GIL is held. A non-callable raises `TypeError`.
        let r = unsafe { pyo3_ffi::PyObject_CallOneArg(self.as_object(), arg.as_object()) };
        // SAFETY: a new reference, or null with an exception set.
        unsafe { Owned::from_raw(self.py(), r) }
    }

    /// `self[key] = value` for a dict (`PyDict_SetItem`: anything else raises
    /// `SystemError`). Takes its own references.
    pub(crate) fn dict_set_item(
        self,
        key: Borrowed<'_, 'py>,
        value: Borrowed<'_, 'py>,
    ) -> PyResult<()> {
        // SAFETY: three live objects; the GIL is held; the function type-checks `self`.
        let r = unsafe {
            pyo3_ffi::PyDict_SetItem(self.as_object(), key.as_object(), value.as_object())
        };
        check_status(r).map(drop)
    }

    /// `self[key] = value` for a dict and a `str` key given as a C string.
    pub(crate) fn dict_set_item_str(self, key: &CStr, value: Borrowed<'_, 'py>) -> PyResult<()> {
        // SAFETY: two live objects and a NUL-terminated key; the GIL is held; the function
        // type-checks `self`.
        let r = unsafe {
            pyo3_ffi::PyDict_SetItemString(self.as_object(), key.as_ptr(), value.as_object())
        };
        check_status(r).map(drop)
    }

    /// `len(self)` for a list (`PyList_Size`: anything else raises `SystemError`).
    #[inline]
    pub(crate) fn list_len(self) -> PyResult<pyo3_ffi::Py_ssize_t> {
        // SAFETY: a live object; the GIL is held; the function type-checks it.
        let n = unsafe { pyo3_ffi::PyList_Size(self.as_object()) };
        if n < 0 { Err(PyErrSet) } else { Ok(n) }
    }

    /// Adds `value` to a module under `name` (`PyModule_AddObjectRef`, which takes its own
    /// reference and type-checks the module).
    pub(crate) fn module_add(self, name: &CStr, value: Borrowed<'_, 'py>) -> PyResult<()> {
        // SAFETY: two live objects and a NUL-terminated name; the GIL is held.
        let r = unsafe {
            pyo3_ffi::PyModule_AddObjectRef(self.as_object(), name.as_ptr(), value.as_object())
        };
        check_status(r).map(drop)
    }
}

/// The pointer of an optional reference (null for `None`), still owned by it.
#[inline]
pub(crate) fn opt_as_object<T>(o: &Option<Owned<'_, T>>) -> *mut PyObject {
    o.as_ref().map_or(ptr::null_mut(), Owned::as_object)
}

/// The C return value of a function that returns a new reference or null.
#[inline]
pub(crate) fn into_ptr<T>(r: PyResult<Owned<'_, T>>) -> *mut T {
    r.map_or(ptr::null_mut(), Owned::into_raw)
}

/// The C return value of a function that returns 0 or -1.
#[inline]
pub(crate) fn into_status(r: PyResult<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(PyErrSet) => -1,
    }
}

/// A C success flag (0 with an exception set, as `PyArg_ParseTuple` returns) as a result.
#[inline]
pub(crate) fn check_success(success: c_int) -> PyResult<()> {
    if success == 0 { Err(PyErrSet) } else { Ok(()) }
}

/// A C status (`< 0` with an exception set) as a result.
#[inline]
pub(crate) fn check_status(status: c_int) -> PyResult<c_int> {
    if status < 0 {
        Err(PyErrSet)
    } else {
        Ok(status)
    }
}
