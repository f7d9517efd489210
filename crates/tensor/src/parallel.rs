//! When work is worth splitting across rayon's threads, and keeping the
//! pool's workers awake through a training loop.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Elementwise and reduction work on fewer elements than this runs on the
/// calling thread: below it, handing work to rayon costs more than it
/// saves. A pass over 2¹⁸ floats takes ≈ 50 µs, about what waking a
/// sleeping worker can cost (at 2¹⁶ the small MLP's weight updates and
/// gradient sums were split, and its 2-thread step was slower than the
/// 1-thread one). Inside [`with_workers_awake`] nobody sleeps, and the
/// threshold is [`AWAKE_THRESHOLD`].
pub const PARALLEL_THRESHOLD: usize = 1 << 18;

/// The threshold while the workers are kept awake: a split then costs a few
/// microseconds (small MLP, 2 threads: 310,000–321,000 samples/s with
/// 2¹⁸, 378,000–386,000 with 2¹⁶).
pub const AWAKE_THRESHOLD: usize = 1 << 16;

/// Elements per parallel task: large enough to amortise scheduling, and fixed
/// (not derived from the thread count) so results never depend on it.
pub(crate) const CHUNK: usize = 1 << 14;

/// How many [`with_workers_awake`] calls are running, in the whole process.
static AWAKE: AtomicUsize = AtomicUsize::new(0);

/// Whether some [`with_workers_awake`] keeps the pool's workers polling now.
pub(crate) fn workers_awake() -> bool {
    AWAKE.load(Ordering::Relaxed) > 0
}

/// Whether elementwise work over `n` elements is worth splitting across the
/// current pool: [`PARALLEL_THRESHOLD`] or, while the workers are kept
/// awake, [`AWAKE_THRESHOLD`] elements, and more than one thread. Only
/// *whether* work is split depends on it, never the result.
pub fn worth_splitting(n: usize) -> bool {
    let threshold = if workers_awake() {
        AWAKE_THRESHOLD
    } else {
        PARALLEL_THRESHOLD
    };
    n >= threshold && rayon::current_num_threads() > 1
}

/// Runs `f` on a thread pool of its own with `threads` threads, so that
/// every parallel operation inside it uses exactly that many: how tests
/// check that a result is the same, bit for bit, on 1 thread and on 2.
///
/// ```
/// use ember_tensor::{on_threads, Tensor};
///
/// let sum = |threads| on_threads(threads, || Tensor::ones(&[1 << 20]).sum_all());
/// assert_eq!(sum(1).to_bits(), sum(2).to_bits());
/// ```
///
/// # Panics
/// If the pool cannot be started (no threads left in the process), naming
/// the thread count.
#[track_caller]
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap_or_else(|e| panic!("on_threads: cannot start a pool of {threads} threads: {e}"))
        .install(f)
}

/// Runs `f` on this thread while the pool's other workers stay awake,
/// polling for work, instead of going to sleep between parallel operations.
///
/// A training step alternates parallel operations (GEMMs, optimizer
/// updates) with short serial stretches (graph bookkeeping, small ops). A
/// rayon worker with nothing to do sleeps after a few microseconds, and
/// waking it costs tens of microseconds on a virtual machine (a `join` of
/// two 100 µs halves took 110 µs back to back and 170–190 µs after 0.1–1 ms
/// of serial work), paid by every operation of every step. Inside `f` the
/// other workers spin on [`rayon::yield_now`] instead, as OpenMP runtimes
/// do between parallel regions: they take new work at once, at the price
/// of keeping their cores busy until `f` returns; and smaller work is
/// split (see [`worth_splitting`]). Results do not change: only when and
/// whether work is split, never how.
///
/// Call it from a thread of the pool that `f`'s operations run on (inside
/// `ThreadPool::install`, or on a thread that joined the global pool with
/// `use_current_thread`); elsewhere, and on a pool of one thread, it just
/// runs `f`.
///
/// ```
/// use ember_tensor::{on_threads, with_workers_awake, Tensor};
///
/// let sum = on_threads(2, || with_workers_awake(|| Tensor::ones(&[1 << 20]).sum_all()));
/// assert_eq!(sum, (1u32 << 20) as f32);
/// ```
pub fn with_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let Some(driver) = rayon::current_thread_index() else {
        return f();
    };
    let others = rayon::current_num_threads() - 1;
    if others == 0 {
        return f();
    }
    struct Flags {
        stop: AtomicBool,
        finished: AtomicUsize,
    }
    AWAKE.fetch_add(1, Ordering::Relaxed);
    let flags = Arc::new(Flags {
        stop: AtomicBool::new(false),
        finished: AtomicUsize::new(0),
    });
    for _ in 0..others {
        let flags = Arc::clone(&flags);
        rayon::spawn(move || {
            // On the driving thread (it drained its own queue before another
            // worker took this), a spinner would keep `f` from ever ending.
            if rayon::current_thread_index() != Some(driver) {
                while !flags.stop.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            }
            flags.finished.fetch_add(1, Ordering::Release);
        });
    }
    /// Stops the spinners and waits for them, also when `f` panics.
    struct Stop(Arc<Flags>, usize);
    impl Drop for Stop {
        fn drop(&mut self) {
            AWAKE.fetch_sub(1, Ordering::Relaxed);
            self.0.stop.store(true, Ordering::Release);
            while self.0.finished.load(Ordering::Acquire) < self.1 {
                // A spinner still queued here runs (and ends) on this thread.
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        }
    }
    let _stop = Stop(flags, others);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn awake_workers_change_no_result_and_all_stop() {
        let work = || {
            let t = Tensor::arange(1 << 20).map(|x| x * 0.5);
            (0..20).map(|_| t.sum_all().to_bits()).collect::<Vec<u32>>()
        };
        let plain = on_threads(1, work);
        for threads in [1, 2, 3] {
            assert_eq!(on_threads(threads, || with_workers_awake(work)), plain);
            // Nested, and called again at once: nothing left spinning.
            let again = on_threads(threads, || {
                with_workers_awake(|| with_workers_awake(work));
                with_workers_awake(work)
            });
            assert_eq!(again, plain);
        }
        // Outside any pool it only runs `f`.
        assert_eq!(with_workers_awake(|| 7), 7);
    }

    #[test]
    fn a_panic_inside_still_stops_the_workers() {
        let caught = on_threads(2, || {
            std::panic::catch_unwind(|| with_workers_awake(|| panic!("inside")))
        });
        assert!(caught.is_err());
        // The pool is usable afterwards (a spinner left behind would hold a
        // worker, and this would still finish, but the panic must not hang).
        assert_eq!(on_threads(2, || with_workers_awake(|| 1 + 1)), 2);
    }
}
