//! AVX-512F: 16-lane `__m512` vectors, a 12×32 register tile.

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{fma_chains, tile_body, MicroKernel, Simd, Tile};
use crate::gemm::Kernel;

// SAFETY: every method is only called from the `#[target_feature(enable =
// "avx512f")]` shells below, which run only after detection succeeded.
unsafe impl Simd for __m512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX-512F is available and `p` has 16 valid floats (trait contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX-512F is available and `p` has 16 writable floats (trait contract).
        unsafe { _mm512_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract).
        unsafe { _mm512_add_ps(self, b) }
    }
}

/// 12 rows × 2 vectors: 24 accumulators + 2 B vectors + 1 broadcast of the 32
/// zmm registers; 24 independent FMAs cover 2 ports × 4-cycle latency 3× over.
const MR: usize = 12;
const NV: usize = 2;

/// # Safety
/// AVX-512F is available; `t` satisfies the contract for packed operands.
#[target_feature(enable = "avx512f")]
unsafe fn packed(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m512, MR, NV>(t, 1, MR, NV * 16) }
}

/// # Safety
/// AVX-512F is available; `t` satisfies the contract with its strides.
#[target_feature(enable = "avx512f")]
unsafe fn strided(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m512, MR, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// The AVX-512F kernel, if this CPU has it.
pub(super) fn kernel() -> Option<MicroKernel> {
    if !is_x86_feature_detected!("avx512f") {
        return None;
    }
    Some(MicroKernel {
        kind: Kernel::Avx512,
        mr: MR,
        nr: NV * 16,
        kc: 384,  // B micro-panel 48 KiB streams through L1d; A micro-panel 18 KiB stays
        mc: 240,  // A block 240×384×4 = 360 KiB: inside a 1 MiB L2
        nc: 3072, // B block 384×3072×4 = 4.5 MiB: shared L3
        packed,
        strided,
        short: &[(4, short4), (8, short8)],
        fma_loop,
        fma_flops: FMA_CHAINS * 16 * 2, // 16 lanes, 2 flops per FMA
    })
}

/// Independent FMA chains in the peak probe: latency × ports, with room to spare.
const FMA_CHAINS: usize = 24;

/// # Safety
/// The kernel's ISA is available.
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop(iters: usize) -> f32 {
    // SAFETY: avx512f enabled on this function.
    unsafe { fma_chains::<__m512, FMA_CHAINS>(iters) }
}

/// A 4-row tile for a last, short row panel.
///
/// # Safety
/// As `strided`.
#[target_feature(enable = "avx512f")]
unsafe fn short4(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m512, 4, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// A 8-row tile for a last, short row panel.
///
/// # Safety
/// As `strided`.
#[target_feature(enable = "avx512f")]
unsafe fn short8(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m512, 8, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}
