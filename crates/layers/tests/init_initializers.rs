//! Variance scaling and its named cases, orthogonal matrices, determinism and
//! the trait as users hold it (`Box<dyn Initializer>`).

use std::sync::Arc;

use ember_layers::init::math::truncated_normal_std_factor;
use ember_layers::init::{
    Constant, Distribution, FanInTruncatedNormal, FanMode, Fans, GlorotNormal, GlorotUniform,
    HeNormal, HeUniform, Initializer, LecunNormal, LecunUniform, Normal, Orthogonal,
    TruncatedNormal, Uniform, VarianceScaling, Zeros,
};
use ember_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Sample mean and variance, in f64.
fn mean_var(t: &Tensor) -> (f64, f64) {
    let v = t.to_vec();
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn max_abs(t: &Tensor) -> f32 {
    t.to_vec().iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn corrected_variance_scaling_hits_its_target_std() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let shape = [400, 500];
    let fans = Fans::from_shape(&shape);
    for mode in [FanMode::FanIn, FanMode::FanOut, FanMode::FanAvg] {
        for distribution in [
            Distribution::TruncatedNormal,
            Distribution::Normal,
            Distribution::Uniform,
        ] {
            let init = VarianceScaling::new(1.5, mode, distribution);
            let w = init.init(&shape, fans, &mut rng);
            assert_eq!(w.shape(), &shape);
            let (mean, var) = mean_var(&w);
            let target = init.target_std(fans);
            let n = match mode {
                FanMode::FanIn => 500.0,
                FanMode::FanOut => 400.0,
                FanMode::FanAvg => 450.0,
            };
            assert!((target - (1.5f64 / n).sqrt()).abs() < 1e-15);
            assert!(mean.abs() < 0.01 * target, "{init:?}: mean {mean}");
            let ratio = var.sqrt() / target;
            assert!((ratio - 1.0).abs() < 0.01, "{init:?}: std/target = {ratio}");
            let max = max_abs(&w) as f64;
            match distribution {
                // Cut at ±2 of the *pre-correction* std: 2·target/0.8796.
                Distribution::TruncatedNormal => {
                    let bound = 2.0 * target / truncated_normal_std_factor(2.0);
                    assert!(
                        max <= bound * (1.0 + 1e-6) && max > 0.99 * bound,
                        "{max} vs {bound}"
                    );
                }
                Distribution::Uniform => {
                    let limit = 3f64.sqrt() * target;
                    assert!(max <= limit * (1.0 + 1e-6) && max > 0.99 * limit);
                }
                // An untruncated normal has 200 000 · 0.27 % samples past 3σ.
                Distribution::Normal => assert!(max > 3.5 * target),
            }
        }
    }
}

#[test]
fn glorot_he_lecun_variances_match_their_formulas() {
    let linear = [300, 600]; // fan_in 600, fan_out 300
    let conv = [128, 64, 3, 3]; // fan_in 576, fan_out 1152
    let cases: Vec<(Box<dyn Initializer>, &str, f64)> = vec![
        (
            Box::new(GlorotUniform),
            "GlorotUniform",
            2.0 / (600.0 + 300.0),
        ),
        (
            Box::new(GlorotNormal),
            "GlorotNormal",
            2.0 / (600.0 + 300.0),
        ),
        (Box::new(HeUniform), "HeUniform", 2.0 / 600.0),
        (Box::new(HeNormal), "HeNormal", 2.0 / 600.0),
        (Box::new(LecunUniform), "LecunUniform", 1.0 / 600.0),
        (Box::new(LecunNormal), "LecunNormal", 1.0 / 600.0),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (init, name, want) in &cases {
        let (_, var) = mean_var(&init.init_from_shape(&linear, &mut rng));
        assert!(
            (var / want - 1.0).abs() < 0.02,
            "{name} linear: var {var:e}, want {want:e}"
        );
    }
    // Conv fans are channels × kh × kw.
    let conv_want = [
        2.0 / (576.0 + 1152.0),
        2.0 / (576.0 + 1152.0),
        2.0 / 576.0,
        2.0 / 576.0,
        1.0 / 576.0,
        1.0 / 576.0,
    ];
    for ((init, name, _), want) in cases.iter().zip(conv_want) {
        let (_, var) = mean_var(&init.init_from_shape(&conv, &mut rng));
        assert!(
            (var / want - 1.0).abs() < 0.02,
            "{name} conv: var {var:e}, want {want:e}"
        );
    }
}

#[test]
fn named_initializers_are_their_keras_variance_scalings() {
    use Distribution::{TruncatedNormal as Tn, Uniform as U};
    use FanMode::{FanAvg, FanIn};
    let expect = [
        (VarianceScaling::from(GlorotUniform), 1.0, FanAvg, U),
        (VarianceScaling::from(GlorotNormal), 1.0, FanAvg, Tn),
        (VarianceScaling::from(HeUniform), 2.0, FanIn, U),
        (VarianceScaling::from(HeNormal), 2.0, FanIn, Tn),
        (VarianceScaling::from(LecunUniform), 1.0, FanIn, U),
        (VarianceScaling::from(LecunNormal), 1.0, FanIn, Tn),
    ];
    for (vs, scale, mode, distribution) in expect {
        assert_eq!(vs, VarianceScaling::new(scale, mode, distribution));
    }
    // And they draw the very same numbers.
    let a = HeNormal.init_from_shape(&[20, 30], &mut ChaCha8Rng::seed_from_u64(4));
    let b =
        VarianceScaling::he_normal().init_from_shape(&[20, 30], &mut ChaCha8Rng::seed_from_u64(4));
    assert_eq!(a.to_vec(), b.to_vec());
}

/// max |W·Wᵀ − gain²·I| (or Wᵀ·W when rows > cols), computed in f64.
fn orthogonality_error(w: &Tensor, gain: f64) -> f64 {
    let rows = w.shape()[0];
    let cols = w.numel() / rows;
    // Work on the wide orientation: k × len with k ≤ len.
    let wide = if rows <= cols {
        w.reshape(&[rows, cols])
    } else {
        w.reshape(&[rows, cols]).t().contiguous()
    };
    let (k, len) = (wide.shape()[0], wide.shape()[1]);
    let v: Vec<f64> = wide.to_vec().iter().map(|&x| x as f64).collect();
    let mut worst = 0.0f64;
    for a in 0..k {
        for b in 0..k {
            let g: f64 = (0..len).map(|t| v[a * len + t] * v[b * len + t]).sum();
            let want = if a == b { gain * gain } else { 0.0 };
            worst = worst.max((g - want).abs());
        }
    }
    worst
}

#[test]
fn orthogonal_rows_are_orthonormal() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for shape in [
        vec![64, 128],
        vec![128, 128],
        vec![16, 3, 3, 3],
        vec![1, 10],
    ] {
        let w = Orthogonal::default().init_from_shape(&shape, &mut rng);
        assert_eq!(w.shape(), &shape[..]);
        let err = orthogonality_error(&w, 1.0);
        assert!(err < 1e-5, "{shape:?}: |W·Wᵀ − I| = {err:e}");
    }
    let w = Orthogonal::new(2.0).init_from_shape(&[30, 50], &mut rng);
    let err = orthogonality_error(&w, 2.0);
    assert!(err < 4e-5, "gain 2: |W·Wᵀ − 4I| = {err:e}");
}

#[test]
fn orthogonal_tall_matrices_have_orthonormal_columns() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let w = Orthogonal::default().init_from_shape(&[200, 50], &mut rng);
    let err = orthogonality_error(&w, 1.0);
    assert!(err < 1e-5, "|WᵀW − I| = {err:e}");
}

#[test]
fn orthogonal_is_unbiased() {
    // For a Haar-random orthogonal 6 × 6 matrix each entry has mean 0 and
    // variance 1/6. Without the sign correction after QR, Householder's Q has
    // Q₀₀ < 0 always (mean ≈ −0.35), which this detects.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let draws = 400;
    let mut sum00 = 0.0f64;
    let mut sum_diag = 0.0f64;
    for _ in 0..draws {
        let w = Orthogonal::default().init_from_shape(&[6, 6], &mut rng);
        sum00 += w.get(&[0, 0]) as f64;
        sum_diag += (0..6).map(|i| w.get(&[i, i]) as f64).sum::<f64>();
    }
    let se00 = (1.0 / 6.0 / draws as f64).sqrt();
    let mean00 = sum00 / draws as f64;
    assert!(mean00.abs() < 5.0 * se00, "mean W₀₀ = {mean00}, se {se00}");
    let mean_diag = sum_diag / (6 * draws) as f64;
    assert!(
        mean_diag.abs() < 5.0 * se00 / 6f64.sqrt(),
        "mean diagonal {mean_diag}"
    );
}

fn every_builtin() -> Vec<Arc<dyn Initializer>> {
    vec![
        Arc::new(Zeros),
        Arc::new(Constant(0.1)),
        Arc::new(Uniform::symmetric(0.5)),
        Arc::new(Normal {
            mean: 0.0,
            std: 0.3,
        }),
        Arc::new(TruncatedNormal::new(0.0, 0.3).with_bounds(1.5)),
        Arc::new(FanInTruncatedNormal::default()),
        Arc::new(VarianceScaling::new(
            0.7,
            FanMode::FanOut,
            Distribution::TruncatedNormal,
        )),
        Arc::new(GlorotUniform),
        Arc::new(GlorotNormal),
        Arc::new(HeUniform),
        Arc::new(HeNormal),
        Arc::new(LecunUniform),
        Arc::new(LecunNormal),
        Arc::new(Orthogonal::new(1.0)),
    ]
}

#[test]
fn same_seed_same_tensor_bit_for_bit() {
    let shape = [13, 7, 2];
    for init in every_builtin() {
        let draw = |seed| {
            let t = init.init_from_shape(&shape, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(t.shape(), &shape, "{init:?}");
            t.to_vec().iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
        };
        assert_eq!(draw(42), draw(42), "{init:?} is not deterministic");
        let constant =
            format!("{init:?}").starts_with("Zeros") || format!("{init:?}").starts_with("Constant");
        if !constant {
            assert_ne!(draw(42), draw(43), "{init:?} ignores its seed");
        }
    }
}

#[test]
fn constants_and_explicit_fans() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(
        Zeros.init_from_shape(&[2, 2], &mut rng).to_vec(),
        vec![0.0; 4]
    );
    assert_eq!(
        Constant(0.1).init_from_shape(&[3], &mut rng).to_vec(),
        vec![0.1; 3]
    );
    // Explicit fans override the shape's: fan_in 4 → bounds ±2/√4 = ±1.
    let w = FanInTruncatedNormal::default().init(&[1000], Fans::new(4, 1), &mut rng);
    assert!(max_abs(&w) <= 1.0 && max_abs(&w) > 0.95);
    // Empty tensors are fine.
    for init in every_builtin() {
        assert_eq!(
            init.init_from_shape(&[0, 5], &mut rng).numel(),
            0,
            "{init:?}"
        );
    }
}
