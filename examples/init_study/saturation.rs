//! Experiment 2 (answer 1, "truncation prevents saturation"): sigmoid and
//! tanh MLPs on MNIST batches, normal vs truncated normal at several stds:
//! the fraction of saturated units and the gradient norms at initialization.

use std::sync::Arc;

use ember::layers::diagnostics::InitReport;
use ember::layers::init::{
    default_weight_init, math::truncated_normal_std_factor, Distribution, FanMode, Initializer,
    Normal, TruncatedNormal, VarianceScaling,
};
use ember::layers::LayerInit;
use ember::report::{plot_bands, Band, BandPanel, BandPoint, Color};

use crate::common::InitKind;
use crate::doc::{table, Section};
use crate::stats::{Difference, Summary};
use crate::{init_color, mlp, Act, Out, Plan, SHRUNK_NORMAL_COLOR};

/// Hidden widths of the probed MLPs.
const HIDDEN: [usize; 3] = [512, 512, 512];

/// A weight scale: 1/√fan_in per layer, or one std for every layer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    FanIn,
    Fixed(f64),
}

impl Scale {
    fn label(self) -> String {
        match self {
            Scale::FanIn => "1/√N".into(),
            Scale::Fixed(s) => format!("{s}"),
        }
    }
}

/// The three distributions compared at each scale. "normal × 0.88" has the
/// truncated normal's actual std: it separates the tails from the std.
const ARMS: [&str; 3] = ["normal", "truncated", "normal × 0.88"];

/// The colours of [`ARMS`]: those of the initializers they are.
const ARM_COLORS: [Color; 3] = [
    init_color(InitKind::Normal),
    init_color(InitKind::TruncatedNormal),
    SHRUNK_NORMAL_COLOR,
];

fn initializer(arm: usize, scale: Scale) -> Arc<dyn Initializer> {
    let f = truncated_normal_std_factor(2.0);
    match (arm, scale) {
        (0, Scale::FanIn) => Arc::new(VarianceScaling::new(
            1.0,
            FanMode::FanIn,
            Distribution::Normal,
        )),
        (1, Scale::FanIn) => Arc::new(default_weight_init()),
        (_, Scale::FanIn) => Arc::new(VarianceScaling::new(
            (f * f) as f32,
            FanMode::FanIn,
            Distribution::Normal,
        )),
        (0, Scale::Fixed(s)) => Arc::new(Normal {
            mean: 0.0,
            std: s as f32,
        }),
        (1, Scale::Fixed(s)) => Arc::new(TruncatedNormal::new(0.0, s as f32)),
        (_, Scale::Fixed(s)) => Arc::new(Normal {
            mean: 0.0,
            std: (s * f) as f32,
        }),
    }
}

/// Per seed: saturated fraction of each hidden layer, ‖∇W‖ of every layer.
struct Probe {
    saturated: Vec<Vec<f64>>, // [seed][layer]
    grads: Vec<Vec<f64>>,     // [seed][layer]
}

fn probe(plan: &Plan, act: Act, arm: usize, scale: Scale) -> Probe {
    let mut p = Probe {
        saturated: Vec::new(),
        grads: Vec::new(),
    };
    for &seed in &plan.seeds {
        let init = LayerInit {
            weight: initializer(arm, scale),
            ..LayerInit::default()
        };
        let model = mlp(&HIDDEN, act, &init, 0.0, seed);
        let (x, labels) = plan.probe_batch(seed);
        let report = InitReport::new(&model, &x, &labels);
        p.saturated
            .push(report.layers.iter().filter_map(|l| l.saturated).collect());
        p.grads
            .push(report.layers.iter().map(|l| l.grad_norm).collect());
    }
    p
}

fn column(rows: &[Vec<f64>], j: usize) -> Summary {
    Summary::of(&rows.iter().map(|r| r[j]).collect::<Vec<_>>())
}

pub fn run(plan: &Plan, out: &mut Out) -> Result<Section, String> {
    let mut md = format!(
        "MLP 784 → {} → 10, biases 0, one batch of {} training images per seed \
         (pixels in [0, 1]), {} seeds, mean ± 95 % interval. Saturated: |z| > 2 before the \
         activation. N = fan_in. \"normal × 0.88\" is a plain normal with the truncated \
         normal's actual std (0.8796 × the nominal one).\n",
        HIDDEN.map(|h| h.to_string()).join(" → "),
        plan.probe_size,
        plan.seeds.len()
    );
    for act in [Act::Sigmoid, Act::Tanh] {
        // The table: the three scales the issue names.
        let mut rows = Vec::new();
        for scale in [Scale::FanIn, Scale::Fixed(0.1), Scale::Fixed(1.0)] {
            let probes: Vec<Probe> = (0..ARMS.len())
                .map(|a| probe(plan, act, a, scale))
                .collect();
            for (a, p) in probes.iter().enumerate() {
                let sat: Vec<Summary> = (0..HIDDEN.len())
                    .map(|j| column(&p.saturated, j).scaled(100.0))
                    .collect();
                let diff = if a == 0 {
                    "—".to_string()
                } else {
                    Difference::of(&sat[0], &column(&probes[0].saturated, 0).scaled(100.0)).show(2)
                };
                rows.push(vec![
                    scale.label(),
                    ARMS[a].to_string(),
                    sat[0].show(2),
                    sat[1].show(2),
                    sat[2].show(2),
                    diff,
                    format!("{:.3e}", column(&p.grads, 0).mean),
                    format!("{:.3e}", column(&p.grads, HIDDEN.len() - 1).mean),
                ]);
                if scale == Scale::FanIn {
                    out.check(
                        &format!("sat_{}_fanin_{}_layer1_pct", act.name(), a),
                        sat[0].mean,
                    );
                }
            }
        }
        md.push_str(&format!("\n**{}**\n\n", act.title()));
        md.push_str(&table(
            &[
                "weight std",
                "distribution",
                "saturated % layer 1",
                "layer 2",
                "layer 3",
                "Δ layer 1 vs normal (points)",
                "mean ‖∇W₁‖",
                "mean ‖∇W₃‖",
            ],
            &rows,
        ));

        // The sweep: where does truncation start to matter?
        let mut layer1 = Vec::new();
        let mut layer3 = Vec::new();
        let mut grad1 = Vec::new();
        for (a, name) in ARMS.iter().enumerate() {
            let mut points = [Vec::new(), Vec::new(), Vec::new()];
            for &s in &plan.sweep {
                let p = probe(plan, act, a, Scale::Fixed(s));
                let x = s.log10();
                for (k, summary) in [
                    column(&p.saturated, 0).scaled(100.0),
                    column(&p.saturated, HIDDEN.len() - 1).scaled(100.0),
                    column(&p.grads, 0),
                ]
                .into_iter()
                .enumerate()
                {
                    points[k].push(BandPoint {
                        x,
                        mean: summary.mean,
                        low: summary.low(),
                        high: summary.high(),
                    });
                }
            }
            let [p1, p3, g1] = points;
            let band = |points| Band {
                name: name.to_string(),
                points,
                color: Some(ARM_COLORS[a]),
            };
            layer1.push(band(p1));
            layer3.push(band(p3));
            grad1.push(band(g1));
        }
        let x_label = "weight std σ, log₁₀ (−2 = 0.01, 0 = 1)".to_string();
        let file = format!("init_saturation_{}.svg", act.name());
        plot_bands(
            out.img.join(&file),
            &[
                BandPanel {
                    title: format!("{}: saturated units, hidden layer 1", act.title()),
                    x_label: x_label.clone(),
                    y_label: "units with |z| > 2 (%)".into(),
                    log_y: false,
                    bands: layer1,
                },
                BandPanel {
                    title: format!("{}: saturated units, hidden layer 3", act.title()),
                    x_label: x_label.clone(),
                    y_label: "units with |z| > 2 (%)".into(),
                    log_y: false,
                    bands: layer3,
                },
                BandPanel {
                    title: format!("{}: gradient norm of W₁ at init", act.title()),
                    x_label,
                    y_label: "‖∂L/∂W₁‖ (Frobenius, log scale)".into(),
                    log_y: true,
                    bands: grad1,
                },
            ],
        )?;
        md.push_str(&format!(
            "\n![{} MLP: saturation and gradient norm against the weight std](img/{file})\n",
            act.title()
        ));
    }
    md.push_str(&format!(
        "\nSweep: σ ∈ {{{}}}, the same σ in every layer.\n",
        plan.sweep
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(Section {
        name: "saturation",
        markdown: md,
    })
}
