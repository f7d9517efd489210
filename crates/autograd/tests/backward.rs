//! The backward pass itself: hand-derived gradients, accumulation, no_grad,
//! memory, and clear panics on misuse.

use ember_autograd::fused_loss::{cross_entropy, Reduction};
use ember_autograd::{no_grad, DropoutMask, Var};
use ember_tensor::Tensor;

fn t(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape)
}

#[test]
fn a_parameter_starts_on_a_cache_line_whatever_it_was_made_from() {
    let lined = Tensor::zeros(&[65]);
    assert!(lined.starts_on_cache_line());
    // A view one float past a line, and a transposed one.
    let off = lined.narrow(0, 1, 64).reshape(&[8, 8]);
    assert!(!off.starts_on_cache_line());
    for value in [off.clone(), off.t()] {
        let w = Var::parameter(value.clone());
        assert!(w.value().starts_on_cache_line());
        assert!(w.value().is_contiguous());
        assert_eq!(w.value().to_vec(), value.to_vec());
    }
    // One already so is kept, not copied.
    let kept = Tensor::ones(&[4, 16]);
    assert!(Var::parameter(kept.clone())
        .value()
        .shares_storage_with(&kept));
}

#[test]
fn hand_derived_chain_rule() {
    // f(x, y) = (x·y + x)² at x = 2, y = 3: u = 8, f = 64.
    // ∂f/∂x = 2u·(y + 1) = 64, ∂f/∂y = 2u·x = 32.
    let x = Var::parameter(Tensor::scalar(2.0));
    let y = Var::parameter(Tensor::scalar(3.0));
    let u = &(&x * &y) + &x;
    let f = &u * &u;
    f.backward();
    assert_eq!(f.item(), 64.0);
    assert_eq!(x.grad().unwrap().item(), 64.0);
    assert_eq!(y.grad().unwrap().item(), 32.0);
}

#[test]
fn hand_derived_cross_entropy() {
    // Logits (0, ln 3) for target 1: p = (1/4, 3/4), loss = −ln(3/4),
    // ∂/∂logits = p − onehot = (1/4, −1/4).
    let logits = Var::parameter(t(&[0.0, 3f32.ln()], &[1, 2]));
    let loss = cross_entropy(&logits, &[1], 0.0, Reduction::Mean);
    loss.backward();
    assert!((loss.item() + 0.75f32.ln()).abs() < 1e-6);
    let g = logits.grad().unwrap().to_vec();
    assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6);
}

#[test]
fn hand_derived_matmul() {
    // y = sum(x·w): ∂/∂w[p, j] = Σᵢ x[i, p]; ∂/∂x[i, p] = Σⱼ w[p, j].
    let x = Var::parameter(t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let w = Var::parameter(t(&[1.0, 10.0, 100.0, 1000.0], &[2, 2]));
    x.matmul(&w).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![4.0, 4.0, 6.0, 6.0]);
    assert_eq!(x.grad().unwrap().to_vec(), vec![11.0, 1100.0, 11.0, 1100.0]);
}

#[test]
fn gradients_accumulate_until_zeroed() {
    let w = Var::parameter(t(&[1.0, 2.0], &[2]));
    for _ in 0..3 {
        (&w * 2.0).sum().backward();
    }
    assert_eq!(w.grad().unwrap().to_vec(), vec![6.0, 6.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    (&w * &w).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 4.0]);
}

#[test]
fn matmul_backward_accumulates_into_existing_gradients() {
    let x = Var::constant(t(&[1.0, 2.0], &[1, 2]));
    let w = Var::parameter(t(&[0.5, -0.5], &[2, 1]));
    x.matmul(&w).sum().backward();
    x.matmul(&w).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![2.0, 4.0]);
}

#[test]
fn shared_subexpressions_sum_their_gradients() {
    // y = a·a + a: ∂y/∂a = 2a + 1.
    let a = Var::parameter(t(&[3.0], &[1]));
    let b = &a * &a;
    let y = (&b + &a).sum();
    y.backward();
    assert_eq!(a.grad().unwrap().to_vec(), vec![7.0]);
}

#[test]
fn no_grad_records_nothing_and_restores() {
    let w = Var::parameter(t(&[1.0], &[1]));
    let y = no_grad(|| {
        let inner = ember_autograd::NoGradGuard::new();
        drop(inner);
        assert!(
            !ember_autograd::is_grad_enabled(),
            "nested guards restore the outer state"
        );
        &w * 3.0
    });
    assert!(!y.requires_grad() && y.is_leaf());
    assert!(ember_autograd::is_grad_enabled());
    let z = (&w * 3.0).sum();
    assert!(z.requires_grad());
}

#[test]
fn detach_stops_gradients() {
    let w = Var::parameter(t(&[2.0], &[1]));
    let y = (&w.detach() * &w).sum(); // ∂/∂w = detached value = 2
    y.backward();
    assert_eq!(w.grad().unwrap().to_vec(), vec![2.0]);
}

#[test]
#[should_panic(expected = "backward: called on a non-scalar of shape [2, 2]")]
fn backward_on_non_scalar_panics() {
    let w = Var::parameter(Tensor::ones(&[2, 2]));
    (&w * 2.0).backward();
}

#[test]
#[should_panic(expected = "matmul: cannot multiply shapes [2, 3] and [2, 3]")]
fn shape_mismatch_names_the_op_and_shapes() {
    let w = Var::parameter(Tensor::ones(&[2, 3]));
    w.matmul(&w);
}

#[test]
#[should_panic(expected = "already used by an earlier backward()")]
fn second_backward_through_a_freed_graph_panics() {
    let w = Var::parameter(Tensor::ones(&[2]));
    let y = (&w * &w).sum();
    y.backward();
    y.backward();
}

#[test]
fn intermediate_buffers_are_freed_after_backward_and_drop() {
    // Two honest measures: the number of live graph nodes on this thread, and
    // the handles to the parameter's storage (only its Var and our probe).
    let w = Var::parameter(Tensor::ones(&[8, 4]));
    let b = Var::parameter(Tensor::zeros(&[4]));
    let baseline = ember_autograd::live_vars();
    for step in 0..10_000 {
        let x = Var::constant(Tensor::full(&[3, 8], step as f32 * 1e-4));
        let h = x.matmul(&w).add(&b).relu().sum();
        h.backward();
        drop(h);
        drop(x);
        w.zero_grad();
        b.zero_grad();
        assert_eq!(
            ember_autograd::live_vars(),
            baseline,
            "step {step}: graph nodes leaked"
        );
        assert_eq!(
            w.value().storage_handles(),
            2,
            "step {step}: a stale handle keeps w alive"
        );
    }
}

#[test]
fn zero_grad_keeps_the_weight_gradient_buffer_for_the_next_backward() {
    let x = Var::constant(Tensor::arange(6).reshape(&[3, 2]));
    let w = Var::parameter(t(&[1.0, -1.0, 0.5, 2.0], &[2, 2]));
    let step = |scale: f32| (&x.linear(&w, None) * scale).sum().backward();
    step(1.0);
    let first = w.grad().unwrap().to_vec();
    // A gradient taken before zero_grad keeps its values when the buffer is reused.
    let kept = w.grad().unwrap();
    w.zero_grad();
    assert!(w.grad().is_none());
    step(2.0);
    assert_eq!(kept.to_vec(), first, "an earlier gradient was overwritten");
    drop(kept);
    assert_eq!(
        w.grad().unwrap().to_vec(),
        first.iter().map(|g| 2.0 * g).collect::<Vec<_>>()
    );
    // With no other handle on it, the next backward overwrites the same
    // buffer: β = 0, so even NaN left in it does not leak into the result.
    w.set_grad(Some(Tensor::full(&[2, 2], f32::NAN)));
    let buffer_nan = w.grad().unwrap().as_slice().unwrap().as_ptr();
    w.zero_grad();
    step(3.0);
    let g = w.grad().unwrap();
    assert_eq!(g.as_slice().unwrap().as_ptr(), buffer_nan);
    assert_eq!(
        g.to_vec(),
        first.iter().map(|g| 3.0 * g).collect::<Vec<_>>()
    );
}

#[test]
fn observed_backward_reports_each_leaf_once_with_its_final_gradient() {
    // w is used twice (y = w·x + w·x): its gradient is 2x, and it must only be
    // reported after both uses have added to it; the last layer comes first.
    let w1 = Var::parameter(t(&[1.0, 2.0], &[2]));
    let w2 = Var::parameter(t(&[3.0, 4.0], &[2]));
    let x = Var::constant(t(&[5.0, 6.0], &[2]));
    let h = &w1 * &x;
    let y = (&(&h * &w2) + &(&h * &w2)).sum();
    let mut seen = Vec::new();
    y.backward_observed(&mut |leaf: &Var| seen.push((leaf.id(), leaf.grad().unwrap().to_vec())));
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], (w2.id(), vec![10.0, 24.0])); // 2·h = 2·(5, 12)
    assert_eq!(seen[1], (w1.id(), vec![30.0, 48.0])); // 2·w2·x = 2·(15, 24)
}

/// Runs `op` on parameters `x`, `w` and (when `with_bias`) `b`, back from
/// the upstream gradient `g`: the op's name, and the bits of its value and
/// of each parameter's gradient (so signed zeros and NaNs count).
fn linear_run(
    (x, w, b): (&Tensor, &Tensor, &Tensor),
    with_bias: bool,
    g: &Tensor,
    op: impl Fn(&Var, &Var, Option<&Var>) -> Var,
) -> (&'static str, Vec<Vec<u32>>) {
    let bits = |t: &Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (xv, wv, bv) = (
        Var::parameter(x.clone()),
        Var::parameter(w.clone()),
        Var::parameter(b.clone()),
    );
    let y = op(&xv, &wv, with_bias.then_some(&bv));
    y.backward_with(g.clone());
    let mut out = vec![bits(&y.value()), bits(&xv.grad().unwrap())];
    out.push(bits(&wv.grad().unwrap()));
    if with_bias {
        out.push(bits(&bv.grad().unwrap()));
    }
    (y.op_name(), out)
}

#[test]
fn fused_linear_relu_matches_linear_then_relu_bit_for_bit() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = Tensor::uniform(&[37, 19], -1.0, 1.0, &mut rng);
    let w = Tensor::uniform(&[23, 19], -1.0, 1.0, &mut rng);
    let b = Tensor::uniform(&[23], -1.0, 1.0, &mut rng);
    let g = Tensor::uniform(&[37, 23], -1.0, 1.0, &mut rng);
    for with_bias in [true, false] {
        let params = (&x, &w, &b);
        let (_, fused) = linear_run(params, with_bias, &g, |x, w, b| x.linear_relu(w, b));
        let (_, apart) = linear_run(params, with_bias, &g, |x, w, b| x.linear(w, b).relu());
        let y = &apart[0];
        assert!(y.iter().any(|&v| f32::from_bits(v) > 0.0));
        assert!(y.iter().any(|&v| f32::from_bits(v) <= 0.0));
        assert_eq!(fused, apart, "bias {with_bias}");
    }
}

/// Linear → ReLU → dropout as one op: the bits of the three apart, values
/// and every gradient, with and without a bias, on one thread and two
/// (the batch is large enough to split the mask loops).
#[test]
fn fused_linear_relu_dropout_matches_the_ops_apart_bit_for_bit() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let (batch, inputs, outputs) = (130, 19, 257);
    let x = Tensor::uniform(&[batch, inputs], -1.0, 1.0, &mut rng);
    let w = Tensor::uniform(&[outputs, inputs], -1.0, 1.0, &mut rng);
    let b = Tensor::uniform(&[outputs], -1.0, 1.0, &mut rng);
    // Some gradients so large that `g·scale` overflows: only an exact
    // dropped-element path (g·0, not 0·(g·scale)) keeps their zeros.
    let g = Tensor::uniform(&[batch, outputs], -1.0, 1.0, &mut rng).map(|v| {
        if v.abs() > 0.9 {
            v.signum() * f32::MAX
        } else {
            v
        }
    });
    let keep: Vec<u8> = (0..batch * outputs)
        .map(|_| u8::from(rng.random::<f32>() < 0.7))
        .collect();
    let mask = || DropoutMask::new(keep.clone(), 1.0 / 0.7);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for with_bias in [true, false] {
            let params = (&x, &w, &b);
            let ((op, fused), (_, apart)) = pool.install(|| {
                (
                    linear_run(params, with_bias, &g, |x, w, b| {
                        x.linear_relu_dropout(w, b, mask())
                    }),
                    linear_run(params, with_bias, &g, |x, w, b| {
                        x.linear_relu(w, b).dropout(mask())
                    }),
                )
            });
            assert_eq!(op, "linear_relu_dropout");
            let z = &apart[0];
            assert!(z.iter().any(|&v| f32::from_bits(v) > 0.0));
            assert!(z.iter().any(|&v| f32::from_bits(v) == 0.0));
            assert_eq!(fused, apart, "bias {with_bias}, {threads} threads");
        }
    }
}

#[test]
#[should_panic(
    expected = "linear_relu_dropout: a mask of 5 elements for an output of shape [2, 3]"
)]
fn a_fused_dropout_mask_of_the_wrong_size_panics_naming_both() {
    let x = Var::constant(Tensor::ones(&[2, 4]));
    let w = Var::parameter(Tensor::ones(&[3, 4]));
    x.linear_relu_dropout(&w, None, DropoutMask::new(vec![1; 5], 2.0));
}

/// The byte-mask dropout gives the bits of the tensor-mask one, forward and
/// backward, signed zeros and a NaN input included.
#[test]
fn dropout_byte_mask_matches_the_tensor_mask_bit_for_bit() {
    let values = vec![1.5, -2.0, 0.0, -0.0, f32::NAN, 3.25, -7.5, 1e-3];
    let keep: Vec<u8> = vec![1, 0, 1, 0, 0, 1, 1, 0];
    let scale = 1.0 / 0.75;
    let tensor_mask: Vec<f32> = keep
        .iter()
        .map(|&k| if k != 0 { scale } else { 0.0 })
        .collect();
    let run = |byte_mask: bool| {
        let x = Var::parameter(Tensor::from_vec(values.clone(), &[2, 4]));
        let y = if byte_mask {
            x.dropout(DropoutMask::new(keep.clone(), scale))
        } else {
            x.dropout_with_mask(&Tensor::from_vec(tensor_mask.clone(), &[2, 4]))
        };
        let weights = Var::constant(Tensor::from_vec(
            (1..=8).map(|i| i as f32 - 4.5).collect(),
            &[2, 4],
        ));
        y.mul(&weights).sum().backward();
        let bits = |t: Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(y.value()), bits(x.grad().unwrap()))
    };
    assert_eq!(run(true), run(false));
}

#[test]
#[should_panic(
    expected = "dropout: a mask of 3 elements for an input of shape [2, 2] (4 elements)"
)]
fn dropout_mask_of_the_wrong_length_names_both() {
    let x = Var::parameter(Tensor::ones(&[2, 2]));
    let _ = x.dropout(DropoutMask::new(vec![1; 3], 2.0));
}
