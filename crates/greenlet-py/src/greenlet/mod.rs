//! The implementation object behind every `greenlet.greenlet` instance (the `pimpl` at
//! byte offset 32 of the Python object), and the questions one can ask it.
//!
//! Upstream distinguishes `UserGreenlet`, `MainGreenlet` and `BrokenGreenlet` (a test
//! double) with C++ subclasses; here one struct carries a [`Kind`].

use crate::exception_state::ExceptionState;
use crate::globals::globals;
use crate::python_state::PythonState;
use crate::thread_state::{self, ThreadState};
use crate::util::{GilCell, PyErrSet, PyResult, clear_owned, set_error};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use greenlet_core::StackState;
use pyo3_ffi::{PyObject, visitproc};
use std::ffi::c_void;

mod attributes;

/// The Python-visible object. Its size (40 bytes on 64-bit GIL builds) and field offsets
/// are ABI: gevent's Cython classes subclass it in C and put their own fields after it.
#[repr(C)]
pub(crate) struct PyGreenlet {
    pub(crate) ob_base: PyObject,
    pub(crate) weakreflist: *mut PyObject,
    pub(crate) dict: *mut PyObject,
    pub(crate) pimpl: *mut Greenlet,
}

impl PyGreenlet {
    /// A short shared borrow of the implementation of the greenlet `this`.
    ///
    /// # Safety
    /// `this` points at a live greenlet after `tp_new`, and the borrow ends before
    /// anything that can run Python code (which could reach the same greenlet).
    #[inline(always)]
    pub(crate) unsafe fn imp<'a>(this: *mut PyGreenlet) -> &'a Greenlet {
        // SAFETY: a live greenlet (contract), whose `pimpl` is set and live.
        let p = unsafe { (*this).pimpl };
        // SAFETY: as above; the caller keeps the borrow short.
        unsafe { &*p }
    }
}

#[cfg(all(target_pointer_width = "64", not(Py_GIL_DISABLED)))]
const _: () = {
    assert!(core::mem::size_of::<PyGreenlet>() == 40);
    assert!(core::mem::offset_of!(PyGreenlet, weakreflist) == 16);
    assert!(core::mem::offset_of!(PyGreenlet, dict) == 24);
    assert!(core::mem::offset_of!(PyGreenlet, pimpl) == 32);
};

pub(crate) enum Kind {
    /// A greenlet created from Python or C.
    User {
        /// Owned; null only after `tp_clear`.
        parent: *mut PyGreenlet,
        /// Owned; the main greenlet of the thread it started in (null before the start).
        main_greenlet: *mut PyGreenlet,
        /// Owned; `run` before the start, and the callable while it runs.
        run_callable: *mut PyObject,
    },
    /// The greenlet standing for a thread's original stack.
    Main {
        /// Null once the thread has exited.
        thread_state: AtomicPtr<ThreadState>,
    },
}

/// Laid out (`repr(C)`) so that what the garbage collector reads on every traversal
/// (`kind`'s references, the exception state, `python`'s context) fills the first 64
/// bytes (3.11+): with 100,000 suspended greenlets a full collection is bound by cache
/// misses on these objects, and one line instead of several halves its time (12.4 ->
/// 6.5 ms).
#[repr(C)]
pub(crate) struct Greenlet {
    pub(crate) kind: Kind,
    pub(crate) exception: ExceptionState,
    pub(crate) python: PythonState,
    /// Back-pointer to the Python object (borrowed).
    pub(crate) self_: *mut PyGreenlet,
    pub(crate) stack: StackState,
    /// Pending switch arguments (owned). Both null with an exception set means "throw".
    pub(crate) args: *mut PyObject,
    pub(crate) kwargs: *mut PyObject,
    /// Failures on demand, set only through `UnswitchableGreenlet` (a test double); kept
    /// out of [`Kind`] so that production code never matches on them.
    pub(crate) test_hooks: TestHooks,
    /// This greenlet's own stack policy (`stack=` / `gr_stack`), encoded by
    /// [`crate::stacks::encode_choice`]; 0 for none.
    pub(crate) stack_choice: usize,
    /// What `auto` learns from this greenlet's switches: its kind's stats, set at its start
    /// when `auto` applied to it.
    pub(crate) stack_kind: Option<&'static crate::stacks::KindStats>,
    /// How many releases of killed greenlets' results are running in this greenlet, one
    /// inside the other (see `switch::throw`'s `release_kill_result`).
    pub(crate) kill_release_depth: u32,
}

/// The switch failures `greenlet._greenlet.UnswitchableGreenlet` can ask for (upstream's
/// `BrokenGreenlet`). Both false for every other greenlet.
#[derive(Clone, Copy, Default)]
pub(crate) struct TestHooks {
    /// Fail the switch at the Python level (`force_switch_error`).
    pub(crate) fail_switch: bool,
    /// Fail the low-level stack switch, which is fatal (`force_slp_switch_error`).
    pub(crate) fail_stack_switch: bool,
}

// The collector's fields fit the first 64 bytes (see [`Greenlet`]); `python` starts with
// its context. (On 3.10 the exception state holds three objects and the context moves to
// the second line.)
#[cfg(Py_3_11)]
const _: () = assert!(core::mem::offset_of!(Greenlet, python) <= 56);

/// Number of live main greenlets (a test hook: `get_total_main_greenlets`).
pub(crate) static TOTAL_MAIN_GREENLETS: core::sync::atomic::AtomicIsize =
    core::sync::atomic::AtomicIsize::new(0);

/// Implementation objects of freed greenlets, kept (uninitialised) for the next ones, so
/// that creating and freeing a greenlet does not go through `malloc` and `free`.
static FREE_IMPLS: GilCell<Vec<*mut Greenlet>> = GilCell::new(Vec::new());

/// At most this many are kept (about 60 KiB).
const FREE_IMPLS_LIMIT: usize = 256;

impl Greenlet {
    /// A new user greenlet's implementation, from the free list if it has one.
    ///
    /// # Safety
    /// The GIL is held.
    pub(crate) unsafe fn alloc_user(self_: *mut PyGreenlet, parent: *mut PyGreenlet) -> *mut Self {
        let value = Self::user_value(self_, parent);
        // SAFETY: the GIL is held (contract), which serialises every use of the free list.
        let pool = unsafe { FREE_IMPLS.get() };
        // SAFETY: as above: this is the only borrow of the list, and it ends here.
        let pool = unsafe { &mut *pool };
        match pool.pop() {
            Some(p) => {
                // SAFETY: an entry is an allocation of a `Greenlet` whose contents were
                // dropped, so writing a new value into it is sound.
                unsafe { ptr::write(p, value) };
                p
            }
            None => Box::into_raw(Box::new(value)),
        }
    }

    /// Drops the implementation `p` and keeps its allocation for [`Self::alloc_user`].
    ///
    /// # Safety
    /// The GIL is held; `p` came from [`Self::alloc_user`] or `Box::into_raw` of
    /// [`Self::new_main`] and is not used afterwards.
    pub(crate) unsafe fn free(p: *mut Self) {
        // SAFETY: `p` is a live implementation nobody uses afterwards (contract).
        unsafe { ptr::drop_in_place(p) };
        // SAFETY: the GIL is held (contract), which serialises every use of the free list.
        let pool = unsafe { FREE_IMPLS.get() };
        // SAFETY: as above: this is the only borrow of the list, and it ends here.
        let pool = unsafe { &mut *pool };
        if pool.len() < FREE_IMPLS_LIMIT {
            pool.push(p);
        } else {
            // SAFETY: allocated with this layout (by `Box`), and its contents are dropped.
            unsafe { std::alloc::dealloc(p.cast(), std::alloc::Layout::new::<Self>()) };
        }
    }

    fn user_value(self_: *mut PyGreenlet, parent: *mut PyGreenlet) -> Self {
        Self {
            self_,
            stack: StackState::unstarted(),
            python: PythonState::new(),
            exception: ExceptionState::new(),
            args: ptr::null_mut(),
            kwargs: ptr::null_mut(),
            test_hooks: TestHooks::default(),
            stack_choice: 0,
            stack_kind: None,
            kill_release_depth: 0,
            kind: Kind::User {
                parent,
                main_greenlet: ptr::null_mut(),
                run_callable: ptr::null_mut(),
            },
        }
    }

    pub(crate) fn new_main(self_: *mut PyGreenlet, state: *mut ThreadState) -> Box<Self> {
        TOTAL_MAIN_GREENLETS.fetch_add(1, Ordering::Relaxed);
        Box::new(Self {
            self_,
            stack: StackState::main(),
            python: PythonState::new(),
            exception: ExceptionState::new(),
            args: ptr::null_mut(),
            kwargs: ptr::null_mut(),
            test_hooks: TestHooks::default(),
            stack_choice: 0,
            stack_kind: None,
            kill_release_depth: 0,
            kind: Kind::Main {
                thread_state: AtomicPtr::new(state),
            },
        })
    }

    #[inline(always)]
    pub(crate) fn is_main(&self) -> bool {
        matches!(self.kind, Kind::Main { .. })
    }

    #[inline(always)]
    pub(crate) fn started(&self) -> bool {
        self.stack.started()
    }

    #[inline(always)]
    pub(crate) fn active(&self) -> bool {
        self.stack.active()
    }

    /// The main greenlet of the thread this greenlet runs in (itself for a main greenlet);
    /// null for a user greenlet that has not started.
    #[inline(always)]
    pub(crate) fn main_greenlet(&self) -> *mut PyGreenlet {
        match self.kind {
            Kind::User { main_greenlet, .. } => main_greenlet,
            Kind::Main { .. } => self.self_,
        }
    }

    #[inline(always)]
    pub(crate) fn parent(&self) -> *mut PyGreenlet {
        match self.kind {
            Kind::User { parent, .. } => parent,
            Kind::Main { .. } => ptr::null_mut(),
        }
    }

    /// The owning thread's state, or null if the greenlet never started or its thread
    /// has exited.
    #[inline(always)]
    pub(crate) fn thread_state(&self) -> *mut ThreadState {
        match &self.kind {
            Kind::Main { thread_state } => thread_state.load(Ordering::Relaxed),
            Kind::User { main_greenlet, .. } => {
                if main_greenlet.is_null() {
                    ptr::null_mut()
                } else {
                    // SAFETY: we own a reference to the main greenlet, whose pimpl lives as
                    // long as the object; a flag read.
                    unsafe { PyGreenlet::imp(*main_greenlet) }.thread_state()
                }
            }
        }
    }

    /// Started in a thread that has since exited.
    #[inline]
    pub(crate) fn was_running_in_dead_thread(&self) -> bool {
        match &self.kind {
            Kind::Main { thread_state } => thread_state.load(Ordering::Relaxed).is_null(),
            Kind::User { main_greenlet, .. } => {
                !main_greenlet.is_null() && self.thread_state().is_null()
            }
        }
    }

    /// Running right now in some thread (active, with no saved frame).
    pub(crate) fn is_currently_running_in_some_thread(&self) -> bool {
        self.active() && self.python.top_frame().is_null()
    }

    /// Walks the parents to the main greenlet this greenlet would run under.
    pub(crate) fn find_main_greenlet_in_lineage(&self) -> *mut PyGreenlet {
        let mut g: *const Greenlet = self;
        loop {
            // SAFETY: parents are owned references, so each pimpl is alive.
            let gr = unsafe { &*g };
            match gr.kind {
                Kind::Main { .. } => return gr.self_,
                Kind::User {
                    parent,
                    main_greenlet,
                    ..
                } => {
                    if gr.started() {
                        return main_greenlet;
                    }
                    if parent.is_null() {
                        return ptr::null_mut();
                    }
                    // SAFETY: as above.
                    g = unsafe { (*parent).pimpl };
                }
            }
        }
    }

    /// Drops pending switch arguments.
    ///
    /// # Safety
    /// The GIL is held; `this` points at a live implementation, and the caller holds no
    /// reference into it (dropping runs code that may reach it).
    #[inline]
    pub(crate) unsafe fn release_args(this: *mut Self) {
        // SAFETY: a live implementation (contract); no borrow is created.
        let args = unsafe { &raw mut (*this).args };
        // SAFETY: an owned reference, taken out before it is released; no borrow of the
        // greenlet is live (contract).
        unsafe { clear_owned(args) };
        // SAFETY: as for `args` (reached again through `this`: the release may have run
        // code).
        let kwargs = unsafe { &raw mut (*this).kwargs };
        // SAFETY: as for `args`.
        unsafe { clear_owned(kwargs) };
    }

    #[inline(always)]
    pub(crate) fn has_args(&self) -> bool {
        !self.args.is_null() || !self.kwargs.is_null()
    }

    /// Checks that a switch into this greenlet from the current thread is possible.
    ///
    /// # Safety
    /// The GIL is held.
    pub(crate) unsafe fn check_switch_allowed(&self) -> PyResult<()> {
        let g = globals();
        let my_main = self.find_main_greenlet_in_lineage();
        if my_main.is_null() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    g.greenlet_error,
                    c"cannot switch to a garbage collected greenlet",
                )
            });
        }
        // SAFETY: `my_main` is a live main greenlet (owned by someone in the lineage).
        let my_main_impl = unsafe { PyGreenlet::imp(my_main) };
        if my_main_impl.thread_state().is_null() {
            // SAFETY: GIL held.
            return Err(unsafe {
                set_error(
                    g.greenlet_error,
                    c"cannot switch to a different thread (which happens to have exited)",
                )
            });
        }
        // SAFETY: GIL held.
        let state = unsafe { thread_state::current()? };
        // SAFETY: the thread state is live while its thread runs.
        let cur_main = unsafe { &*state }.main_greenlet();
        // SAFETY: the current thread's main greenlet is alive.
        let cur_main_dead = unsafe { PyGreenlet::imp(cur_main) }
            .thread_state()
            .is_null();
        if cur_main != my_main || cur_main_dead {
            // SAFETY: GIL held; `%R` takes borrowed objects.
            unsafe {
                pyo3_ffi::PyErr_Format(
                    g.greenlet_error,
                    c"Cannot switch to a different thread\n\tCurrent:  %R\n\tExpected: %R".as_ptr(),
                    cur_main,
                    my_main,
                );
            }
            return Err(PyErrSet);
        }
        Ok(())
    }

    /// Forgets the greenlet's stack and frames without running any of its code: used when
    /// it can never run again (its thread is gone, or the interpreter is finalizing).
    ///
    /// # Safety
    /// The GIL is held, the greenlet is not running, `this` points at a live
    /// implementation, and the caller holds no reference into it.
    pub(crate) unsafe fn deactivate_and_free(this: *mut Self) {
        let cleared = {
            // SAFETY: live (contract); the borrow ends with this block, before the
            // references taken out are released.
            let me = unsafe { &mut *this };
            if !me.active() {
                return;
            }
            // Frames left in place on its own stack must not point into it once it is gone.
            // SAFETY: GIL held; a suspended greenlet (not running, contract) whose stack is
            // still mapped: only the reset below gives it up.
            #[cfg(Py_3_12)]
            unsafe {
                me.python.expose_if_left()
            };
            me.stack.reset();
            me.python.take_for_clear(true)
        };
        // SAFETY: GIL held; no borrow of the greenlet is live.
        unsafe { cleared.release() };
    }

    /// # Safety
    /// As for [`Self::deactivate_and_free`].
    pub(crate) unsafe fn murder_in_place(this: *mut Self) {
        // SAFETY: live (contract); the field is written before its old value is released.
        unsafe { Self::clear_user_field(this, UserField::MainGreenlet) };
        // SAFETY: live (contract); a short read.
        if unsafe { (*this).active() } {
            // SAFETY: forwarded.
            unsafe { Self::deactivate_and_free(this) };
        }
    }

    /// Clears one owned field of a user greenlet through a borrow that ends before the
    /// old reference is released (a main greenlet has none).
    ///
    /// # Safety
    /// As for [`Self::deactivate_and_free`].
    #[inline]
    unsafe fn clear_user_field(this: *mut Self, which: UserField) {
        let none = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: live (contract); the borrow of `kind` ends with the statement.
        let (greenlet, object): (*mut *mut PyGreenlet, *mut *mut PyObject) =
            match (unsafe { &mut (*this).kind }, which) {
                (Kind::User { parent, .. }, UserField::Parent) => (parent, none.1),
                (Kind::User { main_greenlet, .. }, UserField::MainGreenlet) => {
                    (main_greenlet, none.1)
                }
                (Kind::User { run_callable, .. }, UserField::RunCallable) => (none.0, run_callable),
                (Kind::Main { .. }, _) => return,
            };
        if greenlet.is_null() {
            // SAFETY: GIL held; the slot is a field of a live greenlet and owns its value.
            unsafe { clear_owned(object) };
        } else {
            // SAFETY: as above.
            unsafe { clear_owned(greenlet) };
        }
    }

    /// # Safety
    /// Called from `tp_traverse`.
    pub(crate) unsafe fn traverse(&self, visit: visitproc, arg: *mut c_void) -> i32 {
        macro_rules! visit {
            ($p:expr) => {
                let p: *mut PyObject = $p.cast();
                if !p.is_null() {
                    // SAFETY: a GC visit of a reference we own.
                    let r = unsafe { visit(p, arg) };
                    if r != 0 {
                        return r;
                    }
                }
            };
        }
        match &self.kind {
            Kind::User {
                parent,
                main_greenlet,
                run_callable,
                ..
            } => {
                visit!(*parent);
                visit!(*main_greenlet);
                visit!(*run_callable);
            }
            Kind::Main { thread_state } => {
                let state = thread_state.load(Ordering::Relaxed);
                if !state.is_null() {
                    // SAFETY: the thread state is alive while the pointer is set.
                    let state = unsafe { &*state };
                    // SAFETY: forwarded (called from `tp_traverse`).
                    let r = unsafe { state.traverse(visit, arg) };
                    if r != 0 {
                        return r;
                    }
                }
            }
        }
        // SAFETY: forwarded.
        let r = unsafe { self.exception.traverse(visit, arg) };
        if r != 0 {
            return r;
        }
        let visit_top_frame = self.was_running_in_dead_thread();
        // SAFETY: forwarded.
        unsafe { self.python.traverse(visit, arg, visit_top_frame) }
    }

    /// `tp_clear`: drops every reference the implementation owns, each taken out of its
    /// field before it is released (code run by a release sees consistent fields).
    ///
    /// # Safety
    /// As for [`Self::deactivate_and_free`].
    pub(crate) unsafe fn clear(this: *mut Self) {
        // Each borrow below ends before the references it took out are released, and each
        // step reaches the greenlet again through `this` (a release may have run code).
        // SAFETY: live (contract); a short read.
        let own_top_frame = unsafe { (*this).was_running_in_dead_thread() };
        // SAFETY: live; the borrow ends with the statement.
        let exception = unsafe { (*this).exception.take_for_clear() };
        // SAFETY: GIL held; no borrow of the greenlet is live.
        unsafe { exception.release() };
        // SAFETY: live; the borrow ends with the statement.
        let python = unsafe { (*this).python.take_for_clear(own_top_frame) };
        // SAFETY: as for `exception`.
        unsafe { python.release() };
        // SAFETY: live (contract), not borrowed here.
        unsafe { Self::clear_user_field(this, UserField::Parent) };
        // SAFETY: as above.
        unsafe { Self::clear_user_field(this, UserField::MainGreenlet) };
        // SAFETY: as above.
        unsafe { Self::clear_user_field(this, UserField::RunCallable) };
    }
}

/// The owned fields of [`Kind::User`], for [`Greenlet::clear_user_field`].
#[derive(Clone, Copy)]
enum UserField {
    Parent,
    MainGreenlet,
    RunCallable,
}

impl Drop for Greenlet {
    fn drop(&mut self) {
        if self.is_main() {
            TOTAL_MAIN_GREENLETS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
