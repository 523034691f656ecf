//! Emits the `Py_3_x` / `Py_GIL_DISABLED` cfgs for the interpreter we build against,
//! so that `src/cpython/` can pick the matching struct mirrors, and records that
//! interpreter's version for the import-time check in `src/selfcheck.rs`.
//!
//! On Windows it also sets `greenlet_py_dll` to that interpreter's DLL (`python311`, ...),
//! which `extern_libpython!` (`src/cpython/libpython.rs`) links our own declarations to.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    let config = pyo3_build_config::get();
    let v = config.version();
    println!("cargo:rustc-env=GREENLET_BUILT_FOR_MINOR={}", v.minor);
    println!("cargo:rustc-check-cfg=cfg(greenlet_py_dll, values(any()))");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    if let (true, Some(dll)) = (windows, config.lib_name()) {
        println!("cargo:rustc-cfg=greenlet_py_dll=\"{dll}\"");
    }
}
