//! 2-D convolution (im2col + GEMM) and max pooling over NCHW images.
//!
//! Convolution, for input `x (N, C, H, W)`, weight `w (O, C, kh, kw)` and
//! bias `b (O)`, with stride `s` and zero padding `p`:
//!
//! `y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p]`
//!
//! Unfolding each image into its column matrix `X̂ₙ = im2col(xₙ)`, of shape
//! `(K, P)` with `K = C·kh·kw` and `P = OH·OW`, turns this into one product
//! per image: `Yₙ = W·X̂ₙ + b·1ᵀ`, with `W` the weight read as `(O, K)`.
//!
//! Images are independent, so the batch is split across rayon threads, each
//! unfolding one image at a time into its own scratch buffer (a few hundred
//! KB that stays in cache) and running a single-threaded GEMM on it; the
//! columns of the whole batch are never materialised. Every image is computed
//! the same way whatever the thread count, so results are too.

use ember_tensor::gemm::{
    gemm, gemm_fused, with_scratch, Bias, Epilogue, MatMut, MatRef, Parallelism,
};
use ember_tensor::{max_pool2d_backward, Conv2dGeometry, PoolGeometry, Tensor};
use rayon::prelude::*;

use super::elementwise::relu_grad;
use crate::graph::{record, Grads};
use crate::Var;

/// Images per backward task. Fixed, not derived from the thread count, so the
/// order in which per-task weight gradients are summed — and hence the
/// rounding — never depends on the machine.
const IMAGES_PER_TASK: usize = 8;

/// The sizes of one convolution, checked once in the forward pass.
#[derive(Clone, Copy, Debug)]
struct ConvDims {
    geom: Conv2dGeometry,
    batch: usize,
    out_channels: usize,
}

impl ConvDims {
    /// Values per input image, `C·H·W`.
    fn image(&self) -> usize {
        self.geom.channels * self.geom.height * self.geom.width
    }

    /// Output positions per image, `P = OH·OW`.
    fn positions(&self) -> usize {
        self.geom.out_h() * self.geom.out_w()
    }

    /// The weight `(O, K)`, row-major.
    fn weight<'a>(&self, w: &'a [f32]) -> MatRef<'a> {
        let k = self.geom.patch_len();
        MatRef::new(w, self.out_channels, k, k, 1)
    }
}

/// What follows the convolution inside the op, and so what its backward
/// keeps to turn the op's gradient into the convolution's own.
enum Stage {
    /// Nothing: the op's output is the convolution.
    Linear,
    /// A ReLU; its output `y` is the mask (`y > 0` exactly where the
    /// convolution was positive).
    Relu { y: Tensor },
    /// A ReLU, then max pooling of each image's planes: the pooled output
    /// and its winners are all the backward needs (a winner was positive
    /// exactly where its pooled value is).
    ReluMaxPool {
        pool: PoolGeometry,
        pooled: Tensor,
        argmax: Vec<u32>,
    },
}

/// What a caller asked to follow the convolution (the pooling window as
/// `(kernel, stride)`, checked against the output once its size is known).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    Linear,
    Relu,
    ReluMaxPool((usize, usize)),
}

/// The GEMM thread budget when `tasks` independent tasks already run in
/// parallel: one thread each if they fill the pool, else all threads per GEMM.
fn gemm_threads(tasks: usize) -> Parallelism {
    match rayon::current_num_threads() {
        t if t <= 1 || tasks >= t => Parallelism::Sequential,
        t => Parallelism::Threads(t),
    }
}

#[track_caller]
fn conv_dims(x: &[usize], w: &[usize], stride: usize, padding: usize) -> ConvDims {
    let fits = x.len() == 4
        && w.len() == 4
        && x[1] == w[1]
        && x[1..].iter().all(|&d| d > 0)
        && w[2] > 0
        && w[3] > 0
        && stride > 0
        && x[2] + 2 * padding >= w[2]
        && x[3] + 2 * padding >= w[3];
    assert!(
        fits,
        "conv2d: input {x:?} does not fit weight {w:?} with stride {stride} and padding \
         {padding} (need input (N, C, H, W), weight (O, C, kh, kw), a positive stride and \
         the kernel within the padded image)"
    );
    ConvDims {
        geom: Conv2dGeometry {
            channels: x[1],
            height: x[2],
            width: x[3],
            kernel_h: w[2],
            kernel_w: w[3],
            stride,
            padding,
        },
        batch: x[0],
        out_channels: w[0],
    }
}

impl Var {
    /// 2-D convolution (cross-correlation, as in PyTorch) of NCHW input:
    /// `(N, C, H, W) ⊛ weight (O, C, kh, kw) + bias (O) → (N, O, OH, OW)`, with
    /// `OH = (H + 2·padding − kh) / stride + 1` (likewise `OW`) and zero padding.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// // A 2×2 box filter over a 3×3 image: each output sums one window.
    /// let x = Var::constant(Tensor::arange(9).reshape(&[1, 1, 3, 3]));
    /// let w = Var::parameter(Tensor::ones(&[1, 1, 2, 2]));
    /// let y = x.conv2d(&w, None, 1, 0);
    /// assert_eq!(y.value().to_vec(), vec![8.0, 12.0, 20.0, 24.0]);
    /// y.sum().backward();
    /// // ∂/∂w[u, v] = Σ of the pixels under tap (u, v) across the windows.
    /// assert_eq!(w.grad().unwrap().to_vec(), vec![8.0, 12.0, 20.0, 24.0]);
    /// ```
    ///
    /// # Panics
    /// If the input is not `(N, C, H, W)`, the weight not `(O, C, kh, kw)`
    /// with the same `C`, the bias not `(O)`, the stride 0, or the kernel larger
    /// than the padded image; the message names the shapes.
    #[track_caller]
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, stride: usize, padding: usize) -> Var {
        self.conv2d_then(weight, bias, stride, padding, Then::Linear)
    }

    /// [`conv2d`](Var::conv2d) followed by [`relu`](Var::relu), in one pass:
    /// each image's output is rectified while it is still in cache, and the
    /// backward masks each image's gradient as it uses it, instead of two
    /// more passes over the whole batch (and a buffer for each). The values
    /// and gradients are those of `.conv2d(..).relu()`, bit for bit.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::constant(Tensor::from_vec(vec![1.0, -2.0, 3.0, -4.0], &[1, 1, 2, 2]));
    /// let w = Var::parameter(Tensor::ones(&[2, 1, 1, 1]).mul_scalar(-1.0));
    /// let fused = x.conv2d_relu(&w, None, 1, 0);
    /// let apart = x.conv2d(&w, None, 1, 0).relu();
    /// assert_eq!(fused.value().to_vec(), apart.value().to_vec());
    /// assert_eq!(fused.value().to_vec(), vec![0.0, 2.0, 0.0, 4.0, 0.0, 2.0, 0.0, 4.0]);
    /// ```
    ///
    /// # Panics
    /// As [`conv2d`](Var::conv2d).
    #[track_caller]
    pub fn conv2d_relu(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        stride: usize,
        padding: usize,
    ) -> Var {
        self.conv2d_then(weight, bias, stride, padding, Then::Relu)
    }

    /// [`conv2d`](Var::conv2d), [`relu`](Var::relu), then
    /// [`max_pool2d`](Var::max_pool2d) with a `pool_kernel × pool_kernel`
    /// window moved by `pool_stride`, in one op: each image is convolved,
    /// rectified and pooled while it is in cache, and the full-size
    /// convolution output is never stored. The backward routes each image's
    /// pooled gradient to its winners and masks it in that image's own
    /// buffer, instead of a dense gradient of the whole batch written by the
    /// pooling and read back, with the ReLU output, by the convolution.
    /// Values and gradients are those of the three ops apart, bit for bit.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::parameter(Tensor::arange(32).reshape(&[1, 2, 4, 4]).add_scalar(-15.0));
    /// let w = Var::parameter(Tensor::from_vec(vec![1.0, -1.0, 0.5, 2.0], &[2, 2, 1, 1]));
    /// let fused = x.conv2d_relu_max_pool2d(&w, None, 1, 0, 2, 2);
    /// let apart = x.conv2d(&w, None, 1, 0).relu().max_pool2d(2, 2);
    /// assert_eq!(fused.shape(), [1, 2, 2, 2]);
    /// assert_eq!(fused.value().to_vec(), apart.value().to_vec());
    /// ```
    ///
    /// # Panics
    /// As [`conv2d`](Var::conv2d), or if the pooling window does not fit
    /// the convolution's output (the message names both).
    #[track_caller]
    pub fn conv2d_relu_max_pool2d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        stride: usize,
        padding: usize,
        pool_kernel: usize,
        pool_stride: usize,
    ) -> Var {
        let pool = (pool_kernel, pool_stride);
        self.conv2d_then(weight, bias, stride, padding, Then::ReluMaxPool(pool))
    }

    #[track_caller]
    fn conv2d_then(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        stride: usize,
        padding: usize,
        then: Then,
    ) -> Var {
        let (x, w) = (self.value().contiguous(), weight.value().contiguous());
        let dims = conv_dims(x.shape(), w.shape(), stride, padding);
        let b = bias.map(|b| b.value().contiguous());
        if let Some(b) = &b {
            assert!(
                b.shape() == [dims.out_channels],
                "conv2d: bias {:?} does not fit weight {:?} (need (O,))",
                b.shape(),
                w.shape()
            );
        }
        let pool = match then {
            Then::ReluMaxPool((kernel, stride)) => {
                let pool = PoolGeometry {
                    height: dims.geom.out_h(),
                    width: dims.geom.out_w(),
                    kernel,
                    stride,
                };
                assert!(
                    pool.is_valid(),
                    "conv2d_relu_max_pool2d: cannot pool the convolution's output {:?} with \
                     a {kernel}×{kernel} window and stride {stride} (need a positive stride \
                     and a window within the output)",
                    [dims.batch, dims.out_channels, pool.height, pool.width]
                );
                Some(pool)
            }
            _ => None,
        };
        let relu = then != Then::Linear;
        let (value, argmax) = conv2d_forward(&x, &w, b.as_ref(), &dims, relu, pool);
        let inputs: Vec<&Var> = match bias {
            Some(b) => vec![self, weight, b],
            None => vec![self, weight],
        };
        let stage = match pool {
            Some(pool) => Stage::ReluMaxPool {
                pool,
                pooled: value.clone(),
                argmax,
            },
            // The rectified output is its own mask: y > 0 exactly where z > 0.
            None if relu => Stage::Relu { y: value.clone() },
            None => Stage::Linear,
        };
        let op = match then {
            Then::Linear => "conv2d",
            Then::Relu => "conv2d_relu",
            Then::ReluMaxPool(_) => "conv2d_relu_max_pool2d",
        };
        record(op, value, &inputs, move |g, grads: &mut Grads<'_>| {
            conv2d_backward(&x, &w, &dims, g, &stage, grads)
        })
    }

    /// Max pooling of NCHW input with a `kernel × kernel` window moved by
    /// `stride` (no padding): `(N, C, H, W) → (N, C, OH, OW)`,
    /// `OH = (H − kernel) / stride + 1`.
    ///
    /// Each output is one input pixel, so its gradient goes to that pixel (the
    /// first maximum of the window on ties, as in PyTorch) and the others get 0.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::parameter(Tensor::arange(16).reshape(&[1, 1, 4, 4]));
    /// let y = x.max_pool2d(2, 2);
    /// assert_eq!(y.value().to_vec(), vec![5.0, 7.0, 13.0, 15.0]);
    /// y.sum().backward();
    /// let g = x.grad().unwrap().to_vec();
    /// assert_eq!(g.iter().sum::<f32>(), 4.0);
    /// assert_eq!((g[5], g[7], g[13], g[15]), (1.0, 1.0, 1.0, 1.0));
    /// ```
    ///
    /// # Panics
    /// If the input is not 4-D, `kernel` or `stride` is 0, or the window is
    /// larger than the image; the message names the input shape and window.
    #[track_caller]
    pub fn max_pool2d(&self, kernel: usize, stride: usize) -> Var {
        let shape = self.shape();
        let pooled = ember_tensor::max_pool2d(&self.value_ref(), kernel, stride);
        let argmax = pooled.argmax;
        record(
            "max_pool2d",
            pooled.output,
            &[self],
            move |g, grads: &mut Grads<'_>| {
                // y = x[argmax]: a gather, whose adjoint scatters (adds) g back.
                grads.add(0, max_pool2d_backward(g, &argmax, &shape))
            },
        )
    }
}

/// `Yₙ = W·im2col(xₙ) + b`, image by image, rectified if `relu`, then
/// max-pooled if `pool` is given: the output, and the pool's winners (empty
/// without a pool).
fn conv2d_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    dims: &ConvDims,
    relu: bool,
    pool: Option<PoolGeometry>,
) -> (Tensor, Vec<u32>) {
    let (n, o) = (dims.batch, dims.out_channels);
    let (k, p, image) = (dims.geom.patch_len(), dims.positions(), dims.image());
    let (x, w) = (
        x.as_slice().expect("contiguous"),
        w.as_slice().expect("contiguous"),
    );
    let b = b.map(|b| b.as_slice().expect("contiguous"));
    let (out_h, out_w) = match pool {
        Some(pool) => (pool.out_h(), pool.out_w()),
        None => (dims.geom.out_h(), dims.geom.out_w()),
    };
    let per_image = o * out_h * out_w;
    // Recycled storage (a fresh multi-megabyte `vec!` every step was paid
    // for in page faults), not zeroed: the product with β = 0, or the
    // pooling, writes every value.
    let mut output = Tensor::empty(&[n, o, out_h, out_w]);
    let mut argmax = vec![0u32; if pool.is_some() { n * per_image } else { 0 }];
    let out = output.data_mut();
    // The bias (one per output channel: a row of Yₙ) and the ReLU are applied
    // by the GEMM as it writes each tile, not in passes over Yₙ of their own;
    // the bits are those of a bias fill, β = 1 and `Var::relu` after.
    let epilogue = Epilogue {
        bias: b.map(Bias::Rows),
        relu,
    };
    // The scratch holds the columns and, when pooling, Yₙ itself: a few
    // hundred KB that stay in cache between the GEMM and the pooling.
    let scratch = k * p + if pool.is_some() { o * p } else { 0 };
    let one_image =
        |x_n: &[f32], out_n: &mut [f32], argmax_n: &mut [u32], scratch: &mut [f32], par| {
            let (cols, y_scratch) = scratch.split_at_mut(k * p);
            dims.geom.im2col_image(x_n, cols);
            let cols = MatRef::new(cols, k, p, p, 1);
            match pool {
                Some(pool) => {
                    let y_n = MatMut::new(y_scratch, o, p, p, 1);
                    gemm_fused(1.0, dims.weight(w), cols, 0.0, y_n, epilogue, par);
                    pool.pool_planes(y_scratch, out_n, argmax_n);
                }
                None => {
                    let y_n = MatMut::new(out_n, o, p, p, 1);
                    gemm_fused(1.0, dims.weight(w), cols, 0.0, y_n, epilogue, par);
                }
            }
        };
    if !out.is_empty() {
        // One winners' slice per image (empty ones without a pool), so every
        // case walks the batch the same way.
        let argmax_parts: Vec<&mut [u32]> = if pool.is_some() {
            argmax.chunks_mut(per_image).collect()
        } else {
            (0..n).map(|_| <&mut [u32]>::default()).collect()
        };
        let par = gemm_threads(n);
        if par == Parallelism::Sequential && n > 1 {
            out.par_chunks_mut(per_image)
                .zip(x.par_chunks(image))
                .zip(argmax_parts)
                .for_each(|((out_n, x_n), argmax_n)| {
                    with_scratch(scratch, |s| one_image(x_n, out_n, argmax_n, s, par))
                });
        } else {
            with_scratch(scratch, |s| {
                let images = out.chunks_mut(per_image).zip(x.chunks(image));
                for ((out_n, x_n), argmax_n) in images.zip(argmax_parts) {
                    one_image(x_n, out_n, argmax_n, s, par);
                }
            });
        }
    }
    (output, argmax)
}

// With Gₙ = ∂L/∂Yₙ (O, P) and Yₙ = W·X̂ₙ + b·1ᵀ:
// - ∂L/∂W = Σₙ Gₙ·X̂ₙᵀ (each Yₙ[o, q] = Σₖ W[o, k]·X̂ₙ[k, q], as for matmul);
// - ∂L/∂X̂ₙ = Wᵀ·Gₙ, and since X̂ₙ = im2col(xₙ) only copies pixels (a linear
//   gather), ∂L/∂xₙ = col2im(Wᵀ·Gₙ): each column entry's gradient is added
//   back onto the pixel it was copied from (padding entries are dropped);
// - ∂L/∂b[o] = Σₙ Σ_q Gₙ[o, q].
// X̂ₙ is recomputed here rather than kept from the forward pass: unfolding is
// cheap beside the GEMMs and keeping it would cost K·P floats per image.
//
// With a fused ReLU (its output y kept), Gₙ is first masked to
// Gₙ ⊙ [yₙ > 0], image by image, as ReLU's own backward would have. With a
// fused ReLU and pool, the op's gradient is first routed to each window's
// winner (as max_pool2d's backward would, into a zeroed buffer), then masked
// at the winners whose pooled value is not positive (every other entry is
// a routed 0, which the mask leaves 0).
fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    dims: &ConvDims,
    g: &Tensor,
    stage: &Stage,
    grads: &mut Grads<'_>,
) {
    let (want_x, want_w, want_b) = (grads.wants(0), grads.wants(1), grads.wants(2));
    let (n, o) = (dims.batch, dims.out_channels);
    let (k, p, image) = (dims.geom.patch_len(), dims.positions(), dims.image());
    if n == 0 || o == 0 {
        return;
    }
    let g = g.contiguous();
    // Values of the op's output per image (pooled, or O·P).
    let per_image = g.numel() / n;
    let (gs, xs, ws) = (
        g.as_slice().expect("contiguous"),
        x.as_slice().expect("contiguous"),
        w.as_slice().expect("contiguous"),
    );
    let tasks = n.div_ceil(IMAGES_PER_TASK);
    let par = gemm_threads(tasks);
    // Zeroed image by image below, just before col2im adds onto it (while
    // the image is in cache), not in a pass of its own over the batch.
    let mut dx_tensor = want_x.then(|| Tensor::empty(x.shape()));
    let dx_parts: Vec<Option<&mut [f32]>> = if let Some(dx) = dx_tensor.as_mut() {
        dx.data_mut()
            .chunks_mut(IMAGES_PER_TASK * image)
            .map(Some)
            .collect()
    } else {
        (0..tasks).map(|_| None).collect()
    };
    // Each task returns its partial ∂Wᵀ and ∂b; ∂x is written in place.
    let partials: Vec<(Tensor, Vec<f32>)> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(t, mut dx_t)| {
            let first = t * IMAGES_PER_TASK;
            let last = (first + IMAGES_PER_TASK).min(n);
            with_scratch(if want_w || want_x { k * p } else { 0 }, |cols| {
                // ∂Wᵀ (K×O), accumulated over this task's images; in a
                // tensor's storage, which starts on a cache line, where the
                // GEMM loads and stores it fastest (a `vec!` 16 bytes off
                // one cost 288×576×64 Bᵀ 2.4 %).
                let mut dw_t = Tensor::zeros(&[if want_w { o * k } else { 0 }]);
                let mut db = vec![0.0; if want_b { o } else { 0 }];
                // Gₙ once masked (or routed); every value is written before
                // it is read, so recycled storage does.
                let mut masked = match stage {
                    Stage::Linear => Tensor::empty(&[0]),
                    _ => Tensor::empty(&[o * p]),
                };
                let buffer = masked.data_mut();
                for (i, img) in (first..last).enumerate() {
                    let this = img * per_image..(img + 1) * per_image;
                    let g_img: &[f32] = match stage {
                        Stage::Linear => &gs[this],
                        Stage::Relu { y } => {
                            let ys = y.as_slice().expect("a fresh output is contiguous");
                            let (g_n, y_n) = (&gs[this.clone()], &ys[this]);
                            for ((m, &g), &y) in buffer.iter_mut().zip(g_n).zip(y_n) {
                                *m = relu_grad(g, y);
                            }
                            buffer
                        }
                        Stage::ReluMaxPool {
                            pool,
                            pooled,
                            argmax,
                        } => {
                            let pooled = pooled.as_slice().expect("a fresh output is contiguous");
                            let (g_n, argmax_n) = (&gs[this.clone()], &argmax[this.clone()]);
                            pool.route_planes(g_n, argmax_n, buffer);
                            let planes = buffer.chunks_exact_mut(p);
                            let winners = pooled[this].chunks(pool.plane_out());
                            for ((plane, pooled), argmax) in
                                planes.zip(winners).zip(argmax_n.chunks(pool.plane_out()))
                            {
                                for (&y, &at) in pooled.iter().zip(argmax) {
                                    let m = &mut plane[at as usize];
                                    *m = relu_grad(*m, y);
                                }
                            }
                            buffer
                        }
                    };
                    let g_n = MatRef::new(g_img, o, p, p, 1);
                    if want_w {
                        // dWᵀ (+)= X̂ₙ·Gₙᵀ, the transpose of dW (+)= Gₙ·X̂ₙᵀ:
                        // X̂ₙ (K×P, row-major) is then read where it lies, and
                        // only Gₙ (O×P, a ninth of its size here) is packed
                        // transposed, rather than all of X̂ₙ. Each element is
                        // the same chain of multiply-adds either way (a
                        // product's operands commute), so the same bits.
                        dims.geom
                            .im2col_image(&xs[img * image..(img + 1) * image], cols);
                        let beta = if i == 0 { 0.0 } else { 1.0 };
                        gemm(
                            1.0,
                            MatRef::new(cols, k, p, p, 1),
                            g_n.t(),
                            beta,
                            MatMut::new(dw_t.data_mut(), k, o, o, 1),
                            par,
                        );
                    }
                    if let Some(dx_t) = dx_t.as_deref_mut() {
                        // dX̂ₙ = Wᵀ·Gₙ, then folded back onto the image.
                        let w_t = MatRef::new(ws, k, o, 1, k);
                        gemm(1.0, w_t, g_n, 0.0, MatMut::new(cols, k, p, p, 1), par);
                        let dx_n = &mut dx_t[i * image..(i + 1) * image];
                        dx_n.fill(0.0);
                        dims.geom.col2im_image_add(cols, dx_n);
                    }
                    if want_b {
                        let rows = g_img.chunks_exact(p);
                        for (acc, row) in db.iter_mut().zip(rows) {
                            *acc += row_sum(row);
                        }
                    }
                }
                (dw_t, db)
            })
        })
        .collect();
    if let Some(dx) = dx_tensor {
        grads.add(0, dx);
    }
    if want_w {
        // The tasks' ∂Wᵀ summed, then transposed once into W's layout.
        let dw_t = sum_in_order(partials.iter().map(|t| t.0.as_slice().expect("contiguous")));
        let dw = Tensor::from_vec(dw_t, &[k, o]).t().contiguous();
        grads.add(1, dw.reshape(w.shape()));
    }
    if want_b {
        let db = sum_in_order(partials.iter().map(|t| t.1.as_slice()));
        grads.add(2, Tensor::from_vec(db, &[o]));
    }
}

/// The sum of a row, over 16 running partial sums combined in a fixed order:
/// the loop vectorises (a plain `iter().sum()` is one chain of dependent
/// adds: 3–4 ms of a 60 ms convnet step went to the bias gradient), and the
/// result depends only on the row, never on the machine or thread count.
fn row_sum(row: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let mut total = 0.0;
    for lane in lanes {
        total += lane;
    }
    for &v in rest {
        total += v;
    }
    total
}

/// The elementwise sum of per-task partial gradients, in task order (not in
/// whatever order threads finished), so the rounding is always the same.
fn sum_in_order<'a>(mut parts: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let mut total = parts.next().map_or_else(Vec::new, <[f32]>::to_vec);
    for part in parts {
        for (acc, &v) in total.iter_mut().zip(part) {
            *acc += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::row_sum;

    #[test]
    fn row_sum_adds_every_value_in_its_fixed_order() {
        for len in [0, 1, 15, 16, 17, 40, 576] {
            let row: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 2.5).collect();
            let exact: f64 = row.iter().map(|&v| f64::from(v)).sum();
            assert_eq!(f64::from(row_sum(&row)), exact, "length {len}");
        }
    }
}
