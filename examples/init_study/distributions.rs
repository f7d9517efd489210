//! Experiment 1: the distributions themselves, for a 784×512 layer at std
//! 1/√784: tails, largest weight, actual std, and Keras's correction.

use ember::layers::init::math::{normal_cdf, truncated_normal_std_factor};
use ember::layers::init::{
    default_weight_init, Distribution, FanMode, Initializer, Normal, VarianceScaling,
};
use ember::report::{plot_histograms, Histogram, HistogramPanel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common::InitKind;
use crate::doc::{table, Section};
use crate::stats::Summary;
use crate::{init_color, Out, Plan};

const FAN_IN: usize = 784;
const UNITS: usize = 512;
/// Histogram range and bin width, in units of σ = 1/√784.
const RANGE: f64 = 4.6;
const BIN: f64 = 0.1;

/// Each arm's name, the initializer whose colour it has, and its sampler.
fn arms() -> Vec<(&'static str, InitKind, Box<dyn Initializer>)> {
    let sigma = 1.0 / (FAN_IN as f32).sqrt();
    vec![
        (
            "normal",
            InitKind::Normal,
            Box::new(Normal {
                mean: 0.0,
                std: sigma,
            }),
        ),
        (
            "truncated (TF, Ember)",
            InitKind::TruncatedNormal,
            Box::new(default_weight_init()),
        ),
        (
            "truncated, corrected (Keras, JAX)",
            InitKind::TruncatedNormalCorrected,
            Box::new(VarianceScaling::new(
                1.0,
                FanMode::FanIn,
                Distribution::TruncatedNormal,
            )),
        ),
    ]
}

pub fn run(plan: &Plan, out: &mut Out) -> Result<Section, String> {
    let sigma = 1.0 / (FAN_IN as f64).sqrt();
    let n = FAN_IN * UNITS;
    let bins = (2.0 * RANGE / BIN).round() as usize;
    let mut rows = Vec::new();
    let mut histograms = Vec::new();
    for (arm, (name, kind, init)) in arms().into_iter().enumerate() {
        // Per seed: std/σ, max|w|/σ, counts beyond 2σ, 3σ, 4σ.
        let mut per_seed: Vec<[f64; 5]> = Vec::new();
        let mut counts = vec![0.0; bins];
        for (k, &seed) in plan.seeds.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31) + arm as u64);
            let w = init.init_from_shape(&[UNITS, FAN_IN], &mut rng).to_vec();
            let beyond = |k: f64| {
                // Compare in f32: the sampler guarantees the f32-rounded bound.
                let bound = (k * sigma) as f32;
                w.iter().filter(|v| v.abs() > bound).count() as f64
            };
            let var = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
            let max = w.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
            per_seed.push([
                var.sqrt() / sigma,
                max / sigma,
                beyond(2.0),
                beyond(3.0),
                beyond(4.0),
            ]);
            if k == 0 {
                for &v in &w {
                    let b = ((v as f64 / sigma + RANGE) / BIN).floor();
                    if b >= 0.0 && (b as usize) < bins {
                        counts[b as usize] += 1.0;
                    }
                }
            }
        }
        let col = |j: usize| Summary::of(&per_seed.iter().map(|r| r[j]).collect::<Vec<_>>());
        let (ratio, max, b2, b3, b4) = (col(0), col(1), col(2), col(3), col(4));
        out.check(&format!("dist_{arm}_std_ratio"), ratio.mean);
        out.check(&format!("dist_{arm}_beyond_2sigma_max"), {
            per_seed.iter().map(|r| r[2]).fold(0.0, f64::max)
        });
        rows.push(vec![
            name.to_string(),
            ratio.show(4),
            max.show(2),
            b2.show(0),
            b3.show(0),
            b4.show(1),
        ]);
        histograms.push(Histogram {
            name: name.to_string(),
            edges: (0..=bins).map(|i| -RANGE + i as f64 * BIN).collect(),
            counts,
            color: Some(init_color(kind)),
        });
    }
    let tail = |k: f64| n as f64 * 2.0 * normal_cdf(-k);
    rows.push(vec![
        "normal, exact expectation".into(),
        "1".into(),
        "—".into(),
        format!("{:.0}", tail(2.0)),
        format!("{:.0}", tail(3.0)),
        format!("{:.1}", tail(4.0)),
    ]);
    let factor = truncated_normal_std_factor(2.0);
    rows.push(vec![
        "truncated, exact expectation".into(),
        format!("{factor:.4}"),
        "≤ 2".into(),
        "0".into(),
        "0".into(),
        "0".into(),
    ]);

    let path = out.img.join("init_distributions.svg");
    let panel = |log_y: bool| HistogramPanel {
        title: if log_y {
            "The tails (log scale): where truncation acts".into()
        } else {
            format!(
                "{UNITS}×{FAN_IN} weights at σ = 1/√{FAN_IN} (seed {})",
                plan.seeds[0]
            )
        },
        x_label: "weight / σ (σ = 1/√784 = 0.0357)".into(),
        y_label: format!("weights per {BIN}σ bin (count)"),
        log_y,
        histograms: histograms.clone(),
    };
    plot_histograms(&path, &[panel(false), panel(true)])?;

    let mut md = format!(
        "{n} weights (a {UNITS}×{FAN_IN} layer) per initializer and seed, σ = 1/√{FAN_IN}; \
         mean ± 95 % interval over {} seeds. \"Beyond kσ\" counts |w| > k/√{FAN_IN}.\n\n",
        plan.seeds.len()
    );
    md.push_str(&table(
        &[
            "initializer",
            "actual std / σ",
            "max |w| / σ",
            "beyond 2σ",
            "beyond 3σ",
            "beyond 4σ",
        ],
        &rows,
    ));
    md.push_str(&format!(
        "\nThe corrected truncated normal is cut at ±2 of *its own* pre-truncation std, \
         σ/{factor:.4} = {:.4}σ, so its bounds sit at ±{:.3}σ.\n\n\
         ![Histograms of normal, truncated and corrected truncated weights](img/init_distributions.svg)\n",
        1.0 / factor,
        2.0 / factor
    ));
    Ok(Section {
        name: "distributions",
        markdown: md,
    })
}
