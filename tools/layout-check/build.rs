//! The same `Py_3_x` cfgs as greenlet-py gets, for the field lists in `src/lib.rs`.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
