//! # ember-layers
//!
//! The building blocks people assemble into models, and what a training loop
//! needs around them.
//!
//! ```
//! use ember_autograd::Var;
//! use ember_layers::loss::{cross_entropy, Reduction};
//! use ember_layers::{Activation, LayerInit, Linear, Module, ReLU, Sequential};
//! use ember_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let model = Sequential::new()
//!     // truncated normal, std 1/√4; bias 0.1 (built to feed a ReLU)
//!     .add(Linear::with_init(4, 8, &LayerInit::before(Activation::Relu), &mut rng))
//!     .add(ReLU)
//!     .add(Linear::new(8, 3, &mut rng)); // bias 0
//! let x = Var::constant(Tensor::ones(&[5, 4]));
//! let loss = cross_entropy(&model.forward(&x), &[0, 1, 2, 0, 1], Reduction::Mean);
//! loss.backward();
//! assert!(model.parameters().iter().all(|p| p.var.grad().is_some()));
//! ```
//!
//! ## Map of the crate
//! - [`Module`]: the trait every layer and model implements — `forward`,
//!   and `visit`, which names what it holds ([`Members`]); named parameters,
//!   buffers, train/eval and dropout's [`Step`] come from that.
//!   [`Sequential`] chains modules; a user's struct of layers is a model too.
//! - [`Activation`] and [`LayerKind`]: typed layer kinds.
//! - Layers: [`Linear`], [`Conv2d`], [`MaxPool2d`], [`Flatten`],
//!   [`Dropout`], [`BatchNorm1d`], [`BatchNorm2d`], and activations
//!   ([`ReLU`], [`LeakyReLU`], [`Sigmoid`], [`Tanh`], [`GELU`], [`Softmax`]).
//! - [`init`]: pluggable weight initializers (the [`init::Initializer`]
//!   trait, Ember's default truncated normal, variance scaling, orthogonal);
//!   [`LayerInit`] picks them per layer or model-wide.
//! - [`loss`]: cross-entropy (optionally smoothed), NLL, MSE and binary
//!   cross-entropy from logits, each with a [`loss::Reduction`].
//! - [`optim`]: the [`optim::Optimizer`] trait; SGD, Adam, AdamW, RMSprop,
//!   Adagrad, all updating in place; gradient clipping.
//! - [`schedule`]: learning-rate schedules (step, exponential, cosine,
//!   linear warm-up, one-cycle).
//! - [`checkpoint`]: atomic safetensors checkpoints that PyTorch can read,
//!   with optimizer state and the training position for exact resumes.
//! - [`data`]: seeded mini-batches of an in-memory dataset
//!   ([`data::TensorDataset`]) and [`data::evaluate`] (eval mode, no graph,
//!   the mode restored) giving an [`data::Evaluation`].
//! - [`metrics`]: accuracy, a running mean, a confusion matrix.
//! - [`diagnostics`]: an [`diagnostics::InitReport`] of a model at
//!   initialization (weight spread, pre-activations, saturated and dead
//!   units, gradient norms per layer).
//!
//! ## Ember's initialization defaults
//! Weights: a truncated normal with std 1/√fan_in, cut at ±2σ (TensorFlow's
//! MNIST recipe). Biases: zero, except [`RELU_BIAS`] = 0.1 for a layer built
//! to feed a ReLU (`LayerInit::before(Activation::Relu)`), so that no unit
//! starts dead — decided when the layer is built, in any model. Both can be
//! overridden per layer or for the whole model with [`LayerInit`].
#![forbid(unsafe_code)]

mod activation;
mod batchnorm;
pub mod checkpoint;
mod conv;
pub mod data;
pub mod diagnostics;
mod dropout;
pub mod init;
mod kind;
mod layer_init;
mod linear;
pub mod loss;
pub mod metrics;
mod module;
pub mod optim;
mod probe;
pub mod schedule;
mod sequential;

pub use activation::{Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, GELU};
pub use batchnorm::{BatchNorm, BatchNorm1d, BatchNorm2d, Channels, Features, NormAxes};
pub use conv::{Conv2d, MaxPool2d};
pub use dropout::Dropout;
pub use kind::{Activation, LayerKind};
pub use layer_init::{BiasInit, LayerInit};
pub use linear::Linear;
pub use module::{walk, BatchShare, Member, Members, Module, Named, Step};
pub use sequential::Sequential;

/// The bias a layer starts with when it is built to feed a ReLU and no bias
/// initializer was chosen: small and positive, so that no unit starts dead.
pub const RELU_BIAS: f32 = 0.1;
