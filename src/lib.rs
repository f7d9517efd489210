//! # Ember
//!
//! A CPU neural-network training framework written in Rust. This facade
//! re-exports the crates of the stack:
//!
//! - [`tensor`]: the f32 n-d [`Tensor`](tensor::Tensor) and its GEMM,
//! - [`autograd`]: reverse-mode differentiation,
//! - [`layers`]: modules, initializers, losses, optimizers, checkpoints,
//! - [`mnist`]: validated MNIST loading and batching.
//! - [`distributed`]: data-parallel training over MPI (the `mpi` feature),
//! - [`report`]: progress bars, CSV metrics and SVG learning curves for
//!   training loops,
//! - [`zoo`]: the reference models of the examples and benchmarks.
//!
//! Most training scripts start with `use ember::prelude::*;`.

pub use ember_autograd as autograd;
pub use ember_distributed as distributed;
pub use ember_layers as layers;
pub use ember_mnist as mnist;
pub use ember_tensor as tensor;
/// The RNG crates Ember's constructors take (`&mut dyn rand::Rng`), at the
/// versions Ember is built with: a user needs no `rand` line of their own.
pub use rand;
/// ChaCha, the seeded generator Ember's examples and tests use.
pub use rand_chacha;

pub mod report;
pub mod zoo;

/// What a training loop usually imports, in one line: `use ember::prelude::*;`.
///
/// ```
/// use ember::prelude::*;
///
/// let mut rng = ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new()
///     .add(Linear::with_init(4, 8, &LayerInit::before(Activation::Relu), &mut rng))
///     .add(ReLU)
///     .add(Linear::new(8, 2, &mut rng));
/// let mut optimizer = Sgd::new(model.parameters(), SgdConfig { lr: 0.1, ..Default::default() });
/// let x = Var::constant(Tensor::ones(&[3, 4]));
/// model.set_step(Step::new(0, 0));
/// let loss = cross_entropy(&model.forward(&x), &[0, 1, 0], Reduction::Mean);
/// optimizer.zero_grad();
/// loss.backward();
/// optimizer.step();
/// ```
pub mod prelude {
    pub use ember_autograd::{no_grad, Var};
    pub use ember_layers::checkpoint::{
        load_checkpoint, load_weights, save_checkpoint, save_weights, TrainingState,
    };
    pub use ember_layers::data::{evaluate, Evaluation, TensorDataset};
    pub use ember_layers::init::{self, Initializer};
    pub use ember_layers::loss::{
        self, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_smoothed, mse_loss,
        nll_loss, Reduction,
    };
    pub use ember_layers::metrics::{accuracy, ConfusionMatrix, RunningMean};
    pub use ember_layers::optim::{
        clip_grad_norm, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer,
        RmsProp, RmsPropConfig, Sgd, SgdConfig,
    };
    pub use ember_layers::schedule::{
        ConstantLr, CosineAnnealing, ExponentialLr, LrSchedule, OneCycle, StepLr, Warmup,
    };
    pub use ember_layers::{
        Activation, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, LayerInit, LayerKind,
        LeakyReLU, Linear, MaxPool2d, Members, Module, Named, ReLU, Sequential, Sigmoid, Softmax,
        Step, Tanh, GELU,
    };
    pub use ember_mnist::{BatchConfig, Layout, Mnist};
    pub use ember_tensor::Tensor;
    pub use rand::{Rng, SeedableRng};
    pub use rand_chacha::ChaCha8Rng;
}
