//! The full study's tables and plots, from its records.

use std::path::Path;

use ember::report::{plot_bands, Band, BandPanel, BandPoint};

use super::jobs::{Job, Net, Record};
use super::{FullPlan, Recipe, CNN_INITS, DEEP_LAYERS, DEEP_WIDTH, MLP_INITS};
use crate::common::InitKind;
use crate::doc::{table, Section};
use crate::stats::{Difference, Summary};
use crate::{cpu_model, init_color, init_name, Act, Out};

/// The runs of one cell that trained to the end (a run whose loss stopped
/// being finite is counted apart, see [`diverged`]).
fn cell(runs: &[(Job, Record)], net: Net, init: InitKind) -> Vec<&Record> {
    runs.iter()
        .filter(|(j, r)| j.net == net && j.init == init && r.diverged_at.is_none())
        .map(|(_, r)| r)
        .collect()
}

/// How many runs of the cell diverged.
fn diverged(runs: &[(Job, Record)], net: Net, init: InitKind) -> usize {
    runs.iter()
        .filter(|(j, r)| j.net == net && j.init == init && r.diverged_at.is_some())
        .count()
}

fn summary(records: &[&Record], f: impl Fn(&Record) -> f64) -> Summary {
    Summary::of(&records.iter().map(|r| f(r)).collect::<Vec<_>>())
}

fn accuracy(records: &[&Record]) -> Summary {
    summary(records, |r| 100.0 * r.final_accuracy())
}

fn loss(records: &[&Record]) -> Summary {
    summary(records, Record::final_loss)
}

/// Epochs to reach `threshold` accuracy: the mean over the runs that did,
/// and how many did when not all.
fn epochs_to(records: &[&Record], threshold: f64) -> String {
    let reached: Vec<f64> = records
        .iter()
        .filter_map(|r| r.epochs_to(threshold))
        .collect();
    let (k, n) = (reached.len(), records.len());
    match k {
        0 => "never".into(),
        1 => format!("{:.2} (1 of {n})", reached[0]),
        _ if k == n => Summary::of(&reached).show(2),
        _ => format!("{} ({k} of {n})", Summary::of(&reached).show(2)),
    }
}

/// Dead or saturated units, % averaged over the hidden layers, at
/// initialization → after training.
fn units(records: &[&Record]) -> String {
    let mean = |v: &Vec<f64>| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64;
    let start = summary(records, |r| mean(&r.units_start));
    let end = summary(records, |r| mean(&r.units_end));
    format!("{} → {}", start.show(2), end.show(2))
}

/// The mean ± interval of a cell's curves, evaluation by evaluation (the
/// one before training left out: every run starts at chance).
fn band(kind: InitKind, records: &[&Record], pick: fn(&(f64, f64, f64)) -> f64) -> Band {
    let points = records.iter().map(|r| r.curve.len()).min().unwrap_or(0);
    Band {
        name: init_name(kind).to_string(),
        color: Some(init_color(kind)),
        points: (1..points)
            .map(|i| {
                let s = Summary::of(
                    &records
                        .iter()
                        .map(|r| pick(&r.curve[i]))
                        .collect::<Vec<_>>(),
                );
                BandPoint {
                    x: records[0].curve[i].0,
                    mean: s.mean,
                    low: s.low(),
                    high: s.high(),
                }
            })
            .collect(),
    }
}

/// `a − b` with its Welch interval, or a dash on the row that is `b`
/// itself.
fn delta(is_base: bool, a: &Summary, b: &Summary, digits: usize) -> String {
    if is_base {
        "—".to_string()
    } else {
        Difference::of(a, b).show(digits)
    }
}

const ACCURACY: fn(&(f64, f64, f64)) -> f64 = |c| 100.0 * c.2;
const LOSS: fn(&(f64, f64, f64)) -> f64 = |c| c.1;

fn panel(title: String, accuracy: bool, bands: Vec<Band>) -> BandPanel {
    BandPanel {
        title,
        x_label: "epochs".into(),
        y_label: if accuracy {
            "test accuracy (%)".into()
        } else {
            "test cross-entropy (nats)".into()
        },
        log_y: !accuracy,
        bands,
    }
}

/// One panel of a net's curves, one band per initializer.
fn curves(
    runs: &[(Job, Record)],
    net: Net,
    inits: &[InitKind],
    title: String,
    accuracy: bool,
) -> BandPanel {
    let pick = if accuracy { ACCURACY } else { LOSS };
    let bands = inits
        .iter()
        .map(|&k| (k, cell(runs, net, k)))
        .filter(|(_, rs)| !rs.is_empty())
        .map(|(k, rs)| band(k, &rs, pick))
        .collect();
    panel(title, accuracy, bands)
}

/// "1 epoch", "20 epochs".
fn epochs(n: usize) -> String {
    if n == 1 {
        "1 epoch".into()
    } else {
        format!("{n} epochs")
    }
}

fn seeds_text(plan: &FullPlan, net: Net) -> String {
    format!(
        "{} seeds per cell (the seed draws the weights, the batch order and the dropout masks)",
        plan.seeds(net)
    )
}

const DELTA_TEXT: &str = "Mean ± 95 % interval over seeds; Δ is the difference to Ember's \
    default (truncated normal, bias 0.1 before a ReLU) with Welch's 95 % interval, \"n.s.\" \
    when it contains 0.";

fn units_text(plan: &FullPlan) -> String {
    format!(
        "Dead units never turn positive on the first {} training images (a convolution's \
         channel counts as a unit); saturated ones have |z| > 2; both in evaluation mode, as % \
         of the units averaged over the hidden layers, at initialization → after training.",
        plan.probe_size.min(plan.train.len())
    )
}

/// The classic MLP: ReLU with and without the 0.1 bias, and sigmoid.
pub fn mlp(plan: &FullPlan, runs: &[(Job, Record)], out: &mut Out) -> Result<Section, String> {
    let relu = |zero_bias| Net::Mlp {
        act: Act::Relu,
        zero_bias,
    };
    let recipe = Recipe::of(relu(false), plan.quick);
    let mut md = format!(
        "784 → 512 → 512 → 10 with dropout 0.2, RMSprop (lr {}, ρ 0.9), batch {}, trained on \
         all {} training images for {} and evaluated on all {} test images after every \
         epoch; {}. {DELTA_TEXT} Epochs to 98 %: the first epoch at whose end test accuracy \
         reached 98 %, the mean over the runs that did (how many, when not all). {}\n",
        recipe.lr,
        recipe.batch,
        plan.train.len(),
        epochs(recipe.epochs),
        plan.test.len(),
        seeds_text(plan, relu(false)),
        units_text(plan)
    );
    let mut widest: f64 = 0.0;
    // A row of `net`, its Δ against the truncated normal of `base`.
    let mut row = |net: Net, kind: InitKind, base: Net| {
        let base_records = cell(runs, base, InitKind::TruncatedNormal);
        let (base_acc, base_loss) = (accuracy(&base_records), loss(&base_records));
        let records = cell(runs, net, kind);
        let (acc, l) = (accuracy(&records), loss(&records));
        widest = widest.max(acc.half_width);
        out.check(
            &format!(
                "full_{}_{kind:?}_accuracy_pct",
                net.name().replace('-', "_")
            ),
            acc.mean,
        );
        let is_base = net == base && kind == InitKind::TruncatedNormal;
        let mut cells = vec![
            init_name(kind).to_string(),
            acc.show(2),
            delta(is_base, &acc, &base_acc, 2),
            l.show(4),
            delta(is_base, &l, &base_loss, 4),
            epochs_to(&records, 0.98),
            units(&records),
        ];
        let lost = diverged(runs, net, kind);
        if lost > 0 {
            cells[0].push_str(&format!(" ({lost} diverged)"));
        }
        cells
    };
    let header = |units: &str, extra: Option<&str>| {
        let mut h = vec![
            "initializer",
            "test accuracy %",
            "Δ accuracy (points)",
            "test loss",
            "Δ loss",
            "epochs to 98 %",
        ];
        h.push(units);
        h.extend(extra);
        h.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // ReLU, bias 0.1 and bias 0.
    for zero_bias in [false, true] {
        let net = relu(zero_bias);
        let mut rows = Vec::new();
        for kind in MLP_INITS {
            let mut r = row(net, kind, relu(false));
            if zero_bias {
                // The bias's own effect: the same initializer with 0.1.
                let with = accuracy(&cell(runs, relu(false), kind));
                let d = Difference::of(&accuracy(&cell(runs, net, kind)), &with);
                r.push(d.show(2));
            }
            rows.push(r);
        }
        let extra = zero_bias.then_some("Δ accuracy, bias 0 − bias 0.1 (same initializer)");
        let h = header("dead % (init → end)", extra);
        md.push_str(&format!(
            "\n**ReLU MLP, hidden bias {}**\n\n",
            if zero_bias {
                "0"
            } else {
                "0.1 (Ember's default)"
            }
        ));
        md.push_str(&table(
            &h.iter().map(String::as_str).collect::<Vec<_>>(),
            &rows,
        ));
    }
    let sigmoid = Net::Mlp {
        act: Act::Sigmoid,
        zero_bias: false,
    };
    // Against the sigmoid's own truncated-normal cell, not the ReLU's.
    let rows: Vec<Vec<String>> = MLP_INITS
        .iter()
        .map(|&k| row(sigmoid, k, sigmoid))
        .collect();
    let h = header("saturated % (init → end)", None);
    md.push_str(
        "\n**Sigmoid MLP** (biases 0; Δ against the sigmoid MLP's own truncated normal)\n\n",
    );
    md.push_str(&table(
        &h.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    ));
    out.check("full_mlp_half_width_max_pts", widest);
    md.push_str(&format!(
        "\nThe widest 95 % interval on a cell's final accuracy: ± {widest:.3} points.\n"
    ));

    let title = |what: &str, bias: &str| format!("ReLU MLP, bias {bias}: {what}");
    plot_bands(
        out.img.join("init_full_mlp_relu.svg"),
        &[
            curves(
                runs,
                relu(false),
                &MLP_INITS,
                title("test accuracy", "0.1"),
                true,
            ),
            curves(
                runs,
                relu(true),
                &MLP_INITS,
                title("test accuracy", "0"),
                true,
            ),
            curves(
                runs,
                relu(false),
                &MLP_INITS,
                title("test loss", "0.1"),
                false,
            ),
        ],
    )?;
    plot_bands(
        out.img.join("init_full_mlp_sigmoid.svg"),
        &[
            curves(
                runs,
                sigmoid,
                &MLP_INITS,
                "Sigmoid MLP: test accuracy".into(),
                true,
            ),
            curves(
                runs,
                sigmoid,
                &MLP_INITS,
                "Sigmoid MLP: test loss".into(),
                false,
            ),
        ],
    )?;
    md.push_str(
        "\n![ReLU MLP over 20 epochs: test accuracy with bias 0.1 and 0, test loss](img/init_full_mlp_relu.svg)\n\n\
         ![Sigmoid MLP over 20 epochs: test accuracy and loss](img/init_full_mlp_sigmoid.svg)\n",
    );
    Ok(Section {
        name: "full_mlp",
        markdown: md,
    })
}

/// The deep plain MLP, ReLU and tanh.
pub fn deep(plan: &FullPlan, runs: &[(Job, Record)], out: &mut Out) -> Result<Section, String> {
    let recipe = Recipe::of(Net::Deep { act: Act::Relu }, plan.quick);
    let mut md = format!(
        "784 → {DEEP_LAYERS} × {DEEP_WIDTH} → 10, no dropout, no normalization, Ember's default \
         biases (0.1 before a ReLU, 0 before a tanh), SGD with momentum 0.9 (lr {}), batch {}, \
         {} on all {} training images, evaluated on all {} test images {} times per \
         epoch; {}. Mean ± 95 % interval over seeds; Δ against the same network with Ember's \
         default (truncated normal), with Welch's interval. {}\n",
        recipe.lr,
        recipe.batch,
        epochs(recipe.epochs),
        plan.train.len(),
        plan.test.len(),
        recipe.evals_per_epoch,
        seeds_text(plan, Net::Deep { act: Act::Relu }),
        units_text(plan)
    );
    let mut panels = Vec::new();
    let mut loss_panels = Vec::new();
    for act in [Act::Relu, Act::Tanh] {
        let net = Net::Deep { act };
        let units_header = match act {
            Act::Relu => "dead % (init → end)",
            _ => "saturated % (init → end)",
        };
        let base = cell(runs, net, InitKind::TruncatedNormal);
        let base_after1 = summary(&base, |r| 100.0 * r.accuracy_at(1.0));
        let base_acc = accuracy(&base);
        let rows: Vec<Vec<String>> = MLP_INITS
            .iter()
            .map(|&kind| {
                let records = cell(runs, net, kind);
                let after1 = summary(&records, |r| 100.0 * r.accuracy_at(1.0));
                let acc = accuracy(&records);
                let is_base = kind == InitKind::TruncatedNormal;
                out.check(
                    &format!("full_deep_{}_{kind:?}_accuracy_pct", act.name()),
                    acc.mean,
                );
                vec![
                    init_name(kind).to_string(),
                    after1.show(2),
                    delta(is_base, &after1, &base_after1, 2),
                    acc.show(2),
                    delta(is_base, &acc, &base_acc, 2),
                    loss(&records).show(4),
                    epochs_to(&records, 0.9),
                    epochs_to(&records, 0.98),
                    units(&records),
                    format!("{} of {}", diverged(runs, net, kind), plan.seeds(net)),
                ]
            })
            .collect();
        md.push_str(&format!("\n**Deep {} MLP**\n\n", act.title()));
        md.push_str(&table(
            &[
                "initializer",
                "test accuracy % after 1 epoch",
                "Δ (points)",
                "final test accuracy %",
                "Δ (points)",
                "final test loss",
                "epochs to 90 %",
                "epochs to 98 %",
                units_header,
                "runs diverged",
            ],
            &rows,
        ));
        panels.push(curves(
            runs,
            net,
            &MLP_INITS,
            format!("Deep {} MLP: test accuracy", act.title()),
            true,
        ));
        loss_panels.push(curves(
            runs,
            net,
            &MLP_INITS,
            format!("Deep {} MLP: test loss", act.title()),
            false,
        ));
    }
    plot_bands(out.img.join("init_full_deep.svg"), &panels)?;
    plot_bands(out.img.join("init_full_deep_loss.svg"), &loss_panels)?;
    md.push_str(
        "\n![Deep MLPs: test accuracy during training, per initializer](img/init_full_deep.svg)\n\n\
         ![Deep MLPs: test loss during training, per initializer](img/init_full_deep_loss.svg)\n",
    );
    Ok(Section {
        name: "full_deep",
        markdown: md,
    })
}

/// The convnet of `mnist_cnn`.
pub fn cnn(plan: &FullPlan, runs: &[(Job, Record)], out: &mut Out) -> Result<Section, String> {
    let recipe = Recipe::of(Net::Cnn, plan.quick);
    let mut md = format!(
        "`mnist_cnn`'s convnet (conv 32 → conv 64 → max-pool → dropout 0.25 → 128 → dropout \
         0.5 → 10, ReLU), its recipe: Adam (lr {}, half a cosine to 0 over the run), batch {}, \
         {} on all {} training images, evaluated on all {} test images {} times per \
         epoch; {}. Mean ± 95 % interval; Δ against the truncated normal (Ember's default) with \
         Welch's interval. {}\n\n",
        recipe.lr,
        recipe.batch,
        epochs(recipe.epochs),
        plan.train.len(),
        plan.test.len(),
        recipe.evals_per_epoch,
        seeds_text(plan, Net::Cnn),
        units_text(plan)
    );
    let base = cell(runs, Net::Cnn, InitKind::TruncatedNormal);
    let rows: Vec<Vec<String>> = CNN_INITS
        .iter()
        .map(|&kind| {
            let records = cell(runs, Net::Cnn, kind);
            let (acc, l) = (accuracy(&records), loss(&records));
            out.check(&format!("full_cnn_{kind:?}_accuracy_pct"), acc.mean);
            let is_base = kind == InitKind::TruncatedNormal;
            vec![
                init_name(kind).to_string(),
                acc.show(2),
                delta(is_base, &acc, &accuracy(&base), 2),
                l.show(4),
                delta(is_base, &l, &loss(&base), 4),
                epochs_to(&records, 0.98),
                epochs_to(&records, 0.99),
                units(&records),
            ]
        })
        .collect();
    md.push_str(&table(
        &[
            "initializer",
            "test accuracy %",
            "Δ accuracy (points)",
            "test loss",
            "Δ loss",
            "epochs to 98 %",
            "epochs to 99 %",
            "dead % (init → end)",
        ],
        &rows,
    ));
    plot_bands(
        out.img.join("init_full_cnn.svg"),
        &[
            curves(
                runs,
                Net::Cnn,
                &CNN_INITS,
                "Convnet: test accuracy".into(),
                true,
            ),
            curves(
                runs,
                Net::Cnn,
                &CNN_INITS,
                "Convnet: test loss".into(),
                false,
            ),
        ],
    )?;
    md.push_str("\n![Convnet: test accuracy and loss during training](img/init_full_cnn.svg)\n");
    Ok(Section {
        name: "full_cnn",
        markdown: md,
    })
}

/// How the full study was produced: the command, the machine, the time.
pub fn run_section(plan: &FullPlan, runs: &[(Job, Record)], records: &Path) -> Section {
    let group = |pick: fn(&Net) -> bool| {
        let seconds: Vec<f64> = runs
            .iter()
            .filter(|(j, _)| pick(&j.net))
            .map(|(_, r)| r.seconds)
            .collect();
        let total: f64 = seconds.iter().sum();
        format!(
            "{:.0} min of one thread ({} runs, {:.0} s each)",
            total / 60.0,
            seconds.len(),
            total / seconds.len().max(1) as f64
        )
    };
    let markdown = format!(
        "Generated by `cargo run --release --example init_study -- --full{}` ({} seeds per cell \
         of the classic MLP, {} of the others; {} runs at a time, one thread each) on {}. The runs: classic MLP {}; deep MLP {}; convnet {}. \
         At {} runs at a time that is about {:.0} min of wall time (the runs' times summed, \
         divided by {}; the record file keeps each run's own). Each run's record \
         (its curve, its unit counts, its time) is one line of `{}` beside this page: a rerun \
         trains only the runs that file lacks, and rebuilds these sections from it.\n",
        if plan.quick { " --quick" } else { "" },
        plan.mlp_seeds,
        plan.other_seeds,
        plan.workers,
        cpu_model(),
        group(|n| matches!(n, Net::Mlp { .. })),
        group(|n| matches!(n, Net::Deep { .. })),
        group(|n| matches!(n, Net::Cnn)),
        plan.workers,
        runs.iter().map(|(_, r)| r.seconds).sum::<f64>() / 60.0 / plan.workers.max(1) as f64,
        plan.workers,
        records.file_name().map_or_else(
            || records.display().to_string(),
            |f| f.to_string_lossy().into()
        ),
    );
    Section {
        name: "full_run",
        markdown,
    }
}
