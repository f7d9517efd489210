//! One training step of the MNIST models on synthetic batches
//! (`cargo bench --bench train_step`): the classic MLP (784-512-512-10,
//! ReLU, dropout 0.2, RMSprop) at batch 128 and the small MLP (784-128-10,
//! SGD lr 0.1) at batch 64, each on 1 and 2 threads.
//!
//! Throughput is reported in samples per second. The figures Ember publishes
//! come from `docs/benchmarks.md`, which says how to reproduce them.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use ember::autograd::Var;
use ember::layers::loss::{cross_entropy, Reduction};
use ember::layers::optim::{Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use ember::layers::{LayerInit, Module, Sequential};
use ember::tensor::Tensor;
use ember::zoo;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A batch of MNIST-like inputs in [0, 1] and labels.
fn batch(size: usize, rng: &mut ChaCha8Rng) -> (Tensor, Vec<usize>) {
    let images = Tensor::uniform(&[size, 784], 0.0, 1.0, rng);
    (images, (0..size).map(|i| i % 10).collect())
}

fn step(model: &Sequential, optimizer: &mut dyn Optimizer, images: &Tensor, labels: &[usize]) {
    let logits = model.forward(&Var::constant(images.clone()));
    let loss = cross_entropy(&logits, labels, Reduction::Mean);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    for threads in [1, 2] {
        // Models hold `Rc`s, so each is built on the pool's thread, inside `install`.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.throughput(Throughput::Elements(128));
        group.bench_function(
            BenchmarkId::new("classic_mlp_b128", format!("{threads}t")),
            |b| {
                pool.install(|| {
                    let mut rng = ChaCha8Rng::seed_from_u64(0);
                    let model = zoo::classic_mlp(&LayerInit::default(), &mut rng);
                    let mut optimizer = RmsProp::new(model.parameters(), RmsPropConfig::keras());
                    let (images, labels) = batch(128, &mut rng);
                    b.iter(|| step(&model, &mut optimizer, &images, &labels))
                })
            },
        );
        group.throughput(Throughput::Elements(64));
        group.bench_function(
            BenchmarkId::new("small_mlp_b64", format!("{threads}t")),
            |b| {
                pool.install(|| {
                    let mut rng = ChaCha8Rng::seed_from_u64(0);
                    let model = zoo::small_mlp(&LayerInit::default(), &mut rng);
                    let config = SgdConfig {
                        lr: 0.1,
                        ..Default::default()
                    };
                    let mut optimizer = Sgd::new(model.parameters(), config);
                    let (images, labels) = batch(64, &mut rng);
                    b.iter(|| step(&model, &mut optimizer, &images, &labels))
                })
            },
        );
    }
    group.finish();
}

/// Criterion's entry point (documented for the workspace's `missing_docs` lint).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}

criterion_main!(benches);
