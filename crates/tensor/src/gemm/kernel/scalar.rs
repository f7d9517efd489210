//! The portable kernel: plain `f32` lanes. It runs everywhere and is the
//! fallback when no SIMD ISA is detected.

use super::{fma_chains, tile_body, tile_body_packing_b, Edge, MicroKernel, Simd, Tile};
use crate::gemm::Kernel;

// SAFETY: plain f32 arithmetic needs no ISA; load/store read or write one
// float, which the trait's contract guarantees is valid.
unsafe impl Simd for f32 {
    const LANES: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees `p` points at a valid float.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees `p` points at a valid float.
        unsafe { *p = self }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // Unfused: a software fma would be far slower on CPUs without one.
        self * b + c
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    unsafe fn load_first(_p: *const f32, _n: usize) -> Self {
        // One lane: `n < 1` reads nothing.
        0.0
    }
    #[inline(always)]
    unsafe fn store_first(self, _p: *mut f32, _n: usize) {}
    #[inline(always)]
    unsafe fn relu(self) -> Self {
        super::relu(self)
    }
}

/// 4×4: 16 accumulators fit the 16 registers of x86-64 SSE and leave the
/// optimiser room; it is the fallback, not the fast path.
const MR: usize = 4;
const NV: usize = 4;

/// # Safety
/// `t` satisfies the micro-kernel contract for packed operands.
unsafe fn packed(t: &Tile) {
    // SAFETY: forwarded from the caller; scalar code needs no ISA.
    unsafe { tile_body::<f32, MR, NV>(t, 1, MR, NV) }
}

/// # Safety
/// `t` satisfies the micro-kernel contract with its own strides.
unsafe fn strided(t: &Tile) {
    // SAFETY: forwarded from the caller; scalar code needs no ISA.
    unsafe { tile_body::<f32, MR, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// # Safety
/// `t` and `b_copy` satisfy [`MicroKernel::packing_b`]'s contract.
unsafe fn packing_b(t: &Tile, b_copy: *mut f32) {
    // SAFETY: forwarded from the caller; scalar code needs no ISA.
    unsafe { tile_body_packing_b::<f32, MR, NV>(t, t.a_rs, t.a_cs, b_copy) }
}

pub(super) fn kernel() -> MicroKernel {
    MicroKernel {
        kind: Kernel::Scalar,
        mr: MR,
        nr: NV,
        lanes: 1,
        kc: 256, // A and B micro-panels: 8 KiB in L1d
        mc: 128, // A block: 128 KiB, a quarter of L2
        nc: 4096,
        packed,
        strided,
        packing_b,
        a_in_place: false,
        edges: &[Edge {
            rows: 2,
            cols: NV,
            run: short2,
        }],
        // Lanes along K need more than one lane.
        dots: &[],
        fma_loop,
        fma_flops: FMA_CHAINS * 2, // one lane, mul + add
    }
}

/// Independent FMA chains in the peak probe: latency × ports, with room to spare.
const FMA_CHAINS: usize = 8;

/// # Safety
/// The kernel's ISA is available.
unsafe fn fma_loop(iters: usize) -> f32 {
    // SAFETY: scalar code needs no ISA.
    unsafe { fma_chains::<f32, FMA_CHAINS>(iters) }
}

/// A 2-row tile for a last, short row panel.
///
/// # Safety
/// As `strided`.
unsafe fn short2(t: &Tile) {
    // SAFETY: scalar code needs no ISA; contract forwarded.
    unsafe { tile_body::<f32, 2, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}
