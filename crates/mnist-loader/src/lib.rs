//! Validated loading of the MNIST family of IDX files for Ember.
//!
//! This crate is being built; see the MNIST-loader issue.
#![forbid(unsafe_code)]
