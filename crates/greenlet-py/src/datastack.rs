//! Root data-stack chunks for new greenlets (CPython 3.11+).
//!
//! Since 3.11 the interpreter keeps frames in per-thread "data stack" chunks. A greenlet
//! starts with no chunk, so its first Python call makes CPython map a fresh 16 KiB chunk
//! (`_PyObject_VirtualAlloc`, an `mmap`) and the end of the greenlet unmaps it: two
//! system calls and a mostly untouched page per greenlet. Instead we give each new
//! greenlet a small root chunk of our own, from a free list. CPython uses it like any root
//! chunk (it never pops a root chunk) and chains its own 16 KiB chunks after it if the
//! greenlet's frames outgrow it.
//!
//! The root chunk's size adapts: a greenlet that outgrew a small root chunk (CPython
//! chained a 16 KiB chunk after it, touching at least one more page for a few frames)
//! makes new greenlets get a large one, `ROOT_CHUNK_MAX`; a long run of greenlets that
//! did not outgrow theirs brings the size back down. So a program whose greenlets park a few dozen frames deep keeps their
//! frames in one right-sized block each.
//!
//! Our chunks are recognisable by their size, which is smaller than any chunk CPython
//! allocates (`DATA_STACK_CHUNK_SIZE`, 16 KiB).

use crate::cpython::pystate::StackChunk;
use crate::util::GilCell;
use core::ptr;
use pyo3_ffi::PyObject;

/// Smallest root chunk, header included: room for a handful of small frames.
const ROOT_CHUNK_MIN: usize = 1024;

/// Largest root chunk: about 30 small frames. Greenlets that go deeper than this get
/// CPython's usual 16 KiB chunks chained after it.
const ROOT_CHUNK_MAX: usize = 4096;

/// Greenlets in a row that fit in a large root chunk before the size goes back down.
const SHRINK_AFTER: u32 = 4096;

/// Bytes of free root chunks kept for reuse (bounded so an idle process gives memory back).
const POOL_BYTES: usize = 1024 * 1024;

struct RootChunks {
    /// The size new root chunks get.
    size: usize,
    /// Greenlets in a row, at this size, that did not outgrow their root chunk.
    fitted: u32,
    /// Free chunks, all of `size` bytes.
    pool: Vec<*mut StackChunk>,
}

static ROOTS: GilCell<RootChunks> = GilCell::new(RootChunks {
    size: ROOT_CHUNK_MIN,
    fitted: 0,
    pool: Vec::new(),
});

/// A root chunk for a new greenlet, as `(chunk, top, limit)`, or `None` if memory is
/// short (CPython then allocates one itself on the first call).
///
/// # Safety
/// The GIL is held.
pub unsafe fn take_root_chunk() -> Option<(*mut StackChunk, *mut *mut PyObject, *mut *mut PyObject)>
{
    // SAFETY: GIL held, so the pool is ours; a fresh allocation is checked for null.
    unsafe {
        let roots = &mut *ROOTS.get();
        let size = roots.size;
        let chunk = match roots.pool.pop() {
            Some(c) => c,
            None => {
                let c: *mut StackChunk = pyo3_ffi::PyMem_RawMalloc(size).cast();
                if c.is_null() {
                    return None;
                }
                c
            }
        };
        (*chunk).previous = ptr::null_mut();
        (*chunk).size = size;
        // CPython writes `top` of a chunk only when it chains a new one after it, so a
        // non-zero `top` on the way back tells that the greenlet outgrew this one.
        (*chunk).top = 0;
        let data: *mut *mut PyObject = chunk.add(1).cast();
        // Like CPython's own root chunks, skip the first slot so that the frame pop logic
        // never frees the root chunk.
        let top = data.add(1);
        let limit = chunk.cast::<u8>().add(size).cast();
        Some((chunk, top, limit))
    }
}

/// Takes back one of our root chunks: adapts the size for new ones, and keeps the chunk
/// for reuse if it has the current size and the pool has room.
///
/// # Safety
/// The GIL is held; `chunk` is one of ours, and nothing refers to it any more.
unsafe fn put_root_chunk(chunk: *mut StackChunk, outgrown: bool) {
    // SAFETY: GIL held, so the pool is ours; `chunk` is ours and unused (contract).
    unsafe {
        let roots = &mut *ROOTS.get();
        let size = (*chunk).size;
        if size == roots.size {
            if outgrown {
                roots.fitted = 0;
                roots.size = ROOT_CHUNK_MAX;
            } else if roots.size > ROOT_CHUNK_MIN {
                roots.fitted += 1;
                if roots.fitted >= SHRINK_AFTER {
                    roots.fitted = 0;
                    roots.size = ROOT_CHUNK_MIN;
                }
            }
            if roots.size != size {
                for old in roots.pool.drain(..) {
                    pyo3_ffi::PyMem_RawFree(old.cast());
                }
            }
        }
        if size == roots.size && (roots.pool.len() + 1) * size <= POOL_BYTES {
            roots.pool.push(chunk);
        } else {
            pyo3_ffi::PyMem_RawFree(chunk.cast());
        }
    }
}

/// Frees a chain of data-stack chunks that will never be used again: CPython's with
/// the object arena allocator (as CPython would), ours back to the pool.
///
/// # Safety
/// The GIL is held and nothing refers to any chunk of the chain any more.
pub unsafe fn free_chain(mut chunk: *mut StackChunk) {
    if chunk.is_null() {
        return;
    }
    // SAFETY: GIL held (function contract). It is the allocator CPython uses for
    // data-stack chunks (`_PyObject_VirtualAlloc` is a thin wrapper over it).
    let alloc = unsafe { arena_allocator() };
    let mut chained = false;
    while !chunk.is_null() {
        // SAFETY: each chunk was allocated either by us (root, smaller than any of
        // CPython's) or by CPython's arena allocator, and the chain is exclusively ours
        // now (function contract).
        unsafe {
            let previous = (*chunk).previous;
            if previous.is_null() && (*chunk).size < STANDARD_CHUNK_SIZE {
                put_root_chunk(chunk, chained || (*chunk).top != 0);
            } else {
                chained = true;
                if let Some(free) = alloc.free {
                    (*chunk).previous = ptr::null_mut();
                    free(alloc.ctx, chunk.cast(), (*chunk).size);
                }
            }
            chunk = previous;
        }
    }
}

// ---------------------------------------------------------------------------------------
// A cache of CPython's own 16 KiB chunks.
//
// A greenlet whose frames outgrow its root chunk makes CPython allocate a standard chunk
// (`_PyObject_VirtualAlloc(DATA_STACK_CHUNK_SIZE)`, an `mmap`), and unmap it as soon as
// the frame at its bottom returns. For greenlets that start, go a few dozen frames deep
// and finish, those two system calls and the page faults on fresh memory are most of the
// cost. CPython takes the memory from its object arena allocator, which is public API
// (`PyObject_SetArenaAllocator`), so we wrap it: blocks of exactly that size are kept on
// a short free list instead of being unmapped; every other request (obmalloc's arenas
// are 256 KiB or 1 MiB) goes straight to the allocator we found.
//
// Correctness does not depend on who allocates what: a block on the free list was handed
// to `free` with size 16 KiB, so it is 16 KiB of memory from the wrapped allocator, which
// is all a caller of `alloc(16 KiB)` may assume. (`mmap` memory is zeroed and a reused
// block is not; neither data-stack chunks nor obmalloc read memory they did not write.)
// The wrapper takes a lock, since the arena allocator is process-wide and interpreters
// with a GIL of their own may call it concurrently; it never allocates.

/// CPython's `DATA_STACK_CHUNK_SIZE` (the same on 3.11-3.15).
const STANDARD_CHUNK_SIZE: usize = 16 * 1024;

/// Blocks kept at most: 1 MiB. Enough for a few threads' worth of churn.
const CACHE_LIMIT: usize = 64;

struct ChunkCache {
    len: usize,
    blocks: [usize; CACHE_LIMIT],
}

static CACHE: std::sync::Mutex<ChunkCache> = std::sync::Mutex::new(ChunkCache {
    len: 0,
    blocks: [0; CACHE_LIMIT],
});

/// The allocator that was installed before ours (written once, at installation, while
/// the GIL of the only interpreter importing us is held; read-only afterwards).
static WRAPPED: std::sync::OnceLock<WrappedAllocator> = std::sync::OnceLock::new();

struct WrappedAllocator(pyo3_ffi::PyObjectArenaAllocator);

// SAFETY: the allocator's context pointer is only passed back to its own functions,
// which CPython may call from any thread.
unsafe impl Send for WrappedAllocator {}
// SAFETY: as above; the struct is never mutated after installation.
unsafe impl Sync for WrappedAllocator {}

fn lock_cache() -> std::sync::MutexGuard<'static, ChunkCache> {
    // The critical sections cannot panic; recover the data from a poisoned lock anyway.
    CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

extern "C" fn cached_alloc(_ctx: *mut core::ffi::c_void, size: usize) -> *mut core::ffi::c_void {
    if size == STANDARD_CHUNK_SIZE {
        let mut cache = lock_cache();
        if cache.len > 0 {
            cache.len -= 1;
            let i = cache.len;
            return ptr::with_exposed_provenance_mut(cache.blocks[i]);
        }
    }
    let w = &WRAPPED.get().expect("installed before use").0;
    match w.alloc {
        Some(alloc) => alloc(w.ctx, size),
        None => ptr::null_mut(),
    }
}

extern "C" fn cached_free(
    _ctx: *mut core::ffi::c_void,
    block: *mut core::ffi::c_void,
    size: usize,
) {
    if size == STANDARD_CHUNK_SIZE && !block.is_null() {
        let mut cache = lock_cache();
        if cache.len < CACHE_LIMIT {
            let i = cache.len;
            cache.blocks[i] = block.expose_provenance();
            cache.len += 1;
            return;
        }
    }
    let w = &WRAPPED.get().expect("installed before use").0;
    if let Some(free) = w.free {
        // `block` came from the wrapped allocator with this size (directly, or through
        // the cache, which only holds blocks freed with this size).
        free(w.ctx, block, size);
    }
}

/// The object arena allocator installed now.
///
/// # Safety
/// The GIL is held.
unsafe fn arena_allocator() -> pyo3_ffi::PyObjectArenaAllocator {
    let mut current = pyo3_ffi::PyObjectArenaAllocator {
        ctx: ptr::null_mut(),
        alloc: None,
        free: None,
    };
    // SAFETY: GIL held (function contract); fills in the struct.
    unsafe { pyo3_ffi::PyObject_GetArenaAllocator(&mut current) };
    current
}

/// The environment variable that keeps [`install_chunk_cache`] from wrapping the object
/// arena allocator: set to anything but empty or `0`, greenlet-rs leaves CPython's
/// allocator alone (see `docs/caveats.md`).
pub const NO_ARENA_HOOK_ENV: &str = "GREENLET_RS_NO_ARENA_HOOK";

/// Whether the environment asks us not to wrap the object arena allocator.
fn arena_hook_disabled() -> bool {
    std::env::var_os(NO_ARENA_HOOK_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Wraps the object arena allocator with the chunk cache (once per process), unless
/// `GREENLET_RS_NO_ARENA_HOOK` is set (read here, at import).
///
/// Without the wrapper nothing else changes: the cache stays empty, CPython's 16 KiB
/// chunks are mapped and unmapped by its own allocator as without greenlet, and
/// [`free_chain`] frees them with whatever allocator is installed, as CPython would.
///
/// # Safety
/// The GIL is held.
pub unsafe fn install_chunk_cache() {
    if WRAPPED.get().is_some() || arena_hook_disabled() {
        return;
    }
    // SAFETY: GIL held (function contract).
    let current = unsafe { arena_allocator() };
    if current.alloc.is_none() || current.free.is_none() {
        return;
    }
    if WRAPPED.set(WrappedAllocator(current)).is_err() {
        return;
    }
    let mut ours = pyo3_ffi::PyObjectArenaAllocator {
        ctx: ptr::null_mut(),
        alloc: Some(cached_alloc),
        free: Some(cached_free),
    };
    // SAFETY: GIL held; our functions forward everything they do not cache to the
    // allocator read above, so blocks allocated before this call are freed correctly.
    unsafe { pyo3_ffi::PyObject_SetArenaAllocator(&mut ours) };
}

/// How many 16 KiB chunks the cache holds now (a test hook).
pub fn cached_chunk_count() -> usize {
    lock_cache().len
}
