//! The fully connected layer.

use ember_autograd::Var;
use rand::Rng;

use crate::init::Fans;
use crate::{Dropout, LayerInit, LayerKind, Members, Module};

/// A fully connected layer: `y = x·Wᵀ + b`, `(batch, in) → (batch, out)`.
///
/// The weight is stored `(out, in)` and the bias `(out)`, as PyTorch stores
/// them, so checkpoints load into `torch.nn.Linear` unchanged. By default the
/// weight comes from a truncated normal with std 1/√in (±2σ) and the bias is
/// zero — or 0.1 for a layer built to feed a ReLU
/// ([`LayerInit::before`]`(Activation::Relu)`), in any model.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Linear, Module};
/// use ember_tensor::Tensor;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
/// let layer = Linear::new(784, 10, &mut rng);
/// let x = Var::constant(Tensor::zeros(&[32, 784]));
/// assert_eq!(layer.forward(&x).shape(), vec![32, 10]);
/// assert_eq!(layer.weight().shape(), vec![10, 784]);
/// ```
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
    in_features: usize,
    out_features: usize,
    /// What the layer was built to feed (its kind reports it).
    feeds: crate::Activation,
}

impl Linear {
    /// A layer with Ember's default initialization.
    pub fn new(in_features: usize, out_features: usize, rng: &mut dyn Rng) -> Linear {
        Linear::with_init(in_features, out_features, &LayerInit::default(), rng)
    }

    /// A layer with the given initializers. The weight is drawn first, then
    /// the bias, from `rng`.
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        init: &LayerInit,
        rng: &mut dyn Rng,
    ) -> Linear {
        let shape = [out_features, in_features];
        let weight = init.weight.init(&shape, Fans::from_shape(&shape), rng);
        let bias = init.init_bias(out_features, Fans::from_shape(&shape), rng);
        Linear {
            weight: Var::parameter(weight),
            bias,
            in_features,
            out_features,
            feeds: init.feeds,
        }
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias `(out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

impl Module for Linear {
    /// `(batch, in) → (batch, out)`.
    fn forward(&self, input: &Var) -> Var {
        let output = input.linear(&self.weight, self.bias.as_ref());
        crate::probe::layer_output(self, &output);
        output
    }

    fn forward_relu(&self, input: &Var) -> Var {
        if crate::probe::is_recording() {
            // A report needs the pre-activation, which the fused op never holds.
            return crate::ReLU.forward(&self.forward(input));
        }
        input.linear_relu(&self.weight, self.bias.as_ref())
    }

    fn forward_relu_dropout(&self, input: &Var, dropout: &Dropout) -> Var {
        if crate::probe::is_recording() || input.shape().len() != 2 {
            // A report needs the pre-activation; a wrong rank gets linear's panic.
            return dropout.forward(&self.forward_relu(input));
        }
        match dropout.mask(&[input.shape()[0], self.out_features]) {
            Some(mask) => input.linear_relu_dropout(&self.weight, self.bias.as_ref(), mask),
            None => self.forward_relu(input),
        }
    }

    fn visit(&self, m: &mut Members) {
        m.weight_and_bias(&self.weight, self.bias.as_ref());
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Weighted { feeds: self.feeds }
    }

    fn describe(&self) -> String {
        format!("Linear({} → {})", self.in_features, self.out_features)
    }
}
