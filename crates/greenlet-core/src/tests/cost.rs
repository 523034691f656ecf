//! A rough timing report (not a pass/fail test): one-way switch cost by the size of the slice that
//! has to be saved and restored on each switch, sliced, and on a dedicated stack (where nothing is).
//!
//! `cargo test -p greenlet-core --release -- --ignored --nocapture switch_cost`

use std::hint::black_box;
use std::time::Instant;

use super::runtime::{current, on_thread, spawn_on};

/// Hold `kib` KiB of stack (in 1 KiB frames) below the greenlet's mark, then ping-pong `n` times.
#[inline(never)]
fn hold(kib: usize, n: usize, main: super::runtime::G) {
    let mut buf = [0u8; 1000];
    black_box(&mut buf);
    if kib > 0 {
        hold(kib - 1, n, main);
    } else {
        for i in 0..n {
            main.switch(i);
        }
    }
    black_box(&mut buf);
}

#[test]
#[ignore = "timing report; run with --release -- --ignored --nocapture"]
fn switch_cost_by_saved_depth() {
    on_thread(|| {
        for (mode, size) in [("sliced", 0), ("dedicated", 1 << 20)] {
            for kib in [0usize, 1, 4, 16, 64, 256] {
                let n = if kib >= 16 && size == 0 {
                    20_000
                } else {
                    200_000
                };
                let main = current();
                let g = spawn_on(main, size, move |_| {
                    hold(kib, n, main);
                    0
                });
                g.switch(0);
                let t = Instant::now();
                for i in 1..n {
                    g.switch(i);
                }
                let per_switch = t.elapsed().as_nanos() as f64 / (2 * (n - 1)) as f64;
                let saved = g.saved_bytes();
                g.switch(0);
                println!(
                    "{mode:>9}: ~{kib:>3} KiB held, {saved:>6} B saved: {per_switch:>7.1} ns per switch"
                );
            }
        }
    });
}
