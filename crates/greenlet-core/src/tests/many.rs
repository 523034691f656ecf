//! Thousands of greenlets alive and suspended at once, resumed in random order.

use std::hint::black_box;

use super::runtime::{G, Rng, current, on_thread, spawn};

/// Recurse `depth` frames (each with a local array) before switching to `g`, so greenlets start
/// from different marks and their slices overlap in different ways.
#[inline(never)]
pub(super) fn switch_at_depth(depth: usize, g: G, value: usize) -> usize {
    let mut pad = [depth as u64; 6];
    black_box(&mut pad);
    let r = if depth == 0 {
        g.switch(value)
    } else {
        switch_at_depth(depth - 1, g, value)
    };
    black_box(&mut pad);
    assert!(pad.iter().all(|&x| x == depth as u64));
    r
}

fn pattern(id: usize, k: usize) -> u64 {
    (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64) << 3
}

/// `n` greenlets, each parked `rounds` times holding a local array, resumed in a shuffled order
/// every round from a random depth of the main greenlet's stack.
pub(super) fn park_many(n: usize, rounds: usize, seed: u64) {
    let main = current();
    let gs: Vec<G> = (0..n)
        .map(|id| {
            spawn(move |v| {
                assert_eq!(v, id);
                let mut arr = [0u64; 32];
                for (k, x) in arr.iter_mut().enumerate() {
                    *x = pattern(id, k);
                }
                black_box(&mut arr);
                for k in 0..rounds {
                    let back = main.switch(id * 100 + k);
                    assert_eq!(back, id * 100 + k + 50);
                    black_box(&mut arr);
                    for (j, x) in arr.iter().enumerate() {
                        assert_eq!(*x, pattern(id, j), "greenlet {id} lost its stack");
                    }
                }
                id + 1_000_000
            })
        })
        .collect();

    let mut rng = Rng::new(seed);
    for (id, &g) in gs.iter().enumerate() {
        assert_eq!(switch_at_depth(id % 7, g, id), id * 100);
    }
    // All parked: each was saved whole when it switched back to main.
    for &g in &gs {
        assert!(!g.is_dead());
        let s = g.stack();
        assert!(s.saved_bytes() > 0);
        assert_eq!(
            s.saved_bytes(),
            s.stack_stop() as usize - s.stack_start() as usize
        );
    }
    let mut order: Vec<usize> = (0..n).collect();
    for k in 0..rounds {
        rng.shuffle(&mut order);
        for &id in &order {
            let depth = rng.below(9);
            let r = switch_at_depth(depth, gs[id], id * 100 + k + 50);
            if k + 1 < rounds {
                assert_eq!(r, id * 100 + k + 1);
            } else {
                assert_eq!(r, id + 1_000_000);
                assert!(gs[id].is_dead());
                assert_eq!(gs[id].saved_bytes(), 0);
            }
        }
    }
    assert_eq!(current(), main);
    assert_eq!(main.saved_bytes(), 0);
}

#[test]
fn thousands_of_suspended_greenlets_resumed_in_random_order() {
    on_thread(|| park_many(2000, 5, 0x1234_5678));
}
