//! Every nonvolatile register of the Microsoft x64 ABI is per greenlet: rbx, rbp, rdi, rsi, r12–r15
//! and all 128 bits of xmm6–xmm15 hold, after a switch returns, what they held when it was made, even
//! though the greenlet switched to had put other values into all of them.
//!
//! Compiled Rust code rarely keeps values in xmm6–xmm15 across a call, so the other tests would not
//! notice a register the switch forgot; [`probe`] loads a pattern into every one of them, calls a
//! function that switches away and back, and stores what the registers hold afterwards.

use std::cell::Cell;

use super::runtime::{G, current, on_thread, spawn};

/// The nonvolatile registers, in the order [`probe`] loads and stores them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Regs {
    /// rbx, rbp, rdi, rsi, r12, r13, r14, r15.
    gprs: [u64; 8],
    /// xmm6 .. xmm15.
    xmms: [u128; 10],
}

impl Regs {
    /// A value for every register, distinct between registers, greenlets (`who`) and rounds.
    fn pattern(who: u64, round: u64) -> Regs {
        let tag = (who << 56) | (round << 32);
        let mut r = Regs {
            gprs: [0; 8],
            xmms: [0; 10],
        };
        for (i, g) in r.gprs.iter_mut().enumerate() {
            *g = tag | 0x1000 | i as u64;
        }
        for (i, x) in r.xmms.iter_mut().enumerate() {
            let lo = tag | 0x2000 | i as u64;
            *x = (u128::from(!lo) << 64) | u128::from(lo);
        }
        r
    }
}

/// Loads `*input` into the nonvolatile registers, calls `f(arg)`, and stores the registers as they
/// are after the call into `*output`; preserves its caller's registers itself.
///
/// `fn(input /* rcx */, f /* rdx */, arg /* r8 */, output /* r9 */)`. Frame: eight pushes, then
/// 200 bytes: the home area of the call at +0, the caller's xmm6–xmm15 at +32, `output` at +192.
///
/// # Safety
///
/// `input` and `output` are valid for reads and writes of a `Regs`; `f` does not unwind.
#[unsafe(naked)]
unsafe extern "C" fn probe(
    input: *const Regs,
    f: extern "C" fn(usize),
    arg: usize,
    output: *mut Regs,
) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push rdi",
        "push rsi",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 200",
        "movaps xmmword ptr [rsp + 32], xmm6",
        "movaps xmmword ptr [rsp + 48], xmm7",
        "movaps xmmword ptr [rsp + 64], xmm8",
        "movaps xmmword ptr [rsp + 80], xmm9",
        "movaps xmmword ptr [rsp + 96], xmm10",
        "movaps xmmword ptr [rsp + 112], xmm11",
        "movaps xmmword ptr [rsp + 128], xmm12",
        "movaps xmmword ptr [rsp + 144], xmm13",
        "movaps xmmword ptr [rsp + 160], xmm14",
        "movaps xmmword ptr [rsp + 176], xmm15",
        "mov qword ptr [rsp + 192], r9",
        // f in rax, arg in rcx, input in r11.
        "mov rax, rdx",
        "mov r11, rcx",
        "mov rcx, r8",
        "mov rbx, qword ptr [r11 + 0]",
        "mov rbp, qword ptr [r11 + 8]",
        "mov rdi, qword ptr [r11 + 16]",
        "mov rsi, qword ptr [r11 + 24]",
        "mov r12, qword ptr [r11 + 32]",
        "mov r13, qword ptr [r11 + 40]",
        "mov r14, qword ptr [r11 + 48]",
        "mov r15, qword ptr [r11 + 56]",
        "movups xmm6, xmmword ptr [r11 + 64]",
        "movups xmm7, xmmword ptr [r11 + 80]",
        "movups xmm8, xmmword ptr [r11 + 96]",
        "movups xmm9, xmmword ptr [r11 + 112]",
        "movups xmm10, xmmword ptr [r11 + 128]",
        "movups xmm11, xmmword ptr [r11 + 144]",
        "movups xmm12, xmmword ptr [r11 + 160]",
        "movups xmm13, xmmword ptr [r11 + 176]",
        "movups xmm14, xmmword ptr [r11 + 192]",
        "movups xmm15, xmmword ptr [r11 + 208]",
        "call rax",
        "mov r11, qword ptr [rsp + 192]",
        "mov qword ptr [r11 + 0], rbx",
        "mov qword ptr [r11 + 8], rbp",
        "mov qword ptr [r11 + 16], rdi",
        "mov qword ptr [r11 + 24], rsi",
        "mov qword ptr [r11 + 32], r12",
        "mov qword ptr [r11 + 40], r13",
        "mov qword ptr [r11 + 48], r14",
        "mov qword ptr [r11 + 56], r15",
        "movups xmmword ptr [r11 + 64], xmm6",
        "movups xmmword ptr [r11 + 80], xmm7",
        "movups xmmword ptr [r11 + 96], xmm8",
        "movups xmmword ptr [r11 + 112], xmm9",
        "movups xmmword ptr [r11 + 128], xmm10",
        "movups xmmword ptr [r11 + 144], xmm11",
        "movups xmmword ptr [r11 + 160], xmm12",
        "movups xmmword ptr [r11 + 176], xmm13",
        "movups xmmword ptr [r11 + 192], xmm14",
        "movups xmmword ptr [r11 + 208], xmm15",
        "movaps xmm6, xmmword ptr [rsp + 32]",
        "movaps xmm7, xmmword ptr [rsp + 48]",
        "movaps xmm8, xmmword ptr [rsp + 64]",
        "movaps xmm9, xmmword ptr [rsp + 80]",
        "movaps xmm10, xmmword ptr [rsp + 96]",
        "movaps xmm11, xmmword ptr [rsp + 112]",
        "movaps xmm12, xmmword ptr [rsp + 128]",
        "movaps xmm13, xmmword ptr [rsp + 144]",
        "movaps xmm14, xmmword ptr [rsp + 160]",
        "movaps xmm15, xmmword ptr [rsp + 176]",
        "add rsp, 200",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rsi",
        "pop rdi",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

const _: () = assert!(size_of::<Regs>() == 224);

thread_local! {
    /// Where [`switch_away`] goes.
    static TARGET: Cell<Option<G>> = const { Cell::new(None) };
}

/// Called by [`probe`] with the pattern in the registers: switch to [`TARGET`] and back.
extern "C" fn switch_away(_: usize) {
    let target = TARGET.with(Cell::get).expect("no target set");
    target.switch(0);
}

/// Run [`probe`] with `pattern`, switching to `target` inside it; returns the registers after.
fn switch_with_pattern(pattern: Regs, target: G) -> Regs {
    TARGET.with(|t| t.set(Some(target)));
    let mut after = Regs {
        gprs: [0; 8],
        xmms: [0; 10],
    };
    // SAFETY: both pointers are to live locals; `switch_away` is `extern "C"`, so a panic in it
    // aborts instead of unwinding through `probe`.
    unsafe { probe(&raw const pattern, switch_away, 0, &raw mut after) };
    after
}

#[test]
fn nonvolatile_registers_are_per_greenlet() {
    on_thread(|| {
        let main = current();
        let rounds = 50;
        let g = spawn(move |_| {
            for round in 0..rounds {
                let mine = Regs::pattern(0xB, round);
                assert_eq!(switch_with_pattern(mine, main), mine, "g, round {round}");
            }
            0
        });
        for round in 0..rounds {
            let mine = Regs::pattern(0xA, round);
            assert_eq!(switch_with_pattern(mine, g), mine, "main, round {round}");
        }
        g.switch(0);
        assert!(g.is_dead());
    });
}
