//! A chain of modules.

use ember_autograd::Var;

use crate::{Module, Named};

/// Modules applied one after the other, named `"0"`, `"1"`, … as in
/// PyTorch's `nn.Sequential`, so parameters are `"0.weight"`, `"0.bias"`, …
///
/// Adding a [`crate::ReLU`] right after a layer whose bias was left at its
/// default starts that bias at [`crate::RELU_BIAS`] (0.1).
///
/// ```
/// use ember_layers::{Dropout, Linear, Module, ReLU, Sequential};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new()
///     .add(Linear::new(784, 512, &mut rng))
///     .add(ReLU)
///     .add(Dropout::new(0.2, 1))
///     .add(Linear::new(512, 10, &mut rng));
/// let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// // The layer before the ReLU starts with bias 0.1, the last one with 0.
/// assert_eq!(model.parameters()[1].1.value().to_vec()[0], 0.1);
/// assert_eq!(model.parameters()[3].1.value().to_vec()[0], 0.0);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a module (builder style).
    // `add` reads naturally in a builder chain (candle uses the same name);
    // Sequential is no number, so `std::ops::Add` would be the confusing one.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module + 'static) -> Sequential {
        self.push(Box::new(layer));
        self
    }

    /// Appends a boxed module.
    pub fn push(&mut self, layer: Box<dyn Module>) {
        if layer.is_relu() {
            if let Some(previous) = self.layers.last() {
                previous.feeds_relu();
            }
        }
        self.layers.push(layer);
    }

    /// The modules, in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }

    /// The number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// A one-line-per-layer summary with parameter counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, layer) in self.layers.iter().enumerate() {
            out.push_str(&format!(
                "{i:>3}  {:<28} {:>10}\n",
                layer.describe(),
                layer.num_parameters()
            ));
        }
        out.push_str(&format!(
            "     {:<28} {:>10}\n",
            "total parameters",
            self.num_parameters()
        ));
        out
    }
}

impl Module for Sequential {
    fn forward(&self, input: &Var) -> Var {
        self.layers
            .iter()
            .fold(input.clone(), |x, layer| layer.forward(&x))
    }

    fn parameters(&self) -> Vec<Named> {
        self.children(|layer| layer.parameters())
    }

    fn buffers(&self) -> Vec<Named> {
        self.children(|layer| layer.buffers())
    }

    fn set_training(&self, training: bool) {
        self.layers
            .iter()
            .for_each(|layer| layer.set_training(training));
    }

    fn reseed(&self, seed: u64) {
        for (i, layer) in self.layers.iter().enumerate() {
            // A distinct, fixed stream per child (splitmix-style mixing).
            let child = (seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17);
            layer.reseed(child);
        }
    }

    fn set_batch_share(&self, share: crate::BatchShare) {
        for layer in &self.layers {
            layer.set_batch_share(share);
        }
    }

    fn describe(&self) -> String {
        format!("Sequential({} layers)", self.layers.len())
    }
}

impl Sequential {
    fn children(&self, f: impl Fn(&dyn Module) -> Vec<Named>) -> Vec<Named> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| {
                f(layer.as_ref())
                    .into_iter()
                    .map(move |(name, v)| (format!("{i}.{name}"), v))
            })
            .collect()
    }
}
