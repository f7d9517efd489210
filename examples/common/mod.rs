//! What the MNIST examples share: the command line and loading data here;
//! the training loop (`train`); choosing optimizers and initializers by
//! name (`choices`); reporting (`report`); one process or many
//! (`parallel`). Each example keeps its model and its recipe.

#![allow(dead_code)] // each example uses a different part of this module

pub mod args;
mod choices;
pub mod memory;
pub mod parallel;
mod report;
pub mod train;

#[allow(unused_imports)] // each example uses a different part
pub use choices::{InitKind, OptimizerKind, ScheduleKind};
#[allow(unused_imports)]
pub use report::{finish, EpochRecord, EpochTracker, Reporter};

use std::path::{Path, PathBuf};

use clap::Args;
use ember::layers::checkpoint::{
    load_checkpoint, save_checkpoint, CheckpointError, Integrity, TrainingState,
};
use ember::layers::data::{evaluate_batches, DataBatch, Evaluation};
use ember::layers::optim::Optimizer;
use ember::layers::Module;
use ember::mnist::{BatchConfig, Dataset, Layout, Mnist, MnistError, MnistSet};

/// Options every MNIST example takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Epochs to train (with --resume: the total, counting the saved ones).
    #[arg(long, allow_negative_numbers = true, value_parser = args::epochs)]
    pub epochs: Option<usize>,
    /// Examples per training step (default: the recipe's). One that would
    /// not fit in memory is refused before training, with the largest that
    /// would; EMBER_MEMORY_BUDGET (such as 8G) sets the memory to plan for.
    #[arg(long, allow_negative_numbers = true, value_parser = args::positive)]
    pub batch_size: Option<usize>,
    /// Learning rate, finite and >= 0 (default: the recipe's, or the
    /// optimizer's usual one).
    #[arg(long, allow_negative_numbers = true, value_parser = args::learning_rate)]
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
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = args::probability)]
    pub label_smoothing: f32,
    /// Weight initializer of every layer.
    #[arg(long, value_enum, default_value_t = InitKind::TruncatedNormal)]
    pub init: InitKind,
    /// Bias initial value ("default": 0, or 0.1 before a ReLU).
    #[arg(long, default_value = "default", allow_negative_numbers = true, value_parser = args::bias)]
    pub bias_init: String,
    /// Seed of everything random: weights, shuffling, dropout.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, allow_negative_numbers = true, value_parser = args::threads)]
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
    #[arg(long, allow_negative_numbers = true, value_parser = args::positive)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, allow_negative_numbers = true, value_parser = args::positive)]
    pub test_limit: Option<usize>,
    /// Train data-parallel, one rank of `mpiexec -n N` (needs a build with
    /// `--features mpi`): each rank takes its share of every --batch-size
    /// batch; only rank 0 writes files. See docs/distributed.md.
    #[arg(long)]
    pub distributed: bool,
}

impl CommonArgs {
    /// Refuses two output options that name one file (`--save run.st
    /// --metrics run.st`): each write would replace the other's, and the
    /// checkpoint could be the one lost. `--resume` may name the `--save`
    /// file: that is how a run continues in place.
    ///
    /// # Errors
    /// Naming both options and the file.
    pub fn check_outputs(&self) -> Result<(), String> {
        let outputs = [
            ("--save", &self.save),
            ("--metrics", &self.metrics),
            ("--plot", &self.plot),
        ];
        let named: Vec<(&str, &PathBuf, PathBuf)> = outputs
            .into_iter()
            .filter_map(|(option, path)| path.as_ref().map(|p| (option, p, where_written(p))))
            .collect();
        for (at, (first, path, file)) in named.iter().enumerate() {
            if let Some((second, ..)) = named[at + 1..].iter().find(|(.., f)| f == file) {
                return Err(format!(
                    "{first} and {second} name the same file, {}: each would replace the other",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// The file `path` names, for comparing paths spelled differently
/// (`run.csv`, `./run.csv`): its folder resolved, its name as given (the
/// file need not exist yet).
fn where_written(path: &Path) -> PathBuf {
    let folder = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let folder = folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf());
    folder.join(path.file_name().unwrap_or_default())
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

/// Sets the global thread pool (`threads`, or one per core), with the
/// calling thread as one of its workers; returns the thread count in use.
///
/// The training loop runs on this thread, so its parallel operations start
/// from inside the pool: a split hands half the work to the other workers
/// and this thread does the rest. From outside the pool, every operation
/// would queue all of its work and put this thread to sleep until a worker
/// wakes it (small MLP on 2 threads: 140,000 samples/s against 281,000 on
/// one).
///
/// # Errors
/// If the threads cannot be started.
pub fn setup_threads(threads: Option<usize>) -> Result<usize, String> {
    let builder = rayon::ThreadPoolBuilder::new().use_current_thread();
    let builder = match threads {
        Some(n) => builder.num_threads(n),
        None => builder,
    };
    builder.build_global().map_err(|e| match threads {
        Some(n) => format!("--threads {n}: {e}"),
        None => format!("cannot start the thread pool: {e}"),
    })?;
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

/// Test images per batch of an evaluation ([`evaluate`]).
pub const EVAL_BATCH: usize = 1000;

/// `model` evaluated on `set` ([`evaluate_batches`]) in batches of 1,000
/// decoded as they are needed: the 10,000 test images as floats would be
/// 31 MB held for the whole run.
pub fn evaluate(model: &dyn Module, set: &MnistSet, layout: Layout) -> Evaluation {
    let config = BatchConfig::new(EVAL_BATCH).layout(layout);
    let batches = set.epoch(&config, 0).map(|b| DataBatch {
        inputs: b.images,
        labels: b.labels,
    });
    evaluate_batches(model, batches)
}

fn explain_missing_data(e: &MnistError) -> String {
    format!(
        "{e}\n\nTo train, Ember needs the four MNIST files (raw or .gz):\n  \
         train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte\n\
         Put them in data/mnist/, or point MNIST_DIR (or --data-dir) at their folder.\n\
         See data/README.md for where to get them and their checksums."
    )
}

/// Saves a checkpoint of the model and optimizer at `run`'s position.
pub fn save(
    path: &Path,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    run: &TrainingState,
) -> Result<(), String> {
    save_checkpoint(path, model, Some(optimizer), run).map_err(|e| e.to_string())
}

/// The run's position: epoch 0 and step 0, or what `--resume` saved (the
/// model and optimizer loaded from it). With `--epochs 0 --save`, writes
/// the initial weights.
pub fn start(
    args: &CommonArgs,
    epochs: usize,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
) -> Result<TrainingState, String> {
    let mut run = TrainingState::new(args.seed);
    if let Some(path) = &args.resume {
        let loaded = load_checkpoint(path, model, Some(optimizer)).map_err(|e| match e {
            CheckpointError::Missing { .. }
            | CheckpointError::Unexpected { .. }
            | CheckpointError::Shape { .. } => format!(
                "{e}\nThe checkpoint holds another model (another example's, or \
                 mnist_mlp's with other --hidden widths): resume it with the example and \
                 options that trained it."
            ),
            e => e.to_string(),
        })?;
        if loaded.integrity == Integrity::Unverified {
            eprintln!(
                "note: {} has no checksums (saved before Ember wrote them, or by another tool): \
                 loaded as it is, nothing verified",
                path.display()
            );
        }
        run.epoch = loaded.training.epoch;
        run.step = loaded.training.step;
    }
    if let (0, Some(path)) = (epochs, &args.save) {
        save(path, model, optimizer, &run)?;
    }
    Ok(run)
}
