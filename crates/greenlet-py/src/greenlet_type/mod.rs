//! The `greenlet.greenlet` type, built by hand with `PyType_FromSpec` so that its layout
//! is exactly upstream's `PyGreenlet` (see [`crate::greenlet::PyGreenlet`]) and its
//! slots work for Python subclasses and for static C (Cython) subclasses alike.

mod getset;
mod methods;
mod slots;
mod unswitchable;

pub(crate) use methods::green_switch_fast;
pub(crate) use slots::{green_dealloc, green_new};
pub(crate) use unswitchable::create_unswitchable_type;

use crate::greenlet::{Greenlet, PyGreenlet};
use crate::util::{PyErrSet, PyResult};
use core::ffi::{c_int, c_void};
use core::ptr;
use getset::*;
use methods::*;
use pyo3_ffi::*;
use slots::*;

/// The implementation behind the greenlet object `slf`, as a raw pointer: slots read it
/// through short borrows, and hold none across code that can run Python (which can reach
/// the same greenlet again).
///
/// # Safety
/// `slf` is a greenlet after `tp_new` (which always sets `pimpl`).
#[inline(always)]
unsafe fn pimpl(slf: *mut PyObject) -> *mut Greenlet {
    // SAFETY: a live greenlet object (contract).
    unsafe { (*slf.cast::<PyGreenlet>()).pimpl }
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
pub(crate) unsafe fn create_type() -> *mut PyTypeObject {
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
            doc: c"This greenlet's own stack policy, or None (then its class's __greenlet_stack__, the thread's or the process-wide policy applies): 'sliced', 'dedicated:SIZE' or 'auto:SIZE'. Set it (or pass stack= to the constructor) before the greenlet starts: a str such as 'dedicated' or 'dedicated:256k', an int (the size of a dedicated stack in bytes) or None. Setting it once the greenlet has started raises ValueError.".as_ptr(),
            ..getset(c"gr_stack", green_getstack, Some(green_setstack))
        },
        PyGetSetDef {
            doc: c"Whether this greenlet runs on a stack of its own: None before it starts and once it is dead; False if it runs sliced on its thread's stack (or on its starter's dedicated stack), also when a dedicated stack was asked for and none could be had.".as_ptr(),
            ..getset(c"gr_stack_dedicated", green_get_stack_dedicated, None)
        },
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
pub(crate) unsafe fn finish_type(
    ty: *mut PyTypeObject,
    attrs: &[(&core::ffi::CStr, *mut PyObject)],
) -> PyResult<()> {
    for (name, value) in attrs {
        // SAFETY: the GIL is held; a fresh, still mutable type; live values.
        if unsafe { PyObject_SetAttrString(ty.cast(), name.as_ptr(), *value) } < 0 {
            return Err(PyErrSet);
        }
    }
    // SAFETY: nobody else has seen the new type yet (contract).
    unsafe { (*ty).tp_flags |= Py_TPFLAGS_IMMUTABLETYPE };
    // SAFETY: the GIL is held; drops the type's attribute cache after the flag change.
    unsafe { PyType_Modified(ty) };
    Ok(())
}
