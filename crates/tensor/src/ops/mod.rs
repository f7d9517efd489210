//! Tensor operations: elementwise maths, reductions, matmul and convolution helpers.

mod concat;
pub mod conv;
mod elementwise;
mod gather;
mod matmul;
pub mod pool;
mod reduce;
