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

/// Output size of a pooling window sliding along an axis of `len`.
fn pooled(len: usize, kernel: usize, stride: usize) -> usize {
    (len - kernel) / stride + 1
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
    assert!(
        shape.len() == 4
            && kernel > 0
            && stride > 0
            && shape[2] >= kernel
            && shape[3] >= kernel
            && shape[2] * shape[3] <= u32::MAX as usize,
        "max_pool2d: cannot pool input {shape:?} with a {kernel}×{kernel} window and stride \
         {stride} (need (N, C, H, W) with H, W ≥ kernel and a positive stride)"
    );
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let (oh, ow) = (pooled(h, kernel, stride), pooled(w, kernel, stride));
    let x = input.contiguous();
    let x = x.as_slice().expect("contiguous");
    // Every output is written: by its window's first tap, or the 2×2 max.
    let mut out = crate::recycle::for_overwrite(planes * oh * ow);
    let mut argmax = vec![0u32; planes * oh * ow];
    // One output row at a time, tap by tap: each tap (ky, kx) is a strided
    // sweep along one input row, compared against the running maxima. Taps go
    // in row-major order and only a strictly larger value replaces the
    // maximum, so ties keep the first.
    let pool_plane = |((src, dst), idx): ((&[f32], &mut [f32]), &mut [u32])| {
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
    };
    // The common 2×2, stride 2 case: two input rows in pairs, compared in
    // row-major order so ties keep the first.
    let pool_plane_2x2 = |((src, dst), idx): ((&[f32], &mut [f32]), &mut [u32])| {
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
    };
    let plane_pool = |job: ((&[f32], &mut [f32]), &mut [u32])| {
        if kernel == 2 && stride == 2 {
            pool_plane_2x2(job);
        } else {
            pool_plane(job);
        }
    };
    let plane_out = (oh * ow).max(1);
    if planes > 0 && h * w > 0 {
        if worth_splitting(x.len()) {
            x.par_chunks(h * w)
                .zip(out.par_chunks_mut(plane_out))
                .zip(argmax.par_chunks_mut(plane_out))
                .for_each(plane_pool);
        } else {
            x.chunks(h * w)
                .zip(out.chunks_mut(plane_out))
                .zip(argmax.chunks_mut(plane_out))
                .for_each(plane_pool);
        }
    }
    MaxPool2d {
        output: Tensor::from_vec(out, &[shape[0], shape[1], oh, ow]),
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
    let route = |((dst, src), idx): ((&mut [f32], &[f32]), &[u32])| {
        dst.fill(0.0);
        for (&v, &at) in src.iter().zip(idx) {
            dst[at as usize] += v;
        }
    };
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
    Tensor::from_vec(dx, input_shape)
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
