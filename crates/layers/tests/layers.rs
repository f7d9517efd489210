//! The layers: shapes, names, Ember's initialization defaults, train/eval
//! behaviour, determinism, and an end-to-end model that learns XOR.

use ember_autograd::gradcheck::{gradcheck, Tolerance};
use ember_autograd::Var;
use ember_layers::init::Constant;
use ember_layers::loss::{cross_entropy, Reduction};
use ember_layers::{
    Activation, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, LayerInit, Linear, MaxPool2d, Module,
    Named, ReLU, Sequential, Sigmoid, Step, Tanh,
};
use ember_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn std_of(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn linear_computes_x_wt_plus_b() {
    let layer = Linear::with_init(3, 2, &LayerInit::default().bias_constant(0.5), &mut rng(1));
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0], &[2, 3]);
    let y = layer.forward(&Var::constant(x.clone())).value();
    let w = layer.weight().value();
    for i in 0..2 {
        for j in 0..2 {
            let expected: f32 = (0..3).map(|p| x.get(&[i, p]) * w.get(&[j, p])).sum::<f32>() + 0.5;
            assert!((y.get(&[i, j]) - expected).abs() < 1e-5);
        }
    }
}

#[test]
#[should_panic(expected = "linear: input [2, 5] does not fit weight [2, 3]")]
fn linear_rejects_the_wrong_width() {
    let layer = Linear::new(3, 2, &mut rng(1));
    layer.forward(&Var::constant(Tensor::zeros(&[2, 5])));
}

#[test]
fn default_weights_are_truncated_normal_with_std_one_over_sqrt_fan_in() {
    let layer = Linear::new(784, 512, &mut rng(2));
    let w = layer.weight().value().to_vec();
    let sigma = 1.0 / 784f64.sqrt();
    // Truncation at ±2σ leaves 0.8796σ of spread, and nothing beyond 2σ.
    let ratio = std_of(&w) / sigma;
    assert!((ratio - 0.8796).abs() < 0.01, "std ratio {ratio}");
    assert!(w.iter().all(|&v| f64::from(v.abs()) <= 2.0 * sigma + 1e-7));
}

#[test]
fn a_layer_built_for_a_relu_gets_a_positive_bias_and_other_layers_zero() {
    let mut r = rng(3);
    let relu = LayerInit::before(Activation::Relu);
    let model = Sequential::new()
        .add(Linear::with_init(4, 8, &relu, &mut r))
        .add(ReLU)
        .add(Linear::new(8, 8, &mut r))
        .add(Tanh)
        .add(Linear::new(8, 2, &mut r));
    let p = model.parameters();
    let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    );
    assert!(all_equal(&p[1].var, 0.1));
    assert!(all_equal(&p[3].var, 0.0) && all_equal(&p[5].var, 0.0));
    // A ReLU module placed after a layer not built for it changes nothing.
    let plain = Sequential::new().add(Linear::new(4, 8, &mut r)).add(ReLU);
    assert!(all_equal(&plain.parameters()[1].var, 0.0));
}

#[test]
fn sequential_runs_conv_relu_pool_as_one_op_with_the_bits_of_the_layers_apart() {
    let conv = || {
        Conv2d::with_options(
            2,
            4,
            3,
            1,
            1,
            &LayerInit::before(Activation::Relu),
            &mut rng(7),
        )
    };
    let x = Var::constant(Tensor::randn(&[5, 2, 7, 7], &mut rng(8)));
    let model = Sequential::new()
        .add(conv())
        .add(ReLU)
        .add(MaxPool2d::new(2));
    let fused = model.forward(&x);
    assert_eq!(fused.op_name(), "conv2d_relu_max_pool2d");
    let layer = conv();
    let apart = MaxPool2d::new(2).forward(&ReLU.forward(&layer.forward(&x)));
    assert_eq!(apart.op_name(), "max_pool2d");
    assert_eq!(bits(&fused.value()), bits(&apart.value()));
    let g = Tensor::randn(&fused.shape(), &mut rng(9));
    fused.backward_with(g.clone());
    apart.backward_with(g);
    let grads = |m: &dyn Module| -> Vec<Vec<u32>> {
        let params = m.parameters();
        params
            .iter()
            .map(|p| bits(&p.var.grad().unwrap()))
            .collect()
    };
    assert_eq!(grads(&model), grads(&layer));
}

#[test]
fn sequential_runs_linear_relu_dropout_as_one_op_with_the_bits_of_the_layers_apart() {
    let linear = || Linear::with_init(24, 300, &LayerInit::before(Activation::Relu), &mut rng(4));
    let step = Step::new(11, 3);
    let x = Var::constant(Tensor::randn(&[70, 24], &mut rng(5)));
    let model = Sequential::new()
        .add(linear())
        .add(ReLU)
        .add(Dropout::new(0.3));
    model.set_step(step);
    let fused = model.forward(&x);
    assert_eq!(fused.op_name(), "linear_relu_dropout");
    // The model's dropout is its child "2": the same stream for this one.
    let (layer, dropout) = (linear(), Dropout::new(0.3));
    dropout.set_step(step.child("2"));
    let apart = dropout.forward(&ReLU.forward(&layer.forward(&x)));
    assert_eq!(apart.op_name(), "dropout");
    let z = bits(&fused.value());
    assert_eq!(z, bits(&apart.value()));
    assert!(
        z.iter().any(|&v| f32::from_bits(v) == 0.0) && z.iter().any(|&v| f32::from_bits(v) > 0.0)
    );
    let g = Tensor::randn(&fused.shape(), &mut rng(6));
    fused.backward_with(g.clone());
    apart.backward_with(g);
    let grads = |m: &dyn Module| -> Vec<Vec<u32>> {
        m.parameters()
            .iter()
            .map(|p| bits(&p.var.grad().unwrap()))
            .collect()
    };
    assert_eq!(grads(&model), grads(&layer));
    // The next forward draws the next mask, in both.
    assert_eq!(
        bits(&model.forward(&x).value()),
        bits(&dropout.forward(&ReLU.forward(&layer.forward(&x))).value())
    );
    // In evaluation the dropout is the identity and the op is a Linear's ReLU.
    model.set_training(false);
    assert_eq!(model.forward(&x).op_name(), "linear_relu");
}

/// Bits of a tensor's values, so that signed zeros count.
fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// Whether every element of `v` is `value`.
fn all_equal(v: &Var, value: f32) -> bool {
    v.value().to_vec().iter().all(|&x| x == value)
}

#[test]
fn an_explicit_bias_is_kept_before_a_relu() {
    let init = LayerInit::before(Activation::Relu).bias(Constant(0.0));
    let model = Sequential::new()
        .add(Linear::with_init(4, 3, &init, &mut rng(4)))
        .add(ReLU);
    assert!(all_equal(&model.parameters()[1].var, 0.0));
    let no_bias = Linear::with_init(4, 3, &LayerInit::default().no_bias(), &mut rng(4));
    assert_eq!(no_bias.parameters().len(), 1);
}

/// Layers big enough that any parallel code on the way (the tensor
/// crate's threshold, the GEMM inside the orthogonal initializer's QR)
/// would split the work across threads: below the threshold, one and two
/// threads run the very same code and the test could not tell.
#[test]
fn the_same_seed_gives_the_same_weights_on_any_thread_count() {
    const WIDE: (usize, usize) = (784, 512);
    const { assert!(WIDE.0 * WIDE.1 >= ember_tensor::PARALLEL_THRESHOLD) };
    const { assert!(WIDE.1 * 600 >= ember_tensor::PARALLEL_THRESHOLD) };
    let build = || {
        let mut r = rng(5);
        let orthogonal = LayerInit::default().weight(ember_layers::init::Orthogonal::new(1.0));
        let model = Sequential::new()
            .add(Linear::new(WIDE.0, WIDE.1, &mut r))
            .add(ReLU)
            .add(Linear::with_init(WIDE.1, 600, &orthogonal, &mut r))
            .add(ReLU)
            .add(Linear::new(600, 5, &mut r));
        model
            .parameters()
            .iter()
            .flat_map(|p| p.var.value().to_vec())
            .map(f32::to_bits)
            .collect::<Vec<_>>()
    };
    let one = ember_tensor::on_threads(1, build);
    let two = ember_tensor::on_threads(2, build);
    assert_eq!(one, two);
    let mut r = rng(6);
    let other = Linear::new(WIDE.0, WIDE.1, &mut r)
        .weight()
        .value()
        .to_vec();
    assert_ne!(
        other.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        one[..WIDE.0 * WIDE.1].to_vec()
    );
}

/// The message `f` panics with (the test fails if it returns).
fn panic_message<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> String {
    match std::panic::catch_unwind(f) {
        Ok(_) => panic!("accepted"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    }
}

#[test]
fn dropout_refuses_a_probability_outside_0_1_naming_it() {
    for p in [1.5, 1.0, -0.5, f32::NAN, f32::INFINITY] {
        let message = panic_message(|| Dropout::new(p));
        assert_eq!(
            message,
            format!("Dropout::new: probability {p} is not in [0, 1)")
        );
    }
    assert_eq!(Dropout::new(0.0).p(), 0.0);
}

#[test]
fn dropout_drops_about_p_and_is_off_in_eval() {
    let drop = Dropout::new(0.2);
    let x = Var::constant(Tensor::ones(&[100_000]));
    let y = drop.forward(&x).value().to_vec();
    let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((dropped - 0.2).abs() < 0.01, "dropped {dropped}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
    drop.set_step(Step::new(3, 7));
    let a = drop.forward(&x).value().to_vec();
    drop.set_step(Step::new(3, 7));
    assert_eq!(
        a,
        drop.forward(&x).value().to_vec(),
        "the same step draws the same masks"
    );
    let model = Sequential::new().add(Dropout::new(0.5));
    model.set_training(false);
    assert_eq!(model.forward(&x).value().to_vec(), vec![1.0; 100_000]);
}

#[test]
fn batchnorm_normalizes_in_training_and_uses_running_stats_in_eval() {
    let bn = BatchNorm1d::new(3);
    let x = Tensor::randn(&[64, 3], &mut rng(7))
        .mul_scalar(4.0)
        .add_scalar(10.0);
    let y = bn.forward(&Var::constant(x.clone())).value();
    for f in 0..3 {
        let col = y.narrow(1, f, 1).to_vec();
        let mean = col.iter().sum::<f32>() / 64.0;
        assert!(mean.abs() < 1e-4 && (std_of(&col) - 1.0).abs() < 1e-3);
    }
    let buffers = bn.buffers();
    let names: Vec<&str> = buffers.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        ["running_mean", "running_var", "num_batches_tracked"]
    );
    // One step of momentum 0.1 from (0, 1) toward the batch statistics.
    let batch_mean = x.mean_axis(0, false).to_vec();
    let running_mean = buffers[0].var.value().to_vec();
    for f in 0..3 {
        assert!((running_mean[f] - 0.1 * batch_mean[f]).abs() < 1e-4);
    }
    bn.set_training(false);
    let eval = bn.forward(&Var::constant(x.clone())).value();
    let rv = buffers[1].var.value();
    let expected = x
        .sub(&buffers[0].var.value())
        .div(&rv.add_scalar(1e-5).sqrt());
    for (a, b) in eval.to_vec().iter().zip(expected.to_vec()) {
        assert!((a - b).abs() < 1e-4);
    }
}

#[test]
fn batchnorm_gradients_pass_gradcheck() {
    let bn = BatchNorm1d::new(3);
    let x = Tensor::randn(&[6, 3], &mut rng(8));
    gradcheck(|v| bn.forward(&v[0]), &[x], Tolerance::default()).unwrap();
    let bn2 = BatchNorm2d::new(2);
    let x2 = Tensor::randn(&[2, 2, 3, 3], &mut rng(9));
    gradcheck(|v| bn2.forward(&v[0]), &[x2], Tolerance::default()).unwrap();
}

#[test]
fn an_mlp_learns_xor() {
    let mut r = rng(10);
    let model = Sequential::new()
        .add(Linear::new(2, 16, &mut r))
        .add(ReLU)
        .add(Linear::new(16, 16, &mut r))
        .add(Sigmoid)
        .add(Linear::new(16, 2, &mut r));
    let x = Var::constant(Tensor::from_vec(
        vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        &[4, 2],
    ));
    let targets = [0, 1, 1, 0];
    let mut loss = f32::INFINITY;
    for _ in 0..2000 {
        let l = cross_entropy(&model.forward(&x), &targets, Reduction::Mean);
        loss = l.item();
        l.backward();
        for Named { var: p, .. } in model.parameters() {
            p.update(|w, g| w.axpy(-0.5, g.expect("every parameter has a gradient")));
            p.zero_grad();
        }
    }
    assert!(loss < 0.01, "XOR loss after training: {loss}");
    let predictions = model.forward(&x).value().argmax_axis(1);
    assert_eq!(predictions, targets);
}

#[test]
fn batchnorm_takes_pytorchs_momentum_and_epsilon_and_refuses_bad_ones() {
    let bn = BatchNorm1d::with_options(2, 0.5, 1e-3);
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[2, 2]);
    bn.forward(&Var::constant(x));
    // Half-way from 0 to the batch means (2, 4).
    assert_eq!(bn.buffers()[0].var.value().to_vec(), vec![1.0, 2.0]);
    for (momentum, eps) in [(1.5, 1e-5), (-0.1, 1e-5), (0.1, 0.0), (0.1, f32::NAN)] {
        let message = panic_message(|| BatchNorm2d::with_options(3, momentum, eps));
        assert!(
            message.starts_with("BatchNorm2d::with_options: "),
            "{message}"
        );
    }
}
