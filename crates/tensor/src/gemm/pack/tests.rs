//! Packing against a plain reference, every layout and every SIMD path.

use super::transpose::{avx, avx512, sse};
use super::*;

/// What [`pack`] must produce: element `(i, p)` of panel `r` at
/// `r·w·depth + p·w + i`, zeros for the missing lines.
fn reference(src: &[f32], lines: usize, depth: usize, ls: usize, ds: usize, w: usize) -> Vec<f32> {
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

/// [`reference`] with the last panel only `last_w` lines wide (its
/// element `(i, p)` at `p·last_w + i` from the panel's start) when it is
/// not full.
fn reference_narrow_last(
    src: &[f32],
    lines: usize,
    depth: usize,
    (ls, ds): (usize, usize),
    w: usize,
    last_w: usize,
) -> Vec<f32> {
    let panels = lines.div_ceil(w);
    let full = reference(src, lines, depth, ls, ds, w);
    if lines.is_multiple_of(w) {
        return full;
    }
    let mut out = full.clone();
    let start = (panels - 1) * w * depth;
    out[start..].iter_mut().for_each(|x| *x = f32::NAN); // unwritten
    for p in 0..depth {
        for i in 0..last_w {
            out[start + p * last_w + i] = full[start + p * w + i];
        }
    }
    out
}

/// A ragged last panel packed narrower than the others: every layout,
/// every width from its live lines to `w`; nothing past its `last_w ·
/// depth` floats is written (NaNs stay NaNs, compared by bits).
#[test]
fn a_ragged_last_panel_is_packed_only_as_wide_as_asked() {
    for (lines, depth, w) in cases() {
        let live = lines - (lines.div_ceil(w) - 1) * w;
        for last_w in live..=w {
            for (ls, ds) in layouts(lines, depth) {
                let src = source(lines, depth, ls, ds);
                let want = reference_narrow_last(&src, lines, depth, (ls, ds), w, last_w);
                let mut got = vec![f32::NAN; want.len()];
                pack(&mut got, src.as_ptr(), lines, depth, ls, ds, w, last_w);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "lines {lines} depth {depth} w {w} last_w {last_w} ls {ls} ds {ds}"
                );
            }
        }
    }
}

#[test]
fn pack_matches_the_reference_on_every_layout() {
    for (lines, depth, w) in cases() {
        for (ls, ds) in layouts(lines, depth) {
            let src = source(lines, depth, ls, ds);
            let want = reference(&src, lines, depth, ls, ds, w);
            // Garbage first: padding must be written, not assumed.
            let mut got = vec![f32::NAN; want.len()];
            pack(&mut got, src.as_ptr(), lines, depth, ls, ds, w, w);
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
            // Padding zeroed first, as `pack` does: a transposer that
            // writes past its live lines shows up against `want`.
            // SAFETY: `got` has w·depth floats.
            unsafe { zero_if_ragged(got.as_mut_ptr(), lines, depth, w) };
            f(got.as_mut_ptr());
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
        type Copy = unsafe fn(*mut f32, *const f32, usize, usize, usize, usize, usize);
        let copy = |f: Copy| {
            let mut got = vec![f32::NAN; cwant.len()];
            // SAFETY: `got` has ⌈lines/w⌉·w·depth floats, `csrc` lines at
            // stride 1 and steps `cds` apart; only paths the CPU has.
            unsafe { f(got.as_mut_ptr(), csrc.as_ptr(), lines, depth, cds, w, w) };
            got
        };
        // SAFETY: the caller of `plain` upholds `copy_lines`' contract (as `copy` does).
        let plain: Copy = |out, src, lines, depth, ds, w, last_w| unsafe {
            copy_lines::<4>(out, src, lines, depth, ds, w, last_w, copy_tail)
        };
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
