//! Typed layer kinds: what a report needs to know about a module, without
//! reading its description.

/// An elementwise nonlinearity, as a layer declares what its output feeds
/// ([`crate::LayerInit::before`]) or as an activation module reports itself.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// Nothing (a linear output: logits, or a residual sum).
    #[default]
    Identity,
    /// `max(0, x)`: a layer feeding it starts with bias [`crate::RELU_BIAS`].
    Relu,
    /// `max(slope·x, x)`.
    LeakyRelu(f32),
    /// The logistic sigmoid.
    Sigmoid,
    /// The hyperbolic tangent.
    Tanh,
    /// GELU (tanh approximation).
    Gelu,
    /// Softmax over an axis.
    Softmax,
}

impl Activation {
    /// Whether the unit saturates (sigmoid, tanh): reports count saturated units.
    pub fn saturates(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "ReLU",
            Activation::LeakyRelu(_) => "leaky ReLU",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "GELU",
            Activation::Softmax => "softmax",
        }
    }
}

/// What kind of layer a module is ([`crate::Module::kind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LayerKind {
    /// A layer with a weight of two or more axes (`Linear`, `Conv2d`),
    /// and the activation it was built to feed.
    Weighted {
        /// The activation its output feeds, as declared when it was built.
        feeds: Activation,
    },
    /// An activation module.
    Activation(Activation),
    /// Batch normalization.
    Normalization,
    /// Dropout.
    Dropout,
    /// Max pooling over `kernel × kernel` windows moved by `stride`.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Step between windows.
        stride: usize,
    },
    /// A reshape (`Flatten`).
    Reshape,
    /// Anything else: a container or a user's module.
    #[default]
    Other,
}
