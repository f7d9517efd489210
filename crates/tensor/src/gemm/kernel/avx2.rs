//! AVX2 + FMA: 8-lane `__m256` vectors, a 6×16 register tile.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_add_ps, _mm256_blendv_ps, _mm256_castsi256_si128, _mm256_cmp_ps,
    _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps,
    _mm256_maskstore_ps, _mm256_mul_ps, _mm256_permute2f128_ps, _mm256_permutevar8x32_ps,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_set_m128, _mm256_setzero_ps, _mm256_shuffle_ps,
    _mm256_storeu_ps, _mm_loadu_ps, _mm_maskload_ps, _CMP_GT_OQ,
};

use super::dot::{dot_body, entry, Dot, DotTile, FoldLanes};
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

// SAFETY: as for `Simd` above.
unsafe impl FoldLanes for __m256 {
    const LEVELS: usize = 3;
    #[inline(always)]
    unsafe fn load_twice(p: *const f32) -> Self {
        // SAFETY: AVX is available and `p` has 4 valid floats (trait contract).
        unsafe {
            let half = _mm_loadu_ps(p);
            _mm256_set_m128(half, half)
        }
    }
    #[inline(always)]
    unsafe fn load_first_twice(p: *const f32, n: usize) -> Self {
        // SAFETY: AVX is available; only the first `n < 4` floats are read
        // (masked), and they are valid (trait contract).
        unsafe {
            let half = _mm_maskload_ps(p, _mm256_castsi256_si128(first_lanes(n)));
            _mm256_set_m128(half, half)
        }
    }
    #[inline(always)]
    unsafe fn fold(level: usize, a: Self, b: Self) -> Self {
        // SAFETY: AVX is available (trait contract). Each level pairs lanes
        // half as far apart: 128-bit halves (across the two inputs), then
        // pairs and single lanes inside each half.
        unsafe {
            let (low, high) = match level {
                0 => (
                    _mm256_permute2f128_ps::<0x20>(a, b),
                    _mm256_permute2f128_ps::<0x31>(a, b),
                ),
                1 => (
                    _mm256_shuffle_ps::<0x44>(a, b),
                    _mm256_shuffle_ps::<0xEE>(a, b),
                ),
                _ => (
                    _mm256_shuffle_ps::<0x88>(a, b),
                    _mm256_shuffle_ps::<0xDD>(a, b),
                ),
            };
            _mm256_add_ps(low, high)
        }
    }
    #[inline(always)]
    unsafe fn in_input_order(self) -> Self {
        // The last two folds interleave within 128-bit halves: input
        // `h + 2i` comes out in lane `4h + i`.
        const FROM: [i32; 8] = [0, 4, 1, 5, 2, 6, 3, 7];
        // SAFETY: AVX2 is available (trait contract); FROM has 8 ints.
        unsafe { _mm256_permutevar8x32_ps(self, _mm256_loadu_si256(FROM.as_ptr().cast())) }
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

/// The dot kernel: `R` rows by `NV` vectors of `G` columns.
///
/// # Safety
/// AVX2 and FMA are available; `t` satisfies [`dot_body`]'s contract.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot<const R: usize, const NV: usize, const G: usize>(t: &DotTile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { dot_body::<__m256, R, NV, G>(t) }
}

/// The dot kernel for the logits' width (9 or 10 columns: 2 rows by 5
/// vectors of 2 columns), named so that `kernel_check` finds its loop.
///
/// # Safety
/// AVX2 and FMA are available; `t` satisfies [`dot_body`]'s contract.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_n10(t: &DotTile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { dot_body::<__m256, 2, 5, 2>(t) }
}

/// The dot kernel for `NV` vectors of `G` columns: `R` rows a tile, as
/// many as fit the 16 ymm registers with room for each row's A vector and
/// a B vector (`R·(NV + 1) ≤ 14`, at most 4).
const fn dot_width<const NV: usize, const G: usize, const R: usize>() -> Dot {
    entry(R, G, dot::<R, NV, G>, dot::<1, NV, G>)
}

/// The dot kernels for B 1 to 12 columns wide (entry `n - 1`; two columns
/// a vector from 2, see `kernel/dot.rs`): up to 12, the 16 lanes of the
/// 6×16 tile's rows are more than a quarter padding.
const DOTS: &[Dot] = &[
    dot_width::<1, 1, 4>(),
    dot_width::<1, 2, 4>(),
    dot_width::<2, 2, 4>(),
    dot_width::<2, 2, 4>(),
    dot_width::<3, 2, 3>(),
    dot_width::<3, 2, 3>(),
    dot_width::<4, 2, 2>(),
    dot_width::<4, 2, 2>(),
    entry(2, 2, dot_n10, dot::<1, 5, 2>),
    entry(2, 2, dot_n10, dot::<1, 5, 2>),
    dot_width::<6, 2, 2>(),
    dot_width::<6, 2, 2>(),
];

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
        dots: DOTS,
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
