//! Values both ways, starting, finishing, parents, panics.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use super::runtime::{current, main_greenlet, on_thread, spawn, spawn_with_parent};

#[test]
fn ping_pong_100k_round_trips() {
    on_thread(|| {
        const N: usize = 100_000;
        let main = current();
        let g = spawn(move |mut v| {
            for i in 0..N {
                assert_eq!(v, 2 * i);
                v = main.switch(v + 1);
            }
            v + 1000
        });
        let mut v = 0;
        for i in 0..N {
            let r = g.switch(v);
            assert_eq!(r, 2 * i + 1);
            v = r + 1;
        }
        assert!(!g.is_dead());
        assert_eq!(g.switch(v), 2 * N + 1000);
        assert!(g.is_dead());
        assert_eq!(current(), main);
    });
}

#[test]
fn finishing_returns_to_the_parent_through_nested_starts() {
    on_thread(|| {
        let main = current();
        let log = Rc::new(RefCell::new(Vec::new()));
        let log_a = log.clone();
        let a = spawn(move |v| {
            assert_eq!(v, 1);
            let a_self = current();
            assert_eq!(a_self.parent(), main);
            let log_b = log_a.clone();
            let b = spawn(move |v| {
                assert_eq!(v, 2);
                let b_self = current();
                assert_eq!(b_self.parent(), a_self);
                let c = spawn(move |v| {
                    assert_eq!(current().parent(), b_self);
                    v + 4
                });
                // c finishes at once: its return value comes back to its parent, b.
                assert_eq!(c.switch(3), 7);
                assert!(c.is_dead());
                log_b.borrow_mut().push("b skips a");
                // Switch straight to main, over a's head.
                assert_eq!(main.switch(8), 10);
                log_b.borrow_mut().push("b resumed by a");
                11
            });
            assert_eq!(b.parent(), a_self);
            // b goes to main; main comes back here with 9.
            assert_eq!(b.switch(2), 9);
            log_a.borrow_mut().push("a resumed by main");
            // b finishes: its value comes back here, to its parent.
            assert_eq!(b.switch(10), 11);
            assert!(b.is_dead());
            12
        });
        assert_eq!(a.switch(1), 8);
        assert!(!a.is_dead());
        assert_eq!(a.switch(9), 12);
        assert!(a.is_dead());
        assert_eq!(
            *log.borrow(),
            ["b skips a", "a resumed by main", "b resumed by a"]
        );
        // Switching to a dead greenlet goes to its parent: here, ourselves.
        assert_eq!(a.switch(5), 5);
        assert_eq!(current(), main);
    });
}

#[test]
fn dying_greenlet_starts_its_unstarted_parent() {
    on_thread(|| {
        let main = main_greenlet();
        let p = spawn(move |v| {
            assert_eq!(v, 5);
            assert_eq!(current().parent(), main);
            // Plenty of stack below the dead child's slice, to overwrite it.
            let buf = std::hint::black_box([0x5Au8; 4096]);
            assert!(buf.iter().all(|&b| b == 0x5A));
            6
        });
        let c = spawn_with_parent(p, |v| {
            assert_eq!(v, 4);
            5
        });
        assert!(!p.stack().started());
        assert_eq!(c.switch(4), 6);
        assert!(c.is_dead());
        assert!(p.is_dead());
        assert_eq!(c.saved_bytes(), 0);
        assert_eq!(p.saved_bytes(), 0);
    });
}

#[test]
fn dying_greenlet_returns_to_a_parent_suspended_elsewhere() {
    on_thread(|| {
        let main = current();
        let slot = Rc::new(Cell::new(None));
        let slot_p = slot.clone();
        // p creates c (so p is its parent) and parks in main; main starts c from its own stack, and
        // c's return value must land in p.
        let p = spawn(move |_| {
            slot_p.set(Some(spawn(move |v| v * 2)));
            assert_eq!(main.switch(0), 42);
            7
        });
        assert_eq!(p.switch(0), 0);
        let c = slot.get().unwrap();
        assert_eq!(c.parent(), p);
        assert_eq!(c.switch(21), 7);
        assert!(c.is_dead() && p.is_dead());
    });
}

#[test]
fn panic_in_a_greenlet_is_raised_in_its_parent() {
    on_thread(|| {
        let g = spawn(|_| {
            let _ = current();
            panic!("boom in greenlet");
        });
        let err = panic::catch_unwind(AssertUnwindSafe(|| g.switch(0))).unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in greenlet"));
        assert!(g.is_dead());
        // The thread keeps working.
        let h = spawn(|v| v + 1);
        assert_eq!(h.switch(1), 2);
    });
}

#[test]
fn switch_to_self_returns_the_value() {
    on_thread(|| {
        let main = current();
        assert_eq!(main.switch(3), 3);
        let g = spawn(|v| current().switch(v + 1));
        assert_eq!(g.switch(1), 2);
    });
}

#[test]
fn a_switch_to_the_running_greenlet_through_the_core_api_resumes_at_once() {
    on_thread(|| {
        let main = current();
        let ctx = Box::into_raw(Box::new(crate::SwitchContext::new()));
        let stack = main.stack_raw();
        // SAFETY: `main` is this thread's running greenlet; `ctx` is a live context of this thread.
        let r = unsafe { crate::switch(ctx, stack, stack) };
        assert_eq!(r, Ok(crate::SwitchOutcome::Resumed));
        assert_eq!(main.saved_bytes(), 0);
        // SAFETY: allocated just above.
        drop(unsafe { Box::from_raw(ctx) });
    });
}
