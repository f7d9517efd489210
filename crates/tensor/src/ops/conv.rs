//! im2col / col2im: the rearrangements that turn a 2-D convolution into one GEMM.

use rayon::prelude::*;

use crate::tensor::Tensor;

/// The sizes of a 2-D convolution over NCHW input (square stride and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Step between neighbouring windows, in both directions.
    pub stride: usize,
    /// Zeros added on every side.
    pub padding: usize,
}

/// Copies the first `dst.len()` floats of `src` into `dst`, as arrays of 4
/// floats (one SSE move each, the widest vector every x86-64 has) and a last
/// array that may overlap the one before: the rows im2col copies are a few
/// dozen floats (24 in the convnet's second layer), where
/// `copy_from_slice`, a call into libc's `memmove`, cost more than the copy
/// itself (5 % of a convnet step on Zen 3). Arrays of 4 copy a 24-float row
/// in 6 moves, where blocks of 8 with an overlapping last block took 8.
/// With the stepped taps and the unpadded-row path of
/// [`Conv2dGeometry::im2col_image`], im2col fell from 10.7 to 7.9 % of a
/// convnet step (`perf record`, Xeon); timed alone, in a loop, the same
/// function ran at 21 or 35 µs an image from one build to the next, with
/// where its buffers fell, so that is no yardstick.
#[inline]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    const BLOCK: usize = 4;
    let n = dst.len();
    let src = &src[..n];
    if n < BLOCK {
        dst.copy_from_slice(src);
        return;
    }
    let (dst_blocks, _) = dst.as_chunks_mut::<BLOCK>();
    let (src_blocks, _) = src.as_chunks::<BLOCK>();
    // Two arrays a trip, the second first, so no store follows the one
    // before it: LLVM turns a loop of in-order array copies back into a
    // `memcpy` call.
    let mut pairs = dst_blocks
        .chunks_exact_mut(2)
        .zip(src_blocks.chunks_exact(2));
    for (d, s) in pairs.by_ref() {
        d[1] = s[1];
        d[0] = s[0];
    }
    if dst_blocks.len() % 2 == 1 {
        let last = dst_blocks.len() - 1;
        dst_blocks[last] = src_blocks[last];
    }
    if !n.is_multiple_of(BLOCK) {
        let last: &[f32; BLOCK] = src[n - BLOCK..].try_into().expect("BLOCK floats");
        *<&mut [f32; BLOCK]>::try_from(&mut dst[n - BLOCK..]).expect("BLOCK floats") = *last;
    }
}

/// One patch row of the column matrix: see [`Conv2dGeometry::for_each_tap`].
#[derive(Clone, Copy)]
struct Tap {
    c: usize,
    ky: usize,
    kx: usize,
    /// Output rows `y0..y1` whose tap reads a real row.
    ys: (usize, usize),
    /// Output columns `x0..x1` whose tap reads a real column.
    xs: (usize, usize),
}

impl Conv2dGeometry {
    /// Output height: `(H + 2p − kh) / s + 1`.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    /// Output width: `(W + 2p − kw) / s + 1`.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// Rows of the column matrix: `C × kh × kw`.
    pub fn patch_len(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    /// Unfolds one image `(C, H, W)` (row-major, `C·H·W` values) into its
    /// column matrix `(C·kh·kw, OH·OW)`, overwriting `cols`.
    ///
    /// Row `r = (c, ky, kx)` of the columns holds, for every output position,
    /// the input pixel under kernel tap `(ky, kx)` of channel `c` (0 in the
    /// padding). Each output row of it is one strided copy from one input row,
    /// so no index arithmetic is done per element.
    ///
    /// # Panics
    /// If the slices do not have the geometry's lengths.
    #[track_caller]
    pub fn im2col_image(&self, image: &[f32], cols: &mut [f32]) {
        self.check_image_slices("im2col_image", image.len(), cols.len());
        let (hw, ow, s) = (self.height * self.width, self.out_w(), self.stride);
        let positions = self.out_h() * ow;
        if positions == 0 {
            return;
        }
        self.for_each_tap(|r, tap| {
            let row = &mut cols[r * positions..(r + 1) * positions];
            let (Tap { c, ky, kx, .. }, (y0, y1), (x0, x1)) = (tap, tap.ys, tap.xs);
            let plane = &image[c * hw..(c + 1) * hw];
            row[..y0 * ow].fill(0.0);
            row[y1 * ow..].fill(0.0);
            if s == 1 && x0 == 0 && x1 == ow && y0 < y1 {
                // No padding along the rows (the common case): whole rows,
                // one after another, without per-row bounds.
                let first = (y0 + ky - self.padding) * self.width + kx - self.padding;
                let dst_rows = row[y0 * ow..y1 * ow].chunks_exact_mut(ow);
                for (dst, src) in dst_rows.zip(plane[first..].chunks(self.width)) {
                    copy_row(dst, src);
                }
                return;
            }
            for oy in y0..y1 {
                let dst = &mut row[oy * ow..(oy + 1) * ow];
                dst[..x0].fill(0.0);
                dst[x1..].fill(0.0);
                if x0 == x1 {
                    continue;
                }
                let y = oy * s + ky - self.padding;
                let src = &plane[y * self.width + x0 * s + kx - self.padding..];
                if s == 1 {
                    copy_row(&mut dst[x0..x1], src);
                } else {
                    for (d, &v) in dst[x0..x1].iter_mut().zip(src.iter().step_by(s)) {
                        *d = v;
                    }
                }
            }
        });
    }

    /// Folds one column matrix `(C·kh·kw, OH·OW)` back onto an image
    /// `(C, H, W)`, *adding* each entry to the pixel it was read from (entries
    /// that came from the padding are dropped): the adjoint of
    /// [`Conv2dGeometry::im2col_image`].
    ///
    /// # Panics
    /// If the slices do not have the geometry's lengths.
    #[track_caller]
    pub fn col2im_image_add(&self, cols: &[f32], image: &mut [f32]) {
        self.check_image_slices("col2im_image_add", image.len(), cols.len());
        let (hw, ow, s) = (self.height * self.width, self.out_w(), self.stride);
        let positions = self.out_h() * ow;
        if positions == 0 {
            return;
        }
        self.for_each_tap(|r, tap| {
            let row = &cols[r * positions..(r + 1) * positions];
            let (Tap { c, ky, kx, .. }, (y0, y1), (x0, x1)) = (tap, tap.ys, tap.xs);
            let plane = &mut image[c * hw..(c + 1) * hw];
            if x0 == x1 {
                return;
            }
            for oy in y0..y1 {
                let src = &row[oy * ow + x0..oy * ow + x1];
                let y = oy * s + ky - self.padding;
                let dst = &mut plane[y * self.width + x0 * s + kx - self.padding..];
                if s == 1 {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                } else {
                    for (d, &v) in dst.iter_mut().step_by(s).zip(src) {
                        *d += v;
                    }
                }
            }
        });
    }

    /// Calls `each(r, tap)` for every patch row `r` in order, with its
    /// (channel, kernel row, kernel column) and the output rows and columns
    /// where it reads real pixels. Stepped in nested loops rather than
    /// divided out of `r`: a division per row (and four more for the ranges)
    /// cost as much as copying the row's 24 floats.
    #[inline(always)]
    fn for_each_tap(&self, mut each: impl FnMut(usize, Tap)) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let mut r = 0;
        for c in 0..self.channels {
            for ky in 0..self.kernel_h {
                let ys = self.valid_outputs(ky, self.height, oh);
                for kx in 0..self.kernel_w {
                    let xs = self.valid_outputs(kx, self.width, ow);
                    each(r, Tap { c, ky, kx, ys, xs });
                    r += 1;
                }
            }
        }
    }

    /// The output positions `lo..hi` along one axis (input length `len`,
    /// `out` outputs) whose kernel tap `k` reads a real pixel, not padding:
    /// `0 ≤ o·s + k − p < len`.
    fn valid_outputs(&self, k: usize, len: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        if s == 1 {
            // The same bounds without the divisions.
            let hi = (len + p).saturating_sub(k).min(out);
            return (p.saturating_sub(k).min(hi), hi);
        }
        let lo = p.saturating_sub(k).div_ceil(s);
        let hi = (len + p).saturating_sub(k).div_ceil(s).min(out);
        (lo.min(hi), hi)
    }

    #[track_caller]
    fn check_image_slices(&self, op: &str, image: usize, cols: usize) {
        self.check(op, &[1, self.channels, self.height, self.width]);
        let want_image = self.channels * self.height * self.width;
        let want_cols = self.patch_len() * self.out_h() * self.out_w();
        assert!(
            image == want_image && cols == want_cols,
            "{op}: image of {image} values and columns of {cols} do not match the geometry \
             (need {want_image} and {want_cols}) for {self:?}"
        );
    }

    /// The input pixel read by patch row `r` at output position `(oy, ox)`, if
    /// not padding: the per-element definition the row-wise copies are tested against.
    #[cfg(test)]
    fn source(&self, r: usize, oy: usize, ox: usize) -> Option<usize> {
        let (c, rest) = (
            r / (self.kernel_h * self.kernel_w),
            r % (self.kernel_h * self.kernel_w),
        );
        let (ky, kx) = (rest / self.kernel_w, rest % self.kernel_w);
        let y = (oy * self.stride + ky).checked_sub(self.padding)?;
        let x = (ox * self.stride + kx).checked_sub(self.padding)?;
        (y < self.height && x < self.width).then(|| (c * self.height + y) * self.width + x)
    }

    #[track_caller]
    fn check(&self, op: &str, shape: &[usize]) {
        assert!(
            self.stride > 0 && self.kernel_h > 0 && self.kernel_w > 0,
            "{op}: stride and kernel sizes must be positive, got {self:?}"
        );
        assert!(
            self.height + 2 * self.padding >= self.kernel_h
                && self.width + 2 * self.padding >= self.kernel_w,
            "{op}: a {}×{} kernel does not fit a padded {}×{} input",
            self.kernel_h,
            self.kernel_w,
            self.height + 2 * self.padding,
            self.width + 2 * self.padding
        );
        assert!(
            shape.len() == 3 || shape.len() == 4,
            "{op}: unexpected shape {shape:?}"
        );
    }
}

/// Unfolds NCHW `input` into columns `(N, C·kh·kw, OH·OW)`, so that the
/// convolution is `weight (O, C·kh·kw) · columns`.
///
/// # Panics
/// If `input` is not `(N, C, H, W)` with the geometry's C, H and W.
#[track_caller]
pub fn im2col(input: &Tensor, g: &Conv2dGeometry) -> Tensor {
    g.check("im2col", input.shape());
    assert!(
        input.ndim() == 4 && input.shape()[1..] == [g.channels, g.height, g.width],
        "im2col: input shape {:?} does not match (N, {}, {}, {})",
        input.shape(),
        g.channels,
        g.height,
        g.width
    );
    let n = input.shape()[0];
    let x = input.contiguous();
    let x = x.as_slice().expect("contiguous");
    let (rows, positions) = (g.patch_len(), g.out_h() * g.out_w());
    let image = g.channels * g.height * g.width;
    let mut out = crate::recycle::filled(n * rows * positions, 0.0);
    if image > 0 {
        out.par_chunks_mut((rows * positions).max(1))
            .zip(x.par_chunks(image))
            .for_each(|(cols, src)| g.im2col_image(src, cols));
    }
    Tensor::from_buffer(out, &[n, rows, positions])
}

/// Folds columns `(N, C·kh·kw, OH·OW)` back into NCHW, summing overlapping
/// windows: the adjoint of [`im2col`], which the convolution's backward needs.
///
/// # Panics
/// If `columns` does not have the geometry's shape.
#[track_caller]
pub fn col2im(columns: &Tensor, g: &Conv2dGeometry) -> Tensor {
    g.check("col2im", columns.shape());
    let (rows, positions) = (g.patch_len(), g.out_h() * g.out_w());
    assert!(
        columns.ndim() == 3 && columns.shape()[1..] == [rows, positions],
        "col2im: columns shape {:?} does not match (N, {rows}, {positions})",
        columns.shape()
    );
    let n = columns.shape()[0];
    let cols = columns.contiguous();
    let cols = cols.as_slice().expect("contiguous");
    let image = g.channels * g.height * g.width;
    let mut out = crate::recycle::filled(n * image, 0.0);
    if image > 0 {
        out.par_chunks_mut(image)
            .zip(cols.par_chunks((rows * positions).max(1)))
            .for_each(|(img, src)| g.col2im_image_add(src, img));
    }
    Tensor::from_buffer(out, &[n, g.channels, g.height, g.width])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_row_copies_every_length_exactly() {
        let src: Vec<f32> = (0..40).map(|i| i as f32 + 0.5).collect();
        for n in 0..=33 {
            let mut dst = vec![-1.0; n + 3];
            copy_row(&mut dst[..n], &src);
            assert_eq!(&dst[..n], &src[..n], "length {n}");
            assert!(
                dst[n..].iter().all(|&v| v == -1.0),
                "length {n} wrote past its end"
            );
        }
    }

    #[test]
    fn im2col_of_a_3x3_image_with_padding() {
        let g = Conv2dGeometry {
            channels: 1,
            height: 3,
            width: 3,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            padding: 0,
        };
        let x = Tensor::arange(9).reshape(&[1, 1, 3, 3]);
        let c = im2col(&x, &g);
        assert_eq!(c.shape(), &[1, 4, 4]);
        // Row 0 is the top-left of every window.
        assert_eq!(
            c.select(0, 0).select(0, 0).to_vec(),
            vec![0.0, 1.0, 3.0, 4.0]
        );
        assert_eq!(
            c.select(0, 0).select(0, 3).to_vec(),
            vec![4.0, 5.0, 7.0, 8.0]
        );
        let padded = Conv2dGeometry {
            padding: 1,
            stride: 2,
            ..g
        };
        assert_eq!(padded.out_h(), 2);
        let cp = im2col(&x, &padded);
        assert_eq!(
            cp.select(0, 0).select(0, 0).to_vec(),
            vec![0.0, 0.0, 0.0, 4.0]
        );
    }

    #[test]
    fn row_wise_copies_match_the_per_element_definition() {
        // Strides, paddings and kernels where windows hang over every edge,
        // skip pixels, or fall wholly in the padding.
        let cases = [
            (2, 5, 4, 3, 2, 1, 0),
            (1, 6, 7, 3, 3, 1, 1),
            (2, 7, 6, 3, 3, 2, 1),
            (1, 5, 5, 2, 3, 3, 2),
            (3, 4, 4, 1, 1, 2, 0),
            (1, 3, 3, 3, 3, 1, 3),
            // Stride 1: narrow images, wide padding, kernels wider than
            // tall, rows long enough for the unpadded-row path.
            (2, 9, 11, 3, 5, 1, 2),
            (1, 4, 2, 3, 3, 1, 1),
            (1, 2, 2, 3, 3, 1, 1),
            (1, 7, 5, 5, 5, 1, 0),
            (2, 3, 4, 2, 5, 1, 4),
            (1, 8, 30, 3, 3, 1, 0),
        ];
        for (channels, height, width, kernel_h, kernel_w, stride, padding) in cases {
            let g = Conv2dGeometry {
                channels,
                height,
                width,
                kernel_h,
                kernel_w,
                stride,
                padding,
            };
            let image: Vec<f32> = (0..channels * height * width)
                .map(|v| v as f32 + 1.0)
                .collect();
            let positions = g.out_h() * g.out_w();
            let mut cols = vec![f32::NAN; g.patch_len() * positions];
            g.im2col_image(&image, &mut cols);
            for (i, &v) in cols.iter().enumerate() {
                let (r, p) = (i / positions, i % positions);
                let at = g.source(r, p / g.out_w(), p % g.out_w());
                assert_eq!(v, at.map_or(0.0, |a| image[a]), "{g:?} entry {i}");
            }
            // The fold of any columns, of mixed signs and magnitudes so that
            // adding a pixel's terms in another order gives other bits:
            // each pixel gets its terms in patch-row order.
            let any: Vec<f32> = (0..cols.len())
                .map(|i| (i as f32 * 0.618).sin() * 10f32.powi(i as i32 % 7 - 3))
                .collect();
            let mut folded = vec![0.5; image.len()];
            g.col2im_image_add(&any, &mut folded);
            let mut expected_fold = vec![0.5f32; image.len()];
            for (i, &v) in any.iter().enumerate() {
                let (r, p) = (i / positions, i % positions);
                if let Some(a) = g.source(r, p / g.out_w(), p % g.out_w()) {
                    expected_fold[a] += v;
                }
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&folded), bits(&expected_fold), "{g:?}");
        }
    }

    #[test]
    #[should_panic(expected = "im2col_image: image of 8 values and columns of 4")]
    fn wrong_slice_lengths_are_named() {
        let g = Conv2dGeometry {
            channels: 1,
            height: 3,
            width: 3,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            padding: 0,
        };
        g.im2col_image(&[0.0; 8], &mut [0.0; 4]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for any x, y.
        let g = Conv2dGeometry {
            channels: 2,
            height: 5,
            width: 4,
            kernel_h: 3,
            kernel_w: 2,
            stride: 2,
            padding: 1,
        };
        let x = Tensor::arange(2 * 2 * 5 * 4)
            .reshape(&[2, 2, 5, 4])
            .map(|v| (v * 0.3).sin());
        let cols = im2col(&x, &g);
        let y = Tensor::arange(cols.numel())
            .reshape(cols.shape())
            .map(|v| (v * 0.7).cos());
        let lhs = (&cols * &y).sum_all();
        let rhs = (&x * &col2im(&y, &g)).sum_all();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}
