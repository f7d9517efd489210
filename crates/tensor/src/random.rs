//! Random constructors. The caller owns the RNG: there is no hidden global one,
//! so the same seed always gives the same tensor.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::shape::numel;
use crate::tensor::Tensor;

impl Tensor {
    /// Samples uniformly from `[low, high)`.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let t = Tensor::uniform(&[2, 3], -1.0, 1.0, &mut rng);
    /// assert!(t.to_vec().iter().all(|v| (-1.0..1.0).contains(v)));
    /// ```
    ///
    /// # Panics
    /// If `low >= high`.
    #[track_caller]
    pub fn uniform<R: Rng + ?Sized>(shape: &[usize], low: f32, high: f32, rng: &mut R) -> Tensor {
        assert!(low < high, "uniform: low {low} must be below high {high}");
        let data = (0..numel(shape))
            .map(|_| rng.random_range(low..high))
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// Samples from a normal distribution with the given mean and standard deviation.
    pub fn normal<R: Rng + ?Sized>(shape: &[usize], mean: f32, std: f32, rng: &mut R) -> Tensor {
        let data = (0..numel(shape))
            .map(|_| {
                let z: f32 = StandardNormal.sample(rng);
                mean + std * z
            })
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// Samples from the standard normal distribution.
    pub fn randn<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor {
        Tensor::normal(shape, 0.0, 1.0, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn same_seed_same_tensor() {
        let a = Tensor::randn(&[100], &mut ChaCha8Rng::seed_from_u64(3));
        let b = Tensor::randn(&[100], &mut ChaCha8Rng::seed_from_u64(3));
        let c = Tensor::randn(&[100], &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a.to_vec(), b.to_vec());
        assert_ne!(a.to_vec(), c.to_vec());
    }

    #[test]
    fn normal_has_the_requested_moments() {
        let t = Tensor::normal(&[200_000], 2.0, 3.0, &mut ChaCha8Rng::seed_from_u64(1));
        let v = t.to_vec();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 2.0).abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - 3.0).abs() < 0.03, "std {}", var.sqrt());
    }
}
