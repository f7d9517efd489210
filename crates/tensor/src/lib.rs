//! # ember-tensor
//!
//! The f32 n-dimensional [`Tensor`] that everything in Ember computes with,
//! and the cache-blocked [`gemm`] at its core.
//!
//! A `Tensor` is a view (shape, strides, offset) over shared, reference-counted
//! storage: cloning it is O(1), and `transpose`, `permute`, `narrow`,
//! `broadcast_to` and (when possible) `reshape` return views without copying.
//! Operations follow NumPy's broadcasting rules, and shape errors panic with the
//! name of the operation and both shapes.
//!
//! This crate knows nothing of gradients: see `ember-autograd` for that.
//!
//! ```
//! use ember_tensor::Tensor;
//!
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
//! let bias = Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]);
//! let y = &x + &bias; // broadcasts (2, 3) + (3,)
//! assert_eq!(y.to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
//!
//! let w = Tensor::eye(3);
//! assert_eq!(y.matmul(&w.t()).to_vec(), y.to_vec());
//! assert_eq!(y.sum_axis(1, false).to_vec(), vec![66.0, 75.0]);
//! ```
//!
//! ## Map of the crate
//! - [`shape`]: shape arithmetic and broadcasting rules.
//! - `tensor.rs`: the [`Tensor`] type, constructors and element access.
//! - `view.rs`: views: transpose, permute, reshape, narrow, broadcast.
//! - `random.rs`: seeded random constructors (the caller owns the RNG).
//! - `ops/`: elementwise maths, reductions and softmax, matmul, im2col and
//!   max pooling.
//! - [`shuffle`]: seeded per-epoch permutations of a dataset (MNIST's and
//!   a user's share them).
//! - [`Tensor::index_select`] (`ops/gather.rs`): the rows of a batch.
//! - [`gemm`]: the f32 matrix multiplication every matmul goes through.
//! - [`keep_mask`] (`keep_mask.rs`): dropout's Bernoulli masks from a
//!   ChaCha8 keystream (AVX-512 where the CPU has it).
//! - `parallel.rs`: when work is large enough to be split across threads.
//! - [`memory`]: the bytes tensors hold now and at their peak.
//! - `recycle.rs`: tensor storage: new buffers start on a 64-byte line, and
//!   dropped large ones are reused by new tensors of the same length instead
//!   of going back to the allocator.

mod keep_mask;
pub mod memory;
mod ops;
mod parallel;
mod random;
mod recycle;
pub mod shape;
pub mod shuffle;
mod tensor;
mod view;

pub mod gemm;

pub use keep_mask::keep_mask;
pub use ops::conv::{col2im, im2col, Conv2dGeometry};
pub use ops::pool::{max_pool2d, max_pool2d_backward, MaxPool2d, PoolGeometry};
pub use parallel::{
    on_threads, with_workers_awake, worth_splitting, AWAKE_THRESHOLD, PARALLEL_THRESHOLD,
};
pub use tensor::Tensor;
