//! # ember-autograd
//!
//! Define-by-run reverse-mode differentiation over [`ember_tensor::Tensor`].
//!
//! Wrap tensors in [`Var`]s — [`Var::parameter`] for what you train,
//! [`Var::constant`] for data — and compute with ordinary methods and
//! operators. Each op records its inputs and its backward rule as it runs;
//! [`Var::backward`] on a scalar then fills the gradients of the parameters.
//!
//! ```
//! use ember_autograd::Var;
//! use ember_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let w = Var::parameter(Tensor::randn(&[4, 3], &mut rng)); // requires grad
//! let x = Var::constant(Tensor::randn(&[5, 4], &mut rng)); // does not
//! let loss = x.matmul(&w).tanh().sum(); // losses live in ember_layers::loss
//! loss.backward();
//! let g: Tensor = w.grad().unwrap();
//! assert_eq!(g.shape(), &[4, 3]);
//! ```
//!
//! ## Map of the crate
//! - `var.rs`: [`Var`], leaves, gradients, `backward`.
//! - `graph.rs`: recording, the backward pass, [`no_grad`].
//! - `ops/`: each op's forward with its backward right under it
//!   (elementwise and activations, dropout, matmul and linear, reductions,
//!   shape ops, softmax, convolution and pooling).
//! - `fused_loss.rs`: the fused loss kernels (cross-entropy, NLL, MSE,
//!   binary cross-entropy from logits) behind `ember_layers::loss`, which is
//!   the public loss API; this module is public only for that crate.
//! - [`gradcheck`]: the finite-difference checker every op is tested with.
//!
//! Gradients accumulate into leaves across `backward()` calls until
//! [`Var::zero_grad`]. Inside [`no_grad`] nothing is recorded.
#![forbid(unsafe_code)]

mod graph;
mod ops;
mod var;

pub mod gradcheck;

#[doc(hidden)]
pub mod fused_loss;

pub use graph::{is_grad_enabled, no_grad, NoGradGuard};
pub use ops::DropoutMask;
pub use var::{live_vars, Var};
