//! The machine's peak FMA throughput: the yardstick GEMM speed is judged by.

use std::time::{Duration, Instant};

use super::kernel::MicroKernel;
use super::Kernel;

/// Measures the peak single-precision throughput, in GFLOP/s, of independent
/// FMA chains in `kernel`'s instruction set on `threads` threads of the
/// current rayon pool (best of a few runs of about 0.1 s).
///
/// ```
/// use ember_tensor::gemm::{fma_peak_gflops, Kernel};
/// assert!(fma_peak_gflops(Kernel::Scalar, 1) > 0.0);
/// ```
///
/// # Panics
/// If the CPU cannot run `kernel`.
pub fn fma_peak_gflops(kernel: Kernel, threads: usize) -> f64 {
    let kern = MicroKernel::new(kernel).unwrap_or_else(|| {
        panic!(
            "fma_peak_gflops: this CPU cannot run the {} kernel",
            kernel.name()
        )
    });
    let threads = threads.max(1);
    let probe = |iters: usize| {
        let start = Instant::now();
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(move |_| {
                    std::hint::black_box(kern.fma_loop(iters));
                });
            }
        });
        start.elapsed()
    };
    // Grow the round count until one run takes long enough to time.
    let mut iters = 1 << 16;
    while probe(iters) < Duration::from_millis(50) {
        iters *= 2;
    }
    let best = (0..3).map(|_| probe(iters)).min().expect("three runs");
    (threads * iters * kern.fma_flops) as f64 / best.as_secs_f64() / 1e9
}
