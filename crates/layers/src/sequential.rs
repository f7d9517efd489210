//! A chain of modules.

use ember_autograd::Var;

use crate::{Activation, LayerKind, Members, Module};

/// Modules applied one after the other, named `"0"`, `"1"`, … as in
/// PyTorch's `nn.Sequential`, so parameters are `"0.weight"`, `"0.bias"`, …
///
/// ```
/// use ember_layers::{Activation, Dropout, LayerInit, Linear, Module, ReLU, Sequential};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new()
///     .add(Linear::with_init(784, 512, &LayerInit::before(Activation::Relu), &mut rng))
///     .add(ReLU)
///     .add(Dropout::new(0.2))
///     .add(Linear::new(512, 10, &mut rng));
/// let names: Vec<String> = model.parameters().into_iter().map(|p| p.name).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// // The layer built to feed the ReLU starts with bias 0.1, the last one with 0.
/// assert_eq!(model.parameters()[1].var.value().to_vec()[0], 0.1);
/// assert_eq!(model.parameters()[3].var.value().to_vec()[0], 0.0);
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
    /// Runs the layers in order. A layer followed by a ReLU module runs
    /// both through its [`Module::forward_relu`], by a ReLU and a
    /// [`crate::MaxPool2d`] all three through its
    /// [`Module::forward_relu_max_pool2d`] (one pass for a `Conv2d`), and by
    /// a ReLU and a [`crate::Dropout`] through its
    /// [`Module::forward_relu_dropout`] (a `Linear`'s one op); the same
    /// values and gradients as running them apart.
    fn forward(&self, input: &Var) -> Var {
        let mut x = input.clone();
        let kind_at = |j: usize| self.layers.get(j).map(|layer| layer.kind());
        let fuse = !crate::probe::is_recording();
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let relu_next = kind_at(i + 1) == Some(LayerKind::Activation(Activation::Relu));
            (x, i) = match kind_at(i + 2) {
                Some(LayerKind::MaxPool { kernel, stride }) if fuse && relu_next => {
                    (layer.forward_relu_max_pool2d(&x, kernel, stride), i + 3)
                }
                _ if fuse && relu_next => {
                    match self.layers.get(i + 2).and_then(|next| next.as_dropout()) {
                        Some(dropout) => (layer.forward_relu_dropout(&x, dropout), i + 3),
                        None => (layer.forward_relu(&x), i + 2),
                    }
                }
                _ => (layer.forward(&x), i + 1),
            };
        }
        x
    }

    fn visit(&self, m: &mut Members) {
        for (i, layer) in self.layers.iter().enumerate() {
            m.child(&i.to_string(), layer.as_ref());
        }
    }

    fn describe(&self) -> String {
        format!("Sequential({} layers)", self.layers.len())
    }
}
