//! The floating-point control state is per greenlet.

use std::hint::black_box;

use super::runtime::{current, on_thread, spawn};

#[cfg(target_arch = "x86_64")]
mod fp {
    use std::arch::asm;

    const RC_MASK: u32 = 0x6000;
    pub(super) const UP: u32 = 0x4000;
    pub(super) const TOWARD_ZERO: u32 = 0x6000;

    /// The control bits of MXCSR (6–15) and the x87 control word; MXCSR bits 0–5 are sticky
    /// exception flags, not state to preserve.
    pub(super) fn control() -> (u32, u16) {
        let mut csr = 0u32;
        let mut cw = 0u16;
        // SAFETY: stmxcsr only writes the 4 bytes of `csr`.
        unsafe { asm!("stmxcsr dword ptr [{}]", in(reg) &raw mut csr, options(nostack)) };
        // SAFETY: fnstcw only writes the 2 bytes of `cw`.
        unsafe { asm!("fnstcw word ptr [{}]", in(reg) &raw mut cw, options(nostack)) };
        (csr & 0xFFC0, cw)
    }

    pub(super) fn rounding() -> u32 {
        control().0 & RC_MASK
    }

    /// Set the SSE rounding mode, and change the x87 precision control (bits 8–9) too, so that
    /// both halves of the saved state differ between greenlets.
    pub(super) fn set_rounding(mode: u32) {
        let csr = (control().0 & !RC_MASK) | mode;
        let cw = control().1 ^ 0x0300;
        // SAFETY: loads the MXCSR read back just above with only the rounding field changed, to
        // a valid encoding.
        unsafe { asm!("ldmxcsr dword ptr [{}]", in(reg) &raw const csr, options(nostack)) };
        // SAFETY: loads the x87 control word read back just above with only the precision field
        // changed, to a valid encoding.
        unsafe { asm!("fldcw word ptr [{}]", in(reg) &raw const cw, options(nostack)) };
    }
}

#[cfg(target_arch = "aarch64")]
mod fp {
    use std::arch::asm;

    const RMODE_MASK: u64 = 0b11 << 22;
    pub(super) const UP: u64 = 0b01 << 22;
    pub(super) const TOWARD_ZERO: u64 = 0b11 << 22;

    pub(super) fn control() -> u64 {
        let v: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub(super) fn rounding() -> u64 {
        control() & RMODE_MASK
    }

    pub(super) fn set_rounding(mode: u64) {
        let v = (control() & !RMODE_MASK) | mode;
        // SAFETY: writes back FPCR with only the rounding field changed, to a valid encoding.
        unsafe { asm!("msr fpcr, {}", in(reg) v, options(nomem, nostack)) };
    }
}

fn third_bits() -> u64 {
    (black_box(1.0f64) / black_box(3.0f64)).to_bits()
}

fn tenth_bits() -> u64 {
    (black_box(1.0f64) / black_box(10.0f64)).to_bits()
}

/// 1/3 rounds down to nearest and toward zero, up when rounding up; 1/10 rounds up to nearest.
const THIRD_NEAREST: u64 = 0x3FD5_5555_5555_5555;
const THIRD_UP: u64 = 0x3FD5_5555_5555_5556;
const TENTH_NEAREST: u64 = 0x3FB9_9999_9999_999A;
const TENTH_TOWARD_ZERO: u64 = 0x3FB9_9999_9999_9999;

#[test]
fn rounding_mode_is_per_greenlet() {
    on_thread(|| {
        let main = current();
        let default = fp::control();
        assert_eq!(fp::rounding(), 0);
        assert_eq!(third_bits(), THIRD_NEAREST);

        let up = spawn(move |_| {
            fp::set_rounding(fp::UP);
            let mine = fp::control();
            assert_ne!(mine, default);
            for _ in 0..100 {
                main.switch(0);
                assert_eq!(fp::control(), mine);
                assert_eq!(third_bits(), THIRD_UP);
            }
            1
        });
        let zero = spawn(move |_| {
            // Started from main, so it starts with main's state, not `up`'s.
            assert_eq!(fp::control(), default);
            fp::set_rounding(fp::TOWARD_ZERO);
            let mine = fp::control();
            for _ in 0..100 {
                main.switch(0);
                assert_eq!(fp::control(), mine);
                assert_eq!(tenth_bits(), TENTH_TOWARD_ZERO);
            }
            2
        });
        up.switch(0);
        assert_eq!(fp::control(), default);
        zero.switch(0);
        for _ in 0..99 {
            assert_eq!(fp::control(), default);
            assert_eq!(tenth_bits(), TENTH_NEAREST);
            up.switch(0);
            assert_eq!(fp::control(), default);
            zero.switch(0);
        }
        // Both finish into main, whose own state comes back with it.
        assert_eq!(up.switch(0), 1);
        assert_eq!(fp::control(), default);
        assert_eq!(zero.switch(0), 2);
        assert_eq!(fp::control(), default);
        assert_eq!(third_bits(), THIRD_NEAREST);
    });
}
