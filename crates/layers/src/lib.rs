//! Modules, initializers, losses, optimizers and checkpoints for Ember.
//!
//! This crate is being built; see the layers issue.
#![forbid(unsafe_code)]
