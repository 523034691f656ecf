//! Hand-written `#[repr(C)]` mirrors of the CPython internals that greenlet saves and
//! restores on every switch.
//!
//! `pyo3-ffi` treats `PyThreadState` as opaque, and the fields greenlet needs move in
//! every minor release. Each file here mirrors one CPython header, with the fields of
//! every supported minor version (3.10 to 3.15) in version groups, each gated by the
//! `Py_3_x` cfgs that `pyo3-build-config` emits for the interpreter we build against
//! and commented with the CPython change behind it. The structs are declared with
//! `mirrors!` (`mirror.rs`), which also lists every field for `tools/layout-check`
//! (`offsetof` vs `offset_of!` against the real headers); on 3.13+ they are also checked
//! against the running interpreter's `_Py_DebugOffsets` at import (`selfcheck.rs`).

#[cfg(Py_3_13)]
pub mod debug_offsets;
pub mod frame;
pub(crate) mod libpython;
pub mod mirror;
pub mod pystate;

#[cfg(not(Py_3_10))]
compile_error!("greenlet-rs supports CPython 3.10 and newer");

#[cfg(Py_GIL_DISABLED)]
compile_error!(
    "greenlet-rs does not support free-threaded CPython builds yet: the object header, \
     the thread-local switch bookkeeping, _PyThreadStateImpl.c_stack_refs and critical \
     sections differ there, and no free-threaded interpreter was available to test on"
);

#[cfg(Py_3_16)]
compile_error!(
    "greenlet-rs mirrors CPython internals up to 3.15; add the 3.16 layouts to src/cpython/ \
     first (tools/layout-check picks them up)"
);
