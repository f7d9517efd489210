//! Packing: copying blocks of A and B into the order the micro-kernel reads.
//!
//! - A block (`mc × kc`) → `⌈mc/MR⌉` panels; panel `r` holds rows
//!   `r·MR .. r·MR + MR`, column by column: element `(i, p)` of the panel at
//!   `p·MR + i`. Missing rows of the last panel are zeros.
//! - B block (`kc × nc`) → `⌈nc/NR⌉` panels; panel `q` holds columns
//!   `q·NR .. q·NR + NR`, row by row: element `(p, j)` at `p·NR + j`. Missing
//!   columns are zeros.
//!
//! Sources may have any strides, so a transposed operand costs no extra copy:
//! the packing loop just walks whichever direction is contiguous.
//!
//! Buffers are 64-byte aligned, thread-local and only ever grow, so steady
//! state allocates nothing.

use std::cell::RefCell;
use std::ptr;
use std::thread::LocalKey;

use super::MatRef;

/// One cache line of floats: the unit the buffers are allocated in, so they
/// start on a 64-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A growable, 64-byte-aligned `f32` buffer.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl AlignedBuf {
    const fn new() -> Self {
        AlignedBuf { lines: Vec::new() }
    }

    /// The first `len` floats, growing the buffer if needed (contents unspecified).
    fn get(&mut self, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0.0; 16]));
        }
        // SAFETY: `Line` is `repr(C)` over 16 f32s, so the lines are at least
        // `len` contiguous, initialised floats owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), len) }
    }
}

thread_local! {
    /// Each thread's packed A block (the IC loop's buffer).
    pub(crate) static A_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
    /// The calling thread's packed B block (the PC loop's buffer).
    pub(crate) static B_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
}

/// Runs `f` on `len` floats of this thread's `buf`; if that buffer is already
/// in use (a GEMM nested inside another on this thread), on a fresh one.
pub(crate) fn with_buf<R>(
    buf: &'static LocalKey<RefCell<AlignedBuf>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    buf.with(|cell| match cell.try_borrow_mut() {
        Ok(mut owned) => f(owned.get(len)),
        Err(_) => f(AlignedBuf::new().get(len)),
    })
}

/// Packs the `rows × k` view `a` into `⌈rows/mr⌉` A panels at the start of `dst`.
pub(crate) fn pack_a(dst: &mut [f32], a: MatRef<'_>, mr: usize) {
    pack(
        dst,
        a.data.as_ptr(),
        a.rows,
        a.cols,
        a.row_stride,
        a.col_stride,
        mr,
    );
}

/// Packs the `k × cols` view `b` into `⌈cols/nr⌉` B panels at the start of `dst`.
pub(crate) fn pack_b(dst: &mut [f32], b: MatRef<'_>, nr: usize) {
    // A B panel is an A panel of Bᵀ: walk columns as "rows".
    pack(
        dst,
        b.data.as_ptr(),
        b.cols,
        b.rows,
        b.col_stride,
        b.row_stride,
        nr,
    );
}

/// Packs `lines × depth` elements (element `(i, p)` at `src + i·ls + p·ds`)
/// into panels of `w` lines: element `(i, p)` of panel `r` at `r·w·depth + p·w + i`.
fn pack(
    dst: &mut [f32],
    src: *const f32,
    lines: usize,
    depth: usize,
    ls: usize,
    ds: usize,
    w: usize,
) {
    if depth == 0 {
        return;
    }
    let panels = lines.div_ceil(w);
    assert!(dst.len() >= panels * w * depth, "pack: buffer too small");
    if ls == 1 && ds != 1 {
        // Lines contiguous: walk depth outside, so each step reads one
        // contiguous run of `lines` floats while it is in cache (panel by
        // panel, a step read only `w` floats of each cache line it touched,
        // and the line was often gone by the next panel).
        // SAFETY: as below; `out` has `panels · w · depth` floats.
        unsafe { pack_contiguous_lines(dst.as_mut_ptr(), src, lines, depth, ds, w) };
        return;
    }
    for (r, panel) in dst.chunks_exact_mut(w * depth).take(panels).enumerate() {
        let i0 = r * w;
        let live = w.min(lines - i0);
        let out = panel.as_mut_ptr();
        // SAFETY: `src` comes from a view whose every element (i < lines,
        // p < depth) lies inside its slice (checked by `MatRef::new`), and
        // `panel` has exactly `w · depth` floats, which bounds every write.
        unsafe {
            let base = src.add(i0 * ls);
            if ds == 1 {
                // Depth contiguous: a transpose, done in small square blocks.
                transpose_lines(out, base, live, depth, ls, w);
                pad(out, live, depth, w);
            } else {
                for p in 0..depth {
                    for i in 0..live {
                        *out.add(p * w + i) = *base.add(i * ls + p * ds);
                    }
                }
                pad(out, live, depth, w);
            }
        }
    }
}

/// [`pack`] for lines at stride 1: for each step `p`, the run of `lines`
/// floats at `src + p·ds` is dealt out to the panels, `w` floats each, and
/// the last panel's missing lines are zeroed. The copies are as wide as the
/// CPU's vectors: a panel row of the AVX-512 tile is 256 bytes, and 16-byte
/// moves made this copy about a third of the packing time of a 512³ product.
///
/// # Safety
/// `src` has `lines` floats at each of `depth` steps `ds` apart; `out` has
/// `⌈lines/w⌉ · w · depth` writable floats.
unsafe fn pack_contiguous_lines(
    out: *mut f32,
    src: *const f32,
    lines: usize,
    depth: usize,
    ds: usize,
    w: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; arguments forwarded (caller).
            return unsafe { wide::copy_lines_avx512(out, src, lines, depth, ds, w) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX; arguments forwarded (caller).
            return unsafe { wide::copy_lines_avx(out, src, lines, depth, ds, w) };
        }
    }
    // SAFETY: forwarded (caller).
    unsafe { copy_lines::<4>(out, src, lines, depth, ds, w) }
}

/// `#[target_feature]` shells of [`copy_lines`], so its copies of `CH`
/// floats become single vector moves.
#[cfg(target_arch = "x86_64")]
mod wide {
    /// # Safety
    /// As [`super::copy_lines`], and the CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_lines_avx512(
        out: *mut f32,
        src: *const f32,
        lines: usize,
        depth: usize,
        ds: usize,
        w: usize,
    ) {
        // SAFETY: forwarded (caller).
        unsafe { super::copy_lines::<16>(out, src, lines, depth, ds, w) }
    }

    /// # Safety
    /// As [`super::copy_lines`], and the CPU has AVX.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn copy_lines_avx(
        out: *mut f32,
        src: *const f32,
        lines: usize,
        depth: usize,
        ds: usize,
        w: usize,
    ) {
        // SAFETY: forwarded (caller).
        unsafe { super::copy_lines::<8>(out, src, lines, depth, ds, w) }
    }
}

/// The body of [`pack_contiguous_lines`], copying `CH` floats at a time.
///
/// # Safety
/// As [`pack_contiguous_lines`].
#[inline(always)]
unsafe fn copy_lines<const CH: usize>(
    out: *mut f32,
    src: *const f32,
    lines: usize,
    depth: usize,
    ds: usize,
    w: usize,
) {
    let panels = lines.div_ceil(w);
    let panel_len = w * depth;
    let tail = lines - (panels - 1) * w;
    for p in 0..depth {
        // SAFETY: step p < depth of src and of every panel (caller).
        unsafe {
            let row = src.add(p * ds);
            for r in 0..panels - 1 {
                copy_short::<CH>(row.add(r * w), out.add(r * panel_len + p * w), w);
            }
            let last = out.add((panels - 1) * panel_len + p * w);
            copy_short::<CH>(row.add((panels - 1) * w), last, tail);
            ptr::write_bytes(last.add(tail), 0, w - tail);
        }
    }
}

/// Copies `w` floats, `CH` at a time while they last; a panel row is at
/// most a few hundred bytes, too short to be worth a call to `memcpy`.
///
/// # Safety
/// `src` has `w` readable floats, `dst` `w` writable ones, not overlapping.
#[inline(always)]
unsafe fn copy_short<const CH: usize>(src: *const f32, dst: *mut f32, w: usize) {
    let mut x = 0;
    while x + CH <= w {
        // SAFETY: x + CH ≤ w floats on both sides (caller): one vector move.
        unsafe { ptr::copy_nonoverlapping(src.add(x), dst.add(x), CH) };
        x += CH;
    }
    while x + 4 <= w {
        // SAFETY: x + 4 ≤ w floats on both sides (caller).
        unsafe { ptr::copy_nonoverlapping(src.add(x), dst.add(x), 4) };
        x += 4;
    }
    while x < w {
        // SAFETY: x < w (caller).
        unsafe { *dst.add(x) = *src.add(x) };
        x += 1;
    }
}

/// Zeroes lines `live..w` of a panel, so edge tiles multiply by zeros.
///
/// # Safety
/// `out` addresses `w · depth` writable floats.
unsafe fn pad(out: *mut f32, live: usize, depth: usize, w: usize) {
    if live == w {
        return;
    }
    for p in 0..depth {
        // SAFETY: `p·w + w ≤ w·depth` floats are writable (caller).
        unsafe { ptr::write_bytes(out.add(p * w + live), 0, w - live) };
    }
}

/// Writes `out[p·w + i] = src[i·ls + p]` for `i < lines`, `p < depth`: the
/// transposing copy that packs a row-major A or a transposed B.
///
/// # Safety
/// `src` has `lines` lines of `depth` readable floats at stride `ls`, and
/// `out` has `w · depth` writable floats, `lines ≤ w`.
unsafe fn transpose_lines(
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
mod sse {
    use std::arch::x86_64::{
        _mm_castps_pd, _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeh_pd, _mm_storel_pd,
        _mm_storeu_ps, _mm_unpackhi_ps, _mm_unpacklo_ps,
    };

    /// Transposes lines in groups of 4, then 2, over depth in steps of 4 (a
    /// scalar tail finishes the depth); returns how many lines it did.
    ///
    /// # Safety
    /// As `transpose_lines`.
    pub(super) unsafe fn transpose_blocks(
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
    pub(super) unsafe fn tail(
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
mod avx {
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
    pub(super) unsafe fn transpose_blocks(
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
mod avx512 {
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
    pub(super) unsafe fn transpose_six(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`pack`] must produce: element `(i, p)` of panel `r` at
    /// `r·w·depth + p·w + i`, zeros for the missing lines.
    fn reference(
        src: &[f32],
        lines: usize,
        depth: usize,
        ls: usize,
        ds: usize,
        w: usize,
    ) -> Vec<f32> {
        let panels = lines.div_ceil(w);
        let mut out = vec![0.0; panels * w * depth];
        for i in 0..lines {
            for p in 0..depth {
                out[(i / w) * w * depth + p * w + i % w] = src[i * ls + p * ds];
            }
        }
        out
    }

    /// Every (lines, depth, w) the kernels' panels meet, including
    /// partial groups and depths off the 4-, 8- and 16-step blocks.
    fn cases() -> Vec<(usize, usize, usize)> {
        let mut cases = vec![];
        for w in [2, 4, 6, 16, 24, 64] {
            for lines in [1, 2, 5, 6, 7, 8, 9, 16, 23, 24, 64, 65] {
                for depth in [1, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 40] {
                    cases.push((lines, depth, w));
                }
            }
        }
        cases
    }

    /// Sources with each layout the packer distinguishes: lines
    /// contiguous, depth contiguous, neither; padded strides.
    fn layouts(lines: usize, depth: usize) -> [(usize, usize); 3] {
        [(1, lines + 3), (depth + 5, 1), (2 * depth + 1, 2)]
    }

    fn source(lines: usize, depth: usize, ls: usize, ds: usize) -> Vec<f32> {
        let len = (lines - 1) * ls + (depth - 1) * ds + 1;
        (0..len).map(|x| x as f32 + 0.5).collect()
    }

    #[test]
    fn pack_matches_the_reference_on_every_layout() {
        for (lines, depth, w) in cases() {
            for (ls, ds) in layouts(lines, depth) {
                let src = source(lines, depth, ls, ds);
                let want = reference(&src, lines, depth, ls, ds, w);
                // Garbage first: padding must be written, not assumed.
                let mut got = vec![f32::NAN; want.len()];
                pack(&mut got, src.as_ptr(), lines, depth, ls, ds, w);
                assert_eq!(
                    got, want,
                    "lines {lines} depth {depth} w {w} ls {ls} ds {ds}"
                );
            }
        }
    }

    /// Each SIMD path the CPU has, called directly, against the plain copy
    /// (the dispatch above picks only the widest one).
    #[test]
    fn every_simd_path_matches_the_plain_one() {
        for (lines, depth, w) in cases() {
            if lines > w {
                continue; // one panel: what the transposers are given
            }
            let (ls, ds) = (depth + 5, 1);
            let src = source(lines, depth, ls, ds);
            let want = reference(&src, lines, depth, ls, ds, w);
            let run = |f: &dyn Fn(*mut f32)| {
                let mut got = want.clone();
                got.iter_mut().for_each(|x| *x = f32::NAN);
                f(got.as_mut_ptr());
                // SAFETY: `got` has w·depth floats; padding lines are zeroed.
                unsafe { pad(got.as_mut_ptr(), lines, depth, w) };
                got
            };
            /// A transposer's signature: returns the lines it did.
            type Blocks = unsafe fn(*mut f32, *const f32, usize, usize, usize, usize) -> usize;
            let blocks = |f: Blocks| {
                // SAFETY: one panel of `lines ≤ w` lines of `depth` floats at
                // stride `ls`; `got` has w·depth floats; the tail finishes
                // the lines the blocks left; callers pass only paths the CPU has.
                run(&|out| unsafe {
                    let done = f(out, src.as_ptr(), lines, depth, ls, w);
                    let rest: Vec<*const f32> =
                        (done..lines).map(|i| src.as_ptr().add(i * ls)).collect();
                    sse::tail(out, &rest, done, 0, depth, w);
                })
            };
            #[cfg(target_arch = "x86_64")]
            {
                let sse_blocks: Blocks = sse::transpose_blocks;
                assert_eq!(blocks(sse_blocks), want, "sse: {lines}×{depth}, w {w}");
                if std::arch::is_x86_feature_detected!("avx") {
                    let avx_blocks: Blocks = avx::transpose_blocks;
                    assert_eq!(blocks(avx_blocks), want, "avx: {lines}×{depth}, w {w}");
                }
                if lines == 6 && w == 6 && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: as above, and the CPU has AVX-512F.
                    let six = run(&|out| unsafe {
                        let body = avx512::transpose_six(out, src.as_ptr(), depth, ls);
                        let l: Vec<*const f32> = (0..6).map(|i| src.as_ptr().add(i * ls)).collect();
                        sse::tail(out, &l, 0, body, depth, w);
                    });
                    assert_eq!(six, want, "avx512 six: depth {depth}");
                }
            }
            // The contiguous-lines copies, at each width.
            let (cls, cds) = (1, lines + 3);
            let csrc = source(lines, depth, cls, cds);
            let cwant = reference(&csrc, lines, depth, cls, cds, w);
            /// A contiguous-lines copy's signature.
            type Copy = unsafe fn(*mut f32, *const f32, usize, usize, usize, usize);
            let copy = |f: Copy| {
                let mut got = vec![f32::NAN; cwant.len()];
                // SAFETY: `got` has ⌈lines/w⌉·w·depth floats, `csrc` lines at
                // stride 1 and steps `cds` apart; only paths the CPU has.
                unsafe { f(got.as_mut_ptr(), csrc.as_ptr(), lines, depth, cds, w) };
                got
            };
            let plain: Copy = copy_lines::<4>;
            assert_eq!(copy(plain), cwant, "copy 4: {lines}×{depth}, w {w}");
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx") {
                    let avx: Copy = wide::copy_lines_avx;
                    assert_eq!(copy(avx), cwant, "copy avx: {lines}×{depth}, w {w}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let avx512: Copy = wide::copy_lines_avx512;
                    assert_eq!(copy(avx512), cwant, "copy avx512: {lines}×{depth}, w {w}");
                }
            }
        }
    }
}
