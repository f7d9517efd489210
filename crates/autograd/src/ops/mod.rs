//! The differentiable ops. Each op's backward sits right under its forward.

mod conv;
mod dropout;
mod elementwise;
mod matmul;
mod reduce;
mod shape;
mod softmax;

pub use dropout::DropoutMask;
