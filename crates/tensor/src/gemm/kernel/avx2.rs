//! AVX2 + FMA: 8-lane `__m256` vectors, a 6×16 register tile.

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps,
    _mm256_setzero_ps, _mm256_storeu_ps,
};

use super::{fma_chains, tile_body, MicroKernel, Simd, Tile};
use crate::gemm::Kernel;

// SAFETY: every method is only called from the `#[target_feature(enable =
// "avx2,fma")]` shells below, which run only after detection succeeded.
unsafe impl Simd for __m256 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX is available and `p` has 8 valid floats (trait contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX is available and `p` has 8 writable floats (trait contract).
        unsafe { _mm256_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is available (trait contract).
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_mul_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: AVX is available (trait contract).
        unsafe { _mm256_add_ps(self, b) }
    }
}

/// 6 rows × 2 vectors: 12 accumulators + 2 B vectors + 1 broadcast = 15 of
/// the 16 ymm registers, and 12 independent FMAs cover 2 ports × 5-cycle latency.
const MR: usize = 6;
const NV: usize = 2;

/// # Safety
/// AVX2 and FMA are available; `t` satisfies the contract for packed operands.
#[target_feature(enable = "avx2,fma")]
unsafe fn packed(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, MR, NV>(t, 1, MR, NV * 8) }
}

/// # Safety
/// AVX2 and FMA are available; `t` satisfies the contract with its strides.
#[target_feature(enable = "avx2,fma")]
unsafe fn strided(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, MR, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// The AVX2+FMA kernel, if this CPU has both.
pub(super) fn kernel() -> Option<MicroKernel> {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return None;
    }
    Some(MicroKernel {
        kind: Kernel::Avx2,
        mr: MR,
        nr: NV * 8,
        kc: 256,  // B micro-panel 16 KiB + A micro-panel 6 KiB: in a 32 KiB L1d
        mc: 144,  // A block 144×256×4 = 144 KiB: well inside a 512 KiB L2
        nc: 4080, // B block 256×4080×4 ≈ 4 MiB: half the 8 MiB L3
        packed,
        strided,
        short: &[(2, short2), (4, short4)],
        fma_loop,
        fma_flops: FMA_CHAINS * 8 * 2, // 8 lanes, 2 flops per FMA
    })
}

/// Independent FMA chains in the peak probe: latency × ports, with room to spare.
const FMA_CHAINS: usize = 12;

/// # Safety
/// The kernel's ISA is available.
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop(iters: usize) -> f32 {
    // SAFETY: avx2,fma enabled on this function.
    unsafe { fma_chains::<__m256, FMA_CHAINS>(iters) }
}

/// A 2-row tile for a last, short row panel.
///
/// # Safety
/// As `strided`.
#[target_feature(enable = "avx2,fma")]
unsafe fn short2(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, 2, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// A 4-row tile for a last, short row panel.
///
/// # Safety
/// As `strided`.
#[target_feature(enable = "avx2,fma")]
unsafe fn short4(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, 4, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}
