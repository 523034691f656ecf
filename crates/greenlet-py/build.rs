//! Emits the `Py_3_x` / `Py_GIL_DISABLED` cfgs for the interpreter we build against,
//! so that `src/cpython/` can pick the matching struct mirrors, and records that
//! interpreter's version for the import-time check in `src/selfcheck.rs`.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let v = pyo3_build_config::get().version();
    println!("cargo:rustc-env=GREENLET_BUILT_FOR_MINOR={}", v.minor);
}
