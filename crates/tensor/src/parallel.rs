//! The size threshold for running elementwise and reduction work on rayon.

/// Elementwise and reduction work on fewer elements than this runs on the
/// calling thread: below it, handing work to rayon costs more than it saves
/// (a pass over 2¹⁸ floats takes ≈ 50 µs, about what waking a sleeping
/// worker can cost; at 2¹⁶ the small MLP's weight updates and gradient sums
/// were split, and its 2-thread step was slower than the 1-thread one).
pub const PARALLEL_THRESHOLD: usize = 1 << 18;

/// Elements per parallel task: large enough to amortise scheduling, and fixed
/// (not derived from the thread count) so results never depend on it.
pub(crate) const CHUNK: usize = 1 << 14;

/// Whether work over `n` elements is worth splitting.
pub(crate) fn worth_splitting(n: usize) -> bool {
    n >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1
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
