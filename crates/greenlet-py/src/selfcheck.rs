//! Import-time checks, before any mirrored struct is touched:
//! - the interpreter we are loaded into has the minor version we were built for;
//! - (3.13+) our struct mirrors agree with the offsets the running interpreter publishes
//!   in `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`), for every field both know.
//!
//! A mismatch raises `ImportError` instead of corrupting the interpreter on the first
//! switch.

use crate::util::{PyErrSet, PyResult};
use std::ffi::CString;

const BUILT_FOR_MINOR: &str = env!("GREENLET_BUILT_FOR_MINOR");

/// Test hook: names a debug-offsets entry (e.g. `thread_state.current_frame`) whose
/// runtime value is altered in our private copy before the comparison, to prove that the
/// check fires. It never changes what we read or write in the interpreter.
#[cfg(Py_3_13)]
#[cfg(Py_3_13)]
const CORRUPT_ENV: &str = "GREENLET_RS_TEST_CORRUPT_DEBUG_OFFSET";

/// # Safety
/// The GIL is held.
pub(crate) unsafe fn check() -> PyResult<()> {
    // SAFETY: callable at any time after initialisation.
    let version = unsafe { pyo3_ffi::Py_GetVersion() };
    // SAFETY: a static C string such as "3.12.1 (main, ...)".
    let version = unsafe { core::ffi::CStr::from_ptr(version) };
    let version = version.to_string_lossy();
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if major != "3" || minor != BUILT_FOR_MINOR {
        return Err(import_error(&format!(
            "greenlet-rs was built for CPython 3.{BUILT_FOR_MINOR} but is running on {major}.{minor}"
        )));
    }
    #[cfg(Py_3_13)]
    {
        let mut table = crate::cpython::debug_offsets::runtime_debug_offsets();
        if let Ok(name) = std::env::var(CORRUPT_ENV) {
            corrupt(&mut table, &name);
        }
        if let Err(msg) = compare_debug_offsets(&table) {
            return Err(import_error(&msg));
        }
    }
    Ok(())
}

fn import_error(msg: &str) -> PyErrSet {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: CPython's `PyExc_*` statics are set before any extension loads.
    let exc = unsafe { pyo3_ffi::PyExc_ImportError };
    // SAFETY: GIL held (import); `%s` with a NUL-terminated string.
    unsafe { pyo3_ffi::PyErr_Format(exc, c"%s".as_ptr(), msg.as_ptr()) };
    PyErrSet
}

/// Every entry of the runtime table that we also know, as
/// `(name, runtime value, our value, exact)`; `exact == false` means ours must not
/// exceed the runtime's (sizes of structs whose tail we do not mirror).
#[cfg(Py_3_13)]
fn entries(t: &crate::cpython::debug_offsets::DebugOffsets) -> Vec<(&'static str, u64, u64, bool)> {
    use crate::cpython::frame::InterpreterFrame as F;
    use crate::cpython::pystate::PyThreadState as T;
    use core::mem::{offset_of, size_of};
    let ts = &t.thread_state;
    let fr = &t.interpreter_frame;
    let o = |n: usize| n as u64;
    #[allow(unused_mut, reason = "extended on 3.14+")]
    let mut v = vec![
        ("thread_state.size", ts.size, o(size_of::<T>()), false),
        ("thread_state.prev", ts.prev, o(offset_of!(T, prev)), true),
        ("thread_state.next", ts.next, o(offset_of!(T, next)), true),
        (
            "thread_state.interp",
            ts.interp,
            o(offset_of!(T, interp)),
            true,
        ),
        (
            "thread_state.current_frame",
            ts.current_frame,
            o(offset_of!(T, current_frame)),
            true,
        ),
        (
            "thread_state.thread_id",
            ts.thread_id,
            o(offset_of!(T, thread_id)),
            true,
        ),
        (
            "thread_state.native_thread_id",
            ts.native_thread_id,
            o(offset_of!(T, native_thread_id)),
            true,
        ),
        (
            "thread_state.datastack_chunk",
            ts.datastack_chunk,
            o(offset_of!(T, datastack_chunk)),
            true,
        ),
        (
            "thread_state.status",
            ts.status,
            o(offset_of!(T, _status)),
            true,
        ),
        ("interpreter_frame.size", fr.size, o(size_of::<F>()), true),
        (
            "interpreter_frame.previous",
            fr.previous,
            o(offset_of!(F, previous)),
            true,
        ),
        (
            "interpreter_frame.executable",
            fr.executable,
            o(offset_of!(F, f_executable)),
            true,
        ),
        (
            "interpreter_frame.instr_ptr",
            fr.instr_ptr,
            o(offset_of!(F, instr_ptr)),
            true,
        ),
        (
            "interpreter_frame.localsplus",
            fr.localsplus,
            o(offset_of!(F, localsplus)),
            true,
        ),
        (
            "interpreter_frame.owner",
            fr.owner,
            o(offset_of!(F, owner)),
            true,
        ),
    ];
    #[cfg(Py_3_14)]
    v.push((
        "interpreter_frame.stackpointer",
        fr.stackpointer,
        o(offset_of!(F, stackpointer)),
        true,
    ));
    #[cfg(Py_3_15)]
    v.extend([
        (
            "thread_state.base_frame",
            ts.base_frame,
            o(offset_of!(T, base_frame)),
            true,
        ),
        (
            "thread_state.holds_gil",
            ts.holds_gil,
            o(offset_of!(T, holds_gil)),
            true,
        ),
        (
            "thread_state.gil_requested",
            ts.gil_requested,
            o(offset_of!(T, gil_requested)),
            true,
        ),
        (
            "thread_state.current_exception",
            ts.current_exception,
            o(offset_of!(T, current_exception)),
            true,
        ),
        (
            "thread_state.exc_state",
            ts.exc_state,
            o(offset_of!(T, exc_state)),
            true,
        ),
        (
            "err_stackitem.exc_value",
            t.err_stackitem.exc_value,
            o(offset_of!(crate::cpython::pystate::ErrStackItem, exc_value)),
            true,
        ),
    ]);
    v
}

/// Compares the runtime's table with our mirrors; the error lists every difference.
#[cfg(Py_3_13)]
pub(crate) fn compare_debug_offsets(
    t: &crate::cpython::debug_offsets::DebugOffsets,
) -> Result<(), String> {
    use crate::cpython::debug_offsets::COOKIE;
    let prefix = format!(
        "greenlet-rs was built with the CPython 3.{BUILT_FOR_MINOR} struct layouts, which \
         do not match this interpreter's _PyRuntime.debug_offsets"
    );
    if &t.cookie != COOKIE {
        return Err(format!("{prefix}: the table's cookie is not \"xdebugpy\""));
    }
    let minor = (t.version >> 16) & 0xff;
    if (t.version >> 24) != 3 || minor.to_string() != BUILT_FOR_MINOR {
        return Err(format!("{prefix}: it describes version {:#x}", t.version));
    }
    if t.free_threaded != 0 {
        return Err(format!(
            "{prefix}: the interpreter is a free-threaded build"
        ));
    }
    let diffs: Vec<String> = entries(t)
        .into_iter()
        .filter(|&(_, theirs, ours, exact)| if exact { theirs != ours } else { ours > theirs })
        .map(|(name, theirs, ours, _)| format!("{name} is {theirs} (ours: {ours})"))
        .collect();
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{prefix}: {}", diffs.join("; ")))
    }
}

/// Applies the [`CORRUPT_ENV`] test hook to our copy of the table.
#[cfg(Py_3_13)]
fn corrupt(t: &mut crate::cpython::debug_offsets::DebugOffsets, name: &str) {
    match name {
        "cookie" => t.cookie[0] = b'X',
        "version" => t.version += 1 << 16,
        "free_threaded" => t.free_threaded = 1,
        "thread_state.current_frame" => t.thread_state.current_frame += 8,
        "thread_state.datastack_chunk" => t.thread_state.datastack_chunk += 8,
        "thread_state.size" => t.thread_state.size = 8,
        "interpreter_frame.previous" => t.interpreter_frame.previous += 8,
        "interpreter_frame.owner" => t.interpreter_frame.owner += 1,
        _ => {}
    }
}
