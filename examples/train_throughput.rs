//! Training throughput of the MNIST MLPs, measured exactly as
//! `docs/bench/pytorch_train_step.py` measures PyTorch's, so the two can be
//! run back to back (see `docs/benchmarks.md`): synthetic batches, 40 warm-up
//! steps, then the median samples/s over 15 rounds of 40 steps, on 1 and 2
//! threads. Each line also gives the share of the measured time spent in the
//! forward pass (with the loss), the backward pass and the optimizer step.
//!
//! ```text
//! cargo run --release --example train_throughput
//! cargo run --release --example train_throughput -- cnn 2t   # only these models, threads
//! ```

use std::time::{Duration, Instant};

use clap::Parser;

use ember::autograd::Var;
use ember::layers::loss::{cross_entropy, Reduction};
use ember::layers::optim::{Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use ember::layers::{LayerInit, Module, Sequential};
use ember::tensor::Tensor;
use ember::zoo;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const STEPS: usize = 40;
const ROUNDS: usize = 15;

fn classic(rng: &mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>) {
    let model = zoo::classic_mlp(&LayerInit::default(), rng);
    let optimizer = RmsProp::new(model.parameters(), RmsPropConfig::keras());
    (model, Box::new(optimizer))
}

fn small(rng: &mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>) {
    let model = zoo::small_mlp(&LayerInit::default(), rng);
    let optimizer = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    (model, Box::new(optimizer))
}

/// The convnet of `mnist_cnn`, with Adam as there.
fn cnn(rng: &mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>) {
    let model = zoo::mnist_cnn(&LayerInit::default(), rng);
    let optimizer = Adam::new(model.parameters(), AdamConfig::default());
    (model, Box::new(optimizer))
}

type Build = fn(&mut ChaCha8Rng) -> (Sequential, Box<dyn Optimizer>);

/// The models, with their batch size and input shape after the batch axis.
const MODELS: [(&str, Build, usize, &[usize]); 3] = [
    ("classic_mlp_b128", classic, 128, &[784]),
    ("small_mlp_b64", small, 64, &[784]),
    ("cnn_b64", cnn, 64, &[1, 28, 28]),
];

/// Time spent in each phase of the measured steps.
#[derive(Default)]
struct Phases {
    forward: Duration,
    backward: Duration,
    optimizer: Duration,
}

/// Median samples per second of training steps at this batch size, and where
/// the measured steps spent their time.
fn measure(build: Build, batch: usize, input: &[usize], steps: usize) -> (f64, Phases) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (model, mut optimizer) = build(&mut rng);
    let shape: Vec<usize> = std::iter::once(batch)
        .chain(input.iter().copied())
        .collect();
    let images = Tensor::uniform(&shape, 0.0, 1.0, &mut rng);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let mut phases = Phases::default();
    let mut step = |phases: &mut Phases| {
        let t0 = Instant::now();
        let logits = model.forward(&Var::constant(images.clone()));
        let loss = cross_entropy(&logits, &labels, Reduction::Mean);
        let t1 = Instant::now();
        optimizer.zero_grad();
        loss.backward();
        let t2 = Instant::now();
        optimizer.step();
        let t3 = Instant::now();
        phases.forward += t1 - t0;
        phases.backward += t2 - t1;
        phases.optimizer += t3 - t2;
    };
    (0..steps).for_each(|_| step(&mut Phases::default()));
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            (0..steps).for_each(|_| step(&mut phases));
            (steps * batch) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[ROUNDS / 2], phases)
}

/// Measure training throughput of the MNIST models.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Cli {
    /// Models (classic, small, cnn: a prefix of a name) and thread counts
    /// (`1t`, `2t`, … up to 1024t) to measure; default: every model on 1
    /// and 2 threads.
    #[arg(value_parser = selection)]
    select: Vec<Selection>,
}

/// One word of the selection.
#[derive(Clone, Debug)]
enum Selection {
    /// Models whose name starts with this.
    Model(String),
    /// A thread count.
    Threads(usize),
}

fn selection(text: &str) -> Result<Selection, String> {
    if let Some(n) = text.strip_suffix('t').and_then(|n| n.parse::<usize>().ok()) {
        return match n {
            1..=1024 => Ok(Selection::Threads(n)),
            _ => Err("a thread count must be 1t to 1024t".to_string()),
        };
    }
    if !text.is_empty() && MODELS.iter().any(|m| m.0.starts_with(text)) {
        return Ok(Selection::Model(text.to_string()));
    }
    let names: Vec<&str> = MODELS.iter().map(|m| m.0).collect();
    Err(format!(
        "neither a thread count (2t) nor the start of a model name ({})",
        names.join(", ")
    ))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut thread_counts = Vec::new();
    let mut wanted = Vec::new();
    for s in cli.select {
        match s {
            Selection::Threads(n) => thread_counts.push(n),
            Selection::Model(name) => wanted.push(name),
        }
    }
    if thread_counts.is_empty() {
        thread_counts = vec![1, 2];
    }
    for threads in thread_counts {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("error: {threads}t: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        for (name, build, batch, input) in MODELS {
            if !wanted.is_empty() && !wanted.iter().any(|w| name.starts_with(w.as_str())) {
                continue;
            }
            // The convnet's steps are ~40× longer: fewer of them per round.
            let steps = if name.starts_with("cnn") {
                STEPS / 4
            } else {
                STEPS
            };
            // As the examples train: the other workers poll between operations.
            let (rate, phases) = pool.install(|| {
                ember::tensor::with_workers_awake(|| measure(build, batch, input, steps))
            });
            let total = (phases.forward + phases.backward + phases.optimizer).as_secs_f64();
            let share = |d: Duration| 100.0 * d.as_secs_f64() / total;
            println!(
                "ember {name} {threads}t: {rate:.0} samples/s \
                 (forward {:.0} %, backward {:.0} %, optimizer {:.0} %)",
                share(phases.forward),
                share(phases.backward),
                share(phases.optimizer)
            );
        }
    }
    std::process::ExitCode::SUCCESS
}
