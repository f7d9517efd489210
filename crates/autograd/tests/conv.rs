//! Convolution and pooling: a hand-derived case, a naive direct convolution
//! as the reference for the im2col + GEMM path (forward and backward), and
//! independence from the thread count.

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[test]
fn hand_derived_conv() {
    // x = [[1 2 3]     w = [[1  0]     b = 0.5, stride 1, no padding.
    //      [4 5 6]          [0 −1]]
    //      [7 8 9]]
    // y[i, j] = x[i, j] − x[i+1, j+1] + 0.5 = −4 + 0.5 everywhere (2×2).
    // For L = Σ y:
    //   ∂L/∂w[u, v] = Σ_{i,j} x[i+u, j+v]: the 2×2 block of x at offset (u, v):
    //     w[0,0]: 1+2+4+5 = 12, w[0,1]: 2+3+5+6 = 16,
    //     w[1,0]: 4+5+7+8 = 24, w[1,1]: 5+6+8+9 = 28;
    //   ∂L/∂b = number of outputs = 4;
    //   ∂L/∂x[a, c] = Σ over the windows covering (a, c) of w[a−i, c−j]:
    //     [[1  1  0]
    //      [1  0 −1]
    //      [0 −1 −1]].
    let x = Var::parameter(Tensor::arange(9).map(|v| v + 1.0).reshape(&[1, 1, 3, 3]));
    let w = Var::parameter(Tensor::from_vec(vec![1.0, 0.0, 0.0, -1.0], &[1, 1, 2, 2]));
    let b = Var::parameter(Tensor::from_vec(vec![0.5], &[1]));
    let y = x.conv2d(&w, Some(&b), 1, 0);
    assert_eq!(y.shape(), vec![1, 1, 2, 2]);
    assert_eq!(y.value().to_vec(), vec![-3.5; 4]);
    y.sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![12.0, 16.0, 24.0, 28.0]);
    assert_eq!(b.grad().unwrap().to_vec(), vec![4.0]);
    assert_eq!(
        x.grad().unwrap().to_vec(),
        vec![1.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, -1.0]
    );
}

#[test]
fn hand_derived_max_pool() {
    // 2×2 windows, stride 2, over [[1 5 | 2 0] [3 4 | 7 7] [...]]: the maxima
    // are 5 and the *first* 7; ∂L/∂x is the upstream gradient at those pixels.
    #[rustfmt::skip]
    let x = Var::parameter(Tensor::from_vec(vec![
        1.0, 5.0, 2.0, 0.0,
        3.0, 4.0, 7.0, 7.0,
    ], &[1, 1, 2, 4]));
    let y = x.max_pool2d(2, 2);
    assert_eq!(y.value().to_vec(), vec![5.0, 7.0]);
    y.backward_with(Tensor::from_vec(vec![10.0, 20.0], &[1, 1, 1, 2]));
    assert_eq!(
        x.grad().unwrap().to_vec(),
        vec![0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 20.0, 0.0]
    );
}

/// Pixel `(y, xx)` of channel `c` of image `n`, or None in the padding.
fn pixel(x: &Tensor, n: usize, c: usize, y: isize, xx: isize) -> Option<f32> {
    let (h, w) = (x.shape()[2] as isize, x.shape()[3] as isize);
    ((0..h).contains(&y) && (0..w).contains(&xx)).then(|| x.get(&[n, c, y as usize, xx as usize]))
}

/// The definition, one output at a time, in f64: forward, and for a given
/// upstream gradient `g`, the gradients of x, w and b.
fn naive_conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    pad: usize,
    g: Option<&Tensor>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, wd] = x.shape().try_into().unwrap();
    let [o, _, kh, kw] = w.shape().try_into().unwrap();
    let (oh, ow) = (
        (h + 2 * pad - kh) / stride + 1,
        (wd + 2 * pad - kw) / stride + 1,
    );
    let mut y = vec![0.0f64; n * o * oh * ow];
    let (mut dx, mut dw, mut db) = (
        vec![0.0f64; x.numel()],
        vec![0.0f64; w.numel()],
        vec![0.0f64; o],
    );
    for img in 0..n {
        for oc in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let out = ((img * o + oc) * oh + i) * ow + j;
                    let gv = g.map_or(0.0, |g| f64::from(g.get(&[img, oc, i, j])));
                    let mut acc = f64::from(b.get(&[oc]));
                    db[oc] += gv;
                    for ch in 0..c {
                        for u in 0..kh {
                            for v in 0..kw {
                                let yy = (i * stride + u) as isize - pad as isize;
                                let xx = (j * stride + v) as isize - pad as isize;
                                if let Some(px) = pixel(x, img, ch, yy, xx) {
                                    let wv = f64::from(w.get(&[oc, ch, u, v]));
                                    acc += wv * f64::from(px);
                                    dw[((oc * c + ch) * kh + u) * kw + v] += gv * f64::from(px);
                                    let at = ((img * c + ch) * h + yy as usize) * wd + xx as usize;
                                    dx[at] += gv * wv;
                                }
                            }
                        }
                    }
                    y[out] = acc;
                }
            }
        }
    }
    (y, dx, dw, db)
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

#[test]
fn forward_and_backward_match_a_direct_convolution() {
    // (batch, channels, h, w, out, kh, kw, stride, padding): the MNIST layers'
    // kernels, strides and paddings that skip pixels or overhang, and batches
    // spanning several backward tasks.
    let cases = [
        (3, 1, 9, 9, 4, 3, 3, 1, 0),
        (19, 3, 6, 7, 5, 3, 3, 1, 1),
        (10, 2, 8, 7, 3, 3, 2, 2, 1),
        (2, 4, 5, 5, 2, 1, 1, 3, 2),
        (1, 2, 5, 4, 3, 5, 4, 1, 0),
    ];
    for (seed, (n, c, h, wd, o, kh, kw, s, p)) in cases.into_iter().enumerate() {
        let seed = 100 + 10 * seed as u64;
        let x = rand(&[n, c, h, wd], seed);
        let w = rand(&[o, c, kh, kw], seed + 1);
        let b = rand(&[o], seed + 2);
        let (xv, wv, bv) = (
            Var::parameter(x.clone()),
            Var::parameter(w.clone()),
            Var::parameter(b.clone()),
        );
        let y = xv.conv2d(&wv, Some(&bv), s, p);
        let g = rand(&y.shape(), seed + 3);
        let (ny, ndx, ndw, ndb) = naive_conv(&x, &w, &b, s, p, Some(&g));
        let case = format!("case {:?}", (n, c, h, wd, o, kh, kw, s, p));
        assert_close(&format!("{case} y"), &y.value().to_vec(), &ny);
        y.backward_with(g);
        assert_close(&format!("{case} dx"), &xv.grad().unwrap().to_vec(), &ndx);
        assert_close(&format!("{case} dw"), &wv.grad().unwrap().to_vec(), &ndw);
        assert_close(&format!("{case} db"), &bv.grad().unwrap().to_vec(), &ndb);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let x = rand(&[21, 3, 10, 10], 7);
    let w = rand(&[6, 3, 3, 3], 8);
    let b = rand(&[6], 9);
    let run = |threads: usize| {
        ember_tensor::on_threads(threads, || {
            let (xv, wv, bv) = (
                Var::parameter(x.clone()),
                Var::parameter(w.clone()),
                Var::parameter(b.clone()),
            );
            let y = xv.conv2d(&wv, Some(&bv), 1, 1).max_pool2d(2, 2);
            let out = y.value().to_vec();
            y.backward_with(rand(&y.shape(), 10));
            let grads = [&xv, &wv, &bv].map(|v| v.grad().unwrap().to_vec());
            (out, grads)
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

/// Bits of a tensor's values, so that signed zeros count.
fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// The input, weight and bias of a fused-op test, and the gradient fed back.
struct Case {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    g: Tensor,
}

impl Case {
    /// The bits of `op`'s output and of the input's, weight's and (when
    /// used) bias's gradients, computed on `threads` threads.
    fn run(
        &self,
        threads: usize,
        with_bias: bool,
        op: impl Fn(&Var, &Var, Option<&Var>) -> Var + Sync,
    ) -> Vec<Vec<u32>> {
        ember_tensor::on_threads(threads, || {
            let (xv, wv, bv) = (
                Var::parameter(self.x.clone()),
                Var::parameter(self.w.clone()),
                Var::parameter(self.b.clone()),
            );
            let y = op(&xv, &wv, with_bias.then_some(&bv));
            y.backward_with(self.g.clone());
            let mut out = vec![bits(&y.value()), bits(&xv.grad().unwrap())];
            out.push(bits(&wv.grad().unwrap()));
            if with_bias {
                out.push(bits(&bv.grad().unwrap()));
            }
            out
        })
    }

    /// Checks that `fused` and `apart` agree bit for bit on 1 and 2
    /// threads, with and without a bias, and that some outputs of `apart`
    /// are positive and some not (else the ReLU would be idle).
    fn check(
        &self,
        name: &str,
        fused: impl Fn(&Var, &Var, Option<&Var>) -> Var + Sync,
        apart: impl Fn(&Var, &Var, Option<&Var>) -> Var + Sync,
    ) {
        for threads in [1, 2] {
            for with_bias in [true, false] {
                let (fused, apart) = (
                    self.run(threads, with_bias, &fused),
                    self.run(threads, with_bias, &apart),
                );
                let y = &apart[0];
                assert!(y.iter().any(|&v| f32::from_bits(v) > 0.0), "{name}");
                assert!(y.iter().any(|&v| f32::from_bits(v) <= 0.0), "{name}");
                assert_eq!(fused, apart, "{name}, {threads} threads, bias {with_bias}");
            }
        }
    }
}

#[test]
fn fused_relu_matches_conv_then_relu_bit_for_bit() {
    // 19 images: more than one backward task, and a partial last one.
    let case = Case {
        x: rand(&[19, 3, 9, 9], 21),
        w: rand(&[5, 3, 3, 3], 22),
        b: rand(&[5], 23),
        g: rand(&[19, 5, 9, 9], 24),
    };
    case.check(
        "conv2d_relu",
        |x, w, b| x.conv2d_relu(w, b, 1, 1),
        |x, w, b| x.conv2d(w, b, 1, 1).relu(),
    );
}

#[test]
fn fused_relu_and_pool_match_the_three_ops_bit_for_bit() {
    // 19 images of 9×9 outputs: a partial last backward task, a 2×2 pool
    // that drops the last row and column, and an overlapping 3×3 one (some
    // windows all rectified, their gradient masked, and some not).
    for (kernel, stride) in [(2, 2), (3, 2)] {
        let side = (9 - kernel) / stride + 1;
        let case = Case {
            x: rand(&[19, 3, 9, 9], 31),
            w: rand(&[5, 3, 3, 3], 32),
            b: rand(&[5], 33),
            g: rand(&[19, 5, side, side], 34),
        };
        case.check(
            &format!("pool {kernel}/{stride}"),
            |x, w, b| x.conv2d_relu_max_pool2d(w, b, 1, 1, kernel, stride),
            |x, w, b| x.conv2d(w, b, 1, 1).relu().max_pool2d(kernel, stride),
        );
    }
}

#[test]
#[should_panic(
    expected = "conv2d_relu_max_pool2d: cannot pool the convolution's output \
                           [1, 3, 3, 3] with a 4×4 window"
)]
fn a_pool_larger_than_the_convolution_output_is_named() {
    let x = Var::constant(Tensor::zeros(&[1, 2, 5, 5]));
    let w = Var::parameter(Tensor::zeros(&[3, 2, 3, 3]));
    x.conv2d_relu_max_pool2d(&w, None, 1, 0, 4, 4);
}

#[test]
fn only_requested_gradients_are_computed() {
    // Data as a constant (the first layer of a CNN): weight and bias still
    // get their gradients, the input none.
    let x = Var::constant(rand(&[2, 1, 5, 5], 11));
    let w = Var::parameter(rand(&[3, 1, 3, 3], 12));
    let y = x.conv2d(&w, None, 1, 0);
    y.sum().backward();
    assert!(x.grad().is_none());
    assert_eq!(w.grad().unwrap().shape(), &[3, 1, 3, 3]);
}

#[test]
#[should_panic(expected = "conv2d: input [1, 2, 5, 5] does not fit weight [3, 4, 3, 3]")]
fn channel_mismatch_names_both_shapes() {
    let x = Var::constant(Tensor::zeros(&[1, 2, 5, 5]));
    x.conv2d(&Var::parameter(Tensor::zeros(&[3, 4, 3, 3])), None, 1, 0);
}

#[test]
#[should_panic(expected = "conv2d: bias [4] does not fit weight [3, 2, 3, 3]")]
fn bias_mismatch_names_both_shapes() {
    let x = Var::constant(Tensor::zeros(&[1, 2, 5, 5]));
    let w = Var::parameter(Tensor::zeros(&[3, 2, 3, 3]));
    x.conv2d(&w, Some(&Var::parameter(Tensor::zeros(&[4]))), 1, 0);
}

#[test]
#[should_panic(expected = "max_pool2d: cannot pool input [2, 3]")]
fn pooling_a_matrix_names_its_shape() {
    Var::constant(Tensor::zeros(&[2, 3])).max_pool2d(2, 2);
}
