//! The transposing copy of packing (a row-major A, a transposed B): lines
//! contiguous along depth become panel columns, in register blocks — SSE
//! 4×4 and 2×4 everywhere on x86-64, AVX 8×8, and an AVX-512 transposer for
//! the 6-row panels.

/// Writes `out[p·w + i] = src[i·ls + p]` for `i < lines`, `p < depth`: the
/// transposing copy that packs a row-major A or a transposed B.
///
/// # Safety
/// `src` has `lines` lines of `depth` readable floats at stride `ls`, and
/// `out` has `w · depth` writable floats, `lines ≤ w`.
pub(super) unsafe fn transpose_lines(
    out: *mut f32,
    src: *const f32,
    lines: usize,
    depth: usize,
    ls: usize,
    w: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if lines == 6 && w == 6 && std::arch::is_x86_feature_detected!("avx512f") {
        // The 6-row panels of the AVX-512 and AVX2 tiles: neither 4×4 nor
        // 8×8 blocks fit them, and SSE blocks spent 2 shuffles a float.
        // SAFETY: forwarded from the caller; the CPU has AVX-512F.
        unsafe {
            let body = avx512::transpose_six(out, src, depth, ls);
            let l: [*const f32; 6] = std::array::from_fn(|r| src.add(r * ls));
            sse::tail(out, &l, 0, body, depth, w);
        }
        return;
    }
    // SAFETY: forwarded from the caller; SSE is part of x86-64, and the AVX
    // path runs only where the CPU has AVX.
    #[cfg(target_arch = "x86_64")]
    let done = unsafe {
        let wide = if std::arch::is_x86_feature_detected!("avx") {
            avx::transpose_blocks(out, src, lines, depth, ls, w)
        } else {
            0
        };
        wide + sse::transpose_blocks(
            out.add(wide),
            src.add(wide * ls),
            lines - wide,
            depth,
            ls,
            w,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..lines {
        // SAFETY: line i < lines and p < depth are inside both (caller).
        unsafe {
            let line = src.add(i * ls);
            for p in 0..depth {
                *out.add(p * w + i) = *line.add(p);
            }
        }
    }
}

/// 4×4 and 2×4 register transposes with SSE (baseline on x86-64): about a
/// quarter of the cycles per float of an element-by-element strided copy.
#[cfg(target_arch = "x86_64")]
pub(super) mod sse {
    use std::arch::x86_64::{
        _mm_castps_pd, _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeh_pd, _mm_storel_pd,
        _mm_storeu_ps, _mm_unpackhi_ps, _mm_unpacklo_ps,
    };

    /// Transposes lines in groups of 4, then 2, over depth in steps of 4 (a
    /// scalar tail finishes the depth); returns how many lines it did.
    ///
    /// # Safety
    /// As `transpose_lines`.
    pub(in crate::gemm::pack) unsafe fn transpose_blocks(
        out: *mut f32,
        src: *const f32,
        lines: usize,
        depth: usize,
        ls: usize,
        w: usize,
    ) -> usize {
        let mut i = 0;
        let body = depth - depth % 4;
        // SAFETY: every load reads 4 floats of a line i + r < lines at depth
        // p + 3 < depth; every store writes lanes i..i + 4 (or i + 2) ≤ w of
        // a row p < depth of `out`.
        unsafe {
            while i + 4 <= lines {
                let l = [0, 1, 2, 3].map(|r| src.add((i + r) * ls));
                for p in (0..body).step_by(4) {
                    let r0 = _mm_loadu_ps(l[0].add(p));
                    let r1 = _mm_loadu_ps(l[1].add(p));
                    let r2 = _mm_loadu_ps(l[2].add(p));
                    let r3 = _mm_loadu_ps(l[3].add(p));
                    let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
                    let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
                    let o = out.add(p * w + i);
                    _mm_storeu_ps(o, _mm_movelh_ps(t0, t1));
                    _mm_storeu_ps(o.add(w), _mm_movehl_ps(t1, t0));
                    _mm_storeu_ps(o.add(2 * w), _mm_movelh_ps(t2, t3));
                    _mm_storeu_ps(o.add(3 * w), _mm_movehl_ps(t3, t2));
                }
                tail(out, &l, i, body, depth, w);
                i += 4;
            }
            if i + 2 <= lines {
                let l = [src.add(i * ls), src.add((i + 1) * ls)];
                for p in (0..body).step_by(4) {
                    let r0 = _mm_loadu_ps(l[0].add(p));
                    let r1 = _mm_loadu_ps(l[1].add(p));
                    let (lo, hi) = (
                        _mm_castps_pd(_mm_unpacklo_ps(r0, r1)),
                        _mm_castps_pd(_mm_unpackhi_ps(r0, r1)),
                    );
                    let o = out.add(p * w + i);
                    _mm_storel_pd(o.cast(), lo);
                    _mm_storeh_pd(o.add(w).cast(), lo);
                    _mm_storel_pd(o.add(2 * w).cast(), hi);
                    _mm_storeh_pd(o.add(3 * w).cast(), hi);
                }
                tail(out, &l, i, body, depth, w);
                i += 2;
            }
        }
        i
    }

    /// The last steps (`from..depth`) of a group of lines, element by
    /// element; the AVX blocks finish their groups with it too.
    ///
    /// # Safety
    /// As `transpose_blocks`, for the lines in `l` starting at line `i`.
    pub(in crate::gemm::pack) unsafe fn tail(
        out: *mut f32,
        l: &[*const f32],
        i: usize,
        from: usize,
        depth: usize,
        w: usize,
    ) {
        for p in from..depth {
            for (r, line) in l.iter().enumerate() {
                // SAFETY: p < depth and line i + r < lines (caller).
                unsafe { *out.add(p * w + i + r) = *line.add(p) };
            }
        }
    }
}

/// 8×8 register transposes with AVX: twice the floats per instruction of the
/// SSE blocks, for the 8-line groups of the wider kernels' panels.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm256_unpackhi_ps, _mm256_unpacklo_ps,
    };

    /// Transposes lines in groups of 8 over depth in steps of 8 (a scalar
    /// tail finishes the depth); returns how many lines it did (a multiple of 8).
    ///
    /// Depth is the outer loop: each 16-step chunk reads a cache line of
    /// every line and writes 16 whole rows of the panel (`16·w` consecutive
    /// floats) before the next. With the groups
    /// outside, each group wrote an 8-float strip down a 64-wide panel
    /// (100 KiB for K = 392), more than L1 holds, so every cache line of the
    /// panel was fetched again by each of the groups that share it: the
    /// transposing pack of a Linear's weight took 18 % of its product.
    ///
    /// # Safety
    /// As `transpose_lines`, and the CPU has AVX.
    #[target_feature(enable = "avx")]
    pub(in crate::gemm::pack) unsafe fn transpose_blocks(
        out: *mut f32,
        src: *const f32,
        lines: usize,
        depth: usize,
        ls: usize,
        w: usize,
    ) -> usize {
        let groups = lines / 8;
        let body = depth - depth % 8;
        // SAFETY: every load reads 8 floats of a line g·8 + r < lines at
        // depth p + 7 < depth; every store writes lanes g·8 .. g·8 + 8 ≤ w of
        // a row p + r < depth of `out`.
        unsafe {
            let block = |p: usize, i: usize| {
                let rows: [__m256; 8] =
                    std::array::from_fn(|r| _mm256_loadu_ps(src.add((i + r) * ls + p)));
                for (r, col) in transpose8(rows).into_iter().enumerate() {
                    _mm256_storeu_ps(out.add((p + r) * w + i), col);
                }
            };
            // 16 steps a chunk: a whole cache line of each source line.
            let pairs = body - body % 16;
            for p in (0..pairs).step_by(16) {
                for g in 0..groups {
                    block(p, g * 8);
                    block(p + 8, g * 8);
                }
            }
            if pairs < body {
                for g in 0..groups {
                    block(pairs, g * 8);
                }
            }
            for g in 0..groups {
                let i = g * 8;
                let l: [*const f32; 8] = std::array::from_fn(|r| src.add((i + r) * ls));
                super::sse::tail(out, &l, i, body, depth, w);
            }
        }
        groups * 8
    }

    /// The transpose of an 8×8 block held as 8 row vectors.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: AVX is available (caller); these are register operations.
        unsafe {
            // Interleave pairs of rows, then pairs of pairs, then the halves.
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }
}

/// A 6-line panel transposed with AVX-512 permutes: 8 steps of depth of the
/// 6 lines are 48 consecutive floats of the panel, 3 vectors, each gathered
/// from the lines (paired into 3 vectors) by one two-source permute and one
/// masked one-source permute: 9 shuffles for 48 floats.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::{
        __m512, __m512i, _mm256_castps_pd, _mm256_loadu_ps, _mm512_castpd_ps,
        _mm512_castps256_ps512, _mm512_castps_pd, _mm512_insertf64x4, _mm512_loadu_si512,
        _mm512_mask_permutexvar_ps, _mm512_permutex2var_ps, _mm512_storeu_ps,
    };

    /// For output vector `o` and lane `t` (panel float `q = 16·o + t`, that is
    /// line `q % 6` at step `q / 6`): which pair vector holds it (line / 2)
    /// and where (`(line % 2)·8 + step`).
    const fn source(o: usize, t: usize) -> (usize, i32) {
        let q = 16 * o + t;
        let (line, step) = (q % 6, q / 6);
        (line / 2, ((line % 2) * 8 + step) as i32)
    }

    /// The two-source index (pairs 0 and 1; pair 1 is `+16`) of output `o`.
    const fn first_index(o: usize) -> [i32; 16] {
        let mut idx = [0; 16];
        let mut t = 0;
        while t < 16 {
            let (pair, at) = source(o, t);
            idx[t] = if pair == 1 { at + 16 } else { at };
            t += 1;
        }
        idx
    }

    /// The one-source index into pair 2, and the mask of lanes it fills.
    const fn second_index(o: usize) -> ([i32; 16], u16) {
        let (mut idx, mut mask) = ([0; 16], 0u16);
        let mut t = 0;
        while t < 16 {
            let (pair, at) = source(o, t);
            if pair == 2 {
                idx[t] = at;
                mask |= 1 << t;
            }
            t += 1;
        }
        (idx, mask)
    }

    const FIRST: [[i32; 16]; 3] = [first_index(0), first_index(1), first_index(2)];
    const SECOND: [([i32; 16], u16); 3] = [second_index(0), second_index(1), second_index(2)];

    /// Writes `out[p·6 + i] = src[i·ls + p]` for the 6 lines `i` and the
    /// steps `p` below the largest multiple of 8 in `depth`, which it
    /// returns.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `src` has 6 lines of `depth` readable floats at
    /// stride `ls`, and `out` has `6 · depth` writable floats.
    #[target_feature(enable = "avx512f")]
    pub(in crate::gemm::pack) unsafe fn transpose_six(
        out: *mut f32,
        src: *const f32,
        depth: usize,
        ls: usize,
    ) -> usize {
        let body = depth - depth % 8;
        // SAFETY: the index tables are 16 i32s each; every load reads 8
        // floats of a line i < 6 at steps p..p + 8 ≤ depth; every store
        // writes floats p·6 .. p·6 + 48 ≤ 6 · depth of `out`.
        unsafe {
            let first: [__m512i; 3] = FIRST.map(|idx| _mm512_loadu_si512(idx.as_ptr().cast()));
            let second: [(__m512i, u16); 3] =
                SECOND.map(|(idx, mask)| (_mm512_loadu_si512(idx.as_ptr().cast()), mask));
            let l: [*const f32; 6] = std::array::from_fn(|r| src.add(r * ls));
            for p in (0..body).step_by(8) {
                let pair = |a: usize| -> __m512 {
                    let low = _mm512_castps256_ps512(_mm256_loadu_ps(l[a].add(p)));
                    let high = _mm256_castps_pd(_mm256_loadu_ps(l[a + 1].add(p)));
                    _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(low), high))
                };
                let (p01, p23, p45) = (pair(0), pair(2), pair(4));
                for o in 0..3 {
                    let v = _mm512_permutex2var_ps(p01, first[o], p23);
                    let v = _mm512_mask_permutexvar_ps(v, second[o].1, second[o].0, p45);
                    _mm512_storeu_ps(out.add(p * 6 + 16 * o), v);
                }
            }
        }
        body
    }
}
