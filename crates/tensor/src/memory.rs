//! How much memory tensors hold: now, and at most since the last reset.
//!
//! Every tensor's values live in one storage buffer, shared by its views;
//! these counters add a buffer's bytes (padding included) when a tensor
//! first takes it and subtract them when the last tensor using it is
//! dropped. Buffers waiting to be reused (see `recycle.rs`) and the GEMM's
//! packing scratch are not counted: like PyTorch's
//! `torch.cuda.memory_allocated`, this is what tensors use, not what the
//! process has mapped.
//!
//! The counters are process-wide, so a measurement is only meaningful while
//! nothing else in the process creates tensors. That is what a training
//! loop can use to size a batch before running it: measure one step at two
//! small batch sizes and extrapolate.
//!
//! ```
//! use ember_tensor::{memory, Tensor};
//!
//! let before = memory::allocated_bytes();
//! memory::reset_peak();
//! let t = Tensor::zeros(&[1000, 1000]);
//! assert!(memory::peak_bytes() >= before + 4_000_000);
//! drop(t);
//! assert!(memory::peak_bytes() >= before + 4_000_000); // the peak stays
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes held by tensors now.
pub fn allocated_bytes() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// The most bytes tensors held at once since the last [`reset_peak`] (or
/// since the process started).
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak from what tensors hold now.
pub fn reset_peak() {
    PEAK.store(allocated_bytes(), Ordering::Relaxed);
}

/// A tensor took a buffer of `bytes`.
pub(crate) fn taken(bytes: usize) {
    let now = ALLOCATED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// The last tensor using a buffer of `bytes` was dropped.
pub(crate) fn released(bytes: usize) {
    ALLOCATED.fetch_sub(bytes, Ordering::Relaxed);
}
