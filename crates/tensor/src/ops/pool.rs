//! 2-D max pooling over NCHW input, and the gradient routing its backward needs.

use rayon::prelude::*;

use crate::parallel::worth_splitting;
use crate::tensor::Tensor;

/// The result of [`max_pool2d`]: the pooled values and, for each of them,
/// where in its `H × W` plane the maximum was found.
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    /// The maxima, `(N, C, OH, OW)`.
    pub output: Tensor,
    /// For each output element (row-major), the index `y·W + x` of the input
    /// pixel it came from, within its own `(n, c)` plane.
    pub argmax: Vec<u32>,
}

/// The sizes of a max pooling over planes of `height × width` pixels, with
/// `kernel × kernel` windows moved `stride` pixels at a time (no padding).
///
/// Its methods pool, and route gradients back through, one run of planes
/// (for instance one image's channels) held one after another in a slice:
/// the building blocks of [`max_pool2d`] and [`max_pool2d_backward`], for an
/// op that pools each image while it is still in cache.
///
/// ```
/// use ember_tensor::PoolGeometry;
///
/// let pool = PoolGeometry { height: 2, width: 4, kernel: 2, stride: 2 };
/// let (mut out, mut argmax) = ([0.0; 2], [0; 2]);
/// pool.pool_planes(&[1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 1.0], &mut out, &mut argmax);
/// assert_eq!((out, argmax), ([5.0, 8.0], [1, 6]));
/// let mut dx = [9.0; 8];
/// pool.route_planes(&[0.5, -1.0], &argmax, &mut dx);
/// assert_eq!(dx, [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Plane height.
    pub height: usize,
    /// Plane width.
    pub width: usize,
    /// Window side.
    pub kernel: usize,
    /// Step between neighbouring windows, in both directions.
    pub stride: usize,
}

impl PoolGeometry {
    /// Output height: `(H − k) / s + 1`.
    pub fn out_h(&self) -> usize {
        (self.height - self.kernel) / self.stride + 1
    }

    /// Output width: `(W − k) / s + 1`.
    pub fn out_w(&self) -> usize {
        (self.width - self.kernel) / self.stride + 1
    }

    /// Pixels per input plane, `H·W`.
    pub fn plane_in(&self) -> usize {
        self.height * self.width
    }

    /// Values per output plane, `OH·OW`.
    pub fn plane_out(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Whether the window fits in the plane and the sizes are usable
    /// (positive kernel and stride, indices that fit a `u32`).
    pub fn is_valid(&self) -> bool {
        self.kernel > 0
            && self.stride > 0
            && self.height >= self.kernel
            && self.width >= self.kernel
            && self.height * self.width <= u32::MAX as usize
    }

    /// Max-pools the planes of `input` (`H·W` values each) into `output`
    /// and records in `argmax` where each maximum came from (`y·W + x`
    /// within its plane). Ties go to the first maximum in row-major order.
    ///
    /// # Panics
    /// If the geometry is not [valid](PoolGeometry::is_valid), or the three
    /// slices do not hold the same number of planes.
    #[track_caller]
    pub fn pool_planes(&self, input: &[f32], output: &mut [f32], argmax: &mut [u32]) {
        let planes = self.planes("pool_planes", input.len(), output.len(), argmax.len());
        let (plane_in, plane_out) = (self.plane_in(), self.plane_out());
        for p in 0..planes {
            let src = &input[p * plane_in..(p + 1) * plane_in];
            let dst = &mut output[p * plane_out..(p + 1) * plane_out];
            let at = &mut argmax[p * plane_out..(p + 1) * plane_out];
            if self.kernel == 2 && self.stride == 2 {
                self.pool_plane_2x2(src, dst, at);
            } else {
                self.pool_plane(src, dst, at);
            }
        }
    }

    /// The adjoint of [`pool_planes`](PoolGeometry::pool_planes): `dx`
    /// (`H·W` values per plane) is overwritten with zeros, then each
    /// gradient in `grad` is added to the pixel its maximum came from
    /// (overlapping windows may send several into one pixel).
    ///
    /// # Panics
    /// As [`pool_planes`](PoolGeometry::pool_planes), or if an `argmax`
    /// entry lies outside its plane.
    #[track_caller]
    pub fn route_planes(&self, grad: &[f32], argmax: &[u32], dx: &mut [f32]) {
        let planes = self.planes("route_planes", dx.len(), grad.len(), argmax.len());
        let (plane_in, plane_out) = (self.plane_in(), self.plane_out());
        for p in 0..planes {
            let out = p * plane_out..(p + 1) * plane_out;
            route_plane(
                &grad[out.clone()],
                &argmax[out],
                &mut dx[p * plane_in..(p + 1) * plane_in],
            );
        }
    }

    /// The number of planes that `input_len` input values and
    /// `output_len`, `argmax_len` pooled values hold, checked to agree.
    #[track_caller]
    fn planes(&self, op: &str, input_len: usize, output_len: usize, argmax_len: usize) -> usize {
        assert!(
            self.is_valid(),
            "{op}: cannot pool {}×{} planes with a {}×{} window and stride {}",
            self.height,
            self.width,
            self.kernel,
            self.kernel,
            self.stride
        );
        let planes = input_len / self.plane_in();
        assert!(
            input_len == planes * self.plane_in()
                && output_len == planes * self.plane_out()
                && argmax_len == output_len,
            "{op}: {input_len} input values, {output_len} outputs and {argmax_len} winners are \
             not whole {}×{} planes pooled to {}×{}",
            self.height,
            self.width,
            self.out_h(),
            self.out_w()
        );
        planes
    }

    /// One plane, one output row at a time, tap by tap: each tap (ky, kx)
    /// is a strided sweep along one input row, compared against the running
    /// maxima. Taps go in row-major order and only a strictly larger value
    /// replaces the maximum, so ties keep the first.
    fn pool_plane(&self, src: &[f32], dst: &mut [f32], idx: &mut [u32]) {
        let (w, ow, kernel, stride) = (self.width, self.out_w(), self.kernel, self.stride);
        for ((best, at), oy) in dst
            .chunks_exact_mut(ow)
            .zip(idx.chunks_exact_mut(ow))
            .zip(0..)
        {
            for ky in 0..kernel {
                let row_start = (oy * stride + ky) * w;
                let row = &src[row_start..row_start + w];
                for kx in 0..kernel {
                    let first = ky == 0 && kx == 0;
                    for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
                        let pixel = kx + ox * stride;
                        let v = row[pixel];
                        if first || v > *b {
                            (*b, *a) = (v, (row_start + pixel) as u32);
                        }
                    }
                }
            }
        }
    }

    /// The common 2×2, stride 2 case: two input rows in pairs, compared in
    /// row-major order so ties keep the first.
    fn pool_plane_2x2(&self, src: &[f32], dst: &mut [f32], idx: &mut [u32]) {
        let (w, ow) = (self.width, self.out_w());
        for ((best, at), oy) in dst
            .chunks_exact_mut(ow)
            .zip(idx.chunks_exact_mut(ow))
            .zip(0..)
        {
            let top = 2 * oy * w;
            let (r0, r1) = (&src[top..top + w], &src[top + w..top + 2 * w]);
            let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            for (ox, ((b, a), (p, q))) in
                best.iter_mut().zip(at.iter_mut()).zip(windows).enumerate()
            {
                let (mut m, mut k) = (p[0], 0);
                if p[1] > m {
                    (m, k) = (p[1], 1);
                }
                if q[0] > m {
                    (m, k) = (q[0], w);
                }
                if q[1] > m {
                    (m, k) = (q[1], w + 1);
                }
                (*b, *a) = (m, (top + 2 * ox + k) as u32);
            }
        }
    }
}

/// Max-pools NCHW `input` with a `kernel × kernel` window moved `stride`
/// pixels at a time (no padding): `(N, C, H, W) → (N, C, OH, OW)` with
/// `OH = (H − k) / s + 1`. Ties go to the first maximum in row-major order.
///
/// ```
/// use ember_tensor::{max_pool2d, Tensor};
///
/// let x = Tensor::arange(16).reshape(&[1, 1, 4, 4]);
/// let pooled = max_pool2d(&x, 2, 2);
/// assert_eq!(pooled.output.to_vec(), vec![5.0, 7.0, 13.0, 15.0]);
/// assert_eq!(pooled.argmax, vec![5, 7, 13, 15]);
/// ```
///
/// # Panics
/// If `input` is not 4-D, the kernel or stride is 0, or the window is larger
/// than the image; the message names the op and the shapes.
#[track_caller]
pub fn max_pool2d(input: &Tensor, kernel: usize, stride: usize) -> MaxPool2d {
    let shape = input.shape();
    let geometry = (shape.len() == 4).then(|| PoolGeometry {
        height: shape[2],
        width: shape[3],
        kernel,
        stride,
    });
    let Some(pool) = geometry.filter(PoolGeometry::is_valid) else {
        panic!(
            "max_pool2d: cannot pool input {shape:?} with a {kernel}×{kernel} window and stride \
             {stride} (need (N, C, H, W) with H, W ≥ kernel and a positive stride)"
        )
    };
    let planes = shape[0] * shape[1];
    let (plane_in, plane_out) = (pool.plane_in(), pool.plane_out());
    let x = input.contiguous();
    let x = x.as_slice().expect("contiguous");
    // Every output and winner is written: by its window's first tap.
    let mut out = crate::recycle::for_overwrite(planes * plane_out);
    let mut argmax = vec![0u32; planes * plane_out];
    if worth_splitting(x.len()) {
        x.par_chunks(plane_in)
            .zip(out.par_chunks_mut(plane_out))
            .zip(argmax.par_chunks_mut(plane_out))
            .for_each(|((src, dst), at)| pool.pool_planes(src, dst, at));
    } else {
        pool.pool_planes(x, &mut out, &mut argmax);
    }
    MaxPool2d {
        output: Tensor::from_buffer(out, &[shape[0], shape[1], pool.out_h(), pool.out_w()]),
        argmax,
    }
}

/// The gradient of [`max_pool2d`]: each output gradient is added to the
/// input pixel its maximum came from (`argmax`); every other pixel gets 0.
/// Overlapping windows (stride < kernel) may send several into one pixel.
///
/// # Panics
/// If `grad` is not the pooled shape for `input_shape`'s batch and channels,
/// or `argmax` does not have one entry per gradient element.
#[track_caller]
pub fn max_pool2d_backward(grad: &Tensor, argmax: &[u32], input_shape: &[usize]) -> Tensor {
    let gs = grad.shape();
    assert!(
        input_shape.len() == 4
            && gs.len() == 4
            && gs[..2] == input_shape[..2]
            && argmax.len() == grad.numel(),
        "max_pool2d_backward: gradient {gs:?} (with {} winners) does not fit input {input_shape:?}",
        argmax.len()
    );
    let plane_in = input_shape[2] * input_shape[3];
    let plane_out = gs[2] * gs[3];
    let g = grad.contiguous();
    let g = g.as_slice().expect("contiguous");
    // Each plane is zeroed just before its gradients are routed into it
    // (while it is in cache), not in a pass of its own over the batch.
    let mut dx = crate::recycle::for_overwrite(input_shape.iter().product());
    let route = |((dst, src), idx): ((&mut [f32], &[f32]), &[u32])| route_plane(src, idx, dst);
    if plane_in > 0 && plane_out > 0 {
        if worth_splitting(dx.len()) {
            dx.par_chunks_mut(plane_in)
                .zip(g.par_chunks(plane_out))
                .zip(argmax.par_chunks(plane_out))
                .for_each(route);
        } else {
            dx.chunks_mut(plane_in)
                .zip(g.chunks(plane_out))
                .zip(argmax.chunks(plane_out))
                .for_each(route);
        }
    } else {
        dx.fill(0.0);
    }
    Tensor::from_buffer(dx, input_shape)
}

/// Zeroes one input plane's gradient `dst`, then adds each pooled gradient
/// to the pixel its maximum came from.
fn route_plane(grad: &[f32], argmax: &[u32], dst: &mut [f32]) {
    dst.fill(0.0);
    for (&v, &at) in grad.iter().zip(argmax) {
        dst[at as usize] += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_pick_the_first_maximum_and_route_back() {
        // 1×1×3×5 with a tie inside the first 3×3 window.
        #[rustfmt::skip]
        let x = Tensor::from_vec(vec![
            1.0, 9.0, 2.0, 0.0, 3.0,
            9.0, 4.0, 5.0, 8.0, 1.0,
            0.0, 6.0, 7.0, 2.0, 8.0,
        ], &[1, 1, 3, 5]);
        let p = max_pool2d(&x, 3, 2);
        assert_eq!(p.output.shape(), &[1, 1, 1, 2]);
        assert_eq!(p.output.to_vec(), vec![9.0, 8.0]);
        // Window 0: first 9 at (0, 1) = 1; window 1: first 8 at (1, 3) = 8.
        assert_eq!(p.argmax, vec![1, 8]);
        let g = Tensor::from_vec(vec![1.5, -2.0], &[1, 1, 1, 2]);
        let dx = max_pool2d_backward(&g, &p.argmax, x.shape());
        let mut expected = vec![0.0; 15];
        expected[1] = 1.5;
        expected[8] = -2.0;
        assert_eq!(dx.to_vec(), expected);
    }

    #[test]
    fn strided_views_and_many_planes_match_a_direct_loop() {
        // Large enough to take the parallel path; a permuted (non-contiguous) view.
        let base = Tensor::arange(2 * 40 * 41 * 20).map(|v| ((v * 0.37).sin() * 100.0).round());
        let x = base.reshape(&[2, 41, 40, 20]).permute(&[0, 3, 1, 2]);
        let p = max_pool2d(&x, 2, 2);
        assert_eq!(p.output.shape(), &[2, 20, 20, 20]);
        for (n, c, oy, ox) in [(0, 0, 0, 0), (1, 19, 19, 19), (1, 3, 7, 11)] {
            let window = (0..4).map(|t| x.get(&[n, c, 2 * oy + t / 2, 2 * ox + t % 2]));
            let expected = window.fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(p.output.get(&[n, c, oy, ox]), expected);
        }
        let dx = max_pool2d_backward(&Tensor::ones(p.output.shape()), &p.argmax, x.shape());
        assert_eq!(dx.sum_all(), p.output.numel() as f32);
    }

    #[test]
    #[should_panic(expected = "max_pool2d: cannot pool input [1, 1, 2, 2] with a 3×3 window")]
    fn a_window_larger_than_the_image_is_named() {
        max_pool2d(&Tensor::zeros(&[1, 1, 2, 2]), 3, 1);
    }
}
