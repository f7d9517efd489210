//! burn's side of Ember's small-MLP comparison (not run in CI): the small
//! MLP of `train_throughput` (784-128-10, ReLU, SGD lr 0.1, cross-entropy)
//! at batch 64 on a fixed synthetic batch, timed as the PyTorch twin times
//! it: 40 warm-up steps, then the median samples/s of 15 rounds of 40
//! steps. Threads: `RAYON_NUM_THREADS`.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

#[derive(Module, Debug)]
struct Mlp {
    hidden: Linear,
    activation: Relu,
    output: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(784, 128).init(device),
            activation: Relu::new(),
            output: LinearConfig::new(128, 10).init(device),
        }
    }

    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.output
            .forward(self.activation.forward(self.hidden.forward(input)))
    }
}

fn main() {
    const BATCH: usize = 64;
    const STEPS: usize = 40;
    let device = Device::flex().autodiff();
    let mut model = Mlp::new(&device);
    let mut optim = SgdConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<2>::random([BATCH, 784], Distribution::Uniform(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::from(labels.as_slice()), &device);
    let mut step = |model: Mlp| {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(0.1, model, grads)
    };
    let loss_of = |model: &Mlp| -> f32 {
        loss_fn
            .forward(model.forward(x.clone()), y.clone())
            .into_scalar()
    };
    let first_loss = loss_of(&model);
    for _ in 0..STEPS {
        model = step(model);
    }
    let mut rates = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        for _ in 0..STEPS {
            model = step(model);
        }
        // Wait for the last update, should the backend run ahead.
        let _: f32 = model.hidden.weight.val().sum().into_scalar();
        rates.push((STEPS * BATCH) as f64 / start.elapsed().as_secs_f64());
    }
    // The batch is fixed, so a model that trains fits it: the loss falls.
    let last_loss = loss_of(&model);
    assert!(
        last_loss < first_loss,
        "loss {first_loss} -> {last_loss}: not training"
    );
    rates.sort_by(f64::total_cmp);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "burn 0.22.1 flex small_mlp_b64 {threads}t: {:.0} samples/s (loss {first_loss:.3} -> {last_loss:.3})",
        rates[7]
    );
}
