//! Activation functions as modules (no parameters; shape preserved).

use ember_autograd::Var;

use crate::{Activation, LayerKind, Module};

/// `max(x, 0)`. Any shape → the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

/// `x` for x > 0, `slope·x` otherwise. Any shape → the same shape.
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    /// The slope for negative inputs (PyTorch's default: 0.01).
    pub slope: f32,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU { slope: 0.01 }
    }
}

/// The logistic sigmoid `1/(1 + e⁻ˣ)`. Any shape → the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;

/// The hyperbolic tangent. Any shape → the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

/// GELU in its tanh form. Any shape → the same shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct GELU;

/// Softmax along an axis (usually the last). Any shape → the same shape.
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    /// The axis that sums to one (negative counts from the end).
    pub axis: isize,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax { axis: -1 }
    }
}

impl Module for ReLU {
    fn forward(&self, input: &Var) -> Var {
        crate::probe::activation_input(input, Activation::Relu);
        input.relu()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::Relu)
    }
    fn describe(&self) -> String {
        "ReLU".to_string()
    }
}

impl Module for LeakyReLU {
    fn forward(&self, input: &Var) -> Var {
        input.leaky_relu(self.slope)
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::LeakyRelu(self.slope))
    }
    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.slope)
    }
}

impl Module for Sigmoid {
    fn forward(&self, input: &Var) -> Var {
        crate::probe::activation_input(input, Activation::Sigmoid);
        input.sigmoid()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::Sigmoid)
    }
    fn describe(&self) -> String {
        "Sigmoid".to_string()
    }
}

impl Module for Tanh {
    fn forward(&self, input: &Var) -> Var {
        crate::probe::activation_input(input, Activation::Tanh);
        input.tanh()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::Tanh)
    }
    fn describe(&self) -> String {
        "Tanh".to_string()
    }
}

impl Module for GELU {
    fn forward(&self, input: &Var) -> Var {
        input.gelu()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::Gelu)
    }
    fn describe(&self) -> String {
        "GELU".to_string()
    }
}

impl Module for Softmax {
    fn forward(&self, input: &Var) -> Var {
        input.softmax(self.axis)
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation(Activation::Softmax)
    }
    fn describe(&self) -> String {
        format!("Softmax(axis {})", self.axis)
    }
}

/// Flattens every axis after the first: `(batch, d1, d2, …) → (batch, d1·d2·…)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, input: &Var) -> Var {
        input.flatten_from(1)
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Reshape
    }
    fn describe(&self) -> String {
        "Flatten".to_string()
    }
}
