//! Stack contents, deep stacks, overlapping slices, `saved_bytes` accounting.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;

use super::many::switch_at_depth;
use super::runtime::{G, current, on_thread, spawn};

fn byte_pattern(id: usize, round: usize, i: usize) -> u8 {
    (id.wrapping_mul(31) ^ round.wrapping_mul(7) ^ i.wrapping_mul(13)) as u8
}

/// Greenlet `id` of a ring: `depth` frames down, it keeps a 2 KiB array, verifies and rewrites it on
/// every turn, and passes control straight to the next greenlet of the ring.
#[inline(never)]
fn ring_member(id: usize, depth: usize, rounds: usize, ring: &Rc<Cell<Option<Vec<G>>>>) {
    let mut pad = [id as u64 ^ depth as u64; 4];
    black_box(&mut pad);
    if depth > 0 {
        ring_member(id, depth - 1, rounds, ring);
    } else {
        let mut arr = [0u8; 2048];
        for (i, b) in arr.iter_mut().enumerate() {
            *b = byte_pattern(id, 0, i);
        }
        for round in 0..rounds {
            black_box(&mut arr);
            for (i, b) in arr.iter_mut().enumerate() {
                assert_eq!(
                    *b,
                    byte_pattern(id, round, i),
                    "greenlet {id} round {round}"
                );
                *b = byte_pattern(id, round + 1, i);
            }
            black_box(&mut arr);
            let gs = ring.take().unwrap();
            let next = gs[(id + 1) % gs.len()];
            ring.set(Some(gs));
            next.switch(round);
        }
    }
    black_box(&mut pad);
    assert!(pad.iter().all(|&x| x == id as u64 ^ depth as u64));
}

#[test]
fn stack_contents_survive_many_switches_between_siblings() {
    on_thread(|| {
        const N: usize = 8;
        const ROUNDS: usize = 1000;
        let ring: Rc<Cell<Option<Vec<G>>>> = Rc::new(Cell::new(None));
        let gs: Vec<G> = (0..N)
            .map(|id| {
                let ring = ring.clone();
                spawn(move |_| {
                    ring_member(id, id * 5, ROUNDS, &ring);
                    id
                })
            })
            .collect();
        ring.set(Some(gs.clone()));
        // g0 goes round the ring first and finishes first, into main; the rest are parked on their
        // last switch and finish when main resumes them.
        assert_eq!(gs[0].switch(0), 0);
        for (id, &g) in gs.iter().enumerate().skip(1) {
            assert!(!g.is_dead());
            assert_eq!(switch_at_depth(id, g, ROUNDS - 1), id);
            assert!(g.is_dead());
        }
    });
}

/// One greenlet of the deep test: recurse to `max`, switching to the partner every `step` frames on
/// the way down and on the way up, and check every frame's array on the way up.
struct Deep {
    id: u64,
    max: usize,
    step: usize,
    partner: Rc<Cell<Option<G>>>,
}

#[inline(never)]
fn deep(d: &Deep, depth: usize) -> u64 {
    let mut arr = [0u64; 8];
    for (k, x) in arr.iter_mut().enumerate() {
        *x = (d.id << 48) ^ ((depth as u64) << 8) ^ k as u64;
    }
    black_box(&mut arr);
    if depth.is_multiple_of(d.step) {
        d.partner.get().unwrap().switch(depth);
    }
    let below = if depth < d.max { deep(d, depth + 1) } else { 0 };
    if depth.is_multiple_of(d.step) {
        d.partner.get().unwrap().switch(depth);
    }
    black_box(&mut arr);
    for (k, x) in arr.iter().enumerate() {
        assert_eq!(*x, (d.id << 48) ^ ((depth as u64) << 8) ^ k as u64);
    }
    below.wrapping_add(arr[7])
}

fn expected_sum(id: u64, max: usize) -> u64 {
    (0..=max).fold(0u64, |acc, depth| {
        acc.wrapping_add((id << 48) ^ ((depth as u64) << 8) ^ 7)
    })
}

/// Two greenlets recursing to different depths, switching to each other all along: each one's
/// slice repeatedly covers, and is covered by, the other's.
pub(super) fn deep_pair(max_a: usize, max_b: usize) {
    let main = current();
    let to_b = Rc::new(Cell::new(None));
    let to_a = Rc::new(Cell::new(None));
    let a = {
        let partner = to_b.clone();
        spawn(move |_| {
            let d = Deep {
                id: 1,
                max: max_a,
                step: 500,
                partner,
            };
            let sum = deep(&d, 0);
            assert_eq!(sum, expected_sum(1, max_a));
            1
        })
    };
    let b = {
        let partner = to_a.clone();
        spawn(move |_| {
            let d = Deep {
                id: 2,
                max: max_b,
                step: 250,
                partner,
            };
            let sum = deep(&d, 0);
            assert_eq!(sum, expected_sum(2, max_b));
            2
        })
    };
    to_b.set(Some(b));
    to_a.set(Some(a));
    // Whichever finishes first returns here; the other then switches to a dead partner, which
    // forwards to main, until it finishes too.
    let mut finished = 0;
    let mut next = a;
    for _ in 0..1000 {
        let r = next.switch(0);
        if r == 1 || r == 2 {
            finished += 1;
        }
        if a.is_dead() && b.is_dead() {
            break;
        }
        next = if a.is_dead() { b } else { a };
    }
    assert_eq!(finished, 2);
    assert_eq!(current(), main);
}

#[test]
fn deep_stacks_interleaved_between_greenlets() {
    on_thread(|| deep_pair(10_000, 4_000));
}

#[test]
fn deep_stack_of_the_main_greenlet_is_saved_in_part() {
    on_thread(|| {
        // Main is 3000 frames deep when it starts a greenlet that itself goes 1000 frames deep.
        let g = spawn(|_| {
            let partner = Rc::new(Cell::new(Some(super::runtime::main_greenlet())));
            let d = Deep {
                id: 3,
                max: 1000,
                step: 100,
                partner,
            };
            deep(&d, 0);
            3
        });
        let mut r = switch_at_depth(3000, g, 0);
        let mut n = 0;
        while r != 3 {
            // Resume from a different depth each time: the mark stays where g started.
            r = switch_at_depth(n % 50, g, 0);
            n += 1;
        }
        assert!(g.is_dead());
        assert_eq!(n, 22);
    });
}

#[test]
fn stack_saved_accounting() {
    on_thread(|| {
        let main = current();
        let g = spawn(move |_| {
            let me = current();
            assert_eq!(me.saved_bytes(), 0);
            // Starting g saved main's stack from its SP up to g's mark.
            assert!(main.saved_bytes() > 0);
            let mut arr = [0xA5u8; 1024];
            black_box(&mut arr);
            main.switch(1);
            assert_eq!(me.saved_bytes(), 0);
            black_box(&mut arr);
            assert!(arr.iter().all(|&b| b == 0xA5));
            main.switch(2);
            3
        });
        assert_eq!(main.saved_bytes(), 0);
        assert_eq!(g.saved_bytes(), 0);
        assert!(!g.stack().started());
        assert_eq!(g.switch(0), 1);
        // The running greenlet has nothing saved; g, below main's SP, is saved whole.
        assert_eq!(main.saved_bytes(), 0);
        let s = g.stack();
        let (start, stop, saved) = (s.stack_start(), s.stack_stop(), s.saved_bytes());
        assert_eq!(saved, stop as usize - start as usize);
        assert!(saved >= 1024 + crate::arch::FRAME_SIZE);
        // `start` is the switch routine's SP at the hook call.
        assert!((start as usize).is_multiple_of(crate::arch::STACK_ALIGNMENT));

        // Overwrite g's region with another greenlet started from the same depth.
        let h = spawn(move |_| {
            let mut junk = [0x5Au8; 4096];
            black_box(&mut junk);
            main.switch(10);
            0
        });
        assert_eq!(h.switch(0), 10);
        let s = g.stack();
        assert_eq!(s.saved_bytes(), saved);

        // Read g's whole slice: the heap copy must still hold its array.
        let mut image = vec![0u8; saved];
        // SAFETY: g is suspended and wholly saved; no switch happens during the call.
        unsafe { s.copy_from_stack(image.as_mut_ptr(), start, saved) };
        assert!(image.windows(1024).any(|w| w.iter().all(|&b| b == 0xA5)));

        // Reading past g's saved bytes takes the live stack: here, main's own frames.
        let probe = 0x1122_3344_5566_7788u64;
        let probe_ptr = black_box(&raw const probe).cast::<u8>();
        let mut out = [0u8; 8];
        // SAFETY: `probe` is live and above g's slice; no switch happens during the call.
        unsafe { s.copy_from_stack(out.as_mut_ptr(), probe_ptr, 8) };
        assert_eq!(u64::from_ne_bytes(out), probe);

        assert_eq!(g.switch(0), 2);
        assert_eq!(g.switch(0), 3);
        assert!(g.is_dead());
        assert_eq!(g.saved_bytes(), 0);
        assert_eq!(h.switch(0), 0);
    });
}

#[test]
fn partial_save_of_a_slice_reaching_above_the_target() {
    on_thread(|| {
        let main = current();
        // a starts deep in main's stack, b higher up: b.stop > a.stop.
        let a_slot: Rc<Cell<Option<G>>> = Rc::new(Cell::new(None));
        let b_slot: Rc<Cell<Option<G>>> = Rc::new(Cell::new(None));
        let a = {
            let b_slot = b_slot.clone();
            spawn(move |_| {
                let mut arr = [0xAAu8; 512];
                black_box(&mut arr);
                main.switch(1);
                // Resumed by b, whose slice reaches above ours: b was saved only up to our top.
                let b = b_slot.get().unwrap();
                let s = b.stack();
                let whole = s.stack_stop() as usize - s.stack_start() as usize;
                assert!(s.saved_bytes() > 0 && s.saved_bytes() < whole);
                // Going back to main saves the rest of b too.
                main.switch(2);
                black_box(&mut arr);
                assert!(arr.iter().all(|&x| x == 0xAA));
                10
            })
        };
        a_slot.set(Some(a));
        assert_eq!(switch_at_depth(40, a, 0), 1);
        let b = {
            let a_slot = a_slot.clone();
            spawn(move |_| {
                let mut arr = [0xBBu8; 512];
                black_box(&mut arr);
                // Go down below a's top, then switch to a.
                let r = switch_at_depth(60, a_slot.get().unwrap(), 0);
                assert_eq!(r, 5);
                black_box(&mut arr);
                assert!(arr.iter().all(|&x| x == 0xBB));
                20
            })
        };
        b_slot.set(Some(b));
        assert!(b.stack().stack_stop().is_null());
        assert_eq!(switch_at_depth(2, b, 0), 2);
        let s = b.stack();
        assert!(s.stack_stop() > a.stack().stack_stop());
        assert_eq!(
            s.saved_bytes(),
            s.stack_stop() as usize - s.stack_start() as usize
        );
        assert_eq!(b.switch(5), 20);
        assert_eq!(a.switch(0), 10);
        assert!(a.is_dead() && b.is_dead());
    });
}
