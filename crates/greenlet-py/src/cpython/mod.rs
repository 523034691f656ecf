//! Hand-written `#[repr(C)]` mirrors of the CPython internals that greenlet saves and
//! restores on every switch.
//!
//! `pyo3-ffi` treats `PyThreadState` as opaque, and the fields greenlet needs move in
//! every minor release (see `docs/architecture.md`). Each file here mirrors one CPython
//! header, with one nested module per supported minor version, selected by the
//! `Py_3_x` cfgs that `pyo3-build-config` emits for the interpreter we build against.
//! The mirrors are checked against the real headers by `tools/layout-check` (offsetof vs
//! `offset_of!`).

pub mod pystate;

#[cfg(Py_GIL_DISABLED)]
compile_error!(
    "greenlet-rs does not support free-threaded CPython builds yet: the object header, \
     the thread-local switch bookkeeping, c_stack_refs and critical sections differ there"
);
