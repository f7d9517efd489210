//! # Ember
//!
//! A CPU neural-network training framework written in Rust. This facade
//! re-exports the crates of the stack:
//!
//! - [`tensor`]: the f32 n-d [`Tensor`](tensor::Tensor) and its GEMM,
//! - [`autograd`]: reverse-mode differentiation,
//! - [`layers`]: modules, initializers, losses, optimizers, checkpoints,
//! - [`mnist`]: validated MNIST loading and batching.
//!
//! Most training scripts start with `use ember::prelude::*;`.

pub use ember_autograd as autograd;
pub use ember_layers as layers;
pub use ember_mnist as mnist;
pub use ember_tensor as tensor;

/// What a training script usually needs, in one import.
pub mod prelude {
    pub use ember_tensor::Tensor;
}
