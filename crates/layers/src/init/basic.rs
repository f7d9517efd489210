//! The fixed-parameter initializers: constants, uniform and normal.

use ember_tensor::Tensor;
use rand::Rng;

use super::{Fans, Initializer};

/// Every element 0. The usual bias initializer.
///
/// ```
/// use ember_layers::init::{Initializer, Zeros};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// assert_eq!(Zeros.init_from_shape(&[3], &mut rng).to_vec(), vec![0.0; 3]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Zeros;

impl Initializer for Zeros {
    fn init(&self, shape: &[usize], _fans: Fans, _rng: &mut dyn Rng) -> Tensor {
        Tensor::zeros(shape)
    }
}

/// Every element equal to the given value, e.g. `Constant(0.1)` for a bias
/// ahead of a ReLU, so units start active.
///
/// ```
/// use ember_layers::init::{Constant, Initializer};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// assert_eq!(Constant(0.1).init_from_shape(&[2], &mut rng).to_vec(), vec![0.1, 0.1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant(pub f32);

impl Initializer for Constant {
    fn init(&self, shape: &[usize], _fans: Fans, _rng: &mut dyn Rng) -> Tensor {
        Tensor::full(shape, self.0)
    }
}

/// Uniform on `[low, high)`: mean (low + high)/2, std (high − low)/√12.
///
/// PyTorch's default `Linear` init is `Uniform::symmetric(1/√fan_in)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uniform {
    /// Smallest value (inclusive).
    pub low: f32,
    /// Largest value (exclusive).
    pub high: f32,
}

impl Uniform {
    /// Uniform on `[-limit, limit)`.
    pub fn symmetric(limit: f32) -> Uniform {
        Uniform {
            low: -limit,
            high: limit,
        }
    }
}

impl Initializer for Uniform {
    /// # Panics
    /// If `low > high` or either is not finite.
    #[track_caller]
    fn init(&self, shape: &[usize], _fans: Fans, rng: &mut dyn Rng) -> Tensor {
        let Uniform { low, high } = *self;
        assert!(
            low.is_finite() && high.is_finite() && low <= high,
            "Uniform init: need finite low <= high, got low {low}, high {high}"
        );
        if low == high {
            return Tensor::full(shape, low);
        }
        Tensor::uniform(shape, low, high, rng)
    }
}

/// Normal with the given mean and standard deviation, no truncation: about
/// 4.6 % of the samples lie beyond 2σ and 0.27 % beyond 3σ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    /// Mean.
    pub mean: f32,
    /// Standard deviation (≥ 0).
    pub std: f32,
}

impl Initializer for Normal {
    /// # Panics
    /// If `std` is negative or not finite.
    #[track_caller]
    fn init(&self, shape: &[usize], _fans: Fans, rng: &mut dyn Rng) -> Tensor {
        assert!(
            self.std.is_finite() && self.std >= 0.0,
            "Normal init: std must be finite and >= 0, got {}",
            self.std
        );
        Tensor::normal(shape, self.mean, self.std, rng)
    }
}
