//! The full study (`--full`): the networks one would actually train, on
//! all 60,000 training images, evaluated on all 10,000 test images, over
//! several seeds per cell:
//!
//! - the classic MLP (ReLU, with and without the 0.1 bias, and sigmoid)
//!   for 20 epochs, five initializers;
//! - a deep plain MLP (20 hidden layers of 256, ReLU and tanh, no
//!   normalization) trained with plain momentum SGD, which does not rescale
//!   small gradients away as adaptive optimizers do;
//! - `mnist_cnn`'s convnet with three initializers.
//!
//! Every finished run is kept in a record file beside the page
//! ([`jobs::Store`]); a rerun trains only what is missing, so a killed
//! study loses at most the runs in flight, and the page can be rebuilt
//! from the records alone.

mod jobs;
mod report;

use std::path::Path;
use std::time::Instant;

use ember::autograd::Var;
use ember::layers::diagnostics::InitReport;
use ember::layers::loss::{cross_entropy, Reduction};
use ember::layers::{Module, Sequential, Step};
use ember::mnist::{BatchConfig, Layout, MnistSet, Scaling};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common::{self, InitKind, OptimizerKind, ScheduleKind};
use crate::doc::Section;
use crate::{mlp, Act, Out};
use jobs::{Job, Net, Record, Store};

/// The initializers of the two MLPs.
const MLP_INITS: [InitKind; 5] = [
    InitKind::TruncatedNormal,
    InitKind::TruncatedNormalCorrected,
    InitKind::Normal,
    InitKind::GlorotUniform,
    InitKind::HeNormal,
];

/// The convnet's: Ember's default, the plain normal it truncates, and the
/// initializer made for ReLU networks.
const CNN_INITS: [InitKind; 3] = [
    InitKind::TruncatedNormal,
    InitKind::Normal,
    InitKind::HeNormal,
];

/// The deep MLP's depth and width.
const DEEP_LAYERS: usize = 20;
const DEEP_WIDTH: usize = 256;

impl FullPlan {
    /// How many seeds `net`'s cells run (seeds 0, 1, …).
    pub fn seeds(&self, net: Net) -> usize {
        match net {
            Net::Mlp { .. } => self.mlp_seeds,
            _ => self.other_seeds,
        }
    }
}

/// What the full study runs on.
pub struct FullPlan {
    /// Seeds per cell of the classic MLP (whose differences are small, so
    /// its intervals need more of them).
    pub mlp_seeds: usize,
    /// Seeds per cell of the deep MLP and the convnet.
    pub other_seeds: usize,
    /// Training images (all 60,000; fewer with `--quick`).
    pub train: MnistSet,
    /// Test images (all 10,000; fewer with `--quick`).
    pub test: MnistSet,
    /// Images on which dead and saturated units are counted (the first of
    /// the training set).
    pub probe_size: usize,
    /// The smoke run's settings: an epoch or two, to check the pipeline.
    pub quick: bool,
    /// Concurrent runs, one thread each.
    pub workers: usize,
    /// Forget the records kept from earlier runs.
    pub fresh: bool,
}

/// How one network is trained.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    pub epochs: usize,
    /// Test evaluations per epoch (the last at the epoch's end).
    pub evals_per_epoch: usize,
    pub batch: usize,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub schedule: ScheduleKind,
    pub layout: Layout,
}

impl Recipe {
    /// The recipe of `net` (the examples' own, for the MLP and the convnet).
    pub fn of(net: Net, quick: bool) -> Recipe {
        let epochs = |full: usize| if quick { 1 } else { full };
        match net {
            // The classic MLP's recipe (experiment 4's, and mnist_mlp's).
            Net::Mlp { .. } => Recipe {
                epochs: epochs(20),
                evals_per_epoch: 1,
                batch: 128,
                optimizer: OptimizerKind::Rmsprop,
                lr: 0.001,
                schedule: ScheduleKind::Constant,
                layout: Layout::Flat,
            },
            // Momentum SGD: with it, an initializer whose signal dies away
            // in depth trains slowly or not at all, as it would without the
            // per-weight rescaling of RMSprop or Adam.
            Net::Deep { .. } => Recipe {
                epochs: epochs(5),
                evals_per_epoch: 4,
                batch: 128,
                optimizer: OptimizerKind::Momentum,
                lr: 0.01,
                schedule: ScheduleKind::Constant,
                layout: Layout::Flat,
            },
            // mnist_cnn's recipe.
            Net::Cnn => Recipe {
                epochs: epochs(2),
                evals_per_epoch: 4,
                batch: 64,
                optimizer: OptimizerKind::Adam,
                lr: 0.001,
                schedule: ScheduleKind::Cosine,
                layout: Layout::Image,
            },
        }
    }
}

/// The cells of the study, in the order the page shows them.
fn cells() -> Vec<(Net, InitKind)> {
    let mut cells = Vec::new();
    for zero_bias in [false, true] {
        for init in MLP_INITS {
            cells.push((
                Net::Mlp {
                    act: Act::Relu,
                    zero_bias,
                },
                init,
            ));
        }
    }
    for init in MLP_INITS {
        cells.push((
            Net::Mlp {
                act: Act::Sigmoid,
                zero_bias: false,
            },
            init,
        ));
    }
    for act in [Act::Relu, Act::Tanh] {
        for init in MLP_INITS {
            cells.push((Net::Deep { act }, init));
        }
    }
    for init in CNN_INITS {
        cells.push((Net::Cnn, init));
    }
    cells
}

/// The key of a run's record: the job and every setting its result depends
/// on, so a changed setting trains afresh.
fn key(plan: &FullPlan, job: &Job) -> String {
    let r = Recipe::of(job.net, plan.quick);
    format!(
        "{} {:?} seed {}: {} epochs of {} images, batch {}, {:?} lr {} {:?}, {} test, probe {}",
        job.net.name(),
        job.init,
        job.seed,
        r.epochs,
        plan.train.len(),
        r.batch,
        r.optimizer,
        r.lr,
        r.schedule,
        plan.test.len(),
        plan.probe_size
    )
}

/// Trains every cell over every seed (what the records lack), then writes
/// the full study's sections and plots.
pub fn run(plan: &FullPlan, out: &mut Out, records_path: &Path) -> Result<Vec<Section>, String> {
    let started = Instant::now();
    // Seed by seed, the long runs of a seed first: a study stopped early
    // has every cell at a similar count of seeds, and the short runs fill
    // the threads at the end.
    let mut jobs = Vec::new();
    for seed in 0..plan.mlp_seeds.max(plan.other_seeds) as u64 {
        let mut of_seed: Vec<Job> = cells()
            .into_iter()
            .filter(|(net, _)| seed < plan.seeds(*net) as u64)
            .map(|(net, init)| Job { net, init, seed })
            .collect();
        of_seed.sort_by_key(|j| match j.net {
            Net::Cnn => 0,
            Net::Deep { .. } => 1,
            Net::Mlp { .. } => 2,
        });
        jobs.extend(of_seed.into_iter().map(|j| (j, key(plan, &j))));
    }
    let mut store = Store::open(records_path, plan.fresh)?;
    let records = jobs::run_all(&jobs, &mut store, plan.workers, &|job, key| {
        train(plan, job, key)
    })?;
    let runs: Vec<(Job, Record)> = jobs.iter().map(|(j, _)| *j).zip(records).collect();
    let mut sections = vec![
        report::mlp(plan, &runs, out)?,
        report::deep(plan, &runs, out)?,
        report::cnn(plan, &runs, out)?,
    ];
    sections.push(report::run_section(plan, &runs, records_path));
    eprintln!(
        "  the full study's sections from {} records in {:.0} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(sections)
}

/// The network of `job`, its weights drawn from `job.seed`.
fn build(job: &Job) -> Result<Sequential, String> {
    let bias = match job.net {
        Net::Mlp {
            zero_bias: true, ..
        } => "0",
        _ => "default",
    };
    let init = job.init.layer_init(bias)?;
    Ok(match job.net {
        Net::Mlp { act, .. } => mlp(&[512, 512], act, &init, 0.2, job.seed),
        Net::Deep { act } => mlp(&[DEEP_WIDTH; DEEP_LAYERS], act, &init, 0.0, job.seed),
        Net::Cnn => ember::zoo::mnist_cnn(&init, &mut ChaCha8Rng::seed_from_u64(job.seed)),
    })
}

/// Per hidden layer: the fraction of dead units (before a ReLU) or of
/// saturated ones (before a sigmoid or tanh) on the probe images, dropout
/// off.
fn units(model: &Sequential, probe: &(ember::tensor::Tensor, Vec<usize>)) -> Vec<f64> {
    model.set_training(false);
    let report = InitReport::new(model, &probe.0, &probe.1);
    model.set_training(true);
    report
        .layers
        .iter()
        .filter_map(|l| l.dead.or(l.saturated))
        .collect()
}

/// One run: the recipe of its network, evaluated on the whole test set
/// `evals_per_epoch` times per epoch.
fn train(plan: &FullPlan, job: &Job, key: &str) -> Result<Record, String> {
    let started = Instant::now();
    let recipe = Recipe::of(job.net, plan.quick);
    let model = build(job)?;
    let mut optimizer = recipe.optimizer.build(&model, recipe.lr);
    let batches = BatchConfig::new(recipe.batch)
        .shuffled(job.seed)
        .layout(recipe.layout);
    let steps_per_epoch = batches.batches_per_epoch(plan.train.len());
    let schedule = recipe
        .schedule
        .build(recipe.lr, recipe.epochs * steps_per_epoch);
    let n = plan.probe_size.min(plan.train.len());
    let probe = plan
        .train
        .batch(&(0..n).collect::<Vec<_>>(), recipe.layout, Scaling::Unit);
    let probe = (probe.images, probe.labels);
    let len = plan.train.len() as f64;
    let evaluate = |seen: usize| {
        let e = common::evaluate(&model, &plan.test, recipe.layout);
        (seen as f64 / len, e.loss, e.accuracy)
    };
    let units_start = units(&model, &probe);
    let mut curve = vec![evaluate(0)];
    let eval_every = (steps_per_epoch / recipe.evals_per_epoch).max(1);
    let (mut step, mut seen, mut diverged_at) = (0u64, 0usize, None);
    'epochs: for epoch in 0..recipe.epochs {
        model.set_training(true);
        for (b, batch) in plan.train.epoch(&batches, epoch as u64).enumerate() {
            optimizer.set_lr(schedule.lr(step));
            model.set_step(Step::new(job.seed, step));
            let logits = model.forward(&Var::constant(batch.images));
            let loss = cross_entropy(&logits, &batch.labels, Reduction::Mean);
            if !loss.item().is_finite() {
                diverged_at = Some(seen as f64 / len);
                break 'epochs;
            }
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            step += 1;
            seen += batch.labels.len();
            // Mid-epoch evaluations, none just before the epoch's last.
            let left = steps_per_epoch - b - 1;
            if (b + 1) % eval_every == 0 && left > eval_every / 2 {
                curve.push(evaluate(seen));
            }
        }
        curve.push(evaluate(seen));
    }
    Ok(Record {
        key: key.to_string(),
        curve,
        units_start,
        units_end: units(&model, &probe),
        diverged_at,
        seconds: started.elapsed().as_secs_f64(),
    })
}
