//! Reverse-mode automatic differentiation for Ember.
//!
//! This crate records tensor operations as they run (define-by-run) and
//! differentiates them backwards. It is being built; see the autograd issue.
#![forbid(unsafe_code)]

pub use ember_tensor::Tensor;
