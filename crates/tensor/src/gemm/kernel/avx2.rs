//! AVX2 + FMA: 8-lane `__m256` vectors, a 6×16 register tile.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_add_ps, _mm256_blendv_ps, _mm256_cmp_ps, _mm256_cmpgt_epi32,
    _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps, _mm256_maskstore_ps,
    _mm256_mul_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    _CMP_GT_OQ,
};

use super::{fma_chains, tile_body, tile_body_packing_b, Edge, MicroKernel, Simd, Tile};
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
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        // SAFETY: AVX is available; masked-off lanes are neither read nor
        // able to fault, and the first `n` floats are valid (contract).
        unsafe { _mm256_maskload_ps(p, first_lanes(n)) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        // SAFETY: as `load_first`, for writes.
        unsafe { _mm256_maskstore_ps(p, first_lanes(n), self) }
    }
    #[inline(always)]
    unsafe fn relu(self) -> Self {
        // SAFETY: AVX is available (trait contract). `z > 0` (ordered, so
        // false for NaN) picks z, every other lane gets 0·z, as `relu`.
        unsafe {
            let zero = _mm256_setzero_ps();
            let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(self, zero);
            _mm256_blendv_ps(_mm256_mul_ps(self, zero), self, positive)
        }
    }
}

/// The mask of lanes `0..n` (`n < 8`): lane `i` is all ones when `i < n`.
#[inline(always)]
unsafe fn first_lanes(n: usize) -> __m256i {
    const IOTA: [i32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    // SAFETY: AVX is available (the callers' contract); IOTA has 8 ints.
    unsafe {
        let iota = _mm256_loadu_si256(IOTA.as_ptr().cast());
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), iota)
    }
}

/// 6 rows × 2 vectors: 12 accumulators + 2 B vectors + 1 broadcast = 15 of
/// the 16 ymm registers, and 12 independent FMAs cover 2 ports × 5-cycle latency.
const MR: usize = 6;
const NV: usize = 2;

/// The k loop on packed operands (`a_rs = 1`, `a_cs = MR`, `b_rs = NR`), the
/// strides constant so they fold into the addressing. Named, not generic, so
/// `.ci/check_kernels` finds its loop by symbol.
///
/// # Safety
/// AVX2 and FMA are available; `t` satisfies the contract for packed operands.
#[target_feature(enable = "avx2,fma")]
unsafe fn packed(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, MR, NV>(t, 1, MR, NV * 8) }
}

/// The body reading A and B through the strides in `t` (the small path and
/// the edge tiles).
///
/// # Safety
/// AVX2 and FMA are available; `t` satisfies the contract with its strides.
#[target_feature(enable = "avx2,fma")]
unsafe fn strided<const MR: usize, const NV: usize>(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m256, MR, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// The full tile at the strides in `t`, packing the B rows it reads into
/// `b_copy` (the first tile against a B panel).
///
/// # Safety
/// AVX2 and FMA are available; `t` and `b_copy` satisfy
/// [`MicroKernel::packing_b`]'s contract.
#[target_feature(enable = "avx2,fma")]
unsafe fn packing_b(t: &Tile, b_copy: *mut f32) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body_packing_b::<__m256, MR, NV>(t, t.a_rs, t.a_cs, b_copy) }
}

/// An edge tile of `R` rows by `V` vectors.
const fn edge<const R: usize, const V: usize>() -> Edge {
    Edge {
        rows: R,
        cols: V * 8,
        run: strided::<R, V>,
    }
}

/// Edge tiles: every narrower or shorter shape a ragged panel may need.
const EDGES: &[Edge] = &[
    edge::<2, 1>(),
    edge::<4, 1>(),
    edge::<6, 1>(),
    edge::<2, 2>(),
    edge::<4, 2>(),
];

/// The AVX2+FMA kernel, if this CPU has both.
pub(super) fn kernel() -> Option<MicroKernel> {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return None;
    }
    Some(MicroKernel {
        kind: Kernel::Avx2,
        mr: MR,
        nr: NV * 8,
        lanes: 8,
        kc: 256,  // B micro-panel 16 KiB + A micro-panel 6 KiB: in a 32 KiB L1d
        mc: 144,  // A block 144×256×4 = 144 KiB: well inside a 512 KiB L2
        nc: 4080, // B block 256×4080×4 ≈ 4 MiB: half the 8 MiB L3
        packed,
        strided: strided::<MR, NV>,
        packing_b,
        a_in_place: false,
        edges: EDGES,
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
