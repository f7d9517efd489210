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

    /// The input pixel read by patch row `r` at output position `(oy, ox)`, if not padding.
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
    let mut out = vec![0.0; n * rows * positions];
    out.par_chunks_mut((rows * positions).max(1))
        .enumerate()
        .for_each(|(b, cols)| {
            let src = &x[b * image..(b + 1) * image];
            for (r, row) in cols.chunks_mut(positions).enumerate() {
                for (p, v) in row.iter_mut().enumerate() {
                    if let Some(at) = g.source(r, p / g.out_w(), p % g.out_w()) {
                        *v = src[at];
                    }
                }
            }
        });
    Tensor::from_vec(out, &[n, rows, positions])
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
    let mut out = vec![0.0; n * image];
    out.par_chunks_mut(image.max(1))
        .enumerate()
        .for_each(|(b, img)| {
            let src = &cols[b * rows * positions..(b + 1) * rows * positions];
            for (r, row) in src.chunks(positions).enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    if let Some(at) = g.source(r, p / g.out_w(), p % g.out_w()) {
                        img[at] += v;
                    }
                }
            }
        });
    Tensor::from_vec(out, &[n, g.channels, g.height, g.width])
}

#[cfg(test)]
mod tests {
    use super::*;

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
