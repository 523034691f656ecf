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
//! - `auto[:SIZE]`: greenlets start sliced; a kind of greenlet (its Python type) whose
//!   greenlets keep copying more than [`AUTO_HIGH`] bytes per switch away makes later
//!   greenlets of that kind start on dedicated stacks (and back below [`AUTO_LOW`]).
//!
//! The variable seeds the process-wide policy at import; `set_stack_policy` changes it, or
//! this thread's (which overrides it); a greenlet's own choice (`stack=` / `gr_stack`) or
//! its class's `__greenlet_stack__` overrides both. Supported on every CPython of the
//! matrix (see [`supported`]): on 3.14+ only where the C-stack limits could be located at
//! import (`python_state/c_stack.rs`; not on 3.14.0); elsewhere a request for another mode
//! warns and keeps `sliced`.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::greenlet::{Greenlet, PyGreenlet};
use crate::py::{Borrowed, Gil, Owned, PyErrSet, PyResult};
use crate::util::GilCell;
use pyo3_ffi::PyObject;

/// The environment variable read at import.
pub(crate) const ENV: &str = "GREENLET_STACKS";

/// The default size of a dedicated stack: enough for CPython 3.10's default recursion limit
/// (about 416 bytes of C stack per Python call) with room for C extensions.
pub(crate) const DEFAULT_SIZE: usize = 1 << 20;

/// The largest dedicated stack one may ask for.
const MAX_SIZE: usize = 1 << 30;

/// `auto`: a kind whose greenlets copy at least this many bytes per switch away (on
/// average) starts its later greenlets on dedicated stacks.
pub(crate) const AUTO_HIGH: usize = 16 << 10;

/// `auto`: a kind on dedicated stacks whose greenlets are suspended less deep than this (on
/// average) starts its later greenlets sliced again. Four times below [`AUTO_HIGH`], so a
/// kind near one threshold does not flip back and forth.
pub(crate) const AUTO_LOW: usize = 4 << 10;

/// `auto`: how many switches away (since the kind's last change) a decision needs.
pub(crate) const AUTO_MIN_SAMPLES: u32 = 64;

/// `auto`: at most this many kinds (Python types) are tracked. Greenlets of further kinds
/// start sliced.
const AUTO_MAX_KINDS: usize = 256;

/// Whether dedicated stacks can be used on this interpreter: always before 3.14; on 3.14+
/// if the C-stack limits were located at import.
#[inline(always)]
pub(crate) fn supported() -> bool {
    #[cfg(Py_3_14)]
    return crate::python_state::c_stack::measured();
    #[cfg(not(Py_3_14))]
    true
}

/// Why dedicated stacks cannot be used here, for the warning.
fn unsupported_reason() -> &'static str {
    #[cfg(Py_3_14)]
    return crate::python_state::c_stack::problem().unwrap_or("unknown");
    #[cfg(not(Py_3_14))]
    "unknown"
}

/// A stack mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Sliced,
    Dedicated,
    Auto,
}

/// A stack policy: a mode and, for `dedicated` and `auto`, the size of a dedicated stack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Policy {
    pub(crate) mode: Mode,
    pub(crate) size: usize,
}

impl Policy {
    pub(crate) const SLICED: Policy = Policy {
        mode: Mode::Sliced,
        size: 0,
    };

    /// One word, 0 for "no policy": the mode in the low two bits, the size above.
    fn encode(self) -> usize {
        let mode = match self.mode {
            Mode::Sliced => 1,
            Mode::Dedicated => 2,
            Mode::Auto => 3,
        };
        (self.size << 2) | mode
    }

    fn decode(v: usize) -> Option<Policy> {
        let mode = match v & 3 {
            0 => return None,
            1 => Mode::Sliced,
            2 => Mode::Dedicated,
            _ => Mode::Auto,
        };
        Some(Policy { mode, size: v >> 2 })
    }

    /// The canonical spelling, which [`parse`] reads back: `sliced`, `dedicated:SIZE`,
    /// `auto:SIZE` (SIZE in bytes).
    pub(crate) fn describe(self) -> String {
        match self.mode {
            Mode::Sliced => "sliced".to_owned(),
            Mode::Dedicated => format!("dedicated:{}", self.size),
            Mode::Auto => format!("auto:{}", self.size),
        }
    }
}

/// The process-wide policy ([`Policy::encode`]), seeded from [`ENV`] at import.
static PROCESS_POLICY: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's policy ([`Policy::encode`]); 0: none, the process-wide one applies.
    static THREAD_POLICY: Cell<usize> = const { Cell::new(0) };
}

/// The process-wide policy.
pub(crate) fn process_policy() -> Policy {
    Policy::decode(PROCESS_POLICY.load(Ordering::Relaxed)).unwrap_or(Policy::SLICED)
}

/// This thread's own policy, if it has one.
pub(crate) fn thread_policy() -> Option<Policy> {
    Policy::decode(THREAD_POLICY.with(Cell::get))
}

/// The size of a dedicated stack if the process-wide policy is `dedicated` (the
/// `_dedicated_stack_size` test hook).
pub(crate) fn dedicated_size() -> Option<usize> {
    let p = process_policy();
    (p.mode == Mode::Dedicated).then_some(p.size)
}

/// Reads a policy: `sliced`, `dedicated[:SIZE]` or `auto[:SIZE]` (case-insensitive; SIZE in
/// bytes, or with a `k`/`m` suffix); the empty string is `sliced`.
pub(crate) fn parse(value: &str) -> Result<Policy, String> {
    let value = value.trim();
    let (mode, size) = match value.split_once(':') {
        Some((m, s)) => (m, Some(s)),
        None => (value, None),
    };
    let mode = match mode.trim().to_ascii_lowercase().as_str() {
        "" | "sliced" if size.is_none() => Mode::Sliced,
        "dedicated" => Mode::Dedicated,
        "auto" => Mode::Auto,
        _ => {
            return Err(format!(
                "{value:?} is not one of sliced, dedicated[:SIZE], auto[:SIZE]"
            ));
        }
    };
    let size = match size {
        _ if mode == Mode::Sliced => 0,
        Some(s) => parse_size(s)?,
        None => DEFAULT_SIZE,
    };
    Ok(Policy { mode, size })
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
        .map_err(|_| format!("bad stack size {s:?}"))?;
    check_size(n.saturating_mul(unit))
}

/// `Ok(bytes)` if a dedicated stack may have that size.
fn check_size(bytes: usize) -> Result<usize, String> {
    if (greenlet_core::MIN_STACK_SIZE..=MAX_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "stack size {bytes} is not between {} and {MAX_SIZE} bytes",
            greenlet_core::MIN_STACK_SIZE
        ))
    }
}

/// The name of the class attribute, interned at import.
static CLASS_ATTR: AtomicPtr<PyObject> = AtomicPtr::new(ptr::null_mut());

/// Read `GREENLET_STACKS` (at import). A value that cannot be honoured warns
/// (`RuntimeWarning`) and leaves the mode `sliced`: a typo must not stop an application.
pub(crate) fn init_from_env(py: Gil<'_>) -> PyResult<()> {
    let name = py.intern(c"__greenlet_stack__")?;
    CLASS_ATTR.store(name.into_raw(), Ordering::Relaxed);
    let Ok(value) = std::env::var(ENV) else {
        return Ok(());
    };
    match parse(&value) {
        Ok(p) if p.mode == Mode::Sliced => PROCESS_POLICY.store(p.encode(), Ordering::Relaxed),
        Ok(_) if !supported() => {
            return py.warn_runtime(&format!(
                "{ENV}={value}: dedicated stacks are not available on this Python ({}); \
                 greenlets stay sliced",
                unsupported_reason()
            ));
        }
        Ok(p) => PROCESS_POLICY.store(p.encode(), Ordering::Relaxed),
        Err(msg) => return py.warn_runtime(&format!("{ENV}: {msg}; greenlets stay sliced")),
    }
    Ok(())
}

fn value_error(py: Gil<'_>, msg: &str) -> PyErrSet {
    let msg = std::ffi::CString::new(msg).unwrap_or_default();
    py.value_error(&msg)
}

/// A policy given from Python: a `str` ([`parse`]) or an `int` (a dedicated stack of that
/// many bytes). `None` gives `Ok(None)`. Runs no Python code.
pub(crate) fn policy_from_object(
    py: Gil<'_>,
    obj: Borrowed<'_, '_>,
    what: &str,
) -> PyResult<Option<Policy>> {
    let o = obj.as_ptr();
    if o == py.none().as_ptr() {
        return Ok(None);
    }
    // SAFETY: the GIL is held (`py`); a type check of a live object.
    if unsafe { pyo3_ffi::PyUnicode_Check(o) } != 0 {
        let text = str_of(obj)?;
        return parse(&text)
            .map(Some)
            .map_err(|m| value_error(py, &format!("{what}: {m}")));
    }
    // SAFETY: as above. (`bool` is an `int` too: `True` is a size of 1 byte, refused below.)
    if unsafe { pyo3_ffi::PyLong_Check(o) } != 0 {
        let size = size_of_int(py, obj).map_err(|_| {
            // SAFETY: the GIL is held; an exception is set, replaced below.
            unsafe { pyo3_ffi::PyErr_Clear() };
            value_error(
                py,
                &format!(
                    "{what}: a stack size is between {} and {MAX_SIZE} bytes",
                    greenlet_core::MIN_STACK_SIZE
                ),
            )
        })?;
        return Ok(Some(Policy {
            mode: Mode::Dedicated,
            size,
        }));
    }
    let msg = format!(
        "{what}: a stack policy is a str ('sliced', 'dedicated[:SIZE]', 'auto[:SIZE]'), an int \
         (the size of a dedicated stack in bytes) or None"
    );
    let msg = std::ffi::CString::new(msg).unwrap_or_default();
    Err(py.type_error(&msg))
}

/// The text of a `str`.
fn str_of(s: Borrowed<'_, '_>) -> PyResult<String> {
    let mut len: pyo3_ffi::Py_ssize_t = 0;
    // SAFETY: the GIL is held; `s` is a live `str` (checked by the callers).
    let p = unsafe { pyo3_ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
    if p.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: `p` points at `len` bytes of UTF-8 owned by the string, alive for the call.
    let bytes = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A size given as an `int`, checked against the limits.
fn size_of_int(py: Gil<'_>, i: Borrowed<'_, '_>) -> PyResult<usize> {
    // SAFETY: the GIL is held; `i` is a live `int` (checked by the callers), so no
    // `__index__` runs.
    let n = unsafe { pyo3_ffi::PyLong_AsSsize_t(i.as_ptr()) };
    if n == -1 && py.err_occurred() {
        // SAFETY: the GIL is held; an exception is set.
        unsafe { pyo3_ffi::PyErr_Clear() };
        return Err(value_error(py, "stack size out of range"));
    }
    let n = usize::try_from(n).unwrap_or(0);
    check_size(n).map_err(|m| value_error(py, &m))
}

/// A new `str`.
fn new_str<'py>(py: Gil<'py>, s: &str) -> PyResult<Owned<'py>> {
    // SAFETY: the GIL is held; `len` bytes of UTF-8.
    let o = unsafe {
        pyo3_ffi::PyUnicode_FromStringAndSize(s.as_ptr().cast(), s.len() as pyo3_ffi::Py_ssize_t)
    };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Owned::from_raw(py, o) }
}

/// `None`, or the canonical string of a policy.
pub(crate) fn policy_to_object<'py>(py: Gil<'py>, p: Option<Policy>) -> PyResult<Owned<'py>> {
    match p {
        None => Ok(py.none().to_owned()),
        Some(p) => new_str(py, &p.describe()),
    }
}

/// `get_stack_policy(*, thread=False)`.
pub(crate) fn get_stack_policy<'py>(py: Gil<'py>, thread: bool) -> PyResult<Owned<'py>> {
    if thread {
        policy_to_object(py, thread_policy())
    } else {
        policy_to_object(py, Some(process_policy()))
    }
}

/// `set_stack_policy(mode, size=None, *, thread=False)`: returns the previous policy.
pub(crate) fn set_stack_policy<'py>(
    py: Gil<'py>,
    mode: Borrowed<'_, 'py>,
    size: Option<Borrowed<'_, 'py>>,
    thread: bool,
) -> PyResult<Owned<'py>> {
    let mode_obj = mode.as_ptr();
    let is_none = mode_obj == py.none().as_ptr();
    // SAFETY: the GIL is held (`py`); a type check of a live object.
    if !is_none && unsafe { pyo3_ffi::PyUnicode_Check(mode_obj) } == 0 {
        return Err(py.type_error(
            c"set_stack_policy(): mode must be 'sliced', 'dedicated', 'auto' (optionally ':SIZE') or, with thread=True, None",
        ));
    }
    if is_none && !thread {
        return Err(py.type_error(
            c"set_stack_policy(): mode None (no policy of its own) is only for thread=True",
        ));
    }
    let size = size.filter(|s| s.as_ptr() != py.none().as_ptr());
    let new = if is_none {
        if size.is_some() {
            return Err(py.value_error(c"set_stack_policy(): a size needs a mode"));
        }
        None
    } else {
        let text = str_of(mode)?;
        let mut p =
            parse(&text).map_err(|m| value_error(py, &format!("set_stack_policy(): {m}")))?;
        if let Some(size) = size {
            if text.contains(':') {
                return Err(py.value_error(c"set_stack_policy(): the size is given twice"));
            }
            if p.mode == Mode::Sliced {
                return Err(py.value_error(c"set_stack_policy(): sliced greenlets take no size"));
            }
            // SAFETY: the GIL is held (`py`); a type check of a live object.
            if unsafe { pyo3_ffi::PyLong_Check(size.as_ptr()) } == 0 {
                return Err(
                    py.type_error(c"set_stack_policy(): size must be an int (bytes) or None")
                );
            }
            p.size = size_of_int(py, size)?;
        }
        Some(p)
    };
    let previous = if thread {
        thread_policy()
    } else {
        Some(process_policy())
    };
    if !supported() && new.is_some_and(|p| p.mode != Mode::Sliced) {
        py.warn_runtime(&format!(
            "dedicated stacks are not available on this Python ({}); the stack policy \
             stays as it was",
            unsupported_reason()
        ))?;
        return policy_to_object(py, previous);
    }
    let word = new.map_or(0, Policy::encode);
    if thread {
        THREAD_POLICY.with(|c| c.set(word));
    } else {
        PROCESS_POLICY.store(word, Ordering::Relaxed);
    }
    policy_to_object(py, previous)
}

/// A greenlet's own choice, as stored in [`Greenlet::stack_choice`].
pub(crate) fn encode_choice(p: Option<Policy>) -> usize {
    p.map_or(0, Policy::encode)
}

/// The choice stored in [`Greenlet::stack_choice`].
pub(crate) fn decode_choice(word: usize) -> Option<Policy> {
    Policy::decode(word)
}

/// What `auto` learns about one kind of greenlet (one Python type).
pub(crate) struct KindStats {
    /// Exponentially weighted mean of the bytes per switch away, times 16 (weight 1/16).
    mean16: AtomicUsize,
    /// Samples since the last change of `dedicated` (saturating).
    samples: AtomicU32,
    /// Whether later greenlets of this kind start on dedicated stacks.
    dedicated: AtomicBool,
}

/// A tracked kind: the type's address and name (no reference is kept, so a type may die
/// and another take its address; a different name then resets the stats), and its stats.
struct KindEntry {
    ty: usize,
    name: Box<[u8]>,
    stats: &'static KindStats,
}

/// Every kind `auto` tracks; the stats are allocated once each and never freed.
static KINDS: GilCell<Vec<KindEntry>> = GilCell::new(Vec::new());

/// Set once any greenlet is tracked by `auto`: until then the switch path does nothing more
/// than load this flag.
static AUTO_USED: AtomicBool = AtomicBool::new(false);

/// The name of a type (`tp_name`).
///
/// # Safety
/// The GIL is held; `ty` is a live type.
unsafe fn type_name<'a>(ty: *mut pyo3_ffi::PyTypeObject) -> &'a [u8] {
    // SAFETY: a live type (contract); its name is a C string it keeps.
    let name = unsafe { (*ty).tp_name };
    if name.is_null() {
        return b"";
    }
    // SAFETY: as above.
    unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes()
}

/// The stats of the kind `ty`, made on first use; `None` when the registry is full.
/// Allocates no Python object and runs no Python code.
///
/// # Safety
/// The GIL is held; `ty` is a live type.
unsafe fn kind_stats(ty: *mut pyo3_ffi::PyTypeObject) -> Option<&'static KindStats> {
    // SAFETY: the GIL is held (contract).
    let kinds = unsafe { KINDS.get() };
    // SAFETY: as above: the only borrow of the registry, ending here.
    let kinds = unsafe { &mut *kinds };
    // SAFETY: the GIL is held; a live type (contract).
    let name = unsafe { type_name(ty) };
    if let Some(k) = kinds.iter_mut().find(|k| k.ty == ty as usize) {
        if *k.name != *name {
            // Another type at a dead one's address: start afresh. (No live greenlet can be
            // of the dead type: each holds its type.)
            k.name = name.into();
            k.stats.mean16.store(0, Ordering::Relaxed);
            k.stats.samples.store(0, Ordering::Relaxed);
            k.stats.dedicated.store(false, Ordering::Relaxed);
        }
        return Some(k.stats);
    }
    if kinds.len() >= AUTO_MAX_KINDS {
        return None;
    }
    let stats: &'static KindStats = Box::leak(Box::new(KindStats {
        mean16: AtomicUsize::new(0),
        samples: AtomicU32::new(0),
        dedicated: AtomicBool::new(false),
    }));
    kinds.push(KindEntry {
        ty: ty as usize,
        name: name.into(),
        stats,
    });
    Some(stats)
}

impl KindStats {
    /// Adds one sample: `bytes` that a switch away from a greenlet of this kind copied (or,
    /// on a dedicated stack, would have copied if sliced), and flips the decision when the
    /// mean has crossed the far threshold.
    fn record(&self, bytes: usize) {
        let m = self.mean16.load(Ordering::Relaxed);
        let m = m - m / 16 + bytes;
        self.mean16.store(m, Ordering::Relaxed);
        let n = self.samples.load(Ordering::Relaxed).saturating_add(1);
        let mean = m / 16;
        let dedicated = self.dedicated.load(Ordering::Relaxed);
        let flip = n >= AUTO_MIN_SAMPLES
            && if dedicated {
                mean < AUTO_LOW
            } else {
                mean >= AUTO_HIGH
            };
        if flip {
            self.dedicated.store(!dedicated, Ordering::Relaxed);
            self.samples.store(0, Ordering::Relaxed);
        } else {
            self.samples.store(n, Ordering::Relaxed);
        }
    }
}

/// The switch path's hook, called in the greenlet that now runs right after every stack
/// switch, with the greenlet that switched away. Costs one relaxed load and a branch until
/// some greenlet has started under `auto`; then, for greenlets not started under `auto`, a
/// field read more; for those, a few arithmetic operations (no allocation, no lookup).
///
/// # Safety
/// The GIL is held; `origin` is null or a live greenlet.
#[inline(always)]
pub(crate) unsafe fn note_switched_away(origin: *mut PyGreenlet) {
    if AUTO_USED.load(Ordering::Relaxed) {
        // SAFETY: the function contract.
        unsafe { note_switched_away_auto(origin) }
    }
}

/// # Safety
/// As for [`note_switched_away`].
#[inline(never)]
unsafe fn note_switched_away_auto(origin: *mut PyGreenlet) {
    if origin.is_null() {
        return;
    }
    // SAFETY: a live greenlet (contract), whose implementation lives as long as it does.
    let g = unsafe { PyGreenlet::imp(origin) };
    let Some(kind) = g.stack_kind else {
        return;
    };
    let stack = &g.stack;
    if !stack.active() {
        // It died: its last switch tells nothing about its depth.
        return;
    }
    let bytes = if stack.owns_stack() {
        // Nothing was copied; what a sliced switch would have copied is its depth.
        (stack.stack_stop() as usize).saturating_sub(stack.stack_start() as usize)
    } else {
        stack.saved_bytes()
    };
    kind.record(bytes);
}

/// `__greenlet_stack__` of `this`'s class (or a base below `greenlet`), if set and not
/// `None`. Reads the classes' dicts only, so runs no Python code.
///
/// # Safety
/// The GIL is held; `this` is a live greenlet.
unsafe fn class_policy(py: Gil<'_>, this: &Greenlet) -> PyResult<Option<Policy>> {
    let base = crate::globals::globals().greenlet_type;
    // SAFETY: a live greenlet (contract); reads its type.
    let ty = unsafe { pyo3_ffi::Py_TYPE(this.self_.cast()) };
    if ty == base {
        return Ok(None);
    }
    let name = CLASS_ATTR.load(Ordering::Relaxed);
    // SAFETY: a live type (the instance holds it); its MRO is a tuple once it is ready.
    let mro = unsafe { (*ty).tp_mro };
    if mro.is_null() || name.is_null() {
        return Ok(None);
    }
    // SAFETY: the GIL is held; `mro` is a tuple.
    let n = unsafe { pyo3_ffi::PyTuple_GET_SIZE(mro) };
    for i in 0..n {
        // SAFETY: in bounds; the tuple holds types.
        let t = unsafe { pyo3_ffi::PyTuple_GET_ITEM(mro, i) }.cast::<pyo3_ffi::PyTypeObject>();
        if t == base {
            break;
        }
        // SAFETY: a live type; its dict (null for some static types).
        let dict = unsafe { (*t).tp_dict };
        if dict.is_null() {
            continue;
        }
        // SAFETY: the GIL is held; a dict and an interned str key: an exact `str` lookup in
        // a class dict (whose keys are strs) runs no Python code.
        let v = unsafe { pyo3_ffi::PyDict_GetItemWithError(dict, name) };
        if v.is_null() {
            if py.err_occurred() {
                return Err(PyErrSet);
            }
            continue;
        }
        // SAFETY: borrowed from the class dict, alive for this call.
        let v = unsafe { Borrowed::from_ptr(py, v) };
        return policy_from_object(py, v, "__greenlet_stack__");
    }
    Ok(None)
}

/// The policy that applies to a greenlet about to start: its own choice, its class's
/// `__greenlet_stack__`, this thread's, or the process-wide one, in that order.
///
/// # Safety
/// The GIL is held; `this` is a live greenlet.
pub(crate) unsafe fn effective_policy(py: Gil<'_>, this: &Greenlet) -> PyResult<Policy> {
    if let Some(p) = decode_choice(this.stack_choice) {
        return Ok(p);
    }
    // SAFETY: the function contract.
    if let Some(p) = unsafe { class_policy(py, this)? } {
        return Ok(p);
    }
    Ok(thread_policy().unwrap_or_else(process_policy))
}

/// The per-greenlet decision, at its start: the size of the dedicated stack it should get,
/// or `None` to start it sliced. Records the greenlet's kind when the policy is `auto`.
/// Runs no Python code; fails (with an exception set, and the start with it) only on a bad
/// `__greenlet_stack__`.
///
/// # Safety
/// The GIL is held; `this` is an unstarted user greenlet about to start.
pub(crate) unsafe fn size_for_start(this: *mut Greenlet) -> PyResult<Option<usize>> {
    // SAFETY: the GIL is held (contract).
    let py = unsafe { Gil::assume() };
    // SAFETY: a live greenlet (contract); a short borrow, no Python code runs.
    let g = unsafe { &mut *this };
    // A `throw()` into an unstarted greenlet starts it with its exception pending: keep that
    // aside while looking up the policy (a dict lookup that finds nothing is told apart from
    // one that failed by whether an exception is set), and put it back.
    // SAFETY: the GIL is held.
    let pending = unsafe { crate::util::SavedError::fetch() };
    // SAFETY: the GIL is held; a live greenlet. (Resolved, and so checked, everywhere: a
    // bad `__greenlet_stack__` fails the same way on every interpreter.)
    let policy = match unsafe { effective_policy(py, g) } {
        Ok(p) => {
            // SAFETY: the GIL is held; no exception is set (the lookup succeeded).
            unsafe { pending.restore() };
            p
        }
        Err(e) => {
            // The start fails with the policy's error instead.
            // SAFETY: the GIL is held.
            unsafe { pending.discard() };
            return Err(e);
        }
    };
    if !supported() {
        return Ok(None);
    }
    Ok(match policy.mode {
        Mode::Sliced => None,
        Mode::Dedicated => Some(policy.size),
        Mode::Auto => {
            // SAFETY: a live greenlet; reads its type.
            let ty = unsafe { pyo3_ffi::Py_TYPE(g.self_.cast()) };
            // SAFETY: the GIL is held; the instance keeps its type alive.
            let kind = unsafe { kind_stats(ty) };
            g.stack_kind = kind;
            if kind.is_some() {
                AUTO_USED.store(true, Ordering::Relaxed);
            }
            kind.filter(|k| k.dedicated.load(Ordering::Relaxed))
                .map(|_| policy.size)
        }
    })
}

/// `_stack_auto_stats(cls)`: `None`, or `(dedicated, mean bytes per switch away, samples
/// since the last change)` of what `auto` learnt about `cls`.
pub(crate) fn auto_stats<'py>(py: Gil<'py>, cls: Borrowed<'_, 'py>) -> PyResult<Owned<'py>> {
    // SAFETY: the GIL is held (`py`).
    let kinds = unsafe { KINDS.get() };
    // SAFETY: as above: the only borrow of the registry, ending here.
    let kinds = unsafe { &*kinds };
    let ty = cls.as_ptr().cast::<pyo3_ffi::PyTypeObject>();
    // SAFETY: the GIL is held (`py`); a type check of a live object.
    if unsafe { pyo3_ffi::PyType_Check(ty.cast()) } == 0 {
        return Err(py.type_error(c"_stack_auto_stats() takes a type"));
    }
    // SAFETY: the GIL is held; a live type (checked).
    let name = unsafe { type_name(ty) };
    let Some(k) = kinds
        .iter()
        .find(|k| k.ty == ty as usize && *k.name == *name)
        .map(|k| k.stats)
    else {
        return Ok(py.none().to_owned());
    };
    let dedicated = py.bool(k.dedicated.load(Ordering::Relaxed));
    let mean = py.int_from_usize(k.mean16.load(Ordering::Relaxed) / 16)?;
    let samples = py.int_from_usize(k.samples.load(Ordering::Relaxed) as usize)?;
    // SAFETY: the GIL is held; three live objects, referenced by the new tuple.
    let t = unsafe {
        pyo3_ffi::PyTuple_Pack(
            3,
            dedicated.as_object(),
            mean.as_object(),
            samples.as_object(),
        )
    };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Owned::from_raw(py, t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(mode: Mode, size: usize) -> Result<Policy, String> {
        Ok(Policy { mode, size })
    }

    #[test]
    fn values() {
        assert_eq!(parse("sliced"), Ok(Policy::SLICED));
        assert_eq!(parse(""), Ok(Policy::SLICED));
        assert_eq!(parse("dedicated"), d(Mode::Dedicated, DEFAULT_SIZE));
        assert_eq!(parse("Dedicated:256k"), d(Mode::Dedicated, 256 << 10));
        assert_eq!(parse("dedicated:2m"), d(Mode::Dedicated, 2 << 20));
        assert_eq!(parse("dedicated:131072"), d(Mode::Dedicated, 128 << 10));
        assert_eq!(parse("auto"), d(Mode::Auto, DEFAULT_SIZE));
        assert_eq!(parse("AUTO:512k"), d(Mode::Auto, 512 << 10));
        assert!(parse("dedicated:1k").is_err());
        assert!(parse("dedicated:lots").is_err());
        assert!(parse("sliced:1m").is_err());
        assert!(parse("everything").is_err());
    }

    #[test]
    fn round_trips() {
        for s in ["sliced", "dedicated:262144", "auto:1048576"] {
            let p = parse(s).unwrap();
            assert_eq!(p.describe(), s);
            assert_eq!(Policy::decode(p.encode()), Some(p));
        }
        assert_eq!(Policy::decode(0), None);
    }

    fn stats() -> KindStats {
        KindStats {
            mean16: AtomicUsize::new(0),
            samples: AtomicU32::new(0),
            dedicated: AtomicBool::new(false),
        }
    }

    #[test]
    fn auto_needs_samples_then_flips_with_hysteresis() {
        let k = stats();
        for _ in 0..AUTO_MIN_SAMPLES - 1 {
            k.record(100 << 10);
        }
        assert!(!k.dedicated.load(Ordering::Relaxed), "too few samples");
        k.record(100 << 10);
        assert!(k.dedicated.load(Ordering::Relaxed));
        // Between the thresholds: stays dedicated however long.
        for _ in 0..10_000 {
            k.record(8 << 10);
        }
        assert!(k.dedicated.load(Ordering::Relaxed));
        for _ in 0..200 {
            k.record(1 << 10);
        }
        assert!(!k.dedicated.load(Ordering::Relaxed));
        for _ in 0..10_000 {
            k.record(8 << 10);
        }
        assert!(!k.dedicated.load(Ordering::Relaxed));
    }

    #[test]
    fn shallow_kinds_stay_sliced() {
        let k = stats();
        for _ in 0..100_000 {
            k.record(2 << 10);
        }
        assert!(!k.dedicated.load(Ordering::Relaxed));
    }
}
