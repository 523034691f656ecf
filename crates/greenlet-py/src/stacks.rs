//! Which stack a new greenlet starts on: the stack-mode policy (`GREENLET_STACKS`).
//!
//! - `sliced` (the default, upstream greenlet's model): every greenlet of a thread runs on the
//!   thread's stack, and a switch copies the overlapping slices out and in, so its cost grows
//!   with the depth of the C stack the greenlets are suspended at.
//! - `dedicated[:SIZE]`: every greenlet started from the thread's stack gets a stack of its
//!   own (`SIZE` bytes, `k`/`m` suffixes, default 1 MiB; see `greenlet_core::Stack`), so a
//!   switch between them copies nothing, whatever the depth. Greenlets started from a
//!   dedicated greenlet get their own too. When no stack can be had (address space, the map
//!   count) the greenlet runs sliced instead.
//!
//! Read once, at import. On 3.14+ CPython checks the C stack by address, against limits that
//! move with every switch between stacks (`python_state/c_stack.rs`); where those cannot be
//! located (3.14.0 lacks the API used to find them) a request for dedicated stacks warns
//! and keeps `sliced`.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::py::{Gil, PyResult};

/// The environment variable read at import.
pub(crate) const ENV: &str = "GREENLET_STACKS";

/// The default size of a dedicated stack: enough for CPython 3.10's default recursion limit
/// (about 416 bytes of C stack per Python call) with room for C extensions.
pub(crate) const DEFAULT_SIZE: usize = 1 << 20;

/// 0: sliced; otherwise the size of a new greenlet's dedicated stack.
static DEDICATED_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Why dedicated stacks cannot be used here (3.14+: where the C-stack limits live could not
/// be measured), or `None`.
static C_STACK_PROBLEM: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// Record the outcome of measuring the 3.14+ C-stack limits (at import).
#[cfg_attr(not(Py_3_14), allow(dead_code))]
pub(crate) fn set_c_stack_problem(problem: Option<&'static str>) {
    *C_STACK_PROBLEM.lock().unwrap_or_else(|e| e.into_inner()) = problem;
}

/// Why dedicated stacks cannot be used on this interpreter, or `None` if they can.
pub(crate) fn unsupported() -> Option<&'static str> {
    *C_STACK_PROBLEM.lock().unwrap_or_else(|e| e.into_inner())
}

/// The size of the stack a greenlet starting now should get, or `None` to start it sliced.
#[inline]
pub(crate) fn dedicated_size() -> Option<usize> {
    match DEDICATED_SIZE.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// What a `GREENLET_STACKS` value asks for: `Ok(None)` sliced, `Ok(Some(size))` dedicated.
pub(crate) fn parse(value: &str) -> Result<Option<usize>, String> {
    let value = value.trim();
    let (mode, size) = match value.split_once(':') {
        Some((m, s)) => (m, Some(s)),
        None => (value, None),
    };
    match (mode.to_ascii_lowercase().as_str(), size) {
        ("" | "sliced", None) => Ok(None),
        ("dedicated", None) => Ok(Some(DEFAULT_SIZE)),
        ("dedicated", Some(s)) => parse_size(s).map(Some),
        _ => Err(format!(
            "{ENV}={value:?} is not one of sliced, dedicated, dedicated:SIZE"
        )),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, unit) = match s.strip_suffix(['k', 'm']) {
        Some(d) if s.ends_with('k') => (d, 1usize << 10),
        Some(d) => (d, 1 << 20),
        None => (s.as_str(), 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{ENV}: bad stack size {s:?}"))?;
    let bytes = n
        .checked_mul(unit)
        .filter(|&b| (greenlet_core::MIN_STACK_SIZE..=1 << 30).contains(&b))
        .ok_or_else(|| format!("{ENV}: stack size {s:?} is not between 64k and 1024m"))?;
    Ok(bytes)
}

/// Read `GREENLET_STACKS` (at import). A value that cannot be honoured warns
/// (`RuntimeWarning`) and leaves the mode `sliced`: a typo must not stop an application.
pub(crate) fn init_from_env(py: Gil<'_>) -> PyResult<()> {
    let Ok(value) = std::env::var(ENV) else {
        return Ok(());
    };
    match parse(&value) {
        Ok(None) => DEDICATED_SIZE.store(0, Ordering::Relaxed),
        Ok(Some(_)) if unsupported().is_some() => {
            return py.warn_runtime(&format!(
                "{ENV}={value}: dedicated stacks are not available on this Python ({}); \
                 greenlets stay sliced",
                unsupported().unwrap_or_default()
            ));
        }
        Ok(Some(size)) => DEDICATED_SIZE.store(size, Ordering::Relaxed),
        Err(msg) => return py.warn_runtime(&format!("{msg}; greenlets stay sliced")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse("sliced"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("dedicated"), Ok(Some(DEFAULT_SIZE)));
        assert_eq!(parse("Dedicated:256k"), Ok(Some(256 << 10)));
        assert_eq!(parse("dedicated:2m"), Ok(Some(2 << 20)));
        assert_eq!(parse("dedicated:131072"), Ok(Some(128 << 10)));
        assert!(parse("dedicated:1k").is_err());
        assert!(parse("dedicated:lots").is_err());
        assert!(parse("auto").is_err());
    }
}
