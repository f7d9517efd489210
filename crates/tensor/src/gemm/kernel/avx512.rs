//! AVX-512F: 16-lane `__m512` vectors, in two flavours that differ only in
//! the tile shape, chosen per microarchitecture (see `docs/gemm.md` for the
//! `llvm-mca` figures behind each choice):
//!
//! - [`intel`] (`Kernel::Avx512`): MR×NR = 6×64. Intel cores run 512-bit FMAs on ports 0 and 5
//!   and loads beside them; a k step is 24 FMAs, 4 B loads and only 6 A
//!   broadcasts, so even LLVM's Skylake-X model, which also charges 512-bit
//!   loads to an ALU port, finds the FMAs the bottleneck.
//! - [`zen`] (`Kernel::Avx512Zen`): MR×NR = 24×16. Zen 4/5 execute a separate `vbroadcastss zmm`
//!   on the FP pipes, beside the FMAs; with one B vector per row every A
//!   element is used once, so LLVM folds its broadcast into the FMA as a
//!   `{1to16}` memory operand and the FP pipes only run FMAs.

use std::arch::x86_64::{
    __m512, _mm256_loadu_pd, _mm512_add_ps, _mm512_broadcast_f64x4, _mm512_castpd_ps,
    _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_blend_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_permutexvar_ps,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps,
    _CMP_GT_OQ,
};

use super::dot::{dot_body, entry, Dot, DotTile, FoldLanes};
use super::{fma_chains, tile_body, tile_body_packing_b, Edge, MicroKernel, Simd, Tile};
use crate::gemm::Kernel;

// SAFETY: every method is only called from `#[target_feature(enable =
// "avx512f")]` functions below, which run only after detection succeeded.
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
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        // SAFETY: AVX-512F is available; masked-off lanes are neither read
        // nor able to fault, and the first `n` floats are valid (contract).
        unsafe { _mm512_maskz_loadu_ps(first_lanes(n), p) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        // SAFETY: as `load_first`, for writes.
        unsafe { _mm512_mask_storeu_ps(p, first_lanes(n), self) }
    }
    #[inline(always)]
    unsafe fn relu(self) -> Self {
        // SAFETY: AVX-512F is available (trait contract). `z > 0` (ordered,
        // so false for NaN) keeps z, every other lane gets 0·z, as `relu`.
        unsafe {
            let zero = _mm512_setzero_ps();
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self, zero);
            _mm512_mask_blend_ps(positive, _mm512_mul_ps(self, zero), self)
        }
    }
}

// SAFETY: as for `Simd` above.
unsafe impl FoldLanes for __m512 {
    const LEVELS: usize = 4;
    #[inline(always)]
    unsafe fn load_twice(p: *const f32) -> Self {
        // SAFETY: AVX-512F is available and `p` has 8 valid floats (trait
        // contract); read as 4 doubles, repeated bit for bit.
        unsafe { _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(p.cast()))) }
    }
    #[inline(always)]
    unsafe fn load_first_twice(p: *const f32, n: usize) -> Self {
        // SAFETY: AVX-512F is available; only the first `n < 8` floats are
        // read (masked), and they are valid (trait contract).
        unsafe {
            let low = _mm512_maskz_loadu_ps(first_lanes(n), p);
            _mm512_shuffle_f32x4::<0x44>(low, low)
        }
    }
    #[inline(always)]
    unsafe fn fold(level: usize, a: Self, b: Self) -> Self {
        // SAFETY: AVX-512F is available (trait contract). Each level pairs
        // lanes half as far apart: 256-bit halves, 128-bit quarters (both
        // across the two inputs), then pairs and single lanes inside each
        // 128-bit quarter.
        unsafe {
            let (low, high) = match level {
                0 => (
                    _mm512_shuffle_f32x4::<0x44>(a, b),
                    _mm512_shuffle_f32x4::<0xEE>(a, b),
                ),
                1 => (
                    _mm512_shuffle_f32x4::<0x88>(a, b),
                    _mm512_shuffle_f32x4::<0xDD>(a, b),
                ),
                2 => (
                    _mm512_shuffle_ps::<0x44>(a, b),
                    _mm512_shuffle_ps::<0xEE>(a, b),
                ),
                _ => (
                    _mm512_shuffle_ps::<0x88>(a, b),
                    _mm512_shuffle_ps::<0xDD>(a, b),
                ),
            };
            _mm512_add_ps(low, high)
        }
    }
    #[inline(always)]
    unsafe fn in_input_order(self) -> Self {
        // The last two folds interleave within 128-bit quarters: input
        // `q + 4i` comes out in lane `4q + i`.
        const FROM: [i32; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
        // SAFETY: AVX-512F is available (trait contract); FROM has 16 ints.
        unsafe { _mm512_permutexvar_ps(_mm512_loadu_si512(FROM.as_ptr().cast()), self) }
    }
}

/// The mask of lanes `0..n` (`n < 16`).
#[inline(always)]
fn first_lanes(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// The body reading A and B through the strides in `t` (the small path and
/// the edge tiles).
///
/// # Safety
/// AVX-512F is available; `t` satisfies the contract with its strides.
#[target_feature(enable = "avx512f")]
unsafe fn strided<const MR: usize, const NV: usize>(t: &Tile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body::<__m512, MR, NV>(t, t.a_rs, t.a_cs, t.b_rs) }
}

/// The full tile at the strides in `t`, packing the B rows it reads into
/// `b_copy` (the first tile against a B panel).
///
/// # Safety
/// AVX-512F is available; `t` and `b_copy` satisfy
/// [`MicroKernel::packing_b`]'s contract.
#[target_feature(enable = "avx512f")]
unsafe fn packing_b<const MR: usize, const NV: usize>(t: &Tile, b_copy: *mut f32) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { tile_body_packing_b::<__m512, MR, NV>(t, t.a_rs, t.a_cs, b_copy) }
}

/// The dot kernel: `R` rows by `NV` vectors of `G` columns.
///
/// # Safety
/// AVX-512F is available; `t` satisfies [`dot_body`]'s contract.
#[target_feature(enable = "avx512f")]
unsafe fn dot<const R: usize, const NV: usize, const G: usize>(t: &DotTile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { dot_body::<__m512, R, NV, G>(t) }
}

/// The dot kernel for the logits' width (9 or 10 columns: 4 rows by 5
/// vectors of 2 columns), named so that `kernel_check` finds its loop.
///
/// # Safety
/// AVX-512F is available; `t` satisfies [`dot_body`]'s contract.
#[target_feature(enable = "avx512f")]
unsafe fn dot_n10(t: &DotTile) {
    // SAFETY: features enabled on this function; contract forwarded.
    unsafe { dot_body::<__m512, 4, 5, 2>(t) }
}

/// The dot kernel for `NV` vectors of `G` columns: `R` rows a tile, as
/// many as fit the 32 zmm registers with room for each row's A vector and
/// a B vector (`R·(NV + 1) ≤ 30`, at most 8).
const fn dot_width<const NV: usize, const G: usize, const R: usize>() -> Dot {
    entry(R, G, dot::<R, NV, G>, dot::<1, NV, G>)
}

/// The dot kernels for B 1 to 15 columns wide (entry `n - 1`): two columns
/// a vector from 2 (see `kernel/dot.rs`).
const DOTS: &[Dot] = &[
    dot_width::<1, 1, 8>(),
    dot_width::<1, 2, 8>(),
    dot_width::<2, 2, 8>(),
    dot_width::<2, 2, 8>(),
    dot_width::<3, 2, 7>(),
    dot_width::<3, 2, 7>(),
    dot_width::<4, 2, 6>(),
    dot_width::<4, 2, 6>(),
    entry(4, 2, dot_n10, dot::<1, 5, 2>),
    entry(4, 2, dot_n10, dot::<1, 5, 2>),
    dot_width::<6, 2, 4>(),
    dot_width::<6, 2, 4>(),
    dot_width::<7, 2, 3>(),
    dot_width::<7, 2, 3>(),
    dot_width::<8, 2, 3>(),
];

/// Independent FMA chains in the peak probe: two ports × 4-cycle latency
/// needs 8; 24 leaves room to spare.
const FMA_CHAINS: usize = 24;

/// # Safety
/// AVX-512F is available.
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop(iters: usize) -> f32 {
    // SAFETY: avx512f enabled on this function.
    unsafe { fma_chains::<__m512, FMA_CHAINS>(iters) }
}

/// An edge tile of `R` rows by `V` vectors.
const fn edge<const R: usize, const V: usize>() -> Edge {
    Edge {
        rows: R,
        cols: V * 16,
        run: strided::<R, V>,
    }
}

/// The Intel flavour: 6 rows × 4 vectors = 24 accumulators + 4 B vectors + 1
/// broadcast of the 32 zmm registers; 24 independent FMAs cover 2 ports ×
/// 4-cycle latency 3× over.
pub(super) mod intel {
    use super::*;

    pub(in crate::gemm::kernel) const MR: usize = 6;
    pub(in crate::gemm::kernel) const NV: usize = 4;

    /// The k loop on packed operands (`a_rs = 1`, `a_cs = MR`, `b_rs = NR`),
    /// the strides constant so they fold into the addressing. Named, not
    /// generic, so `.ci/check_kernels` finds its loop by symbol.
    ///
    /// # Safety
    /// AVX-512F is available; `t` satisfies the contract for packed operands.
    #[target_feature(enable = "avx512f")]
    unsafe fn packed(t: &Tile) {
        // SAFETY: features enabled on this function; contract forwarded.
        unsafe { tile_body::<__m512, MR, NV>(t, 1, MR, NV * 16) }
    }

    /// Edge tiles: every narrower or shorter shape a ragged panel may need.
    const EDGES: &[Edge] = &[
        edge::<2, 1>(),
        edge::<4, 1>(),
        edge::<6, 1>(),
        edge::<2, 2>(),
        edge::<4, 2>(),
        edge::<6, 2>(),
        edge::<2, 4>(),
        edge::<6, 3>(),
        edge::<4, 4>(),
    ];

    /// The kernel, if this CPU has AVX-512F.
    pub(in crate::gemm::kernel) fn kernel() -> Option<MicroKernel> {
        if !is_x86_feature_detected!("avx512f") {
            return None;
        }
        Some(MicroKernel {
            kind: Kernel::Avx512,
            mr: MR,
            nr: NV * 16,
            lanes: 16,
            kc: 128,  // B micro-panel 128×64×4 = 32 KiB of a 48 KiB L1d
            mc: 192,  // A block 192×128×4 = 96 KiB: L2
            nc: 4096, // B block 128×4096×4 = 2 MiB: L3
            packed,
            strided: strided::<MR, NV>,
            packing_b: packing_b::<MR, NV>,
            a_in_place: true,
            // Smallest first: narrow column panels, then short row panels.
            edges: EDGES,
            dots: DOTS,
            fma_loop,
            fma_flops: FMA_CHAINS * 16 * 2, // 16 lanes, 2 flops per FMA
        })
    }
}

/// The Zen flavour: 24 rows × 1 vector = 24 accumulators + 1 B vector; each
/// A element feeds one FMA, so its broadcast folds into the FMA's memory
/// operand (`{1to16}`) and no FP-pipe slot goes to a separate broadcast.
pub(super) mod zen {
    use super::*;

    pub(in crate::gemm::kernel) const MR: usize = 24;
    pub(in crate::gemm::kernel) const NV: usize = 1;

    /// The k loop on packed operands (`a_rs = 1`, `a_cs = MR`, `b_rs = NR`),
    /// the strides constant so they fold into the addressing. Named, not
    /// generic, so `.ci/check_kernels` finds its loop by symbol.
    ///
    /// # Safety
    /// AVX-512F is available; `t` satisfies the contract for packed operands.
    #[target_feature(enable = "avx512f")]
    unsafe fn packed(t: &Tile) {
        // SAFETY: features enabled on this function; contract forwarded.
        unsafe { tile_body::<__m512, MR, NV>(t, 1, MR, NV * 16) }
    }

    /// Edge tiles for a last row panel of fewer than 24 rows.
    const EDGES: &[Edge] = &[edge::<8, 1>(), edge::<16, 1>()];

    /// The kernel, if this CPU has AVX-512F.
    pub(in crate::gemm::kernel) fn kernel() -> Option<MicroKernel> {
        if !is_x86_feature_detected!("avx512f") {
            return None;
        }
        Some(MicroKernel {
            kind: Kernel::Avx512Zen,
            mr: MR,
            nr: NV * 16,
            lanes: 16,
            kc: 160, // A micro-panel 24×160×4 = 15 KiB: half a 32 KiB Zen 4 L1d
            mc: 240, // A block 240×160×4 = 150 KiB: a quarter of a 1 MiB L2
            nc: 816, // B block 160×816×4 = 510 KiB: half a 1 MiB L2
            packed,
            strided: strided::<MR, NV>,
            packing_b: packing_b::<MR, NV>,
            a_in_place: true,
            edges: EDGES,
            dots: DOTS,
            fma_loop,
            fma_flops: FMA_CHAINS * 16 * 2, // 16 lanes, 2 flops per FMA
        })
    }
}
