//! Switching tests that need no Python, run against a tiny test runtime ([`runtime`]) that uses the
//! crate the way the binding does.

mod runtime;

mod cost;
#[cfg(unix)]
mod dedicated;
mod fpu;
mod many;
mod oom;
mod stacks;
mod switching;
mod threads;
#[cfg(all(target_arch = "x86_64", windows))]
mod win64_registers;
