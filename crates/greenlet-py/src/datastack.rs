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
//! Our chunks are recognisable by their size, which is smaller than any chunk CPython
//! allocates (`DATA_STACK_CHUNK_SIZE`, 16 KiB).

use crate::cpython::pystate::StackChunk;
use crate::util::GilCell;
use core::ptr;
use pyo3_ffi::PyObject;

/// Size of our root chunks, header included: room for a handful of small frames. Bigger
/// costs memory for every suspended greenlet; a greenlet that outgrows it gets CPython's
/// usual 16 KiB chunk chained after it, as it would without us.
const ROOT_CHUNK_SIZE: usize = 1024;

/// Free chunks kept for reuse (bounded so an idle process gives memory back).
const POOL_LIMIT: usize = 1024;

static POOL: GilCell<Vec<*mut StackChunk>> = GilCell::new(Vec::new());

/// A root chunk for a new greenlet, as `(chunk, top, limit)`, or `None` if memory is
/// short (CPython then allocates one itself on the first call).
///
/// # Safety
/// The GIL is held.
pub unsafe fn take_root_chunk() -> Option<(*mut StackChunk, *mut *mut PyObject, *mut *mut PyObject)>
{
    // SAFETY: GIL held, so the pool is ours; a fresh allocation is checked for null.
    unsafe {
        let pool = &mut *POOL.get();
        let chunk = match pool.pop() {
            Some(c) => c,
            None => {
                let c: *mut StackChunk = pyo3_ffi::PyMem_RawMalloc(ROOT_CHUNK_SIZE).cast();
                if c.is_null() {
                    return None;
                }
                c
            }
        };
        (*chunk).previous = ptr::null_mut();
        (*chunk).size = ROOT_CHUNK_SIZE;
        (*chunk).top = 0;
        let data: *mut *mut PyObject = chunk.add(1).cast();
        // Like CPython's own root chunks, skip the first slot so that the frame pop logic
        // never frees the root chunk.
        let top = data.add(1);
        let limit = chunk.cast::<u8>().add(ROOT_CHUNK_SIZE).cast();
        Some((chunk, top, limit))
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
    let mut alloc = pyo3_ffi::PyObjectArenaAllocator {
        ctx: ptr::null_mut(),
        alloc: None,
        free: None,
    };
    // SAFETY: fills in the allocator CPython uses for data-stack chunks
    // (`_PyObject_VirtualAlloc` is a thin wrapper over it).
    unsafe { pyo3_ffi::PyObject_GetArenaAllocator(&mut alloc) };
    while !chunk.is_null() {
        // SAFETY: each chunk was allocated either by us (root size) or by CPython's arena
        // allocator, and the chain is exclusively ours now (function contract).
        unsafe {
            let previous = (*chunk).previous;
            if previous.is_null() && (*chunk).size == ROOT_CHUNK_SIZE {
                let pool = &mut *POOL.get();
                if pool.len() < POOL_LIMIT {
                    pool.push(chunk);
                } else {
                    pyo3_ffi::PyMem_RawFree(chunk.cast());
                }
            } else if let Some(free) = alloc.free {
                (*chunk).previous = ptr::null_mut();
                free(alloc.ctx, chunk.cast(), (*chunk).size);
            }
            chunk = previous;
        }
    }
}
