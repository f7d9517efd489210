//! Packing: copying blocks of A and B into the order the micro-kernel reads.
//!
//! - A block (`mc × kc`) → `⌈mc/MR⌉` panels; panel `r` holds rows
//!   `r·MR .. r·MR + MR`, column by column: element `(i, p)` of the panel at
//!   `p·MR + i`. Missing rows of the last panel are zeros.
//! - B block (`kc × nc`) → `⌈nc/NR⌉` panels; panel `q` holds columns
//!   `q·NR .. q·NR + NR`, row by row: element `(p, j)` at `p·NR + j`. Missing
//!   columns are zeros. A last panel of fewer than NR columns is only as wide
//!   as the tiles that read it ([`MicroKernel::panel_width`]): element
//!   `(p, j)` at `p·W + j`, its panel still starting at `q·NR·kc`.
//!
//! Sources may have any strides, so a transposed operand costs no extra copy:
//! the packing loop just walks whichever direction is contiguous.
//!
//! Buffers are 64-byte aligned, thread-local and only ever grow, so steady
//! state allocates nothing. The transposing copies (a row-major A, a
//! transposed B) are in `transpose.rs`.

use std::cell::RefCell;
use std::ptr;
use std::thread::LocalKey;

use super::kernel::MicroKernel;
use super::MatRef;

#[cfg(test)]
mod tests;
mod transpose;

use transpose::transpose_lines;

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
    /// The calling thread's Cᵀ, for a product computed into a row-major
    /// scratch and transposed into C (`gemm::via_scratch_ct`).
    pub(crate) static CT_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
    /// Each thread's operand under construction, for callers ([`with_scratch`]).
    static SCRATCH: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
}

/// Runs `f` on `len` floats of this thread's scratch buffer, for building a
/// GEMM operand (a convolution's column matrix): kept between calls, so a
/// training step does not allocate, map and zero it every time. Its
/// contents are unspecified (what the last caller left, or zeros); if it is
/// already in use on this thread (a call nested in another), `f` gets a
/// fresh buffer. The GEMM's own packing buffers are separate, so `f` may
/// call [`super::gemm`] on it.
///
/// ```
/// use ember_tensor::gemm::with_scratch;
///
/// let total = with_scratch(4, |buf| {
///     buf.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
///     buf.iter().sum::<f32>()
/// });
/// assert_eq!(total, 10.0);
/// ```
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buf(&SCRATCH, len, f)
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

/// Copies the row-major `rows × cols` view `src` transposed into `dst`,
/// whose rows are `ld ≥ rows` floats apart: `dst[j·ld + i] = src(i, j)`,
/// through the packs' transposing register blocks.
///
/// # Safety
/// `dst` has `cols` rows of `rows` writable floats at stride `ld`, and
/// overlaps no element of `src`.
///
/// # Panics
/// If `src` is not row-major (its columns not contiguous).
pub(crate) unsafe fn transpose_into(dst: *mut f32, ld: usize, src: MatRef<'_>) {
    assert_eq!(src.col_stride, 1, "transpose_into: a row-major source");
    if src.rows == 0 || src.cols == 0 {
        return;
    }
    // SAFETY: `src`'s elements (i < rows, j < cols) lie inside its slice
    // (checked by `MatRef::new`); `dst` has room for the transpose (caller).
    unsafe {
        transpose_lines(
            dst,
            src.data.as_ptr(),
            src.rows,
            src.cols,
            src.row_stride,
            ld,
        )
    };
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
        mr,
    );
}

/// Packs the `k × cols` view `b` into `⌈cols/NR⌉` B panels of `kern` at the
/// start of `dst`, a ragged last one only [`MicroKernel::panel_width`] wide.
pub(crate) fn pack_b(dst: &mut [f32], b: MatRef<'_>, kern: &MicroKernel) {
    let nr = kern.nr;
    // Live columns of the last panel.
    let last = match b.cols % nr {
        0 => nr,
        ragged => ragged,
    };
    // A B panel is an A panel of Bᵀ: walk columns as "rows".
    pack(
        dst,
        b.data.as_ptr(),
        b.cols,
        b.rows,
        b.col_stride,
        b.row_stride,
        nr,
        kern.panel_width(last),
    );
}

/// Packs `lines × depth` elements (element `(i, p)` at `src + i·ls + p·ds`)
/// into panels of `w` lines: element `(i, p)` of panel `r` at `r·w·depth + p·w + i`,
/// except the last panel, which is `last_w ≤ w` lines wide (element `(i, p)`
/// at `r·w·depth + p·last_w + i`; `last_w` = `w` when that panel is full).
/// A panel as wide as the tiles that read it, not as NR: the logits' B
/// (N = 10) in a 64-wide panel was 22 % zeroing, and its rows, 256 bytes
/// apart, fell on a quarter of L1's sets.
#[allow(clippy::too_many_arguments)] // a strided source and the panel widths
fn pack(
    dst: &mut [f32],
    src: *const f32,
    lines: usize,
    depth: usize,
    ls: usize,
    ds: usize,
    w: usize,
    last_w: usize,
) {
    if depth == 0 || lines == 0 {
        return;
    }
    let panels = lines.div_ceil(w);
    let live_last = lines - (panels - 1) * w;
    let last_w = if live_last == w { w } else { last_w };
    assert!(
        (live_last..=w).contains(&last_w),
        "pack: a last panel of {live_last} lines cannot be {last_w} wide (panels {w})"
    );
    assert!(dst.len() >= panels * w * depth, "pack: buffer too small");
    if ls == 1 && ds != 1 {
        // Lines contiguous: straight copies of runs along the lines (in
        // the order `copy_lines` explains).
        // SAFETY: as below; `out` has `panels · w · depth` floats.
        unsafe { pack_contiguous_lines(dst.as_mut_ptr(), src, lines, depth, ds, w, last_w) };
        return;
    }
    for (r, panel) in dst.chunks_exact_mut(w * depth).take(panels).enumerate() {
        let i0 = r * w;
        let live = w.min(lines - i0);
        let w = if r + 1 == panels { last_w } else { w };
        let out = panel.as_mut_ptr();
        // SAFETY: `src` comes from a view whose every element (i < lines,
        // p < depth) lies inside its slice (checked by `MatRef::new`), and
        // `panel` has exactly `w · depth` floats, which bounds every write.
        unsafe {
            let base = src.add(i0 * ls);
            zero_if_ragged(out, live, depth, w);
            if ds == 1 {
                // Depth contiguous: a transpose, done in small square blocks.
                transpose_lines(out, base, live, depth, ls, w);
            } else {
                for p in 0..depth {
                    for i in 0..live {
                        *out.add(p * w + i) = *base.add(i * ls + p * ds);
                    }
                }
            }
        }
    }
}

/// [`pack`] for lines at stride 1: the run of `lines` floats at each step
/// `src + p·ds` is dealt out to the panels, `w` floats each, and the last
/// panel's missing lines are zeroed (up to its width `last_w`, see
/// [`pack`]). The copies are as wide as the
/// CPU's vectors: a panel row of the AVX-512 tile is 256 bytes, and 16-byte
/// moves made this copy about a third of the packing time of a 512³ product.
///
/// # Safety
/// `src` has `lines` floats at each of `depth` steps `ds` apart; `out` has
/// `⌈lines/w⌉ · w · depth` writable floats; the last panel's live lines
/// ≤ `last_w` ≤ `w`.
unsafe fn pack_contiguous_lines(
    out: *mut f32,
    src: *const f32,
    lines: usize,
    depth: usize,
    ds: usize,
    w: usize,
    last_w: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; arguments forwarded (caller).
            return unsafe { wide::copy_lines_avx512(out, src, lines, depth, ds, w, last_w) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX; arguments forwarded (caller).
            return unsafe { wide::copy_lines_avx(out, src, lines, depth, ds, w, last_w) };
        }
    }
    // SAFETY: forwarded (caller).
    unsafe { copy_lines::<4>(out, src, lines, depth, ds, w, last_w, copy_tail) }
}

/// `#[target_feature]` shells of [`copy_lines`], so its copies of `CH`
/// floats become single vector moves.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{_mm512_mask_storeu_ps, _mm512_maskz_loadu_ps};

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
        last_w: usize,
    ) {
        // SAFETY: forwarded (caller).
        unsafe { super::copy_lines::<16>(out, src, lines, depth, ds, w, last_w, masked_tail) }
    }

    /// Copies `n < 16` floats as one masked move: the 6-float rows of the
    /// A panels, which took a 4-float move and two scalar ones each.
    ///
    /// # Safety
    /// AVX-512F is available (only [`copy_lines_avx512`] passes it);
    /// `src` has `n` readable floats, `dst` `n` writable ones. Masked-off
    /// lanes are neither read nor written and cannot fault.
    #[inline(always)]
    unsafe fn masked_tail(src: *const f32, dst: *mut f32, n: usize) {
        let lanes = ((1u32 << n) - 1) as u16;
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(dst, lanes, _mm512_maskz_loadu_ps(lanes, src)) }
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
        last_w: usize,
    ) {
        // SAFETY: forwarded (caller).
        unsafe { super::copy_lines::<8>(out, src, lines, depth, ds, w, last_w, super::copy_tail) }
    }
}

/// The body of [`pack_contiguous_lines`], copying `CH` floats at a time
/// and what is left of a panel row (fewer than `CH`) with `tail`.
///
/// Narrow panels are filled step by step, all panels at once, so each
/// source run is read whole while it is in cache (panel by panel, a step
/// read only `w` floats of each cache line it touched, and the line was
/// often gone by the next panel). Panels of
/// [`WIDE_PANEL`] floats or more (the AVX-512 tile's 64) are filled one
/// after another instead: each step of a panel then reads whole cache
/// lines anyway, and the writes go to one panel at a time instead of a
/// dozen at once (128×512×784, whose 1.6 MB B takes 13 panels: 142–144 →
/// 146–147 GFLOP/s, medians of 40 batches, three alternations on the
/// Xeon; the squares and the other training shapes within ±1 %).
///
/// # Safety
/// As [`pack_contiguous_lines`]; `tail` copies `n < CH` floats under the
/// same contract as [`copy_tail`].
#[inline(always)]
#[allow(clippy::too_many_arguments)] // pack_contiguous_lines' and the tail copy
unsafe fn copy_lines<const CH: usize>(
    out: *mut f32,
    src: *const f32,
    lines: usize,
    depth: usize,
    ds: usize,
    w: usize,
    last_w: usize,
    tail: unsafe fn(*const f32, *mut f32, usize),
) {
    let panels = lines.div_ceil(w);
    let panel_len = w * depth;
    let live = lines - (panels - 1) * w;
    // Step p of full panel r, and of the last one (`last_w` wide).
    // SAFETY: step p < depth of src and of every panel (caller).
    let full = |r: usize, p: usize| unsafe {
        let row = src.add(p * ds);
        copy_short::<CH>(row.add(r * w), out.add(r * panel_len + p * w), w, tail);
    };
    // SAFETY: as `full`, for the last panel, `last_w · depth` floats.
    let last = |p: usize| unsafe {
        let row = src.add(p * ds);
        let last = out.add((panels - 1) * panel_len + p * last_w);
        copy_short::<CH>(row.add((panels - 1) * w), last, live, tail);
    };
    // The last panel's padding, zeroed at once rather than per step.
    // SAFETY: the last panel has `last_w · depth` writable floats (caller).
    unsafe { zero_if_ragged(out.add((panels - 1) * panel_len), live, depth, last_w) };
    if w >= WIDE_PANEL {
        for r in 0..panels - 1 {
            (0..depth).for_each(|p| full(r, p));
        }
        (0..depth).for_each(last);
    } else {
        for p in 0..depth {
            (0..panels - 1).for_each(|r| full(r, p));
            last(p);
        }
    }
}

/// Panels at least this many floats wide (four cache lines) are packed one
/// after another (see [`copy_lines`]).
const WIDE_PANEL: usize = 64;

/// Copies `w` floats, `CH` at a time while they last and the rest with
/// `tail`; a panel row is at most a few hundred bytes, too short to be worth
/// a call to `memcpy`.
///
/// # Safety
/// `src` has `w` readable floats, `dst` `w` writable ones, not overlapping;
/// `tail` as in [`copy_lines`].
#[inline(always)]
unsafe fn copy_short<const CH: usize>(
    src: *const f32,
    dst: *mut f32,
    w: usize,
    tail: unsafe fn(*const f32, *mut f32, usize),
) {
    let mut x = 0;
    while x + CH <= w {
        // SAFETY: x + CH ≤ w floats on both sides (caller): one vector move.
        unsafe { ptr::copy_nonoverlapping(src.add(x), dst.add(x), CH) };
        x += CH;
    }
    if x < w {
        // SAFETY: w − x floats left on both sides (caller).
        unsafe { tail(src.add(x), dst.add(x), w - x) };
    }
}

/// The portable tail of [`copy_short`]: 4 floats at a time, then one by one.
///
/// # Safety
/// `src` has `n` readable floats, `dst` `n` writable ones, not overlapping.
#[inline(always)]
unsafe fn copy_tail(src: *const f32, dst: *mut f32, n: usize) {
    let mut x = 0;
    while x + 4 <= n {
        // SAFETY: x + 4 ≤ n floats on both sides (caller).
        unsafe { ptr::copy_nonoverlapping(src.add(x), dst.add(x), 4) };
        x += 4;
    }
    while x < n {
        // SAFETY: x < n (caller).
        unsafe { *dst.add(x) = *src.add(x) };
        x += 1;
    }
}

/// Zeroes a panel of `w` lines of which only `live` come from the source,
/// so edge tiles multiply by zeros; the caller then writes the live lines.
/// One `memset` of the whole panel: zeroing the `w − live` missing floats
/// at each of the `depth` steps made a `memset` call per step, even for
/// none. Paired medians, 1 thread on the Xeon: 64³ (its 4-row A tail)
/// +4.5 %, the logits' 10-line B panel, 16 wide and 512 steps deep, +11 %
/// transposed (128×512×10 Bᵀ) and +6 % row-major.
///
/// # Safety
/// `out` addresses `w · depth` writable floats.
unsafe fn zero_if_ragged(out: *mut f32, live: usize, depth: usize, w: usize) {
    if live < w {
        // SAFETY: `w · depth` floats are writable (caller).
        unsafe { ptr::write_bytes(out, 0, w * depth) };
    }
}
