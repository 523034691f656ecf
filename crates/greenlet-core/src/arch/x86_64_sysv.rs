//! x86_64, System V ABI (Linux, macOS, the BSDs).
//!
//! A WORD OF CAUTION: this file must stay in sync with itself. The push order in the prologue, the pop
//! order in the epilogue and [`SwitchFrame`] describe the same 64 bytes; change all three together.
//!
//! # Registers
//!
//! Callee-saved under the SysV psABI, so saved here: rbx, rbp, r12–r15, rsp (implicitly: it becomes
//! the greenlet's `start`), and the control bits of MXCSR and the x87 control word, which the psABI
//! also makes callee-saved. Everything else (rax, rcx, rdx, rsi, rdi, r8–r11, every xmm/ymm/zmm, the
//! x87 stack, the status flags) is caller-saved: the compiler already assumes a call clobbers it. DF is
//! clear at every call boundary, so it needs no saving.
//!
//! # The frame a suspended greenlet leaves on its stack
//!
//! ```text
//!            higher addresses
//!          |                               |
//!          | switch_stack's frame          |  (the wrapper below, then the caller of `switch`)
//!          +-------------------------------+
//!   +56    | return address into the wrapper|  pushed by `call`
//!   +48    | rbp                           |
//!   +40    | rbx                           |
//!   +32    | r12                           |
//!   +24    | r13                           |
//!   +16    | r14                           |
//!   +8     | r15                           |
//!   +4     | x87 CW (16 bits) | padding    |
//!   +0     | MXCSR (32 bits)               |
//!          +-------------------------------+ <- SP given to save_hook = StackState::start
//!          | save_hook's frame, or, after  |     (16-byte aligned: the entry SP was 8 mod 16,
//!          | the SP moved, restore_hook's  |      and 6 pushes + 8 bytes make it 0 mod 16)
//!            lower addresses
//! ```
//!
//! Every greenlet's frame is at the same code position, so no resume address is stored beyond the
//! ordinary return address: resuming a greenlet means putting the SP on its frame and running the
//! common epilogue.

use core::arch::naked_asm;
use core::mem::offset_of;

use crate::switch::{
    HookWord, STATUS_START_FRESH, SwitchContext, fresh_entry, restore_hook, save_hook,
};

/// The bytes [`greenlet_core_switch`] stores, lowest address first (the order they are reloaded in).
#[repr(C)]
#[allow(
    dead_code,
    reason = "describes memory written by the assembly; only its layout is used"
)]
struct SwitchFrame {
    mxcsr: u32,
    x87_cw: u16,
    _pad: u16,
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    rbx: u64,
    rbp: u64,
    return_address: u64,
}

/// SP alignment at the hook calls (the psABI's call alignment).
pub(crate) const STACK_ALIGNMENT: usize = 16;

/// Bytes stored by the switch routine, return address included.
pub(crate) const FRAME_SIZE: usize = size_of::<SwitchFrame>();

// The entry SP is 8 mod 16 (after the caller's `call`); the frame minus the return address must bring
// it back to 0 mod 16 for the hook calls.
const _: () = assert!(FRAME_SIZE.is_multiple_of(STACK_ALIGNMENT));
const _: () = assert!(FRAME_SIZE == 64);

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
    // SAFETY: the routine follows the SysV calling convention for `extern "C" fn(*mut _) -> usize`
    // (it preserves every callee-saved register and the FP control state of whoever it returns to),
    // and the hooks' requirements are the caller's contract.
    unsafe { greenlet_core_switch(ctx) }
}

/// The switch routine: `fn(ctx: *mut SwitchContext /* rdi */) -> HookWord /* rax */`.
///
/// # Safety
///
/// As [`switch_stack`]; call it only from there.
#[unsafe(naked)]
unsafe extern "C" fn greenlet_core_switch(ctx: *mut SwitchContext) -> HookWord {
    naked_asm!(
        // Callee-saved GPRs, highest address first (SwitchFrame read backwards).
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        // One slot for the FP control state; it also brings rsp to 16-byte alignment for the calls.
        "sub rsp, 8",
        "stmxcsr dword ptr [rsp + {mxcsr}]",
        "fnstcw word ptr [rsp + {x87_cw}]",
        // ctx must survive both hook calls and the SP move: keep it in rbx (callee-saved, and the
        // caller's rbx is already stored above).
        "mov rbx, rdi",
        // save_hook(ctx /* rdi */, sp /* rsi */): saves the slices in the target's way, records our SP.
        "mov rsi, rsp",
        "call {save_hook}",
        // Odd: a status (started, out of memory, or start on a fresh stack: see 3 below).
        "test al, 1",
        "jnz 3f",
        // Even: the distance to the target's saved SP. Only rsp moves: rbp and the rest come back
        // from the target's frame in the epilogue. From here on the stack above us is the target's,
        // still holding someone else's bytes until restore_hook runs.
        "add rsp, rax",
        // restore_hook(ctx /* rdi */) copies the target's slice back above its own frame; returns 0.
        "mov rdi, rbx",
        "call {restore_hook}",
        "2:",
        // Reload what the greenlet whose frame this is stored, and return into its wrapper.
        "ldmxcsr dword ptr [rsp + {mxcsr}]",
        "fldcw word ptr [rsp + {x87_cw}]",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
        "3:",
        // Started or out of memory: the SP stays here, and the epilogue returns to our own caller,
        // as the same greenlet or as the new one.
        "cmp rax, {fresh}",
        "jne 2b",
        // Start on a fresh stack: this frame stays behind as the starter's suspended frame (its
        // `start` is recorded). The new greenlet's bottom frame has a null return address and frame
        // pointer, which ends every unwinder's walk; `push` leaves the SP 8 mod 16, as a `call` would.
        "mov rsp, qword ptr [rbx + {fresh_sp}]",
        "xor ebp, ebp",
        "push 0",
        "mov rdi, rbx",
        "jmp {fresh_entry}",
        mxcsr = const offset_of!(SwitchFrame, mxcsr),
        x87_cw = const offset_of!(SwitchFrame, x87_cw),
        save_hook = sym save_hook,
        restore_hook = sym restore_hook,
        fresh = const STATUS_START_FRESH,
        fresh_sp = const offset_of!(SwitchContext, fresh_sp),
        fresh_entry = sym fresh_entry,
    )
}
