//! Greenlets on dedicated stacks, alone and mixed with sliced ones: every combination of domains a
//! switch can cross, stacks released to the pool exactly once, guards, and the cost staying flat.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::rc::Rc;

use super::many::switch_at_depth;
use super::runtime::{
    G, Rng, context, current, main_greenlet, on_thread, spawn, spawn_dedicated, spawn_on,
};
use crate::{MIN_STACK_SIZE, Stack};

const SIZE: usize = 256 << 10;

/// (stacks pooled, stacks mapped) by this thread's context.
fn pool_counts() -> (usize, usize) {
    let ctx = context();
    // SAFETY: this thread's context, not borrowed elsewhere while the reference lives.
    let ctx = unsafe { &*ctx };
    (ctx.pooled_stacks(), ctx.mapped_stacks())
}

#[test]
fn a_dedicated_greenlet_runs_passes_values_and_returns_its_stack_to_the_pool() {
    on_thread(|| {
        let main = current();
        let g = spawn_dedicated(SIZE, move |v| {
            assert!(current().on_dedicated_stack());
            let local = 7usize;
            let addr = &raw const local as usize;
            black_box(&local);
            // Running on the new stack, not the thread's.
            let (lo, hi) = current().stack().stack_bounds().unwrap();
            assert!((lo as usize..hi as usize).contains(&addr));
            assert!(current().stack().owns_stack());
            let w = main.switch(v + 1);
            w * 2
        });
        assert!(!main.on_dedicated_stack());
        assert_eq!(g.switch(10), 11);
        assert!(g.on_dedicated_stack());
        // Nothing of the thread stack was saved to get there, and nothing of g's to come back.
        assert_eq!(main.saved_bytes(), 0);
        assert_eq!(g.saved_bytes(), 0);
        assert_eq!(pool_counts(), (0, 1));
        assert_eq!(g.switch(21), 42);
        assert!(g.is_dead() && !g.on_dedicated_stack());
        assert_eq!(pool_counts(), (1, 1));
        // The next one reuses it.
        let h = spawn_dedicated(SIZE, |v| v + 100);
        assert_eq!(h.switch(1), 101);
        assert_eq!(pool_counts(), (1, 1));
    });
}

#[test]
fn switching_from_deep_in_the_thread_stack_copies_nothing() {
    on_thread(|| {
        let main = current();
        let g = spawn_dedicated(SIZE, move |mut v| {
            for _ in 0..100 {
                v = main.switch(v + 1);
            }
            v
        });
        let mut v = 0;
        for _ in 0..100 {
            // From 2,000 frames down (~100 KiB of thread stack): a sliced target would force a copy.
            v = switch_at_depth(2000, g, v);
            assert_eq!(main.saved_bytes(), 0);
        }
        assert_eq!(g.switch(v), 100);
    });
}

const DONE: usize = usize::MAX;

#[test]
fn sliced_children_share_a_dedicated_greenlets_stack_and_are_resumed_across_domains() {
    on_thread(|| {
        let main = current();
        let g = spawn_dedicated(SIZE, move |_| {
            let me = current();
            let (lo, hi) = me.stack().stack_bounds().unwrap();
            let kids: Vec<G> = (0..4)
                .map(|k| {
                    spawn(move |v| {
                        let mut arr = [k as u64 ^ 0x5A5A; 64];
                        black_box(&mut arr);
                        let s = current().stack();
                        // A sliced child of a dedicated greenlet lives in the same domain.
                        assert_eq!(s.stack_bounds(), Some((lo, hi)));
                        assert!(!s.owns_stack());
                        let v = me.switch(v + k);
                        black_box(&mut arr);
                        assert!(arr.iter().all(|&x| x == k as u64 ^ 0x5A5A));
                        v
                    })
                })
                .collect();
            for (k, &kid) in kids.iter().enumerate() {
                // Each from a different depth: their slices overlap inside the domain.
                assert_eq!(switch_at_depth(k * 3, kid, 100), 100 + k);
            }
            // Forward what dying children hand back to main, until main says done.
            let mut r = main.switch(0);
            while r != DONE {
                r = main.switch(r);
            }
            7
        });
        assert_eq!(g.switch(0), 0);
        // Main resumes g's children directly, across domains, from various depths; each dies into
        // g (same domain), which forwards its value back across.
        for (i, k) in [2usize, 0, 3, 1].into_iter().enumerate() {
            let kid = G::nth_spawned(1 + k);
            assert!(!kid.is_dead());
            assert_eq!(switch_at_depth(i * 5, kid, 1000 + k), 1000 + k);
            assert!(kid.is_dead());
        }
        assert_eq!(pool_counts(), (0, 1));
        assert_eq!(g.switch(DONE), 7);
        assert_eq!(pool_counts(), (1, 1));
    });
}

#[test]
fn a_dedicated_stack_outlives_its_owner_while_a_sliced_child_is_suspended_on_it() {
    on_thread(|| {
        let main = current();
        let kid_slot: Rc<Cell<Option<G>>> = Rc::new(Cell::new(None));
        let slot = kid_slot.clone();
        let g = spawn_dedicated(SIZE, move |_| {
            let kid = spawn(move |v| {
                let mut arr = [0xC0FFEEu64; 128];
                black_box(&mut arr);
                let v = main.switch(v + 1);
                black_box(&mut arr);
                assert!(arr.iter().all(|&x| x == 0xC0FFEE));
                v * 3
            });
            slot.set(Some(kid));
            assert_eq!(kid.switch(1), 5);
            99
        });
        assert_eq!(g.switch(0), 2);
        let kid = kid_slot.get().unwrap();
        // g finishes (kid parked on g's stack, which must stay)...
        assert_eq!(g.switch(5), 99);
        assert!(g.is_dead());
        assert!(!g.on_dedicated_stack() && kid.on_dedicated_stack());
        assert_eq!(pool_counts(), (0, 1));
        // ...the kid still runs there, and dies into main (its dead parent's parent), which
        // releases the stack from the other side.
        assert_eq!(switch_at_depth(30, kid, 4), 12);
        assert!(kid.is_dead());
        assert_eq!(pool_counts(), (1, 1));
    });
}

#[test]
fn dedicated_children_of_sliced_and_of_dedicated_greenlets() {
    on_thread(|| {
        let main = current();
        // main -> s (sliced) -> d1 (dedicated) -> d2 (dedicated) -> s2 (sliced, on d2's stack)
        let s = spawn(move |_| {
            let mut a = [1u64; 100];
            black_box(&mut a);
            let d1 = spawn_dedicated(SIZE, move |_| {
                let mut b = [2u64; 100];
                black_box(&mut b);
                let d2 = spawn_dedicated(SIZE, move |_| {
                    let mut c = [3u64; 100];
                    black_box(&mut c);
                    let s2 = spawn(move |_| {
                        let mut e = [4u64; 100];
                        for i in 0..50 {
                            black_box(&mut e);
                            assert_eq!(main.switch(i), i + 1);
                            assert!(e.iter().all(|&x| x == 4));
                        }
                        4
                    });
                    let r = s2.switch(0);
                    assert!(c.iter().all(|&x| x == 3));
                    r
                });
                let r = d2.switch(0);
                assert!(b.iter().all(|&x| x == 2));
                r
            });
            let r = d1.switch(0);
            assert!(a.iter().all(|&x| x == 1));
            r
        });
        assert_eq!(s.switch(0), 0);
        let s2 = G::nth_spawned(3);
        for i in 0..50 {
            // Alternate the way back in: straight into s2, or from deep in main's stack.
            let r = if i % 2 == 0 {
                s2.switch(i + 1)
            } else {
                switch_at_depth(200, s2, i + 1)
            };
            if i < 49 {
                assert_eq!(r, i + 1);
            } else {
                // s2 -> d2 -> d1 -> s -> main, each returning what its child returned.
                assert_eq!(r, 4);
            }
        }
        assert!(s.is_dead());
        assert_eq!(pool_counts(), (2, 2));
    });
}

#[test]
fn a_dying_greenlet_starts_its_unstarted_dedicated_parent() {
    on_thread(|| {
        let p = spawn_dedicated(SIZE, |v| v + 1);
        // A dedicated child, dying into its unstarted parent: the parent starts on a fresh stack
        // from the dying child's, which is released once the SP has left it.
        let c = spawn_on(p, SIZE, |v| v * 2);
        assert_eq!(c.switch(5), 11);
        assert!(c.is_dead() && p.is_dead());
        assert_eq!(pool_counts(), (2, 2));
        // And a sliced child doing the same.
        let p = spawn_dedicated(SIZE, |v| v + 1);
        let c = spawn_on(p, 0, |v| v * 2);
        assert_eq!(c.switch(6), 13);
        assert_eq!(pool_counts(), (2, 2));
    });
}

#[test]
fn without_a_stack_a_dedicated_greenlet_runs_sliced() {
    on_thread(|| {
        // No mapping this large can be had (more than the address space).
        assert!(Stack::new(usize::MAX / 2).is_none());
        let g = spawn_dedicated(usize::MAX / 2, |v| {
            assert!(!current().on_dedicated_stack());
            v + 1
        });
        assert_eq!(g.switch(1), 2);
        assert!(crate::stack_stats().failed >= 2);
    });
}

#[test]
fn stack_sizes_round_up_to_pages_and_the_minimum() {
    let s = Stack::new(1).unwrap();
    assert_eq!(s.size(), MIN_STACK_SIZE);
    let s = Stack::new(MIN_STACK_SIZE + 1).unwrap();
    assert!(s.size() > MIN_STACK_SIZE && s.size() <= MIN_STACK_SIZE + 64 * 1024);
    assert_eq!(s.size() % 4096, 0);
}

#[test]
fn the_pool_keeps_its_cap_and_decommits_what_a_deep_greenlet_touched() {
    on_thread(|| {
        // Deep use, seen by a switch made down there, then release: the pages below the resident
        // top are given back (they read as zeros when the stack is reused). Depth reached between
        // switches is not seen: those pages stay until the stack is unmapped or reused.
        let main = current();
        let g = spawn_dedicated(SIZE, move |_| {
            fill_deep(150, main);
            0
        });
        g.switch(0);
        g.switch(0);
        let h = spawn_dedicated(SIZE, |_| {
            let (lo, hi) = current().stack().stack_bounds().unwrap();
            let keep = hi as usize - crate::KEEP_RESIDENT;
            // g's 150 KiB of frames reached well below `keep`.
            let probe = keep - (32 << 10);
            assert!(probe > lo as usize);
            // SAFETY: `probe` is inside this greenlet's own stack, far below its frames.
            unsafe { std::ptr::read_volatile(probe as *const u8) as usize }
        });
        assert_eq!(h.switch(0), 0);
        assert_eq!(pool_counts(), (1, 1));
        // A cap of 2: five greenlets alive at once need five stacks; three are unmapped when they end.
        let ctx = context();
        // SAFETY: this thread's context, not borrowed elsewhere during the call.
        unsafe { (*ctx).set_stack_pool_cap(2) };
        park_then_finish(5);
        assert_eq!(pool_counts(), (2, 5));
    });
}

/// `n` dedicated greenlets alive at once (each parked in main), then each finished.
fn park_then_finish(n: usize) -> Vec<G> {
    let main = current();
    let gs: Vec<G> = (0..n)
        .map(|i| spawn_dedicated(SIZE, move |_| main.switch(i)))
        .collect();
    for (i, &g) in gs.iter().enumerate() {
        assert_eq!(g.switch(0), i);
    }
    for &g in &gs {
        g.switch(0);
    }
    gs
}

#[test]
fn the_pool_grows_to_what_is_alive_at_once() {
    on_thread(|| {
        let round = |n: usize| {
            for g in park_then_finish(n) {
                assert!(g.is_dead());
            }
        };
        // 100 alive at once: the first round maps 100 stacks, and keeps them all (the cap
        // grew from 64 by one per stack it had to map); the second maps none.
        round(100);
        assert_eq!(pool_counts(), (100, 100));
        round(100);
        assert_eq!(pool_counts(), (100, 100));
    });
}

/// Recurse with 1 KiB frames full of a non-zero pattern, `levels` KiB deep, and switch to `to`
/// from the bottom.
#[inline(never)]
fn fill_deep(levels: usize, to: G) {
    let mut pad = [0xA5u8; 1024];
    black_box(&mut pad);
    if levels > 0 {
        fill_deep(levels - 1, to);
    } else {
        to.switch(0);
    }
    black_box(&mut pad);
}

#[test]
fn threads_each_keep_their_own_dedicated_stacks() {
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                mixed_random_run(0xD00D + t, 300, 40);
                let (pooled, mapped) = pool_counts();
                assert_eq!(pooled, mapped.min(crate::DEFAULT_POOL_CAP));
            })
        })
        .collect();
    for w in workers {
        if let Err(payload) = w.join() {
            std::panic::resume_unwind(payload);
        }
    }
}

#[test]
fn random_mixes_of_dedicated_and_sliced_greenlets_keep_their_stacks() {
    for seed in 1..=6u64 {
        on_thread(move || {
            mixed_random_run(seed, 1500, 60);
            let (pooled, mapped) = pool_counts();
            // Every domain was released exactly once (the cap is not reached at 60 greenlets).
            assert_eq!(pooled, mapped);
            assert_eq!(main_greenlet().saved_bytes(), 0);
        });
    }
}

/// Shared state of a random run. Borrowed only between switches.
struct World {
    rng: Rng,
    /// Every greenlet made, main first.
    all: Vec<G>,
    ops_left: usize,
    max_greenlets: usize,
    /// The token in flight and the greenlet it must reach.
    token: usize,
    receiver: Option<G>,
    ending: bool,
    /// Turns made by greenlets owning a stack, and by sliced greenlets on a dedicated stack.
    turns_owning: usize,
    turns_sliced_on_dedicated: usize,
}

/// Where a switch to `g` lands: `g`, or its first live ancestor if it is dead.
fn resolve(mut g: G) -> G {
    while g.is_dead() {
        g = g.parent();
    }
    g
}

/// One turn of greenlet `me`: maybe spawn, then switch to a random greenlet from a random depth,
/// checking the token that comes back. Returns `false` when the run is ending.
fn turn(world: &Rc<RefCell<World>>, me: G) -> bool {
    let (target, token, depth) = {
        let mut w = world.borrow_mut();
        if w.ending || w.ops_left == 0 {
            w.ending = true;
            return false;
        }
        w.ops_left -= 1;
        if me.stack().owns_stack() {
            w.turns_owning += 1;
        } else if me.on_dedicated_stack() {
            w.turns_sliced_on_dedicated += 1;
        }
        if w.all.len() < w.max_greenlets && w.rng.below(4) == 0 {
            let dedicated = if w.rng.below(2) == 0 { SIZE } else { 0 };
            let n = w.all.len();
            let i = w.rng.below(n);
            let parent = w.all[i];
            let parent = if parent.is_dead() { me } else { parent };
            let world2 = world.clone();
            let g = spawn_on(parent, dedicated, move |v| worker(&world2, v));
            w.all.push(g);
        }
        let n = w.all.len();
        let i = w.rng.below(n);
        let target = w.all[i];
        let token = w.token + 1;
        w.token = token;
        let receiver = resolve(target);
        w.receiver = Some(receiver);
        (target, token, w.rng.below(12))
    };
    let back = switch_at_depth(depth, target, token);
    let w = world.borrow();
    assert_eq!(current(), me);
    assert_eq!(w.receiver, Some(me), "resumed the wrong greenlet");
    assert_eq!(back, w.token, "a value was lost or delivered twice");
    true
}

#[inline(never)]
fn worker(world: &Rc<RefCell<World>>, first: usize) -> usize {
    let me = current();
    {
        let w = world.borrow();
        assert_eq!(w.receiver, Some(me));
        assert_eq!(first, w.token);
    }
    let id = world.borrow().all.iter().position(|&g| g == me).unwrap();
    let depth = id % 9;
    worker_at(world, me, id, depth)
}

#[inline(never)]
fn worker_at(world: &Rc<RefCell<World>>, me: G, id: usize, depth: usize) -> usize {
    let mut arr = [0u64; 24];
    for (k, x) in arr.iter_mut().enumerate() {
        *x = (id as u64) << 32 ^ (depth as u64) << 16 ^ k as u64;
    }
    black_box(&mut arr);
    if depth > 0 {
        worker_at(world, me, id, depth - 1);
    } else {
        let turns = 4 + id % 13;
        for _ in 0..turns {
            if !turn(world, me) {
                break;
            }
            black_box(&mut arr);
            for (k, x) in arr.iter().enumerate() {
                assert_eq!(*x, (id as u64) << 32 ^ (depth as u64) << 16 ^ k as u64);
            }
        }
    }
    black_box(&mut arr);
    for (k, x) in arr.iter().enumerate() {
        assert_eq!(
            *x,
            (id as u64) << 32 ^ (depth as u64) << 16 ^ k as u64,
            "greenlet {id}"
        );
    }
    // Dying: the token goes to whoever a switch to our parent lands on.
    let mut w = world.borrow_mut();
    let token = w.token + 1;
    w.token = token;
    w.receiver = Some(resolve(me.parent()));
    token
}

/// `ops` random turns among up to `max` greenlets, half of them on dedicated stacks, then every
/// greenlet driven to its end.
fn mixed_random_run(seed: u64, ops: usize, max: usize) {
    let main = current();
    let world = Rc::new(RefCell::new(World {
        rng: Rng::new(seed),
        all: vec![main],
        ops_left: ops,
        max_greenlets: max,
        token: 0,
        receiver: Some(main),
        ending: false,
        turns_owning: 0,
        turns_sliced_on_dedicated: 0,
    }));
    while turn(&world, main) {}
    {
        // The run did mix the domains.
        let w = world.borrow();
        assert!(
            w.turns_owning > ops / 10,
            "{} turns on own stacks",
            w.turns_owning
        );
        assert!(
            w.turns_sliced_on_dedicated > ops / 20,
            "{} turns sliced on dedicated stacks",
            w.turns_sliced_on_dedicated
        );
    }
    // Drive everyone to the end: each, resumed, sees `ending` and returns.
    loop {
        let next = world
            .borrow()
            .all
            .iter()
            .copied()
            .find(|g| *g != main && !g.is_dead());
        let Some(g) = next else { break };
        let token = {
            let mut w = world.borrow_mut();
            w.token += 1;
            w.receiver = Some(resolve(g));
            w.token
        };
        let back = g.switch(token);
        let w = world.borrow();
        assert_eq!(current(), main);
        assert_eq!(back, w.token);
    }
}

/// Run the ignored test `name` of this binary alone in a child process; its output and status.
fn run_child(name: &str) -> std::process::Output {
    // Under an emulator (qemu-user without binfmt), GREENLET_CORE_TEST_RUNNER names it, as
    // cargo's runner setting does for the test binary itself.
    let exe = std::env::current_exe().unwrap();
    let runner = std::env::var("GREENLET_CORE_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(words).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    cmd.args([
        "--exact",
        &format!("tests::dedicated::{name}"),
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .output()
    .unwrap()
}

#[test]
fn overflowing_a_dedicated_stack_hits_its_guard() {
    // In a child process: the overflow kills it with SIGSEGV, never silently running into whatever
    // is mapped below.
    let out = run_child("overflow_child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("recursing on a dedicated stack"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{:?} {stderr}",
        out.status
    );
}

#[test]
fn without_lightweight_guards_stacks_cost_two_mappings_and_are_capped() {
    let out = run_child("page_guard_child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(stderr.contains("page guards checked"), "{stderr}");
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
#[ignore = "run in a subprocess by without_lightweight_guards_stacks_cost_two_mappings_and_are_capped"]
fn page_guard_child() {
    crate::os::force_page_guards(3);
    let before = mappings();
    let stacks: Vec<Stack> = (0..3).map(|_| Stack::new(SIZE).unwrap()).collect();
    // A PROT_NONE page splits each mapping in two (they may also merge with neighbours, so
    // allow for that, but no fewer than one new mapping per stack).
    let added = mappings() - before;
    assert!((3..=6).contains(&added), "{added} mappings for 3 stacks");
    // The budget is spent: no fourth stack, and a dedicated greenlet runs sliced.
    let failed = crate::stack_stats().failed;
    assert!(Stack::new(SIZE).is_none());
    assert_eq!(crate::stack_stats().failed, failed + 1);
    assert_eq!(crate::stack_stats().lightweight_guards, Some(false));
    on_thread(|| {
        let g = spawn_dedicated(SIZE, |v| {
            assert!(!current().on_dedicated_stack());
            v + 1
        });
        assert_eq!(g.switch(1), 2);
    });
    // Unmapping one gives its room back.
    drop(stacks);
    assert!(Stack::new(SIZE).is_some());
    // And a stack guarded that way runs a greenlet.
    on_thread(|| {
        let g = spawn_dedicated(SIZE, |v| v * 2);
        assert!(g.switch(4) == 8);
    });
    eprintln!("page guards checked");
}

#[test]
#[ignore = "run in a subprocess by overflowing_a_dedicated_stack_hits_its_guard"]
fn overflow_child() {
    on_thread(|| {
        let g = spawn_dedicated(MIN_STACK_SIZE, |_| {
            eprintln!("recursing on a dedicated stack");
            fill_forever(0) as usize
        });
        g.switch(0);
    });
}

#[inline(never)]
#[allow(unconditional_recursion, reason = "it is meant to overflow")]
fn fill_forever(n: u64) -> u64 {
    let mut pad = [n; 64];
    black_box(&mut pad);
    fill_forever(n + 1).wrapping_add(pad[3])
}
