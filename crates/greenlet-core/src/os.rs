//! The system calls behind dedicated stacks (unix): mapping with a guard, decommitting, unmapping,
//! and the process-wide counters.
//!
//! The guard below each stack is a lightweight guard marker (`MADV_GUARD_INSTALL`, Linux 6.13+),
//! which does not split the mapping into a second VMA, where the kernel has it; otherwise a
//! `PROT_NONE` page, which does. VMAs are a process-wide budget (`vm.max_map_count`, 65,530 by
//! default, shared with malloc, thread stacks and every library), so with `PROT_NONE` guards the
//! number of stacks is capped at a share of it; past the cap, and whenever `mmap` fails, there is no
//! stack and the caller runs its greenlet sliced instead.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::domain::{Domain, MIN_STACK_SIZE};

/// `MADV_GUARD_INSTALL` (Linux 6.13, `include/uapi/asm-generic/mman-common.h`); not in every libc
/// crate release yet.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

const GUARD_UNKNOWN: u8 = 0;
const GUARD_LIGHT: u8 = 1;
const GUARD_PAGE: u8 = 2;

/// Which guard the kernel gives us; probed on the first stack.
static GUARD: AtomicU8 = AtomicU8::new(GUARD_UNKNOWN);
/// Stacks mapped now, and their bytes (virtual), by every thread.
static MAPPED: AtomicUsize = AtomicUsize::new(0);
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Stacks that could not be had (mmap failed, or the VMA budget was reached).
static FAILED: AtomicUsize = AtomicUsize::new(0);
/// With `PROT_NONE` guards: how many stacks may exist at once (0: not computed yet).
static PAGE_GUARD_BUDGET: AtomicUsize = AtomicUsize::new(0);

/// Process-wide dedicated-stack counters (see [`stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackStats {
    /// Stacks mapped now, in use or pooled, by every thread.
    pub mapped: usize,
    /// Their virtual size in bytes, guards and headers included.
    pub mapped_bytes: usize,
    /// Requests for a stack that got none (the caller ran that greenlet sliced).
    pub failed: usize,
    /// Whether guards are lightweight markers (`MADV_GUARD_INSTALL`) rather than `PROT_NONE` pages;
    /// `None` until the first stack was mapped.
    pub lightweight_guards: Option<bool>,
}

/// The process-wide counters.
pub fn stats() -> StackStats {
    StackStats {
        mapped: MAPPED.load(Ordering::Relaxed),
        mapped_bytes: MAPPED_BYTES.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
        lightweight_guards: match GUARD.load(Ordering::Relaxed) {
            GUARD_LIGHT => Some(true),
            GUARD_PAGE => Some(false),
            _ => None,
        },
    }
}

pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// The usable size [`map_stack`] gives for a request of `size` bytes.
pub(crate) fn usable_size(size: usize) -> usize {
    let page = page_size();
    size.max(MIN_STACK_SIZE).next_multiple_of(page)
}

/// The header's size, rounded to keep `hi` 16-aligned (it is: the header is `align(16)`).
const HEADER: usize = size_of::<Domain>();

/// Map a stack of `usable_size(size)` bytes plus a guard page below and a page above for the header.
pub(crate) fn map_stack(size: usize) -> Option<NonNull<Domain>> {
    let page = page_size();
    let usable = usable_size(size);
    let len = usable.checked_add(2 * page)?;
    let mut budgeted = false;
    if GUARD.load(Ordering::Relaxed) == GUARD_PAGE {
        if !take_page_guard_budget() {
            FAILED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        budgeted = true;
    }
    let base = map_anonymous(len);
    let guarded = !base.is_null()
        && install_guard(base, page)
        && (budgeted || GUARD.load(Ordering::Relaxed) != GUARD_PAGE || {
            // The kernel turned out to need PROT_NONE guards on this very stack.
            budgeted = take_page_guard_budget();
            budgeted
        });
    if !guarded {
        if !base.is_null() {
            // SAFETY: `base` is the mapping just made, of `len` bytes, unused.
            unsafe { libc::munmap(base.cast(), len) };
        }
        if budgeted {
            PAGE_GUARD_BUDGET.fetch_add(1, Ordering::Relaxed);
        }
        FAILED.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    // The header sits at the bottom of the top page; the stack grows down from it.
    let top = base as usize + len;
    let hi = top - page;
    debug_assert!(HEADER <= page && hi.is_multiple_of(16));
    let d = hi as *mut Domain;
    // SAFETY: [hi, hi + HEADER) is inside the mapping just made (the top page), readable and
    // writable, aligned (page-aligned), and nothing else refers to it.
    unsafe {
        d.write(Domain {
            last: ptr::null_mut(),
            members: 0,
            low: hi as *mut u8,
            lo: (base as usize + page) as *mut u8,
            map_base: base,
            map_len: len,
            entry: None,
            entry_arg: ptr::null_mut(),
            next_free: ptr::null_mut(),
        })
    };
    MAPPED.fetch_add(1, Ordering::Relaxed);
    MAPPED_BYTES.fetch_add(len, Ordering::Relaxed);
    NonNull::new(d)
}

fn map_anonymous(len: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANON;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing touches nothing
    // that exists.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Make `[base, base + page)` fault on access, with a lightweight guard marker if the kernel has
/// them (probed once), else with `PROT_NONE`.
fn install_guard(base: *mut u8, page: usize) -> bool {
    #[cfg(target_os = "linux")]
    if GUARD.load(Ordering::Relaxed) != GUARD_PAGE {
        // SAFETY: the first page of a mapping we own and nobody uses yet.
        let r = unsafe { libc::madvise(base.cast(), page, MADV_GUARD_INSTALL) };
        if r == 0 {
            GUARD.store(GUARD_LIGHT, Ordering::Relaxed);
            return true;
        }
        if GUARD.load(Ordering::Relaxed) == GUARD_LIGHT {
            // It worked before: this failure is real (out of memory for page tables).
            return false;
        }
    }
    GUARD.store(GUARD_PAGE, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { libc::mprotect(base.cast(), page, libc::PROT_NONE) == 0 }
}

/// Test hook: behave as on a kernel without lightweight guards, with room for `stacks` more
/// guarded stacks. Process-wide: only for a test that runs alone in its own process.
#[cfg(test)]
pub(crate) fn force_page_guards(stacks: usize) {
    GUARD.store(GUARD_PAGE, Ordering::Relaxed);
    PAGE_GUARD_BUDGET.store(stacks + 1, Ordering::Relaxed);
}

/// With `PROT_NONE` guards each stack costs two VMAs: allow stacks up to a quarter of
/// `vm.max_map_count` (leaving the rest to everything else the process maps).
fn take_page_guard_budget() -> bool {
    if PAGE_GUARD_BUDGET.load(Ordering::Relaxed) == 0 {
        let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65_530);
        // Stored plus one, so that 0 keeps meaning "not computed".
        let _ = PAGE_GUARD_BUDGET.compare_exchange(
            0,
            limit / 4 + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    PAGE_GUARD_BUDGET
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n > 1).then(|| n - 1)
        })
        .is_ok()
}

/// Give back the pages of `[from, to)` (rounded inwards to pages); they read as zeros afterwards.
///
/// # Safety
///
/// The range lies in a stack mapping that nothing uses.
pub(crate) unsafe fn decommit(from: *mut u8, to: *mut u8) {
    let page = page_size();
    let lo = (from as usize).next_multiple_of(page);
    let hi = (to as usize) / page * page;
    if hi > lo {
        // SAFETY: whole pages inside an unused mapping we own (contract).
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    }
}

/// Unmap a whole stack mapping.
///
/// # Safety
///
/// `[base, base + len)` is one stack mapping made by [`map_stack`], which nothing uses any more.
pub(crate) unsafe fn unmap_stack(base: *mut u8, len: usize) {
    // SAFETY: the contract.
    unsafe { libc::munmap(base.cast(), len) };
    MAPPED.fetch_sub(1, Ordering::Relaxed);
    MAPPED_BYTES.fetch_sub(len, Ordering::Relaxed);
    if GUARD.load(Ordering::Relaxed) == GUARD_PAGE {
        PAGE_GUARD_BUDGET.fetch_add(1, Ordering::Relaxed);
    }
}

/// The top (highest address, exclusive) of the calling thread's stack, as the C library
/// knows it; `None` where it cannot tell. For the main thread glibc reads `/proc/self/maps`,
/// so call this once per thread, not on a hot path.
pub(crate) fn thread_stack_top() -> Option<*mut u8> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut attr = core::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        // SAFETY: no preconditions.
        let me = unsafe { libc::pthread_self() };
        // SAFETY: `attr` is written by the call before anything reads it (checked by the
        // return value); `me` is the calling thread.
        if unsafe { libc::pthread_getattr_np(me, attr.as_mut_ptr()) } != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: `attr` was initialised by `pthread_getattr_np`.
        let r = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) };
        // SAFETY: initialised above, destroyed once.
        unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
        (r == 0 && !addr.is_null()).then(|| (addr as usize + size) as *mut u8)
    }
    #[cfg(target_os = "macos")]
    {
        // SAFETY: no preconditions; the calling thread.
        let top = unsafe { libc::pthread_get_stackaddr_np(libc::pthread_self()) };
        (!top.is_null()).then_some(top.cast())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    None
}
