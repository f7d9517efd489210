//! Training throughput of the MNIST MLPs, measured exactly as
//! `docs/bench/pytorch_train_step.py` measures PyTorch's, so the two can be
//! run back to back (see `docs/benchmarks.md`): synthetic batches, 40 warm-up
//! steps, then the median samples/s over 15 rounds of 40 steps, on 1 and 2
//! threads.
//!
//! ```text
//! cargo run --release --example train_throughput
//! ```

use std::time::Instant;

use ember::autograd::Var;
use ember::layers::optim::{Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use ember::layers::{Dropout, Linear, Module, ReLU, Sequential};
use ember::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const STEPS: usize = 40;
const ROUNDS: usize = 15;

fn classic(rng: &mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>) {
    let model = Sequential::new()
        .add(Linear::new(784, 512, rng))
        .add(ReLU)
        .add(Dropout::new(0.2, 1))
        .add(Linear::new(512, 512, rng))
        .add(ReLU)
        .add(Dropout::new(0.2, 2))
        .add(Linear::new(512, 10, rng));
    let optimizer = RmsProp::new(model.parameters(), RmsPropConfig::keras());
    (model, Box::new(optimizer))
}

fn small(rng: &mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>) {
    let model = Sequential::new()
        .add(Linear::new(784, 128, rng))
        .add(ReLU)
        .add(Linear::new(128, 10, rng));
    let optimizer = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    (model, Box::new(optimizer))
}

type Build = fn(&mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>);

/// Median samples per second of training steps at this batch size.
fn measure(build: Build, batch: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (model, mut optimizer) = build(&mut rng);
    let images = Tensor::uniform(&[batch, 784], 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let mut step = || {
        let loss = model
            .forward(&Var::constant(images.clone()))
            .cross_entropy(&labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    };
    (0..STEPS).for_each(|_| step());
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            (0..STEPS).for_each(|_| step());
            (STEPS * batch) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

fn main() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (a, b) = pool.install(|| (measure(classic, 128), measure(small, 64)));
        println!("ember classic_mlp_b128 {threads}t: {a:.0} samples/s");
        println!("ember small_mlp_b64 {threads}t: {b:.0} samples/s");
    }
}
