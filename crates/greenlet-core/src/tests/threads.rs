//! Several OS threads, each with its own main greenlet and greenlets, switching concurrently.

use super::many::park_many;
use super::runtime::{current, on_thread, spawn};
use super::stacks::deep_pair;

#[test]
fn threads_switch_their_own_greenlets_concurrently() {
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::Builder::new()
                .stack_size(256 << 20)
                .spawn(move || {
                    let main = current();
                    let g = spawn(move |mut v| {
                        for _ in 0..20_000 {
                            v = main.switch(v + 1);
                        }
                        v
                    });
                    let mut v = t as usize * 1_000_000;
                    for _ in 0..20_000 {
                        v = g.switch(v) + 1;
                    }
                    assert_eq!(g.switch(v), t as usize * 1_000_000 + 40_000);
                    park_many(300, 4, 0xABCD + t);
                    deep_pair(2_000 + 500 * t as usize, 1_500);
                    assert_eq!(current(), main);
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        if let Err(payload) = w.join() {
            std::panic::resume_unwind(payload);
        }
    }
    // And the test thread itself still has a working main greenlet of its own.
    on_thread(|| {
        let g = spawn(|v| v * 3);
        assert_eq!(g.switch(5), 15);
    });
}
