//! aarch64, AAPCS64 (Linux, macOS, the BSDs).
//!
//! A WORD OF CAUTION: this file must stay in sync with itself. The stores in the prologue, the loads
//! in the epilogue and [`SwitchFrame`] describe the same 176 bytes; change all three together.
//!
//! # Registers
//!
//! Callee-saved under AAPCS64, so saved here: x19–x28, x29 (the frame pointer), x30 (the link
//! register: the address this routine returns to), sp (implicitly: it becomes the greenlet's `start`),
//! and the low 64 bits of v8–v15 (d8–d15). FPCR (rounding mode, flush-to-zero, default NaN) is
//! treated by AAPCS64 as thread-wide state that code should not change; it is saved per greenlet
//! anyway, so that a greenlet changing its rounding mode keeps it to itself, as on x86_64. FPSR holds
//! only sticky status flags: not saved. x18 is the platform register (reserved on Apple targets): never
//! touched. x0–x17 and the rest of the vector registers are caller-saved.
//!
//! # The frame a suspended greenlet leaves on its stack
//!
//! ```text
//!            higher addresses
//!          | switch_stack's frame          |  (the wrapper below, then the caller of `switch`)
//!          +-------------------------------+ <- SP on entry (16-byte aligned, as always on aarch64)
//!   +168   | padding                       |
//!   +160   | FPCR                          |
//!   +96    | d8 .. d15   (8 bytes each)    |
//!   +80    | x29, x30 (return address)     |
//!   +0     | x19 .. x28  (8 bytes each)    |
//!          +-------------------------------+ <- SP given to save_hook = StackState::start
//!          | save_hook's frame, or, after  |
//!          | the SP moved, restore_hook's  |
//!            lower addresses
//! ```
//!
//! Every greenlet's frame is at the same code position, so no resume address is stored beyond x30:
//! resuming a greenlet means putting the SP on its frame and running the common epilogue.
//!
//! Not handled: BTI-enforced builds would need a `bti c` landing pad at the entry; pointer
//! authentication (`pac-ret`) needs nothing, since frames keep their addresses.

use core::arch::naked_asm;
use core::mem::offset_of;

use crate::switch::{
    HookWord, STATUS_START_FRESH, SwitchContext, fresh_entry, restore_hook, save_hook,
};

/// The bytes [`greenlet_core_switch`] stores, lowest address first.
#[repr(C)]
#[allow(
    dead_code,
    reason = "describes memory written by the assembly; only its layout is used"
)]
struct SwitchFrame {
    x19_x28: [u64; 10],
    x29: u64,
    x30: u64,
    d8_d15: [u64; 8],
    fpcr: u64,
    _pad: u64,
}

/// SP alignment at the hook calls (and everywhere: AAPCS64 requires it whenever sp is used).
pub(crate) const STACK_ALIGNMENT: usize = 16;

/// Bytes stored by the switch routine, return address (x30) included.
pub(crate) const FRAME_SIZE: usize = size_of::<SwitchFrame>();

const _: () = assert!(FRAME_SIZE.is_multiple_of(STACK_ALIGNMENT));
const _: () = assert!(FRAME_SIZE == 176);
const _: () = assert!(offset_of!(SwitchFrame, x29) == 80);
const _: () = assert!(offset_of!(SwitchFrame, d8_d15) == 96);

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
    // SAFETY: the routine follows AAPCS64 for `extern "C" fn(*mut _) -> usize` (it preserves every
    // callee-saved register and FPCR of whoever it returns to), and the hooks' requirements are the
    // caller's contract.
    unsafe { greenlet_core_switch(ctx) }
}

/// The switch routine: `fn(ctx: *mut SwitchContext /* x0 */) -> HookWord /* x0 */`.
///
/// # Safety
///
/// As [`switch_stack`]; call it only from there.
#[unsafe(naked)]
unsafe extern "C" fn greenlet_core_switch(ctx: *mut SwitchContext) -> HookWord {
    naked_asm!(
        // Store the callee-saved registers and FPCR; sp stays 16-byte aligned.
        "sub sp, sp, #{frame}",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "mrs x9, fpcr",
        "str x9, [sp, #{fpcr}]",
        // ctx must survive both hook calls and the SP move: keep it in x19 (callee-saved, and the
        // caller's x19 is already stored above).
        "mov x19, x0",
        // save_hook(ctx /* x0 */, sp /* x1 */): saves the slices in the target's way, records our SP.
        "mov x1, sp",
        "bl {save_hook}",
        // Odd: a status (started, out of memory, or start on a fresh stack: see 3 below).
        "tbnz x0, #0, 3f",
        // Even: the distance to the target's saved SP. Only sp moves: x29, x30 and the rest come back
        // from the target's frame in the epilogue.
        "add sp, sp, x0",
        // restore_hook(ctx /* x0 */) copies the target's slice back above its own frame; returns 0.
        "mov x0, x19",
        "bl {restore_hook}",
        "2:",
        // Reload what the greenlet whose frame this is stored, and return to its x30.
        "ldr x9, [sp, #{fpcr}]",
        "msr fpcr, x9",
        "ldp d14, d15, [sp, #144]",
        "ldp d12, d13, [sp, #128]",
        "ldp d10, d11, [sp, #112]",
        "ldp d8, d9, [sp, #96]",
        "ldp x29, x30, [sp, #80]",
        "ldp x27, x28, [sp, #64]",
        "ldp x25, x26, [sp, #48]",
        "ldp x23, x24, [sp, #32]",
        "ldp x21, x22, [sp, #16]",
        "ldp x19, x20, [sp, #0]",
        "add sp, sp, #{frame}",
        "ret",
        "3:",
        // Started or out of memory: the SP stays here, and the epilogue returns to our own caller,
        // as the same greenlet or as the new one.
        "cmp x0, #{fresh}",
        "b.ne 2b",
        // Start on a fresh stack: this frame stays behind as the starter's suspended frame. The new
        // greenlet's bottom frame has null x29 and x30, which ends every unwinder's walk.
        "ldr x9, [x19, #{fresh_sp}]",
        "mov sp, x9",
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x0, x19",
        "b {fresh_entry}",
        frame = const FRAME_SIZE,
        fpcr = const offset_of!(SwitchFrame, fpcr),
        save_hook = sym save_hook,
        restore_hook = sym restore_hook,
        fresh = const STATUS_START_FRESH,
        fresh_sp = const offset_of!(SwitchContext, fresh_sp),
        fresh_entry = sym fresh_entry,
    )
}
