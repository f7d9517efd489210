//! How a layer initializes its parameters: per layer, or model-wide.

use std::cell::Cell;
use std::sync::Arc;

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::Rng;

use crate::init::{default_weight_init, Constant, Fans, Initializer, Zeros};
use crate::{Named, RELU_BIAS};

/// The bias a layer starts with.
#[derive(Clone, Debug, Default)]
pub enum BiasInit {
    /// Ember's default: zero, or [`crate::RELU_BIAS`] (0.1) when the layer's
    /// output feeds a ReLU (decided by `Sequential` as layers are added).
    #[default]
    Default,
    /// This initializer, whatever follows the layer.
    With(Arc<dyn Initializer>),
    /// No bias parameter at all.
    Disabled,
}

/// The initializers of one layer's weight and bias.
///
/// The default is Ember's: weights from a truncated normal with
/// std = 1/√fan_in cut at ±2σ, biases per [`BiasInit::Default`]. Pass one
/// `LayerInit` to every constructor to set a model-wide default, or a
/// different one per layer.
///
/// ```
/// use ember_layers::init::HeNormal;
/// use ember_layers::{LayerInit, Linear};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let init = LayerInit::default().weight(HeNormal).bias_constant(0.01);
/// let layer = Linear::with_init(784, 128, &init, &mut rng);
/// assert!(layer.bias().unwrap().value().to_vec().iter().all(|&b| b == 0.01));
/// ```
#[derive(Clone, Debug)]
pub struct LayerInit {
    /// The weight initializer.
    pub weight: Arc<dyn Initializer>,
    /// The bias choice.
    pub bias: BiasInit,
}

impl Default for LayerInit {
    fn default() -> Self {
        LayerInit {
            weight: Arc::new(default_weight_init()),
            bias: BiasInit::Default,
        }
    }
}

impl LayerInit {
    /// Replaces the weight initializer.
    pub fn weight(mut self, init: impl Initializer + 'static) -> Self {
        self.weight = Arc::new(init);
        self
    }

    /// Replaces the bias initializer (used whatever follows the layer).
    pub fn bias(mut self, init: impl Initializer + 'static) -> Self {
        self.bias = BiasInit::With(Arc::new(init));
        self
    }

    /// Starts every bias at `value`.
    pub fn bias_constant(self, value: f32) -> Self {
        self.bias(Constant(value))
    }

    /// Layers get no bias parameter.
    pub fn no_bias(mut self) -> Self {
        self.bias = BiasInit::Disabled;
        self
    }
}

/// A layer's optional bias, and whether it still holds Ember's default (zero),
/// which a following ReLU raises to [`RELU_BIAS`]. Shared by `Linear` and
/// `Conv2d`.
pub(crate) struct Bias {
    var: Option<Var>,
    is_default: Cell<bool>,
}

impl Bias {
    /// Draws a bias of `size` as `init` says (after the weight, from the same RNG).
    pub(crate) fn new(init: &LayerInit, size: usize, fans: Fans, rng: &mut dyn Rng) -> Bias {
        let (var, is_default) = match &init.bias {
            BiasInit::Default => (Some(Var::parameter(Zeros.init(&[size], fans, rng))), true),
            BiasInit::With(b) => (Some(Var::parameter(b.init(&[size], fans, rng))), false),
            BiasInit::Disabled => (None, false),
        };
        Bias {
            var,
            is_default: Cell::new(is_default),
        }
    }

    /// The bias parameter, if the layer has one.
    pub(crate) fn var(&self) -> Option<&Var> {
        self.var.as_ref()
    }

    /// A ReLU follows: a bias left at its default starts at [`RELU_BIAS`].
    pub(crate) fn feeds_relu(&self) {
        if let (Some(bias), true) = (&self.var, self.is_default.get()) {
            bias.set_value(Tensor::full(&bias.shape(), RELU_BIAS));
            self.is_default.set(false);
        }
    }

    /// `weight` and this bias as state-dict entries.
    pub(crate) fn with_weight(&self, weight: &Var) -> Vec<Named> {
        let mut out = vec![("weight".to_string(), weight.clone())];
        if let Some(b) = &self.var {
            out.push(("bias".to_string(), b.clone()));
        }
        out
    }
}
