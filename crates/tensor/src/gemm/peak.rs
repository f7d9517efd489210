//! The machine's peak FMA throughput: the yardstick GEMM speed is judged by.

use std::time::{Duration, Instant};

use super::kernel::MicroKernel;
use super::Kernel;

/// Independent FMA chains in a kernel's instruction set, run on a number of
/// threads of the current rayon pool: what the FMA units do with no memory
/// in the way. A probe is sized once ([`FmaProbe::new`]) and then timed as
/// often as wanted ([`FmaProbe::gflops`]), so a benchmark can time it
/// between its own batches and compare both under the same conditions (on
/// a shared virtual machine the speed of a core drifts by tens of percent
/// from one second to the next).
///
/// ```
/// use std::time::Duration;
/// use ember_tensor::gemm::{FmaProbe, Kernel};
///
/// let probe = FmaProbe::new(Kernel::Scalar, 1, Duration::from_millis(5));
/// assert!(probe.gflops() > 0.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FmaProbe {
    kern: MicroKernel,
    threads: usize,
    iters: usize,
}

impl FmaProbe {
    /// A probe of `kernel`'s FMAs on `threads` threads (at least 1), each
    /// run lasting about `duration` or more.
    ///
    /// # Panics
    /// If the CPU cannot run `kernel`.
    pub fn new(kernel: Kernel, threads: usize, duration: Duration) -> FmaProbe {
        let kern = MicroKernel::new(kernel).unwrap_or_else(|| {
            panic!(
                "FmaProbe::new: this CPU cannot run the {} kernel",
                kernel.name()
            )
        });
        let mut probe = FmaProbe {
            kern,
            threads: threads.max(1),
            iters: 1 << 12,
        };
        // Grow the round count until one run takes long enough to time.
        while probe.time() < duration {
            probe.iters *= 2;
        }
        probe
    }

    /// One run, in GFLOP/s by the wall clock.
    pub fn gflops(&self) -> f64 {
        let flops = self.threads * self.iters * self.kern.fma_flops;
        flops as f64 / self.time().as_secs_f64() / 1e9
    }

    /// The wall-clock time of one run.
    fn time(&self) -> Duration {
        let start = Instant::now();
        let (kern, iters) = (self.kern, self.iters);
        rayon::scope(|s| {
            for _ in 0..self.threads {
                s.spawn(move |_| {
                    std::hint::black_box(kern.fma_loop(iters));
                });
            }
        });
        start.elapsed()
    }
}

/// Measures the peak single-precision throughput, in GFLOP/s, of independent
/// FMA chains in `kernel`'s instruction set on `threads` threads of the
/// current rayon pool (best of three runs of 50 ms or more).
///
/// ```
/// use ember_tensor::gemm::{fma_peak_gflops, Kernel};
/// assert!(fma_peak_gflops(Kernel::Scalar, 1) > 0.0);
/// ```
///
/// # Panics
/// If the CPU cannot run `kernel`.
pub fn fma_peak_gflops(kernel: Kernel, threads: usize) -> f64 {
    let probe = FmaProbe::new(kernel, threads, Duration::from_millis(50));
    (0..3).map(|_| probe.gflops()).fold(0.0, f64::max)
}
