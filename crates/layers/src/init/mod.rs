//! Pluggable weight initializers, with the truncated normal done exactly.
//!
//! An [`Initializer`] receives a shape, its [`Fans`] and a caller-seeded RNG,
//! and returns a fresh tensor. Layers hold one as `Box<dyn Initializer>` (or
//! `Arc`), so any type implementing the trait, yours included, can be chosen
//! per layer or model-wide.
//!
//! ```
//! use ember_layers::init::{Fans, Initializer, TruncatedNormal, VarianceScaling};
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(0);
//! let shape = [512, 784]; // a Linear weight, (out, in)
//! let fans = Fans::from_shape(&shape); // fan_in = 784
//!
//! // TensorFlow's MNIST tutorial: stddev 1/√784 before truncation at ±2σ.
//! let sigma = 1.0 / 784f32.sqrt();
//! let w = TruncatedNormal::new(0.0, sigma).init(&shape, fans, &mut rng);
//! assert!(w.to_vec().iter().all(|v| v.abs() <= 2.0 * sigma));
//!
//! // The samples' actual std is 0.88σ: truncation removed the tails.
//! let std = (w.to_vec().iter().map(|v| v * v).sum::<f32>() / w.numel() as f32).sqrt();
//! assert!((std / sigma - 0.88).abs() < 0.01);
//!
//! // Keras's LeCun normal divides by that factor, so the std is exactly 1/√fan_in.
//! let lecun = VarianceScaling::lecun_normal().init(&shape, fans, &mut rng);
//! let std = (lecun.to_vec().iter().map(|v| v * v).sum::<f32>() / lecun.numel() as f32).sqrt();
//! assert!((std / sigma - 1.0).abs() < 0.01);
//! ```
//!
//! # The built-ins
//!
//! | initializer | samples from | std |
//! |---|---|---|
//! | [`Zeros`], [`Constant`] | a constant | 0 |
//! | [`Uniform`] `{ low, high }` | U(low, high) | (high − low)/√12 |
//! | [`Normal`] `{ mean, std }` | N(mean, std²) | std |
//! | [`TruncatedNormal`] `{ mean, std, bounds }` | N(mean, std²) cut at mean ± bounds·std | factor(bounds)·std |
//! | [`FanInTruncatedNormal`] (**Ember's default weight init**) | N(0, 1/fan_in) cut at ±2σ | 0.8796/√fan_in |
//! | [`VarianceScaling`] `{ scale, mode, distribution }` | see its docs | √(scale/n) exactly |
//! | [`GlorotUniform`], [`GlorotNormal`] | `VarianceScaling` with scale 1, n = (fan_in + fan_out)/2 | √(2/(fan_in + fan_out)) |
//! | [`HeUniform`], [`HeNormal`] | scale 2, n = fan_in | √(2/fan_in) |
//! | [`LecunUniform`], [`LecunNormal`] | scale 1, n = fan_in | √(1/fan_in) |
//! | [`Orthogonal`] `{ gain }` | gain · a uniformly random orthogonal matrix | gain/√cols (rows ≤ cols) |
//!
//! where factor(b) = √(1 − 2bφ(b)/(2Φ(b) − 1)) = 0.87962566103423978 for
//! b = 2 (see [`math::truncated_normal_std_factor`]). The `…Normal` variance
//! scalers follow Keras: they draw from a truncated normal and correct its std.
//!
//! # Three meanings of "truncated normal"
//!
//! The same words name three different distributions in the big frameworks:
//!
//! - **TensorFlow** (`tf.random.truncated_normal`, `tf.keras.initializers.TruncatedNormal`)
//!   and **JAX** (`jax.nn.initializers.truncated_normal`): bounds at ±2 **in
//!   units of std**, and `stddev` is the std of the normal *before*
//!   truncation, so the samples' actual std is 0.88 × stddev. TensorFlow
//!   redraws out-of-bounds samples; JAX draws by inverse CDF
//!   (`jax.random.truncated_normal`); both give the same distribution.
//!   Ember's [`TruncatedNormal`] is this one (sampled by rejection), and the
//!   `tf.truncated_normal(shape, stddev=1/sqrt(N))` of the TensorFlow MNIST
//!   tutorial is [`FanInTruncatedNormal`].
//! - **Keras and JAX `VarianceScaling`** (hence `glorot_normal`, `he_normal`,
//!   `lecun_normal`): also ±2σ, but the std is first divided by
//!   0.87962566103423978 so the samples have *exactly* the target variance.
//!   Ember's [`VarianceScaling`] with [`Distribution::TruncatedNormal`] does
//!   the same, computing the factor from the formula for any bounds.
//! - **PyTorch** `nn.init.trunc_normal_(w, mean=0, std=1, a=-2, b=2)`: the
//!   bounds `a`, `b` are **absolute values**, whatever the std. With the
//!   usual small std (say 0.02) the cut sits at ±100σ, nothing is truncated,
//!   and one silently gets a plain normal: the trap. It samples by inverse
//!   CDF rather than rejection, and does not correct the std. To get a
//!   PyTorch `trunc_normal_(std=s, a=-2s, b=2s)` in Ember, use
//!   `TruncatedNormal::new(0.0, s)`.
//!
//! # Writing your own
//!
//! See the example on [`Initializer`].

pub mod math;

mod basic;
mod fans;
mod orthogonal;
mod truncated_normal;
mod variance_scaling;

pub use basic::{Constant, Normal, Uniform, Zeros};
pub use fans::Fans;
pub use orthogonal::Orthogonal;
pub use truncated_normal::{
    sample_truncated_standard_normal, FanInTruncatedNormal, TruncatedNormal,
};
pub use variance_scaling::{
    Distribution, FanMode, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal,
    LecunUniform, VarianceScaling,
};

use std::sync::Arc;

use ember_tensor::Tensor;
use rand::Rng;

/// Creates the initial value of a parameter.
///
/// `init` must return a tensor of exactly `shape`, drawing any randomness
/// from `rng` only (never a global or thread-local RNG), so the same seed
/// gives the same tensor bit for bit. `fans` is usually
/// [`Fans::from_shape`]`(shape)`; layers whose weights are laid out
/// differently pass their own.
///
/// The trait is object safe: layers store `Box<dyn Initializer>` or
/// `Arc<dyn Initializer>`, and anyone can implement it:
///
/// ```
/// use ember_layers::init::{Fans, Initializer};
/// use ember_tensor::Tensor;
/// use rand::{Rng, RngExt, SeedableRng};
///
/// /// Each weight is ±1/√fan_in with equal probability.
/// #[derive(Debug)]
/// struct RandomSign;
///
/// impl Initializer for RandomSign {
///     fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
///         let a = 1.0 / (fans.fan_in.max(1) as f32).sqrt();
///         let n = shape.iter().product();
///         let data = (0..n).map(|_| if rng.random::<bool>() { a } else { -a }).collect();
///         Tensor::from_vec(data, shape)
///     }
/// }
///
/// let init: Box<dyn Initializer> = Box::new(RandomSign);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let w = init.init_from_shape(&[3, 4], &mut rng);
/// assert!(w.to_vec().iter().all(|v| v.abs() == 0.5));
/// ```
pub trait Initializer: std::fmt::Debug + Send + Sync {
    /// A new tensor of shape `shape`, for a parameter with fans `fans`.
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor;

    /// [`init`](Initializer::init) with the fans read from the shape by
    /// [`Fans::from_shape`] (PyTorch's layout).
    fn init_from_shape(&self, shape: &[usize], rng: &mut dyn Rng) -> Tensor {
        self.init(shape, Fans::from_shape(shape), rng)
    }
}

impl<I: Initializer + ?Sized> Initializer for Box<I> {
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
        (**self).init(shape, fans, rng)
    }
}

impl<I: Initializer + ?Sized> Initializer for Arc<I> {
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
        (**self).init(shape, fans, rng)
    }
}

impl<I: Initializer + ?Sized> Initializer for &I {
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
        (**self).init(shape, fans, rng)
    }
}

/// Ember's default weight initializer: a normal with std 1/√fan_in, truncated
/// at ±2σ and **not** corrected (actual std ≈ 0.88/√fan_in), as in
/// TensorFlow's MNIST tutorial. See [`FanInTruncatedNormal`].
///
/// Biases are the layers' business: zero by default, or `Constant(0.1)`
/// ahead of a ReLU.
pub fn default_weight_init() -> FanInTruncatedNormal {
    FanInTruncatedNormal::default()
}
