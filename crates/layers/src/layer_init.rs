//! How a layer initializes its parameters: per layer, or model-wide.

use std::sync::Arc;

use crate::init::{default_weight_init, Constant, Initializer, Zeros};

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

    /// The initializer for a bias before we know what follows: the chosen one,
    /// or zeros for the default (raised to 0.1 later if a ReLU follows).
    pub(crate) fn bias_initializer(&self) -> Option<(Arc<dyn Initializer>, bool)> {
        match &self.bias {
            BiasInit::Default => Some((Arc::new(Zeros), true)),
            BiasInit::With(init) => Some((init.clone(), false)),
            BiasInit::Disabled => None,
        }
    }
}
