//! Import-time checks, before any mirrored struct is touched:
//! - the interpreter we are loaded into has the minor version we were built for;
//! - (3.13+) our struct mirrors agree with the offsets the running interpreter publishes
//!   in `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`), for every field both know.
//!
//! A mismatch raises `ImportError` instead of corrupting the interpreter on the first
//! switch.

use crate::py::{Gil, PyErrSet, PyResult};
use std::ffi::CString;

const BUILT_FOR_MINOR: &str = env!("GREENLET_BUILT_FOR_MINOR");

/// Test hook: names a debug-offsets entry (e.g. `thread_state.current_frame`) whose
/// runtime value is altered in our private copy before the comparison, to prove that the
/// check fires. It never changes what we read or write in the interpreter.
#[cfg(Py_3_13)]
const CORRUPT_ENV: &str = "GREENLET_RS_TEST_CORRUPT_DEBUG_OFFSET";

/// Runs the checks; an `ImportError` on a mismatch.
pub(crate) fn check(py: Gil<'_>) -> PyResult<()> {
    // SAFETY: `Py_GetVersion` has no preconditions once the interpreter is initialised,
    // which it is while we hold the GIL (`py`).
    let version = unsafe { pyo3_ffi::Py_GetVersion() };
    // SAFETY: it returns a static NUL-terminated string such as "3.12.1 (main, ...)".
    let version = unsafe { core::ffi::CStr::from_ptr(version) };
    let version = version.to_string_lossy();
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let (major, minor) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if major != "3" || minor != BUILT_FOR_MINOR {
        return Err(import_error(
            py,
            &format!(
                "greenlet-rs was built for CPython 3.{BUILT_FOR_MINOR} but is running on {major}.{minor}"
            ),
        ));
    }
    #[cfg(Py_3_13)]
    {
        let mut table = crate::cpython::debug_offsets::runtime_debug_offsets();
        if let Ok(name) = std::env::var(CORRUPT_ENV) {
            corrupt(&mut table, &name);
        }
        if let Err(msg) = compare_debug_offsets(&table) {
            return Err(import_error(py, &msg));
        }
    }
    Ok(())
}

fn import_error(py: Gil<'_>, msg: &str) -> PyErrSet {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: CPython sets its `PyExc_*` statics before any extension loads and never
    // changes them.
    let exc = unsafe { pyo3_ffi::PyExc_ImportError };
    let _ = py;
    // SAFETY: the GIL is held (`py`); an exception type, and one `%s` with a NUL-terminated
    // string.
    unsafe { pyo3_ffi::PyErr_Format(exc, c"%s".as_ptr(), msg.as_ptr()) };
    PyErrSet
}

/// A section of `_Py_DebugOffsets` that gives offsets into one of our mirrors.
#[cfg(Py_3_13)]
struct Section {
    /// Its member name in `_Py_DebugOffsets` (a field of `DebugOffsets`).
    name: &'static str,
    /// The section's own table: its members are `size` and the C names of fields.
    offsets: StructLayout,
    /// The mirror it describes, and its `size_of`.
    mirror: StructLayout,
    mirror_size: usize,
    /// Whether the sizes must be equal; otherwise ours must not exceed the runtime's (we do
    /// not mirror the struct's tail).
    size_exact: bool,
}

#[cfg(Py_3_13)]
use crate::cpython::mirror::{Check, Mirror, StructLayout};

/// Every section that describes a mirror. Everything else comes from the `mirrors!`
/// declarations of both sides: a field added to a section (in `debug_offsets.rs`) or to a
/// mirror is compared as soon as both have it.
#[cfg(Py_3_13)]
const SECTIONS: &[Section] = {
    use crate::cpython::debug_offsets as d;
    use crate::cpython::frame::InterpreterFrame;
    use crate::cpython::pystate::PyThreadState;
    use core::mem::size_of;
    &[
        Section {
            name: "thread_state",
            offsets: d::ThreadStateOffsets::LAYOUT,
            mirror: PyThreadState::LAYOUT,
            mirror_size: size_of::<PyThreadState>(),
            size_exact: false,
        },
        #[cfg(Py_3_15)]
        Section {
            name: "err_stackitem",
            offsets: d::ErrStackItemOffsets::LAYOUT,
            mirror: crate::cpython::pystate::ErrStackItem::LAYOUT,
            mirror_size: size_of::<crate::cpython::pystate::ErrStackItem>(),
            size_exact: true,
        },
        Section {
            name: "interpreter_frame",
            offsets: d::InterpreterFrameOffsets::LAYOUT,
            mirror: InterpreterFrame::LAYOUT,
            mirror_size: size_of::<InterpreterFrame>(),
            size_exact: true,
        },
    ]
};

/// Section members whose name differs from the C field they give the offset of.
#[cfg(Py_3_13)]
const RENAMED: &[(&str, &str)] = &[
    ("thread_state.status", "_status"),
    ("interpreter_frame.executable", "f_executable"),
];

/// The byte offset of a compared size or offset (they always are: see `entries`).
#[cfg(Py_3_13)]
fn bytes(c: Check) -> Option<usize> {
    match c {
        Check::Bytes(n) => Some(n),
        Check::Unchecked(_) => None,
    }
}

/// The `u64` at byte `offset` of the runtime table.
#[cfg(Py_3_13)]
fn word(t: &crate::cpython::debug_offsets::DebugOffsets, offset: usize) -> u64 {
    let size = core::mem::size_of_val(t);
    assert!(
        offset.is_multiple_of(8) && offset + 8 <= size,
        "a u64 member of the table"
    );
    // SAFETY: `DebugOffsets` is `repr(C)` and every member of it and of its sections is a
    // `u64` or the `[u8; 8]` cookie (see `debug_offsets.rs`), all 8-byte aligned, so it has
    // no padding and all `size` bytes of `*t` are initialised; `t` is a live reference.
    let all = unsafe { core::slice::from_raw_parts(core::ptr::from_ref(t).cast::<u8>(), size) };
    u64::from_ne_bytes(all[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Every entry of the runtime table that we also know, as
/// `(name, runtime value, our value, exact)`; `exact == false` means ours must not
/// exceed the runtime's (sizes of structs whose tail we do not mirror). Generated from
/// the mirror declarations: for each section of [`SECTIONS`], its `size` and every member
/// naming a field our mirror has.
#[cfg(Py_3_13)]
fn entries(t: &crate::cpython::debug_offsets::DebugOffsets) -> Vec<(String, u64, u64, bool)> {
    use crate::cpython::debug_offsets::DebugOffsets;
    let mut v = Vec::new();
    for s in SECTIONS {
        let base = DebugOffsets::LAYOUT
            .fields
            .iter()
            .find(|f| f.name == s.name)
            .and_then(|f| bytes(f.offset))
            .expect("every section is a compared member of `DebugOffsets`");
        for member in s.offsets.fields {
            let name = format!("{}.{}", s.name, member.name);
            let at = base + bytes(member.offset).expect("section members are compared");
            let theirs = word(t, at);
            if member.name == "size" {
                v.push((name, theirs, s.mirror_size as u64, s.size_exact));
                continue;
            }
            let c_name = RENAMED
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(member.name, |&(_, c)| c);
            let ours = s.mirror.fields.iter().find(|f| f.name == c_name);
            if let Some(ours) = ours.and_then(|f| bytes(f.offset)) {
                v.push((name, theirs, ours as u64, true));
            }
        }
    }
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
