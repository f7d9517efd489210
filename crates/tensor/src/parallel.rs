//! The size threshold for running elementwise and reduction work on rayon.

/// Elementwise and reduction work on fewer elements than this runs on the
/// calling thread: below it, handing work to rayon costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Elements per parallel task: large enough to amortise scheduling, and fixed
/// (not derived from the thread count) so results never depend on it.
pub(crate) const CHUNK: usize = 1 << 14;

/// Whether work over `n` elements is worth splitting.
pub(crate) fn worth_splitting(n: usize) -> bool {
    n >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1
}
