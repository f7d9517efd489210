//! What the MNIST examples share: the command line, choosing optimizers and
//! initializers by name, loading data, evaluating, and reporting.
//!
//! The training loops themselves stay in each example, in plain sight.

#![allow(dead_code)] // each example uses a different part of this module

pub mod args;
pub mod parallel;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ember::autograd::{no_grad, Var};
use ember::layers::checkpoint::{load_checkpoint, save_checkpoint, Integrity, TrainingState};
use ember::layers::init::{
    self, FanMode, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal, LecunUniform,
    Orthogonal, VarianceScaling, Zeros,
};
use ember::layers::loss::{cross_entropy, Reduction};
use ember::layers::metrics::{correct, RunningMean};
use ember::layers::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use ember::layers::schedule::{ConstantLr, CosineAnnealing, LrSchedule};
use ember::layers::{LayerInit, Module};
use ember::mnist::{BatchConfig, Dataset, Layout, Mnist, MnistError, MnistSet};
use ember::report::{plot_curves, Curve, EpochProgress, MetricsCsv, Panel};
use ember::tensor::Tensor;

/// Options every MNIST example takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Epochs to train (with --resume: the total, counting the saved ones).
    #[arg(long, value_parser = args::epochs)]
    pub epochs: Option<usize>,
    /// Examples per training step (default: the recipe's).
    #[arg(long, value_parser = args::positive)]
    pub batch_size: Option<usize>,
    /// Learning rate, finite and >= 0 (default: the recipe's, or the
    /// optimizer's usual one).
    #[arg(long, value_parser = args::learning_rate)]
    pub lr: Option<f32>,
    /// The optimizer.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule, updated every batch (default: the recipe's).
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Label smoothing ε of the training loss, in [0, 1): the target puts
    /// 1 − ε + ε/10 on the true digit and ε/10 on each other (PyTorch's
    /// `label_smoothing`). Test loss is always plain cross-entropy.
    #[arg(long, default_value_t = 0.0, value_parser = args::probability)]
    pub label_smoothing: f32,
    /// Weight initializer of every layer.
    #[arg(long, value_enum, default_value_t = InitKind::TruncatedNormal)]
    pub init: InitKind,
    /// Bias initial value ("default": 0, or 0.1 before a ReLU).
    #[arg(long, default_value = "default", value_parser = args::bias)]
    pub bias_init: String,
    /// Seed of everything random: weights, shuffling, dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = args::threads)]
    pub threads: Option<usize>,
    /// Folder with the MNIST files; it must exist, and is the only place
    /// looked in (without it: $MNIST_DIR, else data/mnist).
    #[arg(long, value_parser = args::existing_dir)]
    pub data_dir: Option<PathBuf>,
    /// Never download; fail with instructions if the files are missing.
    #[arg(long)]
    pub no_download: bool,
    /// Save a checkpoint (safetensors) here after every epoch, atomically.
    #[arg(long, value_parser = args::writable_file)]
    pub save: Option<PathBuf>,
    /// Resume from a checkpoint written by --save.
    #[arg(long, value_parser = args::readable_file)]
    pub resume: Option<PathBuf>,
    /// Write one CSV row of metrics per epoch here.
    #[arg(long, value_parser = args::writable_file)]
    pub metrics: Option<PathBuf>,
    /// Write an SVG of the loss and accuracy curves here.
    #[arg(long, value_parser = args::writable_file)]
    pub plot: Option<PathBuf>,
    /// Print only the final result.
    #[arg(long)]
    pub quiet: bool,
    /// End with one line of JSON with the results.
    #[arg(long)]
    pub json: bool,
    /// Train on the first N training images only (quick checks and tests).
    #[arg(long, value_parser = args::positive)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = args::positive)]
    pub test_limit: Option<usize>,
    /// Train data-parallel, one rank of `mpiexec -n N` (needs a build with
    /// `--features mpi`): each rank takes its share of every --batch-size
    /// batch; only rank 0 writes files. See docs/distributed.md.
    #[arg(long)]
    pub distributed: bool,
}

/// The size of global batch `b` of an epoch of `len` images in batches of
/// `batch_size` (the last one may be smaller).
pub fn global_batch(len: usize, batch_size: usize, b: usize) -> usize {
    batch_size.min(len - b * batch_size)
}

/// "1 thread", "2 threads".
pub fn threads_label(threads: usize) -> String {
    match threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    }
}

/// The learning-rate schedules the examples offer.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// The same rate throughout.
    Constant,
    /// Half a cosine from the rate down to 0 over the whole run, per batch.
    Cosine,
}

impl ScheduleKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Cosine => "cosine",
        }
    }

    /// The schedule for a run of `total_steps` batches starting at `lr`.
    pub fn build(self, lr: f32, total_steps: usize) -> Box<dyn LrSchedule> {
        match self {
            ScheduleKind::Constant => Box::new(ConstantLr(lr)),
            ScheduleKind::Cosine => Box::new(CosineAnnealing::new(lr, total_steps.max(1), 0.0)),
        }
    }
}

/// The optimizers the examples offer.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay 0.01).
    Adamw,
    /// RMSprop as Keras has it (ρ = 0.9, ε = 1e-7 inside the root).
    Rmsprop,
}

impl OptimizerKind {
    /// The usual learning rate for this optimizer.
    pub fn default_lr(self) -> f32 {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Momentum => 0.01,
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Rmsprop => 0.001,
        }
    }

    /// Builds the optimizer over `model`'s parameters.
    pub fn build(self, model: &dyn Module, lr: f32) -> Box<dyn Optimizer> {
        let params = model.parameters();
        match self {
            OptimizerKind::Sgd => Box::new(Sgd::new(
                params,
                SgdConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Momentum => Box::new(Sgd::new(
                params,
                SgdConfig {
                    lr,
                    momentum: 0.9,
                    ..Default::default()
                },
            )),
            OptimizerKind::Adam => Box::new(Adam::new(
                params,
                AdamConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Adamw => Box::new(AdamW::new(
                params,
                AdamWConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Rmsprop => Box::new(RmsProp::new(
                params,
                RmsPropConfig {
                    lr,
                    ..RmsPropConfig::keras()
                },
            )),
        }
    }
}

/// Every built-in weight initializer, by name.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    /// Ember's default: truncated normal, std 1/√fan_in, ±2σ, not corrected.
    TruncatedNormal,
    /// Truncated normal corrected to std 1/√fan_in (Keras's VarianceScaling).
    TruncatedNormalCorrected,
    /// Plain normal, std 1/√fan_in.
    Normal,
    /// Uniform with variance 1/fan_in.
    Uniform,
    /// Glorot (Xavier) uniform.
    GlorotUniform,
    /// Glorot (Xavier) normal.
    GlorotNormal,
    /// He (Kaiming) uniform.
    HeUniform,
    /// He (Kaiming) normal.
    HeNormal,
    /// LeCun uniform.
    LecunUniform,
    /// LeCun normal.
    LecunNormal,
    /// Orthogonal, gain 1.
    Orthogonal,
    /// All zeros (a cautionary baseline).
    Zeros,
}

impl InitKind {
    /// The layer initialization for this choice and a `--bias-init` value.
    pub fn layer_init(self, bias: &str) -> Result<LayerInit, String> {
        let fan_in = |distribution| VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanIn,
            distribution,
        };
        let weight: Box<dyn Fn(LayerInit) -> LayerInit> = match self {
            InitKind::TruncatedNormal => Box::new(|l| l.weight(init::default_weight_init())),
            InitKind::TruncatedNormalCorrected => {
                Box::new(move |l| l.weight(fan_in(init::Distribution::TruncatedNormal)))
            }
            InitKind::Normal => Box::new(move |l| l.weight(fan_in(init::Distribution::Normal))),
            InitKind::Uniform => Box::new(move |l| l.weight(fan_in(init::Distribution::Uniform))),
            InitKind::GlorotUniform => Box::new(|l| l.weight(GlorotUniform)),
            InitKind::GlorotNormal => Box::new(|l| l.weight(GlorotNormal)),
            InitKind::HeUniform => Box::new(|l| l.weight(HeUniform)),
            InitKind::HeNormal => Box::new(|l| l.weight(HeNormal)),
            InitKind::LecunUniform => Box::new(|l| l.weight(LecunUniform)),
            InitKind::LecunNormal => Box::new(|l| l.weight(LecunNormal)),
            InitKind::Orthogonal => Box::new(|l| l.weight(Orthogonal::new(1.0))),
            InitKind::Zeros => Box::new(|l| l.weight(Zeros)),
        };
        let layer = weight(LayerInit::default());
        match bias {
            "default" => Ok(layer),
            value => value
                .parse::<f32>()
                .map(|b| layer.bias_constant(b))
                .map_err(|_| {
                    format!("--bias-init: expected \"default\" or a number, got {value:?}")
                }),
        }
    }
}

/// Sets the global thread pool; returns the thread count in use.
///
/// # Errors
/// If the threads cannot be started.
pub fn setup_threads(threads: Option<usize>) -> Result<usize, String> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| format!("--threads {n}: {e}"))?;
    }
    Ok(rayon::current_num_threads())
}

/// Loads MNIST (downloading it unless told not to), trimmed as asked.
pub fn load_data(args: &CommonArgs) -> Result<(MnistSet, MnistSet), String> {
    let dir = args.data_dir.as_deref();
    let loaded = if args.no_download {
        Mnist::load(Dataset::Mnist, dir)
    } else {
        Mnist::load_or_download(Dataset::Mnist, dir)
    };
    let mnist = loaded.map_err(|e| explain_missing_data(&e))?;
    let trim = |set: MnistSet, limit: Option<usize>| match limit {
        Some(n) if n < set.len() => set.select(&(0..n).collect::<Vec<_>>()),
        _ => set,
    };
    Ok((
        trim(mnist.train, args.train_limit),
        trim(mnist.test, args.test_limit),
    ))
}

fn explain_missing_data(e: &MnistError) -> String {
    format!(
        "{e}\n\nTo train, Ember needs the four MNIST files (raw or .gz):\n  \
         train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte\n\
         Put them in data/mnist/, or point MNIST_DIR (or --data-dir) at their folder.\n\
         See data/README.md for where to get them and their checksums."
    )
}

/// Loss and accuracy of `model` on `set`, without recording a graph.
pub fn evaluate(model: &dyn Module, set: &MnistSet, layout: Layout) -> (f64, f64) {
    model.set_training(false);
    let config = BatchConfig::new(1000).layout(layout);
    let mut loss = RunningMean::default();
    let mut right = 0;
    no_grad(|| {
        for batch in set.epoch(&config, 0) {
            let logits = model.forward(&Var::constant(batch.images));
            loss.add(
                cross_entropy(&logits, &batch.labels, Reduction::Mean).item(),
                batch.labels.len(),
            );
            right += correct(&logits.value(), &batch.labels);
        }
    });
    model.set_training(true);
    (loss.mean(), right as f64 / set.len().max(1) as f64)
}

/// A seed for epoch `epoch`'s dropout masks, derived from the run's seed.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (epoch as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// One epoch's figures.
#[derive(Clone, Copy, Debug)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (with dropout active).
    pub train_accuracy: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Training samples seen.
    pub samples: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// The per-epoch outputs: the line on stdout, the CSV row, the plot.
pub struct Reporter {
    csv: Option<MetricsCsv>,
    plot: Option<PathBuf>,
    quiet: bool,
    history: Vec<EpochRecord>,
}

impl Reporter {
    /// Opens the CSV (if asked for).
    pub fn new(args: &CommonArgs) -> Result<Reporter, String> {
        let header = [
            "epoch",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "train_seconds",
            "samples_per_second",
        ];
        let csv = match &args.metrics {
            Some(path) => Some(
                MetricsCsv::create(path, &header)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Reporter {
            csv,
            plot: args.plot.clone(),
            quiet: args.quiet,
            history: Vec::new(),
        })
    }

    /// Prints and records one epoch.
    pub fn epoch(&mut self, r: EpochRecord, epochs: usize) -> Result<(), String> {
        if !self.quiet {
            println!(
                "epoch {:>3}/{epochs}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.1} s ({:.0} samples/s)",
                r.epoch,
                r.train_loss,
                100.0 * r.train_accuracy,
                r.test_loss,
                100.0 * r.test_accuracy,
                r.train_seconds,
                r.samples_per_second
            );
        }
        if let Some(csv) = &mut self.csv {
            csv.row(&[
                r.epoch as f64,
                r.train_loss,
                r.train_accuracy,
                r.test_loss,
                r.test_accuracy,
                r.train_seconds,
                r.samples_per_second,
            ])
            .map_err(|e| e.to_string())?;
        }
        self.history.push(r);
        if let Some(path) = &self.plot {
            self.write_plot(path)?;
        }
        Ok(())
    }

    fn write_plot(&self, path: &Path) -> Result<(), String> {
        let series = |name: &str, f: fn(&EpochRecord) -> f64| Curve {
            name: name.to_string(),
            points: self
                .history
                .iter()
                .map(|r| (r.epoch as f64, f(r)))
                .collect(),
        };
        let panels = [
            Panel {
                title: "Loss".into(),
                x_label: "epoch".into(),
                y_label: "cross-entropy (nats)".into(),
                curves: vec![
                    series("train", |r| r.train_loss),
                    series("test", |r| r.test_loss),
                ],
            },
            Panel {
                title: "Accuracy".into(),
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                curves: vec![
                    series("train", |r| 100.0 * r.train_accuracy),
                    series("test", |r| 100.0 * r.test_accuracy),
                ],
            },
        ];
        plot_curves(path, &panels)
    }

    /// The epochs recorded so far.
    pub fn history(&self) -> &[EpochRecord] {
        &self.history
    }
}

/// The final JSON line; `extra` fields (already JSON values) are added, or
/// replace the field of the same name.
pub fn summary_json(
    epochs: usize,
    test: (f64, f64),
    train_seconds: f64,
    samples: usize,
    seed: u64,
    threads: usize,
    extra: &[(String, String)],
) -> String {
    let mut fields: Vec<(String, String)> = vec![
        ("epochs".into(), epochs.to_string()),
        ("test_accuracy".into(), format!("{:.6}", test.1)),
        ("test_loss".into(), format!("{:.6}", test.0)),
        ("train_seconds".into(), format!("{train_seconds:.3}")),
        (
            "samples_per_second".into(),
            format!("{:.1}", samples as f64 / train_seconds.max(1e-9)),
        ),
        ("seed".into(), seed.to_string()),
        ("threads".into(), threads.to_string()),
    ];
    for (name, value) in extra {
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.clone(),
            None => fields.push((name.clone(), value.clone())),
        }
    }
    let body: Vec<String> = fields.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// Saves a checkpoint after `epoch` epochs and `step` steps.
pub fn save(
    path: &Path,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    epoch: usize,
    step: u64,
    seed: u64,
) -> Result<(), String> {
    let mut state = TrainingState {
        epoch: epoch as u64,
        step,
        ..Default::default()
    };
    state.extra.insert("seed".into(), seed.to_string());
    save_checkpoint(path, model, Some(optimizer), &state).map_err(|e| e.to_string())
}

/// One training epoch's running figures: loss, accuracy, the time spent in
/// training steps, the progress bar; and the divergence check.
pub struct EpochTracker {
    epoch: usize,
    lr: f32,
    progress: EpochProgress,
    loss: RunningMean,
    right: usize,
    seen: usize,
    seconds: f64,
}

impl EpochTracker {
    /// Starts epoch `epoch` (0-based) of `epochs`, over `samples` samples.
    pub fn new(samples: usize, epoch: usize, epochs: usize, lr: f32, args: &CommonArgs) -> Self {
        EpochTracker {
            epoch,
            lr,
            progress: EpochProgress::new(samples, epoch + 1, epochs, !args.quiet),
            loss: RunningMean::default(),
            right: 0,
            seen: 0,
            seconds: 0.0,
        }
    }

    /// Records training step `step`, which took `elapsed`.
    ///
    /// # Errors
    /// If the loss is not finite: training has diverged.
    pub fn record(
        &mut self,
        loss: f32,
        logits: &Tensor,
        labels: &[usize],
        elapsed: Duration,
        step: u64,
    ) -> Result<(), String> {
        if !loss.is_finite() {
            self.progress.finish();
            return Err(format!(
                "the loss became {loss} at step {step} (epoch {}); try a lower learning rate than {} \
                 (the last good checkpoint, if any, is kept)",
                self.epoch + 1,
                self.lr
            ));
        }
        self.seconds += elapsed.as_secs_f64();
        self.loss.add(loss, labels.len());
        self.right += correct(logits, labels);
        self.seen += labels.len();
        let accuracy = self.right as f64 / self.seen as f64;
        self.progress.update(self.seen, self.loss.mean(), accuracy);
        Ok(())
    }

    /// Ends the epoch with its test loss and accuracy.
    pub fn finish(self, test: (f64, f64)) -> EpochRecord {
        self.progress.finish();
        EpochRecord {
            epoch: self.epoch + 1,
            train_loss: self.loss.mean(),
            train_accuracy: self.right as f64 / self.seen.max(1) as f64,
            test_loss: test.0,
            test_accuracy: test.1,
            samples: self.seen,
            train_seconds: self.seconds,
            samples_per_second: self.seen as f64 / self.seconds.max(1e-9),
        }
    }
}

/// Loads `--resume` into the model and optimizer; returns (epoch, step) to
/// continue from. With `--epochs 0 --save`, writes the initial weights.
pub fn start(
    args: &CommonArgs,
    epochs: usize,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<(usize, u64), String> {
    let mut position = (0, 0);
    if let Some(path) = &args.resume {
        let loaded = load_checkpoint(path, model, Some(optimizer)).map_err(|e| e.to_string())?;
        if loaded.integrity == Integrity::Unverified {
            eprintln!(
                "note: {} has no checksums (saved before Ember wrote them, or by another tool): \
                 loaded as it is, nothing verified",
                path.display()
            );
        }
        position = (loaded.training.epoch as usize, loaded.training.step);
    }
    if let (0, Some(path)) = (epochs, &args.save) {
        save(path, model, optimizer, position.0, position.1, args.seed)?;
    }
    Ok(position)
}

/// Prints the final result: a line with `--quiet`, the JSON object with
/// `--json` (with the fields `ranks` adds: rank, world size, parameters'
/// hash). Collective in a distributed run: every rank calls it.
pub fn finish(
    args: &CommonArgs,
    epochs: usize,
    threads: usize,
    history: &[EpochRecord],
    test: (f64, f64),
    ranks: &parallel::Ranks<'_>,
    model: &dyn Module,
) {
    let seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
    let samples: usize = history.iter().map(|r| r.samples).sum();
    let extra = ranks.summary(model, samples, seconds);
    if args.quiet && !args.json {
        println!(
            "test accuracy {:.2}%, test loss {:.4}",
            100.0 * test.1,
            test.0
        );
    }
    if args.json {
        println!(
            "{}",
            summary_json(epochs, test, seconds, samples, args.seed, threads, &extra)
        );
    }
}
