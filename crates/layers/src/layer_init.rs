//! How a layer initializes its parameters: per layer, or model-wide.

use std::sync::Arc;

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::Rng;

use crate::init::{default_weight_init, Constant, Fans, Initializer, Zeros};
use crate::{Activation, RELU_BIAS};

/// The bias a layer starts with.
#[derive(Clone, Debug, Default)]
pub enum BiasInit {
    /// Ember's default: zero, or the [`LayerInit::relu_bias`] (0.1) when the
    /// layer is built to feed a ReLU ([`LayerInit::before`]).
    #[default]
    Default,
    /// This initializer, whatever follows the layer.
    With(Arc<dyn Initializer>),
    /// No bias parameter at all.
    Disabled,
}

/// How one layer initializes its weight and bias, decided when it is built.
///
/// The default is Ember's: weights from a truncated normal with
/// std = 1/√fan_in cut at ±2σ, biases per [`BiasInit::Default`] — zero, or
/// [`crate::RELU_BIAS`] for a layer built to feed a ReLU. Pass one
/// `LayerInit` to every constructor to set a model-wide choice, or a
/// different one per layer.
///
/// ```
/// use ember_layers::init::HeNormal;
/// use ember_layers::{Activation, LayerInit, Linear};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// // A layer whose output feeds a ReLU starts with bias 0.1 ...
/// let hidden = Linear::with_init(784, 128, &LayerInit::before(Activation::Relu), &mut rng);
/// assert!(hidden.bias().unwrap().value().to_vec().iter().all(|&b| b == 0.1));
/// // ... unless the model switches that off, or names its own bias.
/// let plain = LayerInit::before(Activation::Relu).no_relu_bias();
/// let hidden = Linear::with_init(784, 128, &plain, &mut rng);
/// assert!(hidden.bias().unwrap().value().to_vec().iter().all(|&b| b == 0.0));
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
    /// The activation the layer's output feeds (decides the default bias).
    pub feeds: Activation,
    /// The default bias of a layer feeding a ReLU (`None`: zero like the rest).
    pub relu_bias: Option<f32>,
}

impl Default for LayerInit {
    fn default() -> Self {
        LayerInit {
            weight: Arc::new(default_weight_init()),
            bias: BiasInit::Default,
            feeds: Activation::Identity,
            relu_bias: Some(RELU_BIAS),
        }
    }
}

impl LayerInit {
    /// Ember's defaults for a layer whose output feeds `activation`.
    pub fn before(activation: Activation) -> Self {
        LayerInit::default().feeding(activation)
    }

    /// The same choices for a layer whose output feeds `activation`.
    pub fn feeding(mut self, activation: Activation) -> Self {
        self.feeds = activation;
        self
    }

    /// A layer feeding a ReLU keeps a zero default bias (for a whole model,
    /// pass the result to every constructor).
    pub fn no_relu_bias(mut self) -> Self {
        self.relu_bias = None;
        self
    }

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

    /// Draws a layer's bias of `size` (after its weight, from the same RNG),
    /// or none.
    pub(crate) fn init_bias(&self, size: usize, fans: Fans, rng: &mut dyn Rng) -> Option<Var> {
        let value = match &self.bias {
            BiasInit::Default => match (self.feeds, self.relu_bias) {
                (Activation::Relu, Some(b)) => Tensor::full(&[size], b),
                _ => Zeros.init(&[size], fans, rng),
            },
            BiasInit::With(init) => init.init(&[size], fans, rng),
            BiasInit::Disabled => return None,
        };
        Some(Var::parameter(value))
    }
}
