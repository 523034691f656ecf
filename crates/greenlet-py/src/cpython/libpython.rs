//! [`extern_libpython!`]: extern blocks for the libpython symbols that `pyo3-ffi` does not declare.

/// `unsafe extern "C" { ... }` for symbols of libpython itself, linkable on Windows too.
///
/// On Linux and macOS the symbols resolve against the interpreter at load time, so a plain extern
/// block does. On Windows every import names its DLL: `pyo3-ffi` links its own declarations to
/// `pythonXY.dll` with `kind = "raw-dylib"` (no import library needed), so ours must do the same.
/// `build.rs` sets the `greenlet_py_dll` cfg to the DLL of the interpreter built for, and this
/// macro adds the matching `#[link]`; a `#[link]` name has to be a literal, hence the list.
/// Free-threaded builds (`python313t`, ...) are not listed: they are a compile error anyway.
macro_rules! extern_libpython {
    (@dlls { $($items:tt)* } $($dll:literal),*) => {
        $(
            #[cfg_attr(all(windows, greenlet_py_dll = $dll), link(name = $dll, kind = "raw-dylib"))]
        )*
        unsafe extern "C" {
            $($items)*
        }
    };
    ($($items:tt)*) => {
        $crate::cpython::libpython::extern_libpython!(@dlls { $($items)* }
            "python310", "python310_d", "python311", "python311_d", "python312", "python312_d",
            "python313", "python313_d", "python314", "python314_d", "python315", "python315_d"
        );
    };
}

pub(crate) use extern_libpython;
