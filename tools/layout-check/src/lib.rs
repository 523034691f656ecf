//! The Rust half of the layout check: `offset_of!`/`size_of` of every mirror declared
//! with greenlet-py's `cpython::mirror::mirrors!`, as lines `offset|<C type>|<C field>|<bytes>`
//! and `size|<C type>|<bytes>`, plus a line `unchecked|<C type>|<C field or "">|<why>`
//! for each field or size a declaration deliberately leaves out.
//!
//! The list is not written here: the macro generates it from the same declarations as
//! the structs, so a mirrored field cannot be missed.
//!
//! Built as a cdylib against one interpreter (`PYO3_PYTHON`) and loaded into that
//! interpreter with ctypes by `run.sh`, which also turns the same lines into a C program
//! of `offsetof`/`sizeof` compiled against the interpreter's headers, and diffs the two
//! outputs. (A cdylib, not a binary: it needs no libpython at link time, so it works for
//! interpreters whose libpython cannot be loaded by the host's dynamic loader.)

use _greenlet::cpython::mirror::{ALL, Check, StructLayout};
use core::fmt::Write;
use std::ffi::{CString, c_char};
use std::sync::OnceLock;

fn write_struct(o: &mut String, s: &StructLayout) {
    let c = s.c_type;
    for f in s.fields {
        match f.offset {
            Check::Bytes(n) => writeln!(o, "offset|{c}|{}|{n}", f.name),
            Check::Unchecked(why) => writeln!(o, "unchecked|{c}|{}|{why}", f.name),
        }
        .unwrap();
    }
    match s.size {
        Check::Bytes(n) => writeln!(o, "size|{c}|{n}"),
        Check::Unchecked(why) => writeln!(o, "unchecked|{c}||{why}"),
    }
    .unwrap();
}

fn table() -> String {
    let mut o = String::new();
    for s in ALL.iter().copied().flatten() {
        write_struct(&mut o, s);
    }
    o
}

/// The table, for ctypes.
#[unsafe(no_mangle)]
pub extern "C" fn layout_check_table() -> *const c_char {
    static TABLE: OnceLock<CString> = OnceLock::new();
    TABLE
        .get_or_init(|| CString::new(table()).expect("no NUL in the table"))
        .as_ptr()
}
