//! `greenlet._greenlet`: a drop-in, Rust implementation of the extension module of
//! [greenlet](https://greenlet.readthedocs.io) 3.5.
//!
//! Map of the crate (fuller: `docs/architecture.md`):
//! - `greenlet/`: the `PyGreenlet` object layout (ABI) and the implementation object
//!   behind it;
//! - `greenlet_type/`: the `greenlet.greenlet` type, its slots, properties and methods,
//!   and the `UnswitchableGreenlet` test double;
//! - `switch/`: switching, starting, finishing and throwing into greenlets;
//! - `thread_state`: per-thread main/current greenlet, thread-exit cleanup;
//! - `stacks`: which stack a new greenlet starts on (`GREENLET_STACKS`);
//! - `python_state/`, `exception_state`: interpreter state moved on every switch;
//! - `py`: reference ownership and the GIL as types (`Gil`, `Owned`, `Borrowed`);
//! - `cpython/`: per-version mirrors of CPython's internal structs;
//! - `capi`: the `_C_API` capsule of `greenlet.h`;
//! - `module`: module functions and initialisation.
//!
//! The C stack itself is switched by the `greenlet-core` crate.

// One unsafe operation per block, each with its own `// SAFETY:` (the switch path and the
// data-stack pool opt out below, with their reasons). greenlet-core denies it as well, in
// its own lib.rs.
#![deny(clippy::multiple_unsafe_ops_per_block)]

mod capi;
/// Public only for `tools/layout-check`, which compares these mirrors with the C headers;
/// not an API.
#[doc(hidden)]
pub mod cpython;
#[cfg(Py_3_11)]
#[allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "the data-stack pool: each block initialises or frees a chunk this code owns exclusively, under the one invariant its comment states"
)]
mod datastack;
mod exception_state;
mod globals;
mod greenlet;
mod greenlet_type;
mod module;
mod py;
#[allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "switch path: each save/restore block is one move of interpreter state under the contract stated at the function head; splitting it would only repeat that contract"
)]
mod python_state;
mod selfcheck;
mod stacks;
#[allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "switch path, on raw FFI by design (see docs/architecture.md): its blocks are sequences of C-API calls under the contract stated at the function head"
)]
mod switch;
mod thread_state;
mod util;

/// The module's entry point, called by the import system.
///
/// # Safety
/// Called by CPython with the GIL held.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit__greenlet() -> *mut pyo3_ffi::PyObject {
    // SAFETY: called by the import machinery with the GIL held.
    unsafe { module::init().unwrap_or(core::ptr::null_mut()) }
}
