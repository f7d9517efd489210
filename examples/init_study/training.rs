//! Experiments 4 and 5: train the MNIST MLP with each initializer (and with
//! each ReLU bias), over seeds, and compare the outcomes with seed noise.

use std::collections::HashMap;

use ember::autograd::Var;
use ember::layers::diagnostics::InitReport;
use ember::layers::loss::{cross_entropy, Reduction};
use ember::layers::{Module, Sequential, Step};
use ember::mnist::{BatchConfig, Layout};
use ember::report::{plot_bands, Band, BandPanel, BandPoint};

use crate::common::{self, InitKind, OptimizerKind};
use crate::doc::{table, Section};
use crate::stats::{Difference, Summary};
use crate::{init_color, init_name, mlp, Act, Out, Plan};

/// The default MNIST MLP's hidden layers and dropout.
const HIDDEN: [usize; 2] = [512, 512];
const DROPOUT: f32 = 0.2;
const BATCH: usize = 128;
const LR: f32 = 0.001;

const INITS: [InitKind; 6] = [
    InitKind::TruncatedNormal,
    InitKind::Normal,
    InitKind::TruncatedNormalCorrected,
    InitKind::Uniform,
    InitKind::GlorotUniform,
    InitKind::HeNormal,
];

/// One training run's record.
#[derive(Clone, Debug)]
pub struct Run {
    /// (training examples seen, test loss, test accuracy) at each evaluation.
    pub curve: Vec<(f64, f64, f64)>,
    /// Dead ReLU units (fraction) per hidden layer at init, on the probe batch.
    pub dead_init: Vec<f64>,
    /// The same after the first epoch.
    pub dead_epoch1: Vec<f64>,
    pub seconds: f64,
}

impl Run {
    fn final_accuracy(&self) -> f64 {
        self.curve.last().map_or(f64::NAN, |c| c.2)
    }
    fn final_loss(&self) -> f64 {
        self.curve.last().map_or(f64::NAN, |c| c.1)
    }
}

/// Runs training jobs, remembering each so experiment 5 can reuse
/// experiment 4's default-bias runs.
#[derive(Default)]
pub struct Trainer {
    done: HashMap<(String, String, String, u64), Run>,
}

impl Trainer {
    pub fn run(
        &mut self,
        plan: &Plan,
        act: Act,
        kind: InitKind,
        bias: &str,
        seed: u64,
    ) -> Result<Run, String> {
        let key = (
            act.name().to_string(),
            format!("{kind:?}"),
            bias.to_string(),
            seed,
        );
        if let Some(run) = self.done.get(&key) {
            return Ok(run.clone());
        }
        let run = train(plan, act, kind, bias, seed)?;
        eprintln!(
            "  trained {} {:?} bias {bias} seed {seed}: {:.2} % in {:.1} s",
            act.name(),
            kind,
            100.0 * run.final_accuracy(),
            run.seconds
        );
        self.done.insert(key, run.clone());
        Ok(run)
    }
}

fn dead_units(model: &Sequential, plan: &Plan) -> Vec<f64> {
    model.set_training(false);
    let (x, labels) = plan.dead_probe();
    let report = InitReport::new(model, &x, &labels);
    model.set_training(true);
    report.layers.iter().filter_map(|l| l.dead).collect()
}

fn train(plan: &Plan, act: Act, kind: InitKind, bias: &str, seed: u64) -> Result<Run, String> {
    let start = std::time::Instant::now();
    let init = kind.layer_init(bias)?;
    let model = mlp(&HIDDEN, act, &init, DROPOUT, seed);
    let mut optimizer = OptimizerKind::Rmsprop.build(&model, LR);
    let batches = BatchConfig::new(BATCH).shuffled(seed).layout(Layout::Flat);
    let steps_per_epoch = batches.batches_per_epoch(plan.train.len());
    let eval_every = (steps_per_epoch / plan.evals_per_epoch).max(1);
    let evaluate = |seen: usize| {
        let e = common::evaluate(&model, &plan.test, Layout::Flat);
        (seen as f64, e.loss, e.accuracy)
    };
    let mut curve = vec![evaluate(0)];
    let dead_init = dead_units(&model, plan);
    let mut dead_epoch1 = Vec::new();
    let (mut step, mut seen) = (0usize, 0usize);
    for epoch in 0..plan.epochs {
        model.set_training(true);
        for batch in plan.train.epoch(&batches, epoch as u64) {
            model.set_step(Step::new(seed, step as u64));
            let logits = model.forward(&Var::constant(batch.images));
            let loss = cross_entropy(&logits, &batch.labels, Reduction::Mean);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            step += 1;
            seen += batch.labels.len();
            if !loss.item().is_finite() {
                return Err(format!("{kind:?} {act:?} seed {seed}: the loss diverged"));
            }
            // Mid-epoch evaluations, none just before the one at the epoch's end.
            let left = steps_per_epoch - (step - 1) % steps_per_epoch - 1;
            if step % eval_every == 0 && left > eval_every / 2 {
                curve.push(evaluate(seen));
            }
        }
        curve.push(evaluate(seen));
        if epoch == 0 {
            dead_epoch1 = dead_units(&model, plan);
        }
    }
    Ok(Run {
        curve,
        dead_init,
        dead_epoch1,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Mean ± interval of a curve over seeds, point by point (evaluation 0 left
/// out: every initializer starts at chance, which only squashes the plot).
fn curve_band(kind: InitKind, runs: &[Run], pick: fn(&(f64, f64, f64)) -> f64, scale: f64) -> Band {
    let points = (1..runs[0].curve.len())
        .map(|i| {
            let s = Summary::of(
                &runs
                    .iter()
                    .map(|r| scale * pick(&r.curve[i]))
                    .collect::<Vec<_>>(),
            );
            BandPoint {
                x: runs[0].curve[i].0 / 1000.0,
                mean: s.mean,
                low: s.low(),
                high: s.high(),
            }
        })
        .collect();
    Band {
        name: init_name(kind).to_string(),
        points,
        color: Some(init_color(kind)),
    }
}

fn summary(runs: &[Run], f: fn(&Run) -> f64, scale: f64) -> Summary {
    Summary::of(&runs.iter().map(|r| scale * f(r)).collect::<Vec<_>>())
}

pub fn outcome(plan: &Plan, trainer: &mut Trainer, out: &mut Out) -> Result<Section, String> {
    let mut md = format!(
        "784 → 512 → 512 → 10 with dropout {DROPOUT}, RMSprop (lr {LR}, ρ 0.9), batch {BATCH}, \
         default biases (0.1 before a ReLU), trained on the first {} training images for {} \
         epoch(s), evaluated on the first {} test images; {} seeds per initializer (the seed \
         draws the weights, the shuffling and the dropout masks). Mean ± 95 % interval; Δ is the \
         difference to Ember's default (truncated normal) with a Welch 95 % interval, \
         \"n.s.\" when that interval contains 0.\n",
        plan.train.len(),
        plan.epochs,
        plan.test.len(),
        plan.seeds.len()
    );
    for act in [Act::Relu, Act::Sigmoid] {
        let mut all: Vec<(InitKind, Vec<Run>)> = Vec::new();
        for kind in INITS {
            let runs = plan
                .seeds
                .iter()
                .map(|&s| trainer.run(plan, act, kind, "default", s))
                .collect::<Result<Vec<_>, _>>()?;
            all.push((kind, runs));
        }
        let base_acc = summary(&all[0].1, Run::final_accuracy, 100.0);
        let base_loss = summary(&all[0].1, Run::final_loss, 1.0);
        let mut rows = Vec::new();
        for (kind, runs) in &all {
            let acc = summary(runs, Run::final_accuracy, 100.0);
            let loss = summary(runs, Run::final_loss, 1.0);
            let (dacc, dloss) = if *kind == InitKind::TruncatedNormal {
                ("—".to_string(), "—".to_string())
            } else {
                (
                    Difference::of(&acc, &base_acc).show(2),
                    Difference::of(&loss, &base_loss).show(4),
                )
            };
            out.check(
                &format!("train_{}_{:?}_accuracy_pct", act.name(), kind),
                acc.mean,
            );
            rows.push(vec![
                init_name(*kind).to_string(),
                acc.show(2),
                dacc,
                loss.show(4),
                dloss,
                format!("{:.2}", acc.std),
            ]);
        }
        md.push_str(&format!("\n**{} MLP**\n\n", act.title()));
        md.push_str(&table(
            &[
                "initializer",
                "test accuracy %",
                "Δ accuracy (points)",
                "test loss",
                "Δ loss",
                "seed std of accuracy",
            ],
            &rows,
        ));
        let file = format!("init_training_{}.svg", act.name());
        let x_label = "training examples seen (thousands)".to_string();
        let panels = [
            BandPanel {
                title: format!("{} MLP: test accuracy", act.title()),
                x_label: x_label.clone(),
                y_label: "test accuracy (%)".into(),
                log_y: false,
                bands: all
                    .iter()
                    .map(|(k, runs)| curve_band(*k, runs, |c| c.2, 100.0))
                    .collect(),
            },
            BandPanel {
                title: format!("{} MLP: test loss", act.title()),
                x_label,
                y_label: "cross-entropy (nats)".into(),
                log_y: false,
                bands: all
                    .iter()
                    .map(|(k, runs)| curve_band(*k, runs, |c| c.1, 1.0))
                    .collect(),
            },
        ];
        plot_bands(out.img.join(&file), &panels)?;
        md.push_str(&format!(
            "\n![{} MLP: test accuracy and loss during training, per initializer](img/{file})\n",
            act.title()
        ));
    }
    Ok(Section {
        name: "training",
        markdown: md,
    })
}

pub fn relu_bias(plan: &Plan, trainer: &mut Trainer, out: &mut Out) -> Result<Section, String> {
    let arms = [
        ("0", "0"),
        ("0.01", "0.01"),
        ("0.1 (Ember's default)", "default"),
    ];
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for (label, bias) in arms {
        let runs = plan
            .seeds
            .iter()
            .map(|&s| trainer.run(plan, Act::Relu, InitKind::TruncatedNormal, bias, s))
            .collect::<Result<Vec<_>, _>>()?;
        results.push(runs);
        let runs = results.last().expect("just pushed");
        let dead = |f: fn(&Run) -> &Vec<f64>, layer: usize| {
            Summary::of(&runs.iter().map(|r| 100.0 * f(r)[layer]).collect::<Vec<_>>())
        };
        let acc = summary(runs, Run::final_accuracy, 100.0);
        out.check(
            &format!("bias_{bias}_dead_init_layer1_pct"),
            dead(|r| &r.dead_init, 0).mean,
        );
        rows.push(vec![
            label.to_string(),
            dead(|r| &r.dead_init, 0).show(2),
            dead(|r| &r.dead_init, 1).show(2),
            dead(|r| &r.dead_epoch1, 0).show(2),
            dead(|r| &r.dead_epoch1, 1).show(2),
            acc.show(2),
        ]);
    }
    let base = summary(&results[2], Run::final_accuracy, 100.0);
    for (row, runs) in rows.iter_mut().zip(&results).take(2) {
        row.push(Difference::of(&summary(runs, Run::final_accuracy, 100.0), &base).show(2));
    }
    rows[2].push("—".into());
    let mut md = format!(
        "The ReLU MLP of experiment 4 (Ember's truncated-normal weights), with the hidden \
         biases at 0, 0.01 and 0.1. A unit is dead when its pre-activation is ≤ 0 for all {} \
         probe images (the first of the training subset), measured in evaluation mode. Same \
         seeds and training as above. (For bias 0 and 0.01 the output layer gets that bias too; \
         a constant added to every logit leaves the softmax unchanged.)\n\n",
        plan.dead_probe_size
    );
    md.push_str(&table(
        &[
            "hidden bias",
            "dead % at init, layer 1",
            "layer 2",
            "dead % after epoch 1, layer 1",
            "layer 2",
            "test accuracy %",
            "Δ vs 0.1 (points)",
        ],
        &rows,
    ));
    Ok(Section {
        name: "relu_bias",
        markdown: md,
    })
}
