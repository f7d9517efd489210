//! Modules, initializers, losses, optimizers and checkpoints for Ember.
//!
//! This crate is being built; see the layers issue.
//!
//! - [`init`]: pluggable weight initializers (the [`init::Initializer`]
//!   trait, Ember's default truncated normal, variance scaling, orthogonal).
#![forbid(unsafe_code)]

pub mod init;
