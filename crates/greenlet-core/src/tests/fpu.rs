//! The floating-point control state is per greenlet.

#![cfg(target_arch = "x86_64")]

use std::arch::asm;
use std::hint::black_box;

use super::runtime::{current, on_thread, spawn};

const RC_MASK: u32 = 0x6000;
const RC_UP: u32 = 0x4000;
const RC_TOWARD_ZERO: u32 = 0x6000;
/// x87 precision control (bits 8–9); 00 = 24-bit.
const PC_MASK: u16 = 0x0300;

/// The control bits of MXCSR (6–15); bits 0–5 are sticky exception flags, not state to preserve.
fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stmxcsr only writes the 4 bytes at the given address.
    unsafe { asm!("stmxcsr dword ptr [{}]", in(reg) &raw mut v, options(nostack)) };
    v & 0xFFC0
}

fn set_mxcsr(v: u32) {
    // SAFETY: loads valid control bits (only the rounding field differs from a value read back).
    unsafe { asm!("ldmxcsr dword ptr [{}]", in(reg) &raw const v, options(nostack)) };
}

fn x87_cw() -> u16 {
    let mut v = 0u16;
    // SAFETY: fnstcw only writes the 2 bytes at the given address.
    unsafe { asm!("fnstcw word ptr [{}]", in(reg) &raw mut v, options(nostack)) };
    v
}

fn set_x87_cw(v: u16) {
    // SAFETY: loads a control word differing from a value read back only in precision control.
    unsafe { asm!("fldcw word ptr [{}]", in(reg) &raw const v, options(nostack)) };
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
fn rounding_mode_and_x87_control_word_are_per_greenlet() {
    on_thread(|| {
        let main = current();
        let default_csr = mxcsr();
        let default_cw = x87_cw();
        assert_eq!(default_csr & RC_MASK, 0);
        assert_eq!(third_bits(), THIRD_NEAREST);

        let up = spawn(move |_| {
            set_mxcsr((default_csr & !RC_MASK) | RC_UP);
            set_x87_cw(default_cw & !PC_MASK);
            for _ in 0..100 {
                main.switch(0);
                assert_eq!(mxcsr() & RC_MASK, RC_UP);
                assert_eq!(third_bits(), THIRD_UP);
                assert_eq!(x87_cw(), default_cw & !PC_MASK);
            }
            1
        });
        let zero = spawn(move |_| {
            // Started from main, so it starts with main's state, not `up`'s.
            assert_eq!(mxcsr(), default_csr);
            assert_eq!(x87_cw(), default_cw);
            set_mxcsr((default_csr & !RC_MASK) | RC_TOWARD_ZERO);
            for _ in 0..100 {
                main.switch(0);
                assert_eq!(mxcsr() & RC_MASK, RC_TOWARD_ZERO);
                assert_eq!(tenth_bits(), TENTH_TOWARD_ZERO);
                assert_eq!(x87_cw(), default_cw);
            }
            2
        });
        up.switch(0);
        assert_eq!(mxcsr(), default_csr);
        zero.switch(0);
        for _ in 0..99 {
            assert_eq!(mxcsr(), default_csr);
            assert_eq!(x87_cw(), default_cw);
            assert_eq!(tenth_bits(), TENTH_NEAREST);
            up.switch(0);
            assert_eq!(mxcsr(), default_csr);
            zero.switch(0);
        }
        // Both finish into main, whose own state comes back with it.
        assert_eq!(up.switch(0), 1);
        assert_eq!(mxcsr(), default_csr);
        assert_eq!(zero.switch(0), 2);
        assert_eq!(mxcsr(), default_csr);
        assert_eq!(x87_cw(), default_cw);
        assert_eq!(third_bits(), THIRD_NEAREST);
    });
}
