//! How many cores one forward pass of the encoder may use.
//!
//! A forward pass is ~60 parallel steps (products, LayerNorms, GELU, attention). For a
//! batch that is how two cores share the work. For a short query (~12 tokens) each step
//! is a few microseconds, and handing steps to the other core costs more than it saves:
//! on the Xeon of session 10 one query took 1.94 ms of CPU (1.26 ms wall) split across
//! both cores and 1.35 ms of CPU (1.37 ms wall) on one. A server answering many searches
//! at once pays the 0.6 ms per query out of other requests, so a small input runs every
//! step on the calling thread (`on_one_core`).

use std::cell::Cell;

thread_local! {
    static ONE_CORE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every parallel step of the encoder on the calling thread.
pub(crate) fn on_one_core<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ONE_CORE.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(ONE_CORE.with(|flag| flag.replace(true)));
    f()
}

/// Whether this thread is inside `on_one_core`.
pub(crate) fn one_core() -> bool {
    ONE_CORE.with(Cell::get)
}

/// The fewest items a rayon task may take (`with_min_len`): all of them inside
/// `on_one_core`, so the iterator never splits and never leaves the calling thread.
pub(crate) fn min_len() -> usize {
    if one_core() { usize::MAX } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn steps_inside_on_one_core_run_on_the_calling_thread_and_the_flag_is_restored() {
        let caller = std::thread::current().id();
        let threads: Vec<_> = on_one_core(|| {
            (0..10_000).into_par_iter().with_min_len(min_len()).map(|_| std::thread::current().id()).collect()
        });
        assert!(threads.iter().all(|&t| t == caller));
        assert!(!one_core(), "the flag is restored after the call");
        let _ = std::panic::catch_unwind(|| on_one_core(|| panic!("a step failed")));
        assert!(!one_core(), "and after a panic");
    }
}
