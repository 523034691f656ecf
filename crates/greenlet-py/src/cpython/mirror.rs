//! `mirrors!`: one declaration per mirror struct, from which both the `#[repr(C)]`
//! struct and the list of what `tools/layout-check` compares with the C headers are
//! generated, so that a mirrored field can never be missed by the check.
//!
//! Each file of `cpython/` declares its mirrors in a single `mirrors! { ... }` block,
//! which also defines that module's `LAYOUT` table; [`ALL`] gathers the tables.
//!
//! # The declaration
//!
//! ```text
//! mirrors! {
//!     /// Docs of the struct.
//!     #[mirror(c_type = "PyThreadState", size_unchecked(Py_3_13) = "why")]
//!     #[derive(Clone, Copy)]                  // further attributes, passed through
//!     pub struct PyThreadState {
//!         pub prev: *mut PyThreadState,       // in every supported version
//!         // 3.13 (gh-NNNN): the reason for the gate and the CPython change behind it.
//!         #[cfg(Py_3_13)] {
//!             /// Field docs.
//!             pub eval_breaker: usize,
//!             #[unchecked = "why"]            // deliberately not compared
//!             pub state: c_int,
//!         }
//!         // skipped <name>: fields left out are noted in plain comments
//!     }
//!
//!     // Structs can be grouped under one version gate too (no nesting).
//!     #[cfg(all(Py_3_11, not(Py_3_12)))] {
//!         #[mirror(c_type = "PyTraceInfo")]
//!         pub struct TraceInfo { ... }
//!     }
//! }
//! ```
//!
//! - `c_type` is how C spells the type in `offsetof`/`sizeof` (a `&str` constant
//!   expression, e.g. an `if cfg!(..)` when it was renamed); C field names are the Rust
//!   ones.
//! - The size is compared too unless `size_unchecked = "why"` (never) or
//!   `size_unchecked(<cfg predicate>) = "why"` (not where the predicate holds).
//! - `#[repr(C)]` is added by the macro; a field takes only doc comments and
//!   `#[unchecked = "why"]`, and version gates only come as groups, so that every
//!   field the struct has is in its table.

use super::{frame, pystate};

/// What the layout check compares for one size or offset.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// Our value, in bytes, to be compared with C's.
    Bytes(usize),
    /// Deliberately not compared, and why.
    Unchecked(&'static str),
}

/// One mirrored field.
#[derive(Clone, Copy, Debug)]
pub struct FieldLayout {
    /// The field's name, the same in Rust and in C.
    pub name: &'static str,
    /// Its `offset_of!`.
    pub offset: Check,
}

/// One mirror struct, as the layout check sees it.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    /// How C spells the type in `offsetof`/`sizeof`.
    pub c_type: &'static str,
    /// Its `size_of`.
    pub size: Check,
    /// Every field of the struct (in the interpreter version built for), in order.
    pub fields: &'static [FieldLayout],
}

/// Implemented by every struct declared with `mirrors!` (see the [module docs](self)).
pub trait Mirror {
    /// The struct's table.
    const LAYOUT: StructLayout;
}

/// The tables of every mirror module: a new file of `cpython/` with a `mirrors!` block
/// is added here (its `LAYOUT` is otherwise unused, which the dead-code lint reports).
pub const ALL: &[&[StructLayout]] = &[
    pystate::LAYOUT,
    frame::LAYOUT,
    #[cfg(Py_3_13)]
    super::debug_offsets::LAYOUT,
];

/// Declares mirror structs and the module's `LAYOUT` table; see the [module docs](self).
///
/// Internal arms start with `@`. Fields are collected one step (a loose field or a
/// whole version group) at a time, well within the default recursion limit.
macro_rules! mirrors {
    // ---- Items: structs, loose or in version groups. ----
    (@items [$($acc:tt)*]) => {
        /// This module's mirrors, for `tools/layout-check`. Visible to `cpython` only, so
        /// that a module left out of [`ALL`](crate::cpython::mirror::ALL) is a dead-code
        /// warning.
        pub(in crate::cpython) const LAYOUT: &[$crate::cpython::mirror::StructLayout] =
            &[$($acc)*];
    };
    (@items [$($acc:tt)*] #[cfg $c:tt] { $($group:tt)* } $($rest:tt)*) => {
        $crate::cpython::mirror::mirrors!(@group [$($acc)*] $c [$($group)*] [$($rest)*]);
    };
    (@items [$($acc:tt)*]
        $(#[doc = $d:literal])* #[mirror $spec:tt] $(#[$a:meta])*
        pub struct $name:ident { $($body:tt)* } $($rest:tt)*
    ) => {
        $crate::cpython::mirror::mirrors!(
            @struct (all()) [$(#[doc = $d])* $(#[$a])*] $spec $name [] [$($body)*]
        );
        $crate::cpython::mirror::mirrors!(
            @items [$($acc)* <$name as $crate::cpython::mirror::Mirror>::LAYOUT,] $($rest)*
        );
    };
    (@items $($other:tt)*) => {
        compile_error!(
            "mirrors!: expected a `#[mirror(c_type = ...)] pub struct` (after its doc \
             comments) or a `#[cfg(...)] { structs }` group"
        );
    };
    (@group [$($acc:tt)*] $c:tt [] [$($rest:tt)*]) => {
        $crate::cpython::mirror::mirrors!(@items [$($acc)*] $($rest)*);
    };
    (@group [$($acc:tt)*] $c:tt [
        $(#[doc = $d:literal])* #[mirror $spec:tt] $(#[$a:meta])*
        pub struct $name:ident { $($body:tt)* } $($grest:tt)*
    ] [$($rest:tt)*]) => {
        $crate::cpython::mirror::mirrors!(
            @struct $c [$(#[doc = $d])* $(#[$a])*] $spec $name [] [$($body)*]
        );
        $crate::cpython::mirror::mirrors!(
            @group [$($acc)* #[cfg $c] <$name as $crate::cpython::mirror::Mirror>::LAYOUT,]
            $c [$($grest)*] [$($rest)*]
        );
    };
    (@group $($other:tt)*) => {
        compile_error!(
            "mirrors!: a version group holds `#[mirror(...)] pub struct` items (no nested groups)"
        );
    };

    // ---- One struct's body. Fields are collected as `[cfg [docs] [why?] name type]`. ----
    (@struct $sc:tt $attrs:tt $spec:tt $name:ident [$($fields:tt)*] [
        #[cfg $c:tt] {
            $( $(#[doc = $fd:literal])* $(#[unchecked = $w:literal])? pub $f:ident : $t:ty ),*
            $(,)?
        }
        $($rest:tt)*
    ]) => {
        $crate::cpython::mirror::mirrors!(@struct $sc $attrs $spec $name
            [$($fields)* $([$c [$(#[doc = $fd])*] [$($w)?] $f $t])*] [$($rest)*]);
    };
    (@struct $sc:tt $attrs:tt $spec:tt $name:ident [$($fields:tt)*] [
        $(#[doc = $fd:literal])* $(#[unchecked = $w:literal])? pub $f:ident : $t:ty
        $(, $($rest:tt)*)?
    ]) => {
        $crate::cpython::mirror::mirrors!(@struct $sc $attrs $spec $name
            [$($fields)* [(all()) [$(#[doc = $fd])*] [$($w)?] $f $t]] [$($($rest)*)?]);
    };
    (@struct $sc:tt [$($attr:tt)*] ($($spec:tt)*) $name:ident
        [$([$c:tt [$($fd:tt)*] [$($w:literal)?] $f:ident $t:ty])*] []
    ) => {
        #[cfg $sc]
        $($attr)*
        #[repr(C)]
        pub struct $name {
            $(#[cfg $c] $($fd)* pub $f: $t,)*
        }

        #[cfg $sc]
        impl $crate::cpython::mirror::Mirror for $name {
            const LAYOUT: $crate::cpython::mirror::StructLayout =
                $crate::cpython::mirror::StructLayout {
                    c_type: $crate::cpython::mirror::mirrors!(@c_type $($spec)*),
                    size: $crate::cpython::mirror::mirrors!(@size $name $($spec)*),
                    fields: &[$(
                        #[cfg $c]
                        $crate::cpython::mirror::FieldLayout {
                            name: stringify!($f),
                            offset: $crate::cpython::mirror::mirrors!(@offset $name $f $($w)?),
                        },
                    )*],
                };
        }
    };

    (@struct $($other:tt)*) => {
        compile_error!(
            "mirrors!: a struct body holds `pub name: Type` fields (with only doc comments \
             and `#[unchecked = \"why\"]`) and `#[cfg(...)] { fields }` groups (not nested; \
             one gate per group, none per field)"
        );
    };

    // ---- Pieces of the table. ----
    (@c_type c_type = $ct:expr $(, $($_:tt)*)?) => { $ct };
    (@size $name:ident c_type = $ct:expr) => {
        $crate::cpython::mirror::Check::Bytes(core::mem::size_of::<$name>())
    };
    (@size $name:ident c_type = $ct:expr, size_unchecked = $w:literal) => {
        $crate::cpython::mirror::Check::Unchecked($w)
    };
    (@size $name:ident c_type = $ct:expr, size_unchecked $p:tt = $w:literal) => {
        if cfg! $p {
            $crate::cpython::mirror::Check::Unchecked($w)
        } else {
            $crate::cpython::mirror::Check::Bytes(core::mem::size_of::<$name>())
        }
    };
    (@offset $name:ident $f:ident) => {
        $crate::cpython::mirror::Check::Bytes(core::mem::offset_of!($name, $f))
    };
    (@offset $name:ident $f:ident $w:literal) => {
        $crate::cpython::mirror::Check::Unchecked($w)
    };
    (@c_type $($other:tt)*) => {
        compile_error!("mirrors!: `#[mirror(c_type = \"...\")]` names the C type first")
    };
    (@size $($other:tt)*) => {
        compile_error!(
            "mirrors!: after `c_type`, `#[mirror(...)]` takes only `size_unchecked = \"why\"` \
             or `size_unchecked(<cfg predicate>) = \"why\"`"
        )
    };

    // ---- Entry point. ----
    ($($items:tt)*) => {
        $crate::cpython::mirror::mirrors!(@items [] $($items)*);
    };
}
pub(crate) use mirrors;
