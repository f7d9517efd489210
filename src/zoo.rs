//! The reference models of Ember's examples and benchmarks, built once here
//! so that what `mnist_cnn` trains, what `train_throughput` times and what
//! the criterion benches measure are the same networks.
//!
//! Each takes the weight initializers (`init`; Ember's defaults with
//! `LayerInit::default()`) and the generator the weights are drawn from;
//! every layer that feeds a ReLU is built for it (bias 0.1 by default).
//!
//! ```
//! use ember::layers::{LayerInit, Module};
//! use ember::rand::SeedableRng;
//!
//! let mut rng = ember::rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let model = ember::zoo::small_mlp(&LayerInit::default(), &mut rng);
//! assert_eq!(model.num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
//! ```

use ember_layers::{
    Activation, Conv2d, Dropout, Flatten, LayerInit, Linear, MaxPool2d, ReLU, Sequential,
};
use rand::Rng;

/// 784 → 512 → 512 → 10 with ReLU and dropout 0.2 after each hidden layer
/// (Keras's `mnist_mlp`): `(batch, 784) → (batch, 10)`.
pub fn classic_mlp(init: &LayerInit, rng: &mut dyn Rng) -> Sequential {
    let relu = init.clone().feeding(Activation::Relu);
    Sequential::new()
        .add(Linear::with_init(784, 512, &relu, rng))
        .add(ReLU)
        .add(Dropout::new(0.2))
        .add(Linear::with_init(512, 512, &relu, rng))
        .add(ReLU)
        .add(Dropout::new(0.2))
        .add(Linear::with_init(512, 10, init, rng))
}

/// 784 → 128 → 10 with a ReLU: `(batch, 784) → (batch, 10)`.
pub fn small_mlp(init: &LayerInit, rng: &mut dyn Rng) -> Sequential {
    let relu = init.clone().feeding(Activation::Relu);
    Sequential::new()
        .add(Linear::with_init(784, 128, &relu, rng))
        .add(ReLU)
        .add(Linear::with_init(128, 10, init, rng))
}

/// The classic MNIST convnet (Keras's `mnist_cnn`): conv 3×3 32 → ReLU →
/// conv 3×3 64 → ReLU → max-pool 2 → dropout 0.25 → 9216 → 128 → ReLU →
/// dropout 0.5 → 10: `(batch, 1, 28, 28) → (batch, 10)`.
pub fn mnist_cnn(init: &LayerInit, rng: &mut dyn Rng) -> Sequential {
    let relu = init.clone().feeding(Activation::Relu);
    Sequential::new()
        .add(Conv2d::with_options(1, 32, 3, 1, 0, &relu, rng)) // → (32, 26, 26)
        .add(ReLU)
        .add(Conv2d::with_options(32, 64, 3, 1, 0, &relu, rng)) // → (64, 24, 24)
        .add(ReLU)
        .add(MaxPool2d::new(2)) // → (64, 12, 12)
        .add(Dropout::new(0.25))
        .add(Flatten) // → 9216
        .add(Linear::with_init(9216, 128, &relu, rng))
        .add(ReLU)
        .add(Dropout::new(0.5))
        .add(Linear::with_init(128, 10, init, rng))
}
