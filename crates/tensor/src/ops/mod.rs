//! Tensor operations: elementwise maths, reductions, matmul and convolution helpers.

pub mod conv;
mod elementwise;
mod matmul;
mod reduce;
