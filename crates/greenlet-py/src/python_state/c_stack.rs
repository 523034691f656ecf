//! 3.14+: the C-stack limits, per stack domain.
//!
//! CPython 3.14 checks C recursion by address: `_PyThreadStateImpl` holds the top of the
//! thread's stack and two limits near its bottom (`c_stack_top`, `c_stack_soft_limit`,
//! `c_stack_hard_limit`); below the soft limit it raises `RecursionError`, below the hard one
//! it aborts. Those describe the thread's own stack, so while a greenlet runs on a dedicated
//! stack they must describe that stack instead, or every check would see an overflow (a
//! mapping below the thread's stack) or none at all (one above it). So every switch that
//! may change domains writes the triple of the domain it lands in: the thread's own (read
//! once, when greenlet first runs in the thread) or one computed from the stack's bounds
//! with CPython's own margins.
//!
//! `_PyThreadStateImpl` is internal and its layout moves between patch releases (3.14.x
//! appends fields to `PyThreadState`; 3.15 inserts `base_frame`), so the three offsets and
//! the margins are not taken from headers: at import they are *measured*, by calling the
//! public `PyUnstable_ThreadState_SetStackProtection` (3.14.1+, 3.15) on the running thread
//! state with a made-up stack, seeing which words change to what, and putting everything
//! back with `PyUnstable_ThreadState_ResetStackProtection`. Where that API is missing
//! (3.14.0) dedicated stacks are refused.

use crate::cpython::pystate::PyThreadState;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set once a greenlet started on a dedicated stack: from then on every switch sets the
/// limits of the domain it lands in (before, every greenlet is on the thread's stack).
static DEDICATED_IN_USE: AtomicBool = AtomicBool::new(false);

/// Note that a dedicated stack is in use (see [`DEDICATED_IN_USE`]).
pub(crate) fn note_dedicated_stack() {
    DEDICATED_IN_USE.store(true, Ordering::Relaxed);
}

/// Offsets (bytes from the thread state) of top, soft and hard limit; 0 until measured.
static OFFSETS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
/// Distance of the soft and hard limits above a stack's lowest usable address.
static MARGINS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// The triple of one stack, in CPython's order: top, soft limit, hard limit.
pub(crate) type Limits = [usize; 3];

#[cfg(unix)]
unsafe extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT`: every object of the process, in load order.
#[cfg(all(unix, not(target_vendor = "apple")))]
const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();
#[cfg(target_vendor = "apple")]
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;

type SetProtection = unsafe extern "C" fn(*mut PyThreadState, *mut c_void, usize) -> c_int;
type ResetProtection = unsafe extern "C" fn(*mut PyThreadState);

/// How far into the thread state the search for the fields goes.
const SEARCH_BYTES: usize = 4096;

/// Why [`measure`] could not find the limits (then dedicated stacks must not be used).
static PROBLEM: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// Why the limits were not found at import, if they were not.
pub(crate) fn problem() -> Option<&'static str> {
    *PROBLEM.lock().unwrap_or_else(|e| e.into_inner())
}

/// Measure where the limits live and CPython's margins (see the module docs), at import;
/// if they cannot be found, [`measured`] stays false and [`problem`] says why.
///
/// # Safety
/// The GIL is held; `tstate` is the running thread state.
pub(crate) unsafe fn measure(tstate: *mut PyThreadState) {
    // SAFETY: the contract.
    if let Err(why) = unsafe { locate(tstate) } {
        *PROBLEM.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// The measurement itself.
///
/// # Safety
/// As for [`measure`].
unsafe fn locate(tstate: *mut PyThreadState) -> Result<(), &'static str> {
    #[cfg(not(unix))]
    {
        let _ = tstate;
        Err("no dlsym")
    }
    #[cfg(unix)]
    // SAFETY: see the function contract. The thread state is at least SEARCH_BYTES long
    // (a `_PyThreadStateImpl` is larger: it embeds the thread state, the limits and more),
    // and nothing else reads or writes it while we hold the GIL.
    unsafe {
        let set = dlsym(
            RTLD_DEFAULT,
            c"PyUnstable_ThreadState_SetStackProtection".as_ptr(),
        );
        let reset = dlsym(
            RTLD_DEFAULT,
            c"PyUnstable_ThreadState_ResetStackProtection".as_ptr(),
        );
        if set.is_null() || reset.is_null() {
            return Err("this CPython has no PyUnstable_ThreadState_SetStackProtection");
        }
        let set: SetProtection = core::mem::transmute(set);
        let reset: ResetProtection = core::mem::transmute(reset);
        let words = tstate.cast::<usize>();
        let n = SEARCH_BYTES / size_of::<usize>();
        let before: Vec<usize> = (0..n).map(|i| words.add(i).read()).collect();
        // A made-up, page-aligned 1 MiB stack, far from anything real; CPython only does
        // arithmetic with it.
        let base: usize = 0x1234_5000_0000;
        let size: usize = 1 << 20;
        if set(tstate, base as *mut c_void, size) != 0 {
            pyo3_ffi::PyErr_Clear();
            reset(tstate);
            return Err("PyUnstable_ThreadState_SetStackProtection refused a 1 MiB stack");
        }
        let after: Vec<usize> = (0..n).map(|i| words.add(i).read()).collect();
        reset(tstate);
        let restored = (0..n).all(|i| words.add(i).read() == before[i]);
        let changed: Vec<(usize, usize)> = (0..n)
            .filter(|&i| after[i] != before[i])
            .map(|i| (i * size_of::<usize>(), after[i]))
            .collect();
        // Three consecutive words: the top, then two limits just above the base.
        let [(top_off, top), (soft_off, soft), (hard_off, hard)] = changed[..] else {
            return Err("SetStackProtection changed other than three words");
        };
        let ok = restored
            && top == base + size
            && soft > hard
            && hard > base
            && soft < base + size / 2
            && soft_off == top_off + size_of::<usize>()
            && hard_off == soft_off + size_of::<usize>();
        if !ok {
            return Err("the C-stack limits are not where they were expected");
        }
        OFFSETS[0].store(top_off, Ordering::Relaxed);
        OFFSETS[1].store(soft_off, Ordering::Relaxed);
        OFFSETS[2].store(hard_off, Ordering::Relaxed);
        MARGINS[0].store(soft - base, Ordering::Relaxed);
        MARGINS[1].store(hard - base, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether [`measure`] found the fields.
pub(crate) fn measured() -> bool {
    OFFSETS[0].load(Ordering::Relaxed) != 0
}

/// The triple now in `tstate` (zeros if not measured).
///
/// # Safety
/// The GIL is held; `tstate` is a live thread state.
pub(crate) unsafe fn read(tstate: *mut PyThreadState) -> Limits {
    if !measured() {
        return [0; 3];
    }
    // SAFETY: the measured offsets are inside `tstate`'s `_PyThreadStateImpl` (contract).
    core::array::from_fn(|i| unsafe {
        tstate
            .cast::<u8>()
            .add(OFFSETS[i].load(Ordering::Relaxed))
            .cast::<usize>()
            .read()
    })
}

/// Make `tstate`'s limits those of the stack the running greenlet is on: the dedicated
/// stack `[lo, hi)`, or (`None`) the thread's own, whose triple is `thread`. Does nothing
/// if not measured, or if `thread` was never read (all zeros: CPython fills it lazily).
///
/// # Safety
/// The GIL is held; `tstate` is the running thread state.
#[inline]
pub(crate) unsafe fn enter(
    tstate: *mut PyThreadState,
    bounds: Option<(*mut u8, *mut u8)>,
    thread: &Limits,
) {
    if !DEDICATED_IN_USE.load(Ordering::Relaxed) {
        return;
    }
    let limits = match bounds {
        Some((lo, hi)) => [
            hi as usize,
            lo as usize + MARGINS[0].load(Ordering::Relaxed),
            lo as usize + MARGINS[1].load(Ordering::Relaxed),
        ],
        None if thread[0] == 0 => return,
        None => *thread,
    };
    for (i, v) in limits.into_iter().enumerate() {
        // SAFETY: the measured offsets are inside `tstate`'s `_PyThreadStateImpl`.
        unsafe {
            tstate
                .cast::<u8>()
                .add(OFFSETS[i].load(Ordering::Relaxed))
                .cast::<usize>()
                .write(v)
        };
    }
}
