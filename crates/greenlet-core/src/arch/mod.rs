//! The register half of a switch, one file per (architecture, calling convention).
//!
//! # The contract every arch file implements
//!
//! - `pub(crate) unsafe fn switch_stack(ctx: *mut SwitchContext) -> HookWord`: an `#[inline(never)]`,
//!   non-naked wrapper, the only caller of the file's naked routine. It returns the routine's status:
//!   [`STATUS_RESUMED`](crate::switch::STATUS_RESUMED), [`STATUS_STARTED`](crate::switch::STATUS_STARTED)
//!   or [`STATUS_OUT_OF_MEMORY`](crate::switch::STATUS_OUT_OF_MEMORY).
//! - The naked routine (`greenlet_core_switch`):
//!   1. stores every callee-saved register of the ABI, the return address and the floating-point
//!      control state (x86_64: MXCSR and the x87 control word; aarch64: FPCR) below its entry SP,
//!      leaving the SP aligned to `STACK_ALIGNMENT`;
//!   2. calls [`save_hook(ctx, sp)`](crate::switch::save_hook) with that SP, keeping `ctx` in a
//!      callee-saved register;
//!   3. if the returned word is odd, skips to step 6 without touching the SP;
//!   4. otherwise adds the word to the SP (and changes nothing else: the target's frame pointer comes
//!      back with its other registers), which lands on the target's saved SP;
//!   5. calls [`restore_hook(ctx)`](crate::switch::restore_hook), whose frame is below the target's
//!      slice, and takes its return value as the status;
//!   6. reloads the registers and the control state from the SP it is now on, and returns the status.
//! - `STACK_ALIGNMENT`: the SP alignment at the hook calls. `FRAME_SIZE`: bytes stored by step 1,
//!   return address included; a suspended greenlet's `start` points at the lowest of them.
//! - No symbol leaves the object file except under a `greenlet_core_` prefix.
//!
//! Unsupported targets fail to compile here, rather than at run time.

#[cfg(all(target_arch = "x86_64", unix))]
mod x86_64_sysv;
#[cfg(all(target_arch = "x86_64", unix))]
use x86_64_sysv as imp;

#[cfg(all(target_arch = "aarch64", unix))]
mod aarch64_aapcs;
#[cfg(all(target_arch = "aarch64", unix))]
use aarch64_aapcs as imp;

#[cfg(all(target_arch = "x86_64", windows))]
mod x86_64_win64;
#[cfg(all(target_arch = "x86_64", windows))]
use x86_64_win64 as imp;

#[cfg(not(any(
    all(target_arch = "x86_64", unix),
    all(target_arch = "aarch64", unix),
    all(target_arch = "x86_64", windows)
)))]
compile_error!(
    "greenlet-core has no stack switch for this target; supported: x86_64 and aarch64 on unix \
     (Linux, macOS, the BSDs), x86_64 on Windows"
);

#[allow(
    unused_imports,
    reason = "the crate does not use every item of the contract"
)]
pub(crate) use imp::{FRAME_SIZE, STACK_ALIGNMENT, switch_stack};
