//! In steady state a GEMM allocates nothing: packing buffers are thread-local
//! and reused, and threads are joined without boxing jobs. A counting
//! allocator (this test binary's own) checks it on the calling thread (with
//! `Threads(2)`, the workers' first calls grow their own buffers once too).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ember_tensor::gemm::{gemm, MatMut, MatRef, Parallelism};

thread_local! {
    /// Allocations made by this thread (const-initialised: no allocation to set up).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_state_gemm_allocates_nothing() {
    // Small (in place), packed, transposed B (and a Linear forward, which
    // runs as Cᵀ through a scratch on kernels that read A in place), and
    // skinny products.
    let seq = Parallelism::Sequential;
    for (m, k, n, b_t, par) in [
        (64, 64, 64, false, seq),
        (300, 600, 280, true, seq),
        (128, 784, 512, true, seq),
        (128, 512, 10, false, seq),
        (300, 600, 280, false, Parallelism::Threads(2)),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let (brs, bcs) = if b_t { (1, k) } else { (n, 1) };
        let mut call = || {
            gemm(
                1.0,
                MatRef::new(&a, m, k, k, 1),
                MatRef::new(&b, k, n, brs, bcs),
                0.0,
                MatMut::new(&mut c, m, n, n, 1),
                par,
            )
        };
        call(); // grows the buffers once
        let before = allocations();
        call();
        call();
        assert_eq!(
            allocations(),
            before,
            "{m}×{k}×{n} allocated in steady state"
        );
        assert!(c.iter().all(|&x| x == 0.5 * 0.25 * k as f32));
    }
}
