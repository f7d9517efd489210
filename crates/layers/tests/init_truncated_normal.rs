//! The truncated normal against its exact distribution: Kolmogorov–Smirnov,
//! bounds, std, kurtosis, and no mass piled at the bounds (no clamping).

use ember_layers::init::math::{
    normal_cdf, truncated_normal_cdf, truncated_normal_kurtosis, truncated_normal_moment,
    truncated_normal_std_factor,
};
use ember_layers::init::{FanInTruncatedNormal, Fans, Initializer, TruncatedNormal};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const N: usize = 200_000;
const MEAN: f32 = 0.3;
const STD: f32 = 0.02; // small on purpose: PyTorch's absolute ±2 would cut nothing
const BOUNDS: f64 = 2.0;

/// N standardized draws (z = (x − mean)/std) from `TruncatedNormal::new(MEAN, STD)`.
fn standardized_samples(seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let t = TruncatedNormal::new(MEAN, STD).init_from_shape(&[N], &mut rng);
    assert_eq!(t.shape(), &[N]);
    t.to_vec()
        .iter()
        .map(|&x| (x as f64 - MEAN as f64) / STD as f64)
        .collect()
}

/// The two-sided Kolmogorov–Smirnov statistic D = sup |F_n − F|.
fn ks_statistic(mut z: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    z.sort_by(f64::total_cmp);
    let n = z.len() as f64;
    z.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max)
}

/// Asymptotic critical value of D at level α: √(−ln(α/2)/2)/√n (1.949/√n at α = 0.001).
fn ks_critical(alpha: f64, n: usize) -> f64 {
    (-(alpha / 2.0).ln() / 2.0).sqrt() / (n as f64).sqrt()
}

fn central_moments(z: &[f64]) -> (f64, f64, f64) {
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let m2 = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m4 = z.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    (mean, m2, m4)
}

#[test]
fn ks_test_against_the_exact_truncated_cdf() {
    let crit = ks_critical(0.001, N);
    assert!((crit * (N as f64).sqrt() - 1.9495).abs() < 1e-3);

    let d = ks_statistic(standardized_samples(2024), |x| {
        truncated_normal_cdf(x, BOUNDS)
    });
    assert!(d < crit, "KS D = {d:.5} >= critical {crit:.5}");

    // The test has power: the same data is rejected against the untruncated
    // normal, and a clamped sampler is rejected against the truncated CDF.
    let d_normal = ks_statistic(standardized_samples(2024), normal_cdf);
    assert!(
        d_normal > crit,
        "untruncated CDF not rejected: D = {d_normal:.5}"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let clamped: Vec<f64> = (0..N)
        .map(|_| StandardNormal.sample(&mut rng))
        .map(|z: f64| z.clamp(-BOUNDS, BOUNDS))
        .collect();
    let d_clamped = ks_statistic(clamped, |x| truncated_normal_cdf(x, BOUNDS));
    assert!(
        d_clamped > crit,
        "clamping not detected: D = {d_clamped:.5}"
    );
}

#[test]
fn every_sample_is_inside_the_bounds_in_units_of_std() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let v = TruncatedNormal::new(MEAN, STD)
        .init_from_shape(&[N], &mut rng)
        .to_vec();
    // Bounds rounded to f32 the way the sampler rounds its values.
    let lo = (MEAN as f64 - BOUNDS * STD as f64) as f32;
    let hi = (MEAN as f64 + BOUNDS * STD as f64) as f32;
    let outside = v.iter().filter(|&&x| x < lo || x > hi).count();
    assert_eq!(outside, 0, "{outside} samples outside [{lo}, {hi}]");
    // And they do reach out to the bounds: the extremes are within 0.01σ of them.
    let max = v.iter().cloned().fold(f32::MIN, f32::max);
    let min = v.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        hi - max < 0.01 * STD && min - lo < 0.01 * STD,
        "range [{min}, {max}]"
    );
}

#[test]
fn redraws_rather_than_clamps() {
    // Exact probability of landing within 0.01σ of either bound, against the
    // observed count: ≈ 0.11 %, where clamping would pile up ≈ 4.6 % there.
    let z = standardized_samples(77);
    let band = 0.01;
    let p = 2.0 * (1.0 - truncated_normal_cdf(BOUNDS - band, BOUNDS));
    let expected = p * N as f64;
    let sd = (N as f64 * p * (1.0 - p)).sqrt();
    let observed = z.iter().filter(|x| x.abs() > BOUNDS - band).count() as f64;
    assert!(
        (observed - expected).abs() < 5.0 * sd,
        "{observed} samples in the edge band, expected {expected:.0} ± {sd:.0}"
    );
    // No atom at the bounds themselves.
    let at_bounds = z.iter().filter(|x| (x.abs() - BOUNDS).abs() < 1e-6).count();
    assert!(
        at_bounds < 3,
        "{at_bounds} samples sit exactly on the bounds"
    );
}

#[test]
fn std_is_the_truncation_factor_times_sigma() {
    let (mean, m2, _) = central_moments(&standardized_samples(5));
    let factor = truncated_normal_std_factor(BOUNDS);
    assert!((factor - 0.879_625_661_034_239_8).abs() < 1e-12);
    assert!(mean.abs() < 0.01, "mean {mean}σ");
    let ratio = m2.sqrt() / factor;
    assert!(
        (ratio - 1.0).abs() < 0.01,
        "std {}σ, expected {factor}σ",
        m2.sqrt()
    );
    // The same through the public helper.
    let init = TruncatedNormal::new(MEAN, STD);
    assert!((init.actual_std() - factor * STD as f64).abs() < 1e-12);
}

#[test]
fn kurtosis_matches_the_exact_value() {
    let (_, m2, m4) = central_moments(&standardized_samples(6));
    let kurtosis = m4 / (m2 * m2);
    let exact = truncated_normal_kurtosis(BOUNDS);
    assert!(
        (exact - 2.365_536_717).abs() < 1e-8,
        "exact kurtosis {exact}"
    );

    // Standard error of the sample kurtosis by the delta method, from the
    // exact moments μ₂…μ₈ (odd ones vanish, so the estimated mean adds nothing).
    let mu = |k| truncated_normal_moment(BOUNDS, k);
    let (m2e, m4e, m6e, m8e) = (mu(2), mu(4), mu(6), mu(8));
    let var = ((m8e - m4e * m4e) / m2e.powi(4) + 4.0 * m4e * m4e * (m4e - m2e * m2e) / m2e.powi(6)
        - 4.0 * m4e * (m6e - m4e * m2e) / m2e.powi(5))
        / N as f64;
    let se = var.sqrt();
    assert!(se > 0.0 && se < 0.01, "standard error {se}");
    assert!(
        (kurtosis - exact).abs() < 5.0 * se,
        "sample kurtosis {kurtosis:.4}, exact {exact:.4} ± {se:.4}"
    );
    // Far from the normal's 3 and the clamped normal's value.
    assert!((kurtosis - 3.0).abs() > 50.0 * se);
}

#[test]
fn default_weight_init_is_uncorrected_fan_in_truncated_normal() {
    let shape = [256, 784];
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let init = ember_layers::init::default_weight_init();
    assert_eq!(init, FanInTruncatedNormal { bounds: 2.0 });
    let v = init
        .init(&shape, Fans::from_shape(&shape), &mut rng)
        .to_vec();
    let sigma = 1.0 / 784f64.sqrt();
    assert!(v.iter().all(|&x| x.abs() <= (2.0 * sigma) as f32));
    let z: Vec<f64> = v.iter().map(|&x| x as f64 / sigma).collect();
    let (_, m2, _) = central_moments(&z);
    let factor = truncated_normal_std_factor(2.0);
    assert!(
        (m2.sqrt() / factor - 1.0).abs() < 0.01,
        "std {}σ",
        m2.sqrt()
    );
}
