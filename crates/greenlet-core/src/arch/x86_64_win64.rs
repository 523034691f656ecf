//! x86_64, Microsoft x64 ABI (Windows: the `-msvc`, `-gnu` and `-gnullvm` targets).
//!
//! A WORD OF CAUTION: this file must stay in sync with itself. The pushes and stores in the prologue,
//! the unwind directives (`.seh_*`) that describe them, the loads and pops in the epilogue, and
//! [`SwitchFrame`] describe the same 240 bytes; change all four together.
//!
//! # Registers
//!
//! Callee-saved (nonvolatile) under the Microsoft x64 ABI, so saved here: rbx, rbp, rdi, rsi,
//! r12–r15, all 128 bits of xmm6–xmm15, rsp (implicitly: it becomes the greenlet's `start`), the
//! control bits (6–15) of MXCSR and the x87 control word. Everything else (rax, rcx, rdx, r8–r11,
//! xmm0–xmm5, the upper halves of ymm/zmm, xmm16 and up, the x87 stack, the status flags, MXCSR's
//! sticky flags 0–5) is volatile: the compiler already assumes a call clobbers it. DF is clear at
//! every call boundary.
//!
//! # The frame a suspended greenlet leaves on its stack
//!
//! ```text
//!            higher addresses
//!          | switch_stack's frame          |  (the wrapper below, then the caller of `switch`)
//!          +-------------------------------+
//!   +232   | return address into the wrapper|  pushed by `call`
//!   +224   | rbp                           |
//!   +216   | rbx                           |
//!   +208   | rdi                           |
//!   +200   | rsi                           |
//!   +192   | r12                           |
//!   +184   | r13                           |
//!   +176   | r14                           |
//!   +168   | r15                           |
//!   +164   | x87 CW (16 bits) | padding    |
//!   +160   | MXCSR (32 bits)               |
//!   +0     | xmm6 .. xmm15 (16 bytes each) |
//!          +-------------------------------+ <- SP given to save_hook = StackState::start
//!   -32    | home area of the hook calls   |     (16-byte aligned: the entry SP was 8 mod 16, and
//!          +-------------------------------+      232 bytes + 32 make it 0 mod 16) <- rsp at the calls
//!          | save_hook's frame, or, after  |
//!          | the SP moved, restore_hook's  |
//!            lower addresses
//! ```
//!
//! Every greenlet's frame is at the same code position, so no resume address is stored beyond the
//! ordinary return address: resuming a greenlet means putting the SP on its frame and running the
//! common epilogue.
//!
//! # The home area lies below `start`, not in the frame
//!
//! The ABI gives every callee the 32 bytes just above its return address (the *home* or shadow
//! space) to spill its register arguments into. Here it is reserved *below* the stored registers and
//! the hooks get `rsp + 32` as the greenlet's SP: so the home area of `restore_hook` is below the
//! target's slice, like the rest of its frame, and the copy of that slice which `restore_hook` writes
//! back can never land on the hook's own spilled arguments. (Were the home area part of the slice, a
//! hook that spills `ctx` there, as MSVC debug builds do, would read back the target's bytes.) The
//! displacement `save_hook` returns is the same between the two `rsp`s as between the two `start`s.
//!
//! # The thread information block
//!
//! Windows keeps per-thread stack bounds in the TIB (`gs:[0x08]` StackBase, `gs:[0x10]` StackLimit,
//! `gs:[0x1478]` DeallocationStack, `gs:[0x1748]` GuaranteedStackBytes). Switchers that give each
//! coroutine its own stack (Windows fibers, corosensei) must swap them. This switch touches none of
//! them, because in the copying model every greenlet of a thread runs on the thread's own stack:
//!
//! - StackBase and DeallocationStack are the two ends of the thread's reservation, and the SP never
//!   leaves it, so they stay right for every greenlet. GuaranteedStackBytes is a per-thread setting.
//! - StackLimit is the lowest committed address. The stack below it is committed one page at a time,
//!   by touching the guard page just below it (frames larger than a page probe theirs in order:
//!   `__chkstk`, `___chkstk_ms` on mingw); pages are never decommitted, so it only goes down. Every
//!   address the switch moves the SP to is a target's `start`, where that greenlet ran before, so it
//!   is committed and at or above StackLimit; `restore_hook`'s frame below it grows the stack like
//!   any call (its first touch of uncommitted memory is the guard page). The SP thus never goes below
//!   StackLimit without the kernel (or wine) moving StackLimit the usual way.
//! - ExceptionList (`gs:[0x00]`) is the 32-bit SEH chain; x64 code does not use it (wine's own
//!   `__TRY` blocks do, inside its DLLs, where no greenlet switches).
//!
//! # Unwinding
//!
//! Exceptions and Rust panics on x64 Windows (the `-gnu` targets too: libgcc's unwinder there sits on
//! `RtlUnwindEx`) are unwound from the `.pdata`/`.xdata` tables. Nothing may unwind *through* a
//! switch, and nothing does: both hooks are `extern "C"`, so a panic in them aborts, and a greenlet's
//! start stub catches every panic of the greenlet before it could reach frames above the mark
//! (the crate contract). The routine still describes its prologue with `.seh_*` directives, so that
//! stack walks taken inside the hooks (debuggers, crash dumps, `std::backtrace`) step over it
//! correctly: the unwinder otherwise takes a function without a table entry for a leaf, and reads the
//! return address from the wrong slot. The epilogue has the canonical shape (`add rsp`, pops, `ret`)
//! that the unwinder recognises.

use core::arch::naked_asm;
use core::mem::offset_of;

use crate::switch::{HookWord, SwitchContext, restore_hook, save_hook};

/// The bytes [`greenlet_core_switch`] stores, lowest address first (the order they are reloaded in).
#[repr(C, align(16))]
#[allow(
    dead_code,
    reason = "describes memory written by the assembly; only its layout is used"
)]
struct SwitchFrame {
    xmm6_xmm15: [u128; 10],
    mxcsr: u32,
    x87_cw: u16,
    _pad: u16,
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    rsi: u64,
    rdi: u64,
    rbx: u64,
    rbp: u64,
    return_address: u64,
}

/// The home area the caller reserves for each call, below the frame (see the module docs).
const HOME: usize = 32;

/// SP alignment at the hook calls (the ABI's call alignment).
pub(crate) const STACK_ALIGNMENT: usize = 16;

/// Bytes stored by the switch routine, return address included (the home area is not stored).
pub(crate) const FRAME_SIZE: usize = size_of::<SwitchFrame>();

/// What `sub rsp` allocates after the eight pushes: the frame below them, and the home area.
const ALLOC: usize = offset_of!(SwitchFrame, r15) + HOME;

// The entry SP is 8 mod 16 (after the caller's `call`); the frame minus the return address, plus the
// home area, must bring it back to 0 mod 16 for the hook calls.
const _: () = assert!(FRAME_SIZE.is_multiple_of(STACK_ALIGNMENT));
const _: () = assert!(HOME.is_multiple_of(STACK_ALIGNMENT));
const _: () = assert!(FRAME_SIZE == 240);
const _: () = assert!(offset_of!(SwitchFrame, r15) == 168);
const _: () = assert!(ALLOC == 200);
// `movaps` needs 16-byte aligned slots; `rsp + HOME` is aligned, so the offsets must be too.
const _: () = assert!(offset_of!(SwitchFrame, xmm6_xmm15) == 0);

/// Switch stacks through [`greenlet_core_switch`]; see the contract in `arch/mod.rs`.
///
/// A plain function around the naked one, as wasmtime does: calls straight into naked functions have
/// been miscompiled (inlined away from their symbol) in optimised builds on some targets.
///
/// # Safety
///
/// `ctx` is filled in by [`switch`](crate::switch()), whose caller upholds the crate contract.
#[inline(never)]
pub(crate) unsafe fn switch_stack(ctx: *mut SwitchContext) -> HookWord {
    // SAFETY: the routine follows the Microsoft x64 convention for `extern "C" fn(*mut _) -> usize`
    // (it preserves every nonvolatile register and the FP control state of whoever it returns to),
    // and the hooks' requirements are the caller's contract.
    unsafe { greenlet_core_switch(ctx) }
}

/// The switch routine: `fn(ctx: *mut SwitchContext /* rcx */) -> HookWord /* rax */`.
///
/// # Safety
///
/// As [`switch_stack`]; call it only from there.
#[unsafe(naked)]
unsafe extern "C" fn greenlet_core_switch(ctx: *mut SwitchContext) -> HookWord {
    naked_asm!(
        // The unwind table entry for this routine: each prologue instruction is followed by the
        // directive that describes it to the unwinder.
        ".seh_proc {this}",
        // Nonvolatile GPRs, highest address first (SwitchFrame read backwards).
        "push rbp",
        ".seh_pushreg rbp",
        "push rbx",
        ".seh_pushreg rbx",
        "push rdi",
        ".seh_pushreg rdi",
        "push rsi",
        ".seh_pushreg rsi",
        "push r12",
        ".seh_pushreg r12",
        "push r13",
        ".seh_pushreg r13",
        "push r14",
        ".seh_pushreg r14",
        "push r15",
        ".seh_pushreg r15",
        // The rest of the frame and the hooks' home area below it; rsp is now 16-byte aligned.
        "sub rsp, {alloc}",
        ".seh_stackalloc {alloc}",
        // xmm6–xmm15 in full (offsets from the rsp after the allocation, as the directives want).
        "movaps xmmword ptr [rsp + {home} + 0x00], xmm6",
        ".seh_savexmm xmm6, {home} + 0x00",
        "movaps xmmword ptr [rsp + {home} + 0x10], xmm7",
        ".seh_savexmm xmm7, {home} + 0x10",
        "movaps xmmword ptr [rsp + {home} + 0x20], xmm8",
        ".seh_savexmm xmm8, {home} + 0x20",
        "movaps xmmword ptr [rsp + {home} + 0x30], xmm9",
        ".seh_savexmm xmm9, {home} + 0x30",
        "movaps xmmword ptr [rsp + {home} + 0x40], xmm10",
        ".seh_savexmm xmm10, {home} + 0x40",
        "movaps xmmword ptr [rsp + {home} + 0x50], xmm11",
        ".seh_savexmm xmm11, {home} + 0x50",
        "movaps xmmword ptr [rsp + {home} + 0x60], xmm12",
        ".seh_savexmm xmm12, {home} + 0x60",
        "movaps xmmword ptr [rsp + {home} + 0x70], xmm13",
        ".seh_savexmm xmm13, {home} + 0x70",
        "movaps xmmword ptr [rsp + {home} + 0x80], xmm14",
        ".seh_savexmm xmm14, {home} + 0x80",
        "movaps xmmword ptr [rsp + {home} + 0x90], xmm15",
        ".seh_savexmm xmm15, {home} + 0x90",
        ".seh_endprologue",
        // The FP control state: not something unwind codes can describe, nor need to.
        "stmxcsr dword ptr [rsp + {home} + {mxcsr}]",
        "fnstcw word ptr [rsp + {home} + {x87_cw}]",
        // ctx must survive both hook calls and the SP move: keep it in rbx (nonvolatile, and the
        // caller's rbx is already stored above).
        "mov rbx, rcx",
        // save_hook(ctx /* rcx */, sp /* rdx */): saves the slices in the target's way, records our
        // SP, which is the frame's, above the home area.
        "lea rdx, [rsp + {home}]",
        "call {save_hook}",
        // Odd: a status (started, out of memory, or any other the hook may add). The SP stays here,
        // and the epilogue below returns to our own caller, as the same greenlet or as the new one.
        "test al, 1",
        "jnz 2f",
        // Even: the distance to the target's saved SP, and so from our rsp to the target's rsp at the
        // same point. Only rsp moves: rbp and the rest come back from the target's frame in the
        // epilogue. From here on the stack above us is the target's, still holding someone else's
        // bytes until restore_hook runs; restore_hook's home area is below the target's slice.
        "add rsp, rax",
        // restore_hook(ctx /* rcx */) copies the target's slice back above its own frame; returns 0.
        "mov rcx, rbx",
        "call {restore_hook}",
        "2:",
        // Reload what the greenlet whose frame this is stored, and return into its wrapper.
        "ldmxcsr dword ptr [rsp + {home} + {mxcsr}]",
        "fldcw word ptr [rsp + {home} + {x87_cw}]",
        "movaps xmm6, xmmword ptr [rsp + {home} + 0x00]",
        "movaps xmm7, xmmword ptr [rsp + {home} + 0x10]",
        "movaps xmm8, xmmword ptr [rsp + {home} + 0x20]",
        "movaps xmm9, xmmword ptr [rsp + {home} + 0x30]",
        "movaps xmm10, xmmword ptr [rsp + {home} + 0x40]",
        "movaps xmm11, xmmword ptr [rsp + {home} + 0x50]",
        "movaps xmm12, xmmword ptr [rsp + {home} + 0x60]",
        "movaps xmm13, xmmword ptr [rsp + {home} + 0x70]",
        "movaps xmm14, xmmword ptr [rsp + {home} + 0x80]",
        "movaps xmm15, xmmword ptr [rsp + {home} + 0x90]",
        // The epilogue proper, in the only shape the unwinder recognises: add rsp, pops, ret.
        "add rsp, {alloc}",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rsi",
        "pop rdi",
        "pop rbx",
        "pop rbp",
        "ret",
        ".seh_endproc",
        this = sym greenlet_core_switch,
        alloc = const ALLOC,
        home = const HOME,
        mxcsr = const offset_of!(SwitchFrame, mxcsr),
        x87_cw = const offset_of!(SwitchFrame, x87_cw),
        save_hook = sym save_hook,
        restore_hook = sym restore_hook,
    )
}
