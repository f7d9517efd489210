//! What a gradient averager measures: plain data, the same with or without MPI.

/// Time spent communicating, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommStats {
    /// Steps averaged.
    pub steps: u64,
    /// Seconds in backward passes, communication started inside included.
    pub backward_seconds: f64,
    /// Seconds waiting for all-reduces after backward ended: the part of
    /// communication not hidden behind backward.
    pub exposed_seconds: f64,
}
