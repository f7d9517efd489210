//! Every differentiable op through the finite-difference checker: one line
//! per op and shape, including broadcasting and non-contiguous inputs.

use ember_autograd::fused_loss::{
    binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss, Reduction,
};
use ember_autograd::gradcheck::{gradcheck, Tolerance};
use ember_autograd::{DropoutMask, Var};
use ember_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, -1.0, 1.0, &mut ChaCha8Rng::seed_from_u64(seed))
}

/// Values kept away from 0 (for ln, sqrt, div, abs, relu kinks).
fn positive(shape: &[usize], seed: u64) -> Tensor {
    Tensor::uniform(shape, 0.5, 2.0, &mut ChaCha8Rng::seed_from_u64(seed))
}

fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    rand(shape, seed).map(|v| if v >= 0.0 { v + 0.2 } else { v - 0.2 })
}

#[track_caller]
fn check(f: impl Fn(&[Var]) -> Var, inputs: Vec<Tensor>) {
    if let Err(e) = gradcheck(f, &inputs, Tolerance::default()) {
        panic!("{e}");
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let (a, b) = (rand(&[3, 4], 1), rand(&[4], 2));
    check(|v| &v[0] + &v[1], vec![a.clone(), b.clone()]);
    check(|v| &v[0] - &v[1], vec![a.clone(), rand(&[3, 1], 3)]);
    check(|v| &v[0] * &v[1], vec![a.clone(), b.clone()]);
    check(|v| &v[0] / &v[1], vec![a.clone(), positive(&[3, 1], 4)]);
    check(|v| &v[0] * &v[0], vec![a.clone()]);
    check(
        |v| &v[0] * &v[1],
        vec![rand(&[2, 1, 3], 5), rand(&[4, 1], 6)],
    );
}

#[test]
fn binary_ops_on_non_contiguous_inputs() {
    let a = rand(&[4, 3], 7);
    check(|v| &v[0].t() * &v[1], vec![a, rand(&[3, 4], 8)]);
    check(
        |v| v[0].permute(&[2, 0, 1]).exp().mul(&v[1]),
        vec![rand(&[2, 3, 4], 9), rand(&[4, 2, 3], 10)],
    );
}

#[test]
fn unary_ops() {
    let x = rand(&[2, 5], 11);
    check(|v| v[0].neg(), vec![x.clone()]);
    check(|v| &v[0] * 3.0, vec![x.clone()]);
    check(|v| &(&v[0] + 1.5) / 2.0, vec![x.clone()]);
    check(|v| v[0].exp(), vec![x.clone()]);
    check(|v| v[0].ln(), vec![positive(&[2, 5], 12)]);
    check(|v| v[0].sqrt(), vec![positive(&[2, 5], 13)]);
    check(|v| v[0].powf(3.0), vec![x.clone()]);
    check(|v| v[0].powf(0.5), vec![positive(&[2, 5], 14)]);
    check(|v| v[0].abs(), vec![away_from_zero(&[2, 5], 15)]);
}

#[test]
fn activations() {
    let x = away_from_zero(&[3, 4], 16);
    check(|v| v[0].relu(), vec![x.clone()]);
    check(|v| v[0].leaky_relu(0.1), vec![x.clone()]);
    check(|v| v[0].sigmoid(), vec![x.mul_scalar(3.0)]);
    check(|v| v[0].tanh(), vec![x.mul_scalar(2.0)]);
    check(|v| v[0].gelu(), vec![x.mul_scalar(2.0)]);
    let mask = Tensor::from_vec(vec![0.0, 1.25, 1.25, 0.0], &[4]);
    check(move |v| v[0].dropout_with_mask(&mask), vec![x.clone()]);
    let keep: Vec<u8> = (0..12).map(|i| u8::from(i % 3 != 0)).collect();
    check(
        move |v| v[0].dropout(DropoutMask::new(keep.clone(), 1.5)),
        vec![x.clone()],
    );
}

#[test]
fn reductions() {
    let x = rand(&[3, 4, 2], 17);
    check(|v| v[0].sum(), vec![x.clone()]);
    check(|v| v[0].mean(), vec![x.clone()]);
    check(|v| v[0].sum_axis(1, false), vec![x.clone()]);
    check(|v| v[0].sum_axis(-1, true), vec![x.clone()]);
    check(|v| v[0].mean_axis(0, false), vec![x.clone()]);
    // Distinct values spaced well beyond ε, so no finite step changes the winner.
    let spaced = Tensor::arange(24)
        .map(|i| ((i * 7.0) % 24.0) / 12.0 - 1.0)
        .reshape(&[3, 4, 2]);
    check(|v| v[0].max_axis(1, false), vec![spaced.clone()]);
    check(|v| v[0].max_axis(2, true), vec![spaced.clone()]);
    check(|v| v[0].t().sum_axis(0, false), vec![rand(&[3, 5], 18)]);
}

#[test]
fn shape_ops() {
    let x = rand(&[2, 3, 4], 19);
    check(|v| v[0].reshape(&[6, 4]), vec![x.clone()]);
    check(|v| v[0].flatten_from(1), vec![x.clone()]);
    check(|v| v[0].transpose(0, 2), vec![x.clone()]);
    check(|v| v[0].permute(&[1, 2, 0]), vec![x.clone()]);
    check(|v| v[0].narrow(1, 1, 2), vec![x.clone()]);
    check(
        |v| Var::concat(&[&v[0], &v[1]], 1),
        vec![x.clone(), rand(&[2, 2, 4], 20)],
    );
    check(|v| v[0].t().reshape(&[12]), vec![rand(&[3, 4], 21)]);
}

#[test]
fn matmul_2d_batched_and_transposed() {
    check(
        |v| v[0].matmul(&v[1]),
        vec![rand(&[3, 4], 22), rand(&[4, 5], 23)],
    );
    check(
        |v| v[0].matmul(&v[1].t()),
        vec![rand(&[3, 4], 24), rand(&[5, 4], 25)],
    );
    check(
        |v| v[0].t().matmul(&v[1]),
        vec![rand(&[4, 3], 26), rand(&[4, 2], 27)],
    );
    check(
        |v| v[0].matmul(&v[1]),
        vec![rand(&[2, 3, 4], 28), rand(&[2, 4, 5], 29)],
    );
    check(
        |v| v[0].matmul(&v[1]),
        vec![rand(&[2, 3, 4], 30), rand(&[4, 5], 31)],
    );
    check(
        |v| v[0].matmul(&v[1]),
        vec![rand(&[3, 4], 32), rand(&[2, 4, 5], 33)],
    );
    check(
        |v| v[0].linear(&v[1], Some(&v[2])),
        vec![rand(&[5, 4], 34), rand(&[3, 4], 35), rand(&[3], 36)],
    );
    check(
        |v| v[0].linear(&v[1], None),
        vec![rand(&[5, 4], 37), rand(&[3, 4], 38)],
    );
}

#[test]
fn softmax_and_log_softmax() {
    let x = rand(&[4, 5], 39).mul_scalar(2.0);
    check(|v| v[0].softmax(1), vec![x.clone()]);
    check(|v| v[0].softmax(0), vec![x.clone()]);
    check(|v| v[0].log_softmax(1), vec![x.clone()]);
}

/// The fused loss kernels (behind `ember_layers::loss`), each reduction.
#[test]
fn fused_losses() {
    let x = rand(&[4, 5], 39).mul_scalar(2.0);
    let probabilities = rand(&[4, 5], 41).map(|v| (v + 1.0) / 2.0);
    for r in [Reduction::Mean, Reduction::Sum] {
        check(
            |v| nll_loss(&v[0].log_softmax(1), &[0, 4, 2, 2], r),
            vec![x.clone()],
        );
        check(
            |v| cross_entropy(&v[0], &[0, 4, 2, 2], 0.0, r),
            vec![x.clone()],
        );
        check(
            |v| cross_entropy(&v[0], &[1, 1, 3, 0], 0.1, r),
            vec![x.clone()],
        );
        check(
            |v| mse_loss(&v[0], &v[1], r),
            vec![x.clone(), rand(&[4, 5], 40)],
        );
        check(
            |v| binary_cross_entropy_with_logits(&v[0], &v[1], r),
            vec![x.clone(), probabilities.clone()],
        );
    }
}

/// Distinct values spaced 0.05 apart (well beyond 2ε), in scrambled order, so
/// no finite-difference step changes which element of a pooling window wins.
fn spaced(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    assert!(
        !n.is_multiple_of(37),
        "37 must be coprime with {n} for distinct values"
    );
    Tensor::arange(n)
        .map(|i| ((i as usize * 37) % n) as f32 * 0.05 - 1.0)
        .reshape(shape)
}

#[test]
fn conv_and_pool() {
    // Stride 1, no padding, with bias.
    check(
        |v| v[0].conv2d(&v[1], Some(&v[2]), 1, 0),
        vec![
            rand(&[2, 3, 5, 5], 41),
            rand(&[4, 3, 3, 3], 42),
            rand(&[4], 43),
        ],
    );
    // Stride 2, padding 1, a non-square kernel, with bias.
    check(
        |v| v[0].conv2d(&v[1], Some(&v[2]), 2, 1),
        vec![
            rand(&[2, 2, 6, 5], 44),
            rand(&[3, 2, 3, 2], 45),
            rand(&[3], 46),
        ],
    );
    // Padding 1 without bias; stride 2 without padding or bias.
    check(
        |v| v[0].conv2d(&v[1], None, 1, 1),
        vec![rand(&[1, 2, 4, 4], 47), rand(&[2, 2, 3, 3], 48)],
    );
    check(
        |v| v[0].conv2d(&v[1], None, 2, 0),
        vec![rand(&[2, 1, 7, 6], 49), rand(&[2, 1, 3, 3], 50)],
    );
    // Non-contiguous input (NHWC permuted to NCHW) and a transposed kernel.
    check(
        |v| {
            v[0].permute(&[0, 3, 1, 2])
                .conv2d(&v[1].transpose(2, 3), Some(&v[2]), 1, 1)
        },
        vec![
            rand(&[2, 4, 5, 3], 51),
            rand(&[2, 3, 2, 3], 52),
            rand(&[2], 53),
        ],
    );
    // More images than one backward task holds (the partial ∂W are summed).
    check(
        |v| v[0].conv2d(&v[1], Some(&v[2]), 1, 0),
        vec![
            rand(&[11, 1, 3, 3], 54),
            rand(&[2, 1, 2, 2], 55),
            rand(&[2], 56),
        ],
    );

    check(|v| v[0].max_pool2d(2, 2), vec![spaced(&[2, 3, 4, 6])]);
    // Odd sizes leave the last row and column out of every window.
    check(|v| v[0].max_pool2d(2, 2), vec![spaced(&[1, 2, 5, 5])]);
    // Overlapping 3×3 windows with stride 2: a pixel can win twice.
    check(|v| v[0].max_pool2d(3, 2), vec![spaced(&[1, 2, 7, 7])]);
    check(
        |v| v[0].permute(&[0, 3, 1, 2]).max_pool2d(3, 2),
        vec![spaced(&[2, 5, 7, 3])],
    );
    // Pooling after a convolution, as in a CNN.
    check(
        |v| v[0].conv2d(&v[1], None, 1, 1).max_pool2d(2, 2),
        vec![spaced(&[1, 1, 4, 4]), rand(&[2, 1, 3, 3], 57)],
    );
}
