//! Why a truncated normal? The study behind Ember's default initializer,
//! measured instead of argued: five experiments, each over several seeds
//! (mean ± 95 % interval), written as SVG plots and Markdown tables into
//! `docs/` (see `docs/initialization.md`); and, with `--full`, the networks
//! one would actually train (the classic MLP for 20 epochs, a 20-layer MLP,
//! the convnet) on all of MNIST.
//!
//! ```text
//! cargo run --release --example init_study            # the short study (< 15 min on 2 cores)
//! cargo run --release --example init_study -- --full  # the full one (hours; resumes if stopped)
//! cargo run --release --example init_study -- --quick # a smoke run (< 1 min)
//! cargo run --release --example init_study -- --full --quick --out-dir /tmp/study
//! ```
//!
//! Needs the MNIST files (`MNIST_DIR` or `--data-dir`). The generated tables
//! go between `<!-- init_study:NAME:begin/end -->` markers of
//! `OUT/initialization.md` (created if missing), the plots into `OUT/img/`.
//! OUT is `docs/` for the full study; a `--quick` smoke run never writes
//! over those published results: its OUT is `ember-init-study-quick` in the
//! system's temporary folder, unless `--out-dir` names another.
//! Lines `check NAME VALUE` on stdout carry the key numbers for tests.

#[path = "../common/mod.rs"]
mod common;
mod depth;
mod distributions;
mod doc;
mod full;
mod saturation;
mod stats;
mod training;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use common::InitKind;
use ember::layers::{
    Activation, Dropout, LayerInit, Linear, Module, ReLU, Sequential, Sigmoid, Tanh,
};
use ember::mnist::batches::permutation;
use ember::mnist::{Dataset, Layout, Mnist, MnistSet, Scaling};
use ember::report::Color;
use ember::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Run the initialization study.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Cli {
    /// A smoke run: 2 seeds, tiny training runs (under a minute), written
    /// to a temporary folder unless --out-dir says where.
    #[arg(long)]
    quick: bool,
    /// The full study instead of the short one: all of MNIST, trained to
    /// convergence. Each finished run is kept in OUT/init_study_runs.jsonl,
    /// and a rerun trains only what that file lacks.
    #[arg(long)]
    full: bool,
    /// With --full: forget the runs kept from earlier invocations.
    #[arg(long, requires = "full")]
    fresh: bool,
    /// Where initialization.md and img/ go (default: docs, or
    /// $TMPDIR/ember-init-study-quick with --quick).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Seeds per experiment, at least 2 (default: 5, or 2 with --quick;
    /// with --full, 8 per cell of the classic MLP and 5 per other cell).
    #[arg(long, allow_negative_numbers = true, value_parser = seeds)]
    seeds: Option<usize>,
    /// Folder with the MNIST files; it must exist, and is the only place
    /// looked in (without it: $MNIST_DIR, else data/mnist).
    #[arg(long, value_parser = common::args::existing_dir)]
    data_dir: Option<PathBuf>,
    /// Training images in experiments 4 and 5 (default 8,000; 1,024 with --quick).
    #[arg(long, allow_negative_numbers = true, value_parser = common::args::positive, conflicts_with = "full")]
    train_limit: Option<usize>,
    /// Epochs in experiments 4 and 5, at least 1 (default 2; 1 with --quick).
    #[arg(long, allow_negative_numbers = true, value_parser = common::args::positive, conflicts_with = "full")]
    epochs: Option<usize>,
    /// Worker threads (default: all cores); with --full, the runs trained
    /// side by side, one thread each.
    #[arg(long, allow_negative_numbers = true, value_parser = common::args::threads)]
    threads: Option<usize>,
}

/// A seed count: the intervals need at least two.
fn seeds(text: &str) -> Result<usize, String> {
    match common::args::positive(text)? {
        1 => Err("at least 2 seeds (the intervals need two)".to_string()),
        n => Ok(n),
    }
}

/// The hidden activation of an MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// max(z, 0).
    Relu,
    /// The logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
}

impl Act {
    /// A lower-case name for files and check lines.
    pub fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
        }
    }
    /// The name in titles.
    pub fn title(self) -> &'static str {
        match self {
            Act::Relu => "ReLU",
            Act::Sigmoid => "Sigmoid",
            Act::Tanh => "Tanh",
        }
    }
}

/// 784 → hidden… → 10, each hidden layer followed by `act` (and dropout if
/// `dropout > 0`); weights drawn from a generator seeded with `seed`.
pub fn mlp(hidden: &[usize], act: Act, init: &LayerInit, dropout: f32, seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Sequential::new();
    let mut width = 784;
    let feeds = match act {
        Act::Relu => Activation::Relu,
        Act::Sigmoid => Activation::Sigmoid,
        Act::Tanh => Activation::Tanh,
    };
    let hidden_init = init.clone().feeding(feeds);
    for &h in hidden {
        model.push(Box::new(Linear::with_init(
            width,
            h,
            &hidden_init,
            &mut rng,
        )));
        model.push(match act {
            Act::Relu => Box::new(ReLU) as Box<dyn Module>,
            Act::Sigmoid => Box::new(Sigmoid),
            Act::Tanh => Box::new(Tanh),
        });
        if dropout > 0.0 {
            model.push(Box::new(Dropout::new(dropout)));
        }
        width = h;
    }
    model.push(Box::new(Linear::with_init(width, 10, init, &mut rng)));
    model
}

/// How the study names the initializers it compares.
pub fn init_name(kind: InitKind) -> &'static str {
    match kind {
        InitKind::TruncatedNormal => "truncated (TF, Ember)",
        InitKind::TruncatedNormalCorrected => "truncated, corrected (Keras)",
        InitKind::Normal => "normal",
        InitKind::Uniform => "uniform",
        InitKind::GlorotUniform => "Glorot uniform",
        InitKind::HeNormal => "He normal",
        InitKind::GlorotNormal => "Glorot normal",
        InitKind::HeUniform => "He uniform",
        InitKind::LecunUniform => "LeCun uniform",
        InitKind::LecunNormal => "LeCun normal",
        InitKind::Orthogonal => "orthogonal",
        InitKind::Zeros => "zeros",
    }
}

/// The colour of an initializer in every plot of the page, so that a reader
/// follows one initializer from plot to plot.
pub const fn init_color(kind: InitKind) -> Color {
    match kind {
        InitKind::Normal => Color::palette(0),
        InitKind::TruncatedNormal => Color::palette(1),
        InitKind::TruncatedNormalCorrected => Color::palette(2),
        InitKind::Uniform => Color::palette(3),
        InitKind::GlorotUniform => Color::palette(4),
        InitKind::HeNormal => Color::palette(5),
        _ => Color::GREY,
    }
}

/// Experiment 2's "normal × 0.88", which is no initializer of its own.
pub const SHRUNK_NORMAL_COLOR: Color = Color::palette(6);

/// What to run, and the data to run it on.
pub struct Plan {
    /// The seeds of every experiment.
    pub seeds: Vec<u64>,
    /// Images per seed in the initialization probes (experiments 2 and 3).
    pub probe_size: usize,
    /// Weight stds of experiment 2's sweep.
    pub sweep: Vec<f64>,
    /// Hidden layers in experiment 3.
    pub depth: usize,
    /// The whole training set (probe batches are drawn from it).
    pub full_train: MnistSet,
    /// The training subset of experiments 4 and 5.
    pub train: MnistSet,
    /// The test subset of experiments 4 and 5.
    pub test: MnistSet,
    /// Epochs of each training run.
    pub epochs: usize,
    /// Test evaluations per epoch (besides the one at its end).
    pub evals_per_epoch: usize,
    /// Images on which dead units are counted (experiment 5).
    pub dead_probe_size: usize,
}

impl Plan {
    /// `probe_size` training images drawn by `seed`, pixels in [0, 1].
    pub fn probe_batch(&self, seed: u64) -> (Tensor, Vec<usize>) {
        let order = permutation(self.full_train.len(), seed, 0);
        let batch = self
            .full_train
            .batch(&order[..self.probe_size], Layout::Flat, Scaling::Unit);
        (batch.images, batch.labels)
    }

    /// The first `dead_probe_size` images of the training subset.
    pub fn dead_probe(&self) -> (Tensor, Vec<usize>) {
        let n = self.dead_probe_size.min(self.train.len());
        let batch = self
            .train
            .batch(&(0..n).collect::<Vec<_>>(), Layout::Flat, Scaling::Unit);
        (batch.images, batch.labels)
    }
}

/// The CPU's model name (from /proc/cpuinfo where there is one), for the
/// page's note on where its figures come from.
pub fn cpu_model() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| format!("an {} CPU", std::env::consts::ARCH));
    format!("{name} ({cores} cores)")
}

/// Where results go, and the key numbers printed for tests.
pub struct Out {
    /// The folder of the plots.
    pub img: PathBuf,
}

impl Out {
    /// Prints `check NAME VALUE` (read by `tests/init_study.rs`).
    pub fn check(&mut self, name: &str, value: f64) {
        println!("check {name} {value}");
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn take(set: &MnistSet, n: usize) -> MnistSet {
    set.select(&(0..n.min(set.len())).collect::<Vec<_>>())
}

/// Where the results go: `--out-dir`, else `docs` (the published study),
/// else, for a smoke run, a temporary folder.
fn out_dir(cli: &Cli) -> PathBuf {
    match (&cli.out_dir, cli.quick) {
        (Some(dir), _) => dir.clone(),
        (None, false) => PathBuf::from("docs"),
        (None, true) => std::env::temp_dir().join("ember-init-study-quick"),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let started = Instant::now();
    // Checked before any work: the folder and the document can be written.
    let out_dir = out_dir(&cli);
    let refused = |e: String| format!("--out-dir {}: {e}", out_dir.display());
    std::fs::create_dir_all(&out_dir).map_err(|e| refused(e.to_string()))?;
    common::args::writable_dir(&out_dir).map_err(refused)?;
    let doc_path = out_dir.join("initialization.md");
    common::args::writable_file(&doc_path.to_string_lossy())
        .map_err(|e| refused(format!("{}: {e}", doc_path.display())))?;
    let mnist = Mnist::load(Dataset::Mnist, cli.data_dir.as_deref()).map_err(|e| {
        format!("{e}\n(the study needs the MNIST files: set MNIST_DIR or pass --data-dir)")
    })?;
    let img = out_dir.join("img");
    std::fs::create_dir_all(&img).map_err(|e| format!("{}: {e}", img.display()))?;
    let mut out = Out { img };
    if cli.full {
        return run_full(&cli, mnist, &out_dir, &mut out);
    }
    let threads = common::setup_threads(cli.threads)?;
    let quick = cli.quick;
    let seeds = cli.seeds.unwrap_or(if quick { 2 } else { 5 });
    let plan = Plan {
        seeds: (0..seeds as u64).collect(),
        probe_size: if quick { 128 } else { 256 },
        sweep: if quick {
            vec![0.03, 0.3, 1.0]
        } else {
            vec![0.01, 0.02, 0.035, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0]
        },
        depth: if quick { 10 } else { 20 },
        train: take(
            &mnist.train,
            cli.train_limit.unwrap_or(if quick { 1024 } else { 8_000 }),
        ),
        test: take(&mnist.test, if quick { 500 } else { 2_000 }),
        full_train: mnist.train,
        epochs: cli.epochs.unwrap_or(if quick { 1 } else { 2 }),
        evals_per_epoch: 2,
        dead_probe_size: if quick { 256 } else { 1000 },
    };
    let mut sections = Vec::new();
    let mut times = Vec::new();
    let mut trainer = training::Trainer::default();
    macro_rules! experiment {
        ($name:expr, $body:expr) => {{
            let t = Instant::now();
            eprintln!("{} …", $name);
            sections.push($body?);
            times.push(($name, t.elapsed().as_secs_f64()));
        }};
    }
    experiment!("1. distributions", distributions::run(&plan, &mut out));
    experiment!("2. saturation", saturation::run(&plan, &mut out));
    experiment!("3. depth", depth::run(&plan, &mut out));
    experiment!(
        "4. training outcome",
        training::outcome(&plan, &mut trainer, &mut out)
    );
    experiment!(
        "5. ReLU bias",
        training::relu_bias(&plan, &mut trainer, &mut out)
    );

    let total = started.elapsed().as_secs_f64();
    let mut md = format!(
        "Generated by `cargo run {}--example init_study{}` ({} seeds, {threads} threads) \
         in {:.0} s of wall time on {}:\n\n",
        // The dev profile is optimised too (opt-level 3), with debug assertions.
        if cfg!(debug_assertions) {
            ""
        } else {
            "--release "
        },
        if quick { " -- --quick" } else { "" },
        plan.seeds.len(),
        total,
        cpu_model()
    );
    for (name, seconds) in &times {
        md.push_str(&format!("- {name}: {seconds:.0} s\n"));
    }
    sections.push(doc::Section {
        name: "run",
        markdown: md,
    });
    doc::write(&doc_path, &sections)?;
    println!("wrote {} and {}/", doc_path.display(), out.img.display());
    println!("check total_seconds {total:.1}");
    Ok(())
}

/// `--full`: the networks trained to convergence on all of MNIST.
fn run_full(cli: &Cli, mnist: Mnist, out_dir: &Path, out: &mut Out) -> Result<(), String> {
    let started = Instant::now();
    let quick = cli.quick;
    let workers = match cli.threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let (mlp_seeds, other_seeds) = match (cli.seeds, quick) {
        (Some(n), _) => (n, n),
        (None, true) => (2, 2),
        (None, false) => (8, 5),
    };
    let plan = full::FullPlan {
        mlp_seeds,
        other_seeds,
        train: if quick {
            take(&mnist.train, 1024)
        } else {
            mnist.train
        },
        test: if quick {
            take(&mnist.test, 500)
        } else {
            mnist.test
        },
        probe_size: if quick { 128 } else { 1000 },
        quick,
        workers,
        fresh: cli.fresh,
    };
    let records = out_dir.join("init_study_runs.jsonl");
    let sections = full::run(&plan, out, &records)?;
    let doc_path = out_dir.join("initialization.md");
    doc::write(&doc_path, &sections)?;
    println!(
        "wrote {}, {}/ and {}",
        doc_path.display(),
        out.img.display(),
        records.display()
    );
    println!("check total_seconds {:.1}", started.elapsed().as_secs_f64());
    Ok(())
}
