//! # ember-layers
//!
//! The building blocks people assemble into models, and what a training loop
//! needs around them.
//!
//! - [`Module`]: the trait every layer implements (forward, named parameters,
//!   train/eval).
//! - [`init`]: pluggable weight initializers (the [`init::Initializer`]
//!   trait, Ember's default truncated normal, variance scaling, orthogonal).
#![forbid(unsafe_code)]

pub mod init;
mod module;

pub use module::{Module, Named};

/// The bias a layer starts with when its output feeds a ReLU and no bias
/// initializer was chosen: small and positive, so that no unit starts dead.
pub const RELU_BIAS: f32 = 0.1;
