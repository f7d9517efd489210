//! Variance scaling (Keras/JAX), and its named special cases Glorot, He and
//! LeCun: the std is chosen from the fans so activations or gradients keep
//! their scale from layer to layer.

use ember_tensor::Tensor;
use rand::Rng;

use super::math::truncated_normal_std_factor;
use super::truncated_normal::truncated_normal_tensor;
use super::{Fans, Initializer};

/// Which fans set the variance of a [`VarianceScaling`] initializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FanMode {
    /// n = fan_in: preserves the forward signal's variance (LeCun, He).
    FanIn,
    /// n = fan_out: preserves the backward gradient's variance.
    FanOut,
    /// n = (fan_in + fan_out)/2: a compromise between the two (Glorot).
    FanAvg,
}

/// The shape of the distribution a [`VarianceScaling`] initializer draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// A normal truncated at ±2 of its own std
    /// ([`VarianceScaling::TRUNCATION_BOUNDS`]), with that std divided by
    /// [`truncated_normal_std_factor`]`(2)` = 0.8796… so the *samples* have
    /// the target std (Keras's and JAX's `"truncated_normal"`).
    TruncatedNormal,
    /// A plain normal with the target std (Keras's `"untruncated_normal"`,
    /// JAX's `"normal"`).
    Normal,
    /// Uniform on ±√3·target std.
    Uniform,
}

/// Draws weights whose variance is exactly `scale / n`, n being set by `mode`
/// from the [`Fans`] (Keras's and JAX's `VarianceScaling`).
///
/// With target std s = √(scale / n):
///
/// | `distribution` | samples from |
/// |---|---|
/// | `TruncatedNormal` | N(0, σ²) cut at ±2σ, with σ = s / factor(2) = s / 0.87962566103423978 |
/// | `Normal` | N(0, s²) |
/// | `Uniform` | U(−√3·s, √3·s) |
///
/// factor(b) = √(1 − 2bφ(b)/(2Φ(b) − 1)) is computed from the formula
/// ([`truncated_normal_std_factor`]), not copied as a constant. n is at
/// least 1, so empty fans never divide by zero.
///
/// The named initializers are special cases, following Keras (so every
/// `…Normal` is truncated and corrected):
///
/// | Ember | scale | mode | distribution | PyTorch counterpart |
/// |---|---|---|---|---|
/// | [`GlorotUniform`] | 1 | `FanAvg` | `Uniform` | `xavier_uniform_` (identical) |
/// | [`GlorotNormal`] | 1 | `FanAvg` | `TruncatedNormal` | `xavier_normal_` is *untruncated*: `{1, FanAvg, Normal}` |
/// | [`HeUniform`] | 2 | `FanIn` | `Uniform` | `kaiming_uniform_(nonlinearity="relu")` (identical) |
/// | [`HeNormal`] | 2 | `FanIn` | `TruncatedNormal` | `kaiming_normal_` is *untruncated*: `{2, FanIn, Normal}` |
/// | [`LecunUniform`] | 1 | `FanIn` | `Uniform` | — |
/// | [`LecunNormal`] | 1 | `FanIn` | `TruncatedNormal` | — (Flax's default `Dense` init) |
///
/// ```
/// use ember_layers::init::{Distribution, FanMode, Initializer, VarianceScaling};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
/// let he = VarianceScaling { scale: 2.0, mode: FanMode::FanIn, distribution: Distribution::TruncatedNormal };
/// assert_eq!(he, VarianceScaling::he_normal());
///
/// let w = he.init_from_shape(&[256, 512], &mut rng); // fan_in 512
/// let v = w.to_vec();
/// let std = (v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64).sqrt();
/// let target = (2.0f64 / 512.0).sqrt();
/// assert!((std / target - 1.0).abs() < 0.01); // corrected: exactly the target
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarianceScaling {
    /// Target variance times n (≥ 0): 1 for Glorot and LeCun, 2 for He.
    pub scale: f32,
    /// Which fans make n.
    pub mode: FanMode,
    /// What to draw from.
    pub distribution: Distribution,
}

impl VarianceScaling {
    /// Half-width, in units of its own std, of the `TruncatedNormal`
    /// distribution (before the correction), as in Keras and JAX.
    pub const TRUNCATION_BOUNDS: f64 = 2.0;

    /// A variance scaler from its three parts.
    pub fn new(scale: f32, mode: FanMode, distribution: Distribution) -> VarianceScaling {
        VarianceScaling {
            scale,
            mode,
            distribution,
        }
    }

    /// Glorot (Xavier) uniform: U(±√(6/(fan_in + fan_out))).
    pub fn glorot_uniform() -> VarianceScaling {
        VarianceScaling::new(1.0, FanMode::FanAvg, Distribution::Uniform)
    }

    /// Glorot (Xavier) normal, Keras's: truncated and corrected to std √(2/(fan_in + fan_out)).
    pub fn glorot_normal() -> VarianceScaling {
        VarianceScaling::new(1.0, FanMode::FanAvg, Distribution::TruncatedNormal)
    }

    /// He (Kaiming) uniform: U(±√(6/fan_in)).
    pub fn he_uniform() -> VarianceScaling {
        VarianceScaling::new(2.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// He (Kaiming) normal, Keras's: truncated and corrected to std √(2/fan_in).
    pub fn he_normal() -> VarianceScaling {
        VarianceScaling::new(2.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// LeCun uniform: U(±√(3/fan_in)).
    pub fn lecun_uniform() -> VarianceScaling {
        VarianceScaling::new(1.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// LeCun normal, Keras's: truncated and corrected to std √(1/fan_in).
    pub fn lecun_normal() -> VarianceScaling {
        VarianceScaling::new(1.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// n, the denominator chosen by `mode` (at least 1).
    pub fn denominator(&self, fans: Fans) -> f64 {
        let n = match self.mode {
            FanMode::FanIn => fans.fan_in as f64,
            FanMode::FanOut => fans.fan_out as f64,
            FanMode::FanAvg => fans.average(),
        };
        n.max(1.0)
    }

    /// The std the samples have: √(scale / n).
    pub fn target_std(&self, fans: Fans) -> f64 {
        (self.scale as f64 / self.denominator(fans)).sqrt()
    }
}

impl Default for VarianceScaling {
    /// Keras's default: scale 1, `FanIn`, `TruncatedNormal` (= LeCun normal).
    fn default() -> VarianceScaling {
        VarianceScaling::lecun_normal()
    }
}

impl Initializer for VarianceScaling {
    /// # Panics
    /// If `scale` is negative or not finite.
    #[track_caller]
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
        assert!(
            self.scale.is_finite() && self.scale >= 0.0,
            "VarianceScaling init: scale must be finite and >= 0, got {}",
            self.scale
        );
        let target = self.target_std(fans);
        match self.distribution {
            Distribution::TruncatedNormal => {
                let bounds = Self::TRUNCATION_BOUNDS;
                let std = target / truncated_normal_std_factor(bounds);
                truncated_normal_tensor(shape, 0.0, std, bounds, rng)
            }
            Distribution::Normal => Tensor::normal(shape, 0.0, target as f32, rng),
            Distribution::Uniform => {
                let limit = (3.0f64.sqrt() * target) as f32;
                if limit == 0.0 {
                    Tensor::zeros(shape)
                } else {
                    Tensor::uniform(shape, -limit, limit, rng)
                }
            }
        }
    }
}

/// Declares a named unit struct that initializes as a fixed `VarianceScaling`.
macro_rules! named_variance_scaling {
    ($(#[$doc:meta])* $name:ident => $ctor:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl From<$name> for VarianceScaling {
            fn from(_: $name) -> VarianceScaling {
                VarianceScaling::$ctor()
            }
        }

        impl Initializer for $name {
            fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
                VarianceScaling::$ctor().init(shape, fans, rng)
            }
        }
    };
}

named_variance_scaling!(
    /// Glorot (Xavier) uniform: U(±√(6/(fan_in + fan_out))), variance
    /// 2/(fan_in + fan_out). Keras's default `Dense` init.
    GlorotUniform => glorot_uniform
);
named_variance_scaling!(
    /// Glorot (Xavier) normal as in Keras: truncated at ±2σ and corrected, so
    /// the variance is exactly 2/(fan_in + fan_out).
    GlorotNormal => glorot_normal
);
named_variance_scaling!(
    /// He (Kaiming) uniform: U(±√(6/fan_in)), variance 2/fan_in. For ReLU nets.
    HeUniform => he_uniform
);
named_variance_scaling!(
    /// He (Kaiming) normal as in Keras: truncated at ±2σ and corrected, so the
    /// variance is exactly 2/fan_in. (PyTorch's `kaiming_normal_` is untruncated.)
    HeNormal => he_normal
);
named_variance_scaling!(
    /// LeCun uniform: U(±√(3/fan_in)), variance 1/fan_in.
    LecunUniform => lecun_uniform
);
named_variance_scaling!(
    /// LeCun normal as in Keras: truncated at ±2σ and corrected, so the
    /// variance is exactly 1/fan_in. For SELU nets; Flax's default.
    LecunNormal => lecun_normal
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denominators_follow_the_mode() {
        let fans = Fans::new(30, 10);
        let n = |mode| VarianceScaling::new(1.0, mode, Distribution::Normal).denominator(fans);
        assert_eq!(n(FanMode::FanIn), 30.0);
        assert_eq!(n(FanMode::FanOut), 10.0);
        assert_eq!(n(FanMode::FanAvg), 20.0);
        assert_eq!(
            VarianceScaling::he_normal().denominator(Fans::new(0, 0)),
            1.0
        );
        assert_eq!(
            VarianceScaling::from(HeUniform),
            VarianceScaling::he_uniform()
        );
    }
}
