//! Exact special functions behind the initializers: `erf`, the normal pdf and
//! cdf, and the moments of the symmetric truncated normal.
//!
//! Everything is `f64` and accurate to a few ulps (≈1e-15 absolute, and
//! relative for `erfc` in the tail), so that correction factors are computed
//! from their formulas rather than copied as magic constants.
//!
//! ```
//! use ember_layers::init::math::{normal_cdf, truncated_normal_std_factor};
//!
//! assert!((normal_cdf(2.0) - 0.977_249_868_051_820_8).abs() < 1e-15);
//! // A ±2σ truncated normal keeps 87.96 % of the standard deviation.
//! assert!((truncated_normal_std_factor(2.0) - 0.879_625_661_034_239_8).abs() < 1e-12);
//! ```

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

/// 2/√π, the constant in front of both erf expansions.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// Below this `|x|` the positive power series is used; above it the
/// continued fraction, which converges fast there and keeps `erfc` accurate
/// relative to its (tiny) value.
const SERIES_LIMIT: f64 = 2.5;

/// The error function, erf(x) = 2/√π ∫₀ˣ e^(−t²) dt.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() < SERIES_LIMIT {
        erf_series(x)
    } else if x > 0.0 {
        1.0 - erfc_continued_fraction(x)
    } else {
        erfc_continued_fraction(-x) - 1.0
    }
}

/// The complementary error function, erfc(x) = 1 − erf(x), accurate relative
/// to its value even far in the right tail (erfc(10) ≈ 2.1e-45).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() < SERIES_LIMIT {
        1.0 - erf_series(x)
    } else if x > 0.0 {
        erfc_continued_fraction(x)
    } else {
        2.0 - erfc_continued_fraction(-x)
    }
}

/// erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·5···(2n+1)).
///
/// Unlike the alternating Taylor series, every term is positive, so nothing
/// cancels and the sum is accurate to rounding.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > sum.abs() * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    TWO_OVER_SQRT_PI * (-x2).exp() * sum
}

/// erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), for
/// x > 0, evaluated by the modified Lentz method.
fn erfc_continued_fraction(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    // g = x + a₁/(x + a₂/(x + …)) with aₖ = k/2.
    let mut g = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        g *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * g)
}

/// The standard normal density φ(x) = e^(−x²/2)/√(2π).
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// The standard normal distribution function Φ(x) = erfc(−x/√2)/2.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Probability mass a standard normal puts inside `[-bounds, bounds]`:
/// Z = 2Φ(b) − 1 = erf(b/√2).
pub fn normal_mass_within(bounds: f64) -> f64 {
    erf(bounds / SQRT_2)
}

/// The distribution function of a standard normal truncated to
/// `[-bounds, bounds]`: (Φ(x) − Φ(−b)) / (2Φ(b) − 1), clamped to `[0, 1]`.
pub fn truncated_normal_cdf(x: f64, bounds: f64) -> f64 {
    if x <= -bounds {
        return 0.0;
    }
    if x >= bounds {
        return 1.0;
    }
    // Φ(x) − Φ(−b) = (erf(x/√2) + erf(b/√2)) / 2, without a 1 − 1 cancellation.
    let inside = 0.5 * (erf(x / SQRT_2) + erf(bounds / SQRT_2));
    (inside / normal_mass_within(bounds)).clamp(0.0, 1.0)
}

/// E\[X^order\] for X a standard normal truncated to `[-bounds, bounds]`.
///
/// Odd moments are zero by symmetry. Even ones follow from integrating by
/// parts, Iₖ = ∫₋ᵦᵇ x^(2k) φ(x) dx = (2k−1)·Iₖ₋₁ − 2b^(2k−1)φ(b), with
/// I₀ = Z = 2Φ(b) − 1; the moment is Iₖ / Z. For example the variance is
/// 1 − 2bφ(b)/Z and E\[X⁴\] = 3 − (6b + 2b³)φ(b)/Z.
pub fn truncated_normal_moment(bounds: f64, order: u32) -> f64 {
    if order % 2 == 1 {
        return 0.0;
    }
    let z = normal_mass_within(bounds);
    let pdf = normal_pdf(bounds);
    let mut integral = z;
    for k in 1..=order / 2 {
        integral = (2 * k - 1) as f64 * integral - 2.0 * bounds.powi(2 * k as i32 - 1) * pdf;
    }
    integral / z
}

/// The ratio of the truncated normal's standard deviation to the standard
/// deviation of the normal it was cut from, for symmetric bounds ±b (in units
/// of that std):
///
/// factor(b) = √(1 − 2bφ(b) / (2Φ(b) − 1))
///
/// factor(2) = 0.87962566103423978…, the constant Keras and JAX divide by in
/// `VarianceScaling`. It tends to 1 as b → ∞ (no truncation) and to b/√3 as
/// b → 0 (a uniform on ±b).
pub fn truncated_normal_std_factor(bounds: f64) -> f64 {
    truncated_normal_moment(bounds, 2).sqrt()
}

/// Kurtosis E\[X⁴\]/E\[X²\]² (not excess) of the standard normal truncated to
/// ±`bounds`: ≈ 2.366 for ±2, against 3 for the normal and 1.8 for a uniform.
pub fn truncated_normal_kurtosis(bounds: f64) -> f64 {
    let var = truncated_normal_moment(bounds, 2);
    truncated_normal_moment(bounds, 4) / (var * var)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from high-precision tables (Abramowitz & Stegun
    // extended, checked with arbitrary-precision arithmetic).
    const ERF: [(f64, f64); 8] = [
        (0.0, 0.0),
        (0.1, 0.112_462_916_018_284_9),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (1.5, 0.966_105_146_475_310_7),
        (2.0, 0.995_322_265_018_952_7),
        (2.5, 0.999_593_047_982_555),
        (3.0, 0.999_977_909_503_001_4),
    ];

    #[test]
    fn erf_matches_reference_values() {
        for (x, want) in ERF {
            assert!(
                (erf(x) - want).abs() < 5e-16,
                "erf({x}) = {} != {want}",
                erf(x)
            );
            assert!((erf(-x) + want).abs() < 5e-16, "erf is odd at {x}");
        }
    }

    #[test]
    fn erfc_is_relatively_accurate_in_the_tail() {
        let tail = [
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (10.0, 2.088_487_583_762_545e-45),
        ];
        for (x, want) in tail {
            let rel = (erfc(x) - want).abs() / want;
            assert!(rel < 1e-13, "erfc({x}) = {:e}, want {want:e}", erfc(x));
        }
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() < 1e-15);
    }

    #[test]
    fn series_and_continued_fraction_agree_where_they_meet() {
        for i in 0..=40 {
            let x = 2.0 + i as f64 * 0.025;
            let series = 1.0 - erf_series(x);
            let cf = erfc_continued_fraction(x);
            assert!((series - cf).abs() < 1e-15, "x = {x}: {series:e} vs {cf:e}");
        }
    }

    #[test]
    fn normal_cdf_and_pdf() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((normal_cdf(-2.0) - 0.022_750_131_948_179_2).abs() < 5e-16);
        assert!((normal_pdf(2.0) - 0.053_990_966_513_188_06).abs() < 1e-16);
    }

    #[test]
    fn std_factor_for_two_sigma_is_the_keras_constant() {
        let f = truncated_normal_std_factor(2.0);
        assert!((f - 0.879_625_661_034_239_8).abs() < 1e-12, "{f}");
    }

    #[test]
    fn std_factor_limits() {
        // No truncation far out; a uniform on ±b (std b/√3) for tiny b.
        assert!((truncated_normal_std_factor(12.0) - 1.0).abs() < 1e-15);
        let b = 1e-3;
        assert!((truncated_normal_std_factor(b) - b / 3f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn moments_match_numerical_integration() {
        // Simpson's rule on the truncated density, independent of the recursion.
        let b = 2.0;
        let n = 20_000;
        let h = 2.0 * b / n as f64;
        let mut m = [0.0f64; 4];
        for i in 0..=n {
            let x = -b + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            for (k, mk) in m.iter_mut().enumerate() {
                *mk += w * x.powi(2 * k as i32) * normal_pdf(x);
            }
        }
        for (k, mk) in m.iter().enumerate() {
            // The Simpson weights and h/3 cancel in the ratio to I₀.
            let integral = mk / m[0];
            let want = truncated_normal_moment(b, 2 * k as u32);
            assert!(
                (integral - want).abs() < 1e-10,
                "moment {}: {integral} vs {want}",
                2 * k
            );
        }
        assert!((truncated_normal_kurtosis(2.0) - 2.366).abs() < 1e-3);
        assert_eq!(truncated_normal_moment(2.0, 3), 0.0);
    }

    #[test]
    fn truncated_cdf_spans_zero_to_one() {
        assert_eq!(truncated_normal_cdf(-2.0, 2.0), 0.0);
        assert_eq!(truncated_normal_cdf(2.5, 2.0), 1.0);
        assert!((truncated_normal_cdf(0.0, 2.0) - 0.5).abs() < 1e-15);
        let want = (normal_cdf(1.0) - normal_cdf(-2.0)) / (2.0 * normal_cdf(2.0) - 1.0);
        assert!((truncated_normal_cdf(1.0, 2.0) - want).abs() < 1e-15);
    }
}
