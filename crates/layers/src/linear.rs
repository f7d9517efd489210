//! The fully connected layer.

use std::cell::Cell;

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::RngCore;

use crate::init::Fans;
use crate::{LayerInit, Module, Named, RELU_BIAS};

/// A fully connected layer: `y = x·Wᵀ + b`, `(batch, in) → (batch, out)`.
///
/// The weight is stored `(out, in)` and the bias `(out)`, as PyTorch stores
/// them, so checkpoints load into `torch.nn.Linear` unchanged. By default the
/// weight comes from a truncated normal with std 1/√in (±2σ) and the bias is
/// zero — or 0.1 when a `Sequential` puts a ReLU right after this layer.
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
    bias_is_default: Cell<bool>,
}

impl Linear {
    /// A layer with Ember's default initialization.
    pub fn new(in_features: usize, out_features: usize, rng: &mut dyn RngCore) -> Linear {
        Linear::with_init(in_features, out_features, &LayerInit::default(), rng)
    }

    /// A layer with the given initializers. The weight is drawn first, then
    /// the bias, from `rng`.
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        init: &LayerInit,
        rng: &mut dyn RngCore,
    ) -> Linear {
        let shape = [out_features, in_features];
        let weight = init.weight.init(&shape, Fans::from_shape(&shape), rng);
        let (bias, bias_is_default) = match init.bias_initializer() {
            Some((b, is_default)) => {
                let fans = Fans::from_shape(&shape);
                (
                    Some(Var::parameter(b.init(&[out_features], fans, rng))),
                    is_default,
                )
            }
            None => (None, false),
        };
        Linear {
            weight: Var::parameter(weight),
            bias,
            in_features,
            out_features,
            bias_is_default: Cell::new(bias_is_default),
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
        input.linear(&self.weight, self.bias.as_ref())
    }

    fn parameters(&self) -> Vec<Named> {
        let mut out = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            out.push(("bias".to_string(), b.clone()));
        }
        out
    }

    fn feeds_relu(&self) {
        if let (Some(bias), true) = (&self.bias, self.bias_is_default.get()) {
            bias.set_value(Tensor::full(&[self.out_features], RELU_BIAS));
            self.bias_is_default.set(false);
        }
    }

    fn describe(&self) -> String {
        format!("Linear({} → {})", self.in_features, self.out_features)
    }
}
