//! The truncated normal, TensorFlow's way: bounds in units of std, std given
//! before truncation, out-of-bounds draws redrawn (never clamped).

use ember_tensor::Tensor;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::math::truncated_normal_std_factor;
use super::{Fans, Initializer};

/// One draw from a standard normal truncated to `[-bounds, bounds]`, by
/// rejection: draw from N(0, 1) and redraw until the value falls inside.
///
/// This is exact (the accepted draws have precisely the truncated density),
/// and costs 1/(2Φ(b) − 1) draws on average: 1.05 for b = 2, 1.47 for b = 1.
/// Tight bounds are slow (≈ 1.25/b draws as b → 0).
///
/// # Panics
/// If `bounds` is not positive (no value could ever be accepted).
#[track_caller]
pub fn sample_truncated_standard_normal<R: Rng + ?Sized>(bounds: f64, rng: &mut R) -> f64 {
    assert!(
        bounds > 0.0,
        "truncated normal: bounds must be > 0 (in units of std), got {bounds}"
    );
    loop {
        let z: f64 = StandardNormal.sample(rng);
        if z.abs() <= bounds {
            return z;
        }
    }
}

/// `shape` filled with mean + std·z, z from the ±`bounds` truncated standard
/// normal. Computed in f64 and rounded once, so (rounding being monotonic)
/// every value lies within the f32-rounded bounds.
#[track_caller]
pub(super) fn truncated_normal_tensor(
    shape: &[usize],
    mean: f64,
    std: f64,
    bounds: f64,
    rng: &mut dyn Rng,
) -> Tensor {
    assert!(
        std.is_finite() && std >= 0.0,
        "truncated normal: std must be finite and >= 0, got {std}"
    );
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| (mean + std * sample_truncated_standard_normal(bounds, rng)) as f32)
        .collect();
    Tensor::from_vec(data, shape)
}

/// A normal N(mean, std²) truncated to `[mean − bounds·std, mean + bounds·std]`.
///
/// - `bounds` is **in units of std** (2 by default, like TensorFlow and JAX);
///   it is *not* an absolute value as in PyTorch's `trunc_normal_`.
/// - `std` is the std of the normal **before** truncation, as in TensorFlow
///   and JAX. The samples' actual std is smaller:
///
///   actual std = std · √(1 − 2bφ(b) / (2Φ(b) − 1)) = 0.87962566… · std for b = 2,
///
///   where φ and Φ are the standard normal pdf and cdf
///   (see [`math::truncated_normal_std_factor`](super::math::truncated_normal_std_factor)
///   and [`TruncatedNormal::actual_std`]). Use [`VarianceScaling`](super::VarianceScaling)
///   for a truncated normal whose actual std is the one you ask for.
/// - Sampling is exact, by rejection: see [`sample_truncated_standard_normal`].
///
/// ```
/// use ember_layers::init::{Initializer, TruncatedNormal};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
/// let init = TruncatedNormal::new(0.0, 0.1); // cut at ±0.2
/// let w = init.init_from_shape(&[100, 1000], &mut rng);
/// let v = w.to_vec();
/// assert!(v.iter().all(|x| x.abs() <= 0.2));
///
/// let std = (v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64).sqrt();
/// assert!((init.actual_std() - 0.087_962_566).abs() < 1e-7);
/// assert!((std / init.actual_std() - 1.0).abs() < 0.01); // not 0.1
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruncatedNormal {
    /// Mean (and centre of the bounds).
    pub mean: f32,
    /// Std of the normal before truncation (≥ 0).
    pub std: f32,
    /// Half-width of the kept interval, in units of `std` (> 0).
    pub bounds: f32,
}

impl TruncatedNormal {
    /// Bounds at ±2·std, as in TensorFlow's `truncated_normal`.
    pub fn new(mean: f32, std: f32) -> TruncatedNormal {
        TruncatedNormal {
            mean,
            std,
            bounds: 2.0,
        }
    }

    /// The same distribution cut at ±`bounds`·std instead.
    pub fn with_bounds(self, bounds: f32) -> TruncatedNormal {
        TruncatedNormal { bounds, ..self }
    }

    /// The std the samples actually have: `std · factor(bounds)`.
    pub fn actual_std(&self) -> f64 {
        self.std as f64 * truncated_normal_std_factor(self.bounds as f64)
    }
}

impl Default for TruncatedNormal {
    /// N(0, 1) cut at ±2, TensorFlow's default.
    fn default() -> TruncatedNormal {
        TruncatedNormal::new(0.0, 1.0)
    }
}

impl Initializer for TruncatedNormal {
    /// # Panics
    /// If `std` is negative or `bounds` is not positive.
    #[track_caller]
    fn init(&self, shape: &[usize], _fans: Fans, rng: &mut dyn Rng) -> Tensor {
        truncated_normal_tensor(
            shape,
            self.mean as f64,
            self.std as f64,
            self.bounds as f64,
            rng,
        )
    }
}

/// **Ember's default weight initializer**: a [`TruncatedNormal`] with mean 0
/// and std = 1/√fan_in before truncation, cut at ±`bounds`·std (±2 by
/// default). It is what TensorFlow's MNIST tutorial writes as
/// `tf.truncated_normal([N, M], stddev=1.0 / math.sqrt(float(N)))`.
///
/// It is deliberately **not** corrected for the truncation: the samples'
/// actual std is 0.8796/√fan_in for ±2. (Keras's `LecunNormal`, i.e.
/// [`VarianceScaling::lecun_normal`](super::VarianceScaling::lecun_normal),
/// is the corrected version, with actual std exactly 1/√fan_in.)
///
/// ```
/// use ember_layers::init::{default_weight_init, Initializer};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
/// let w = default_weight_init().init_from_shape(&[10, 100], &mut rng); // fan_in 100
/// assert!(w.to_vec().iter().all(|x| x.abs() <= 0.2)); // 2 / √100
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanInTruncatedNormal {
    /// Half-width of the kept interval, in units of the pre-truncation std.
    pub bounds: f32,
}

impl FanInTruncatedNormal {
    /// The pre-truncation std for these fans: 1/√fan_in (fan_in 0 counts as 1).
    pub fn std(fans: Fans) -> f64 {
        1.0 / (fans.fan_in.max(1) as f64).sqrt()
    }
}

impl Default for FanInTruncatedNormal {
    /// Bounds ±2σ.
    fn default() -> FanInTruncatedNormal {
        FanInTruncatedNormal { bounds: 2.0 }
    }
}

impl Initializer for FanInTruncatedNormal {
    /// # Panics
    /// If `bounds` is not positive.
    #[track_caller]
    fn init(&self, shape: &[usize], fans: Fans, rng: &mut dyn Rng) -> Tensor {
        truncated_normal_tensor(shape, 0.0, Self::std(fans), self.bounds as f64, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rejection_stays_inside_tight_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..10_000 {
            let z = sample_truncated_standard_normal(0.3, &mut rng);
            assert!(z.abs() <= 0.3);
        }
    }

    #[test]
    #[should_panic(expected = "bounds must be > 0")]
    fn zero_bounds_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        TruncatedNormal::new(0.0, 1.0)
            .with_bounds(0.0)
            .init_from_shape(&[2], &mut rng);
    }

    #[test]
    fn zero_std_gives_the_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let t = TruncatedNormal::new(0.5, 0.0).init_from_shape(&[4], &mut rng);
        assert_eq!(t.to_vec(), vec![0.5; 4]);
    }
}
