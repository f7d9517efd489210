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
//!   training loops.
//!
//! Most training scripts start with `use ember::prelude::*;`.

pub use ember_autograd as autograd;
pub use ember_distributed as distributed;
pub use ember_layers as layers;
pub use ember_mnist as mnist;
pub use ember_tensor as tensor;

pub mod report;

/// What a training script usually needs, in one import.
pub mod prelude {
    pub use ember_autograd::{no_grad, Var};
    pub use ember_layers::init::{self, Initializer};
    pub use ember_layers::metrics::{accuracy, ConfusionMatrix, RunningMean};
    pub use ember_layers::{
        BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, LayerInit, LeakyReLU, Linear,
        MaxPool2d, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh, GELU,
    };
    pub use ember_mnist::{BatchConfig, Dataset, Layout, Mnist};
    pub use ember_tensor::Tensor;
}
