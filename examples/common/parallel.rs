//! Running an example on one process or on many (`--distributed`): the few
//! places a data-parallel run differs, behind one type, so each training
//! loop reads the same either way.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ember::autograd::Var;
use ember::distributed::{parameters_sha256, Fingerprint, GradientAverager, World};
use ember::layers::{BatchShare, Module};
use ember::mnist::{BatchConfig, MnistSet};
use sha2::{Digest, Sha256};

use super::CommonArgs;

/// Joins the MPI run when `--distributed` is given.
///
/// # Errors
/// If this build has no MPI, or the process was not started by `mpiexec`.
pub fn join(args: &CommonArgs) -> Result<Option<World>, String> {
    if !args.distributed {
        return Ok(None);
    }
    World::init().map(Some).map_err(|e| e.to_string())
}

/// The `main` of every MNIST example: joins the MPI run if `--distributed`
/// asks, runs `run`, and turns its error into one `error:` line (ending
/// every rank when only this one failed).
pub fn main(
    args: &CommonArgs,
    run: impl FnOnce(Option<&World>) -> Result<(), String>,
) -> std::process::ExitCode {
    let world = match join(args) {
        Ok(world) => world,
        Err(message) => {
            eprintln!("error: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(world.as_ref()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            // One write, so the lines of several ranks never interleave.
            let line = format!("error: {message}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            fail(world.as_ref())
        }
    }
}

/// Set when the error being returned is the same on every rank (the ranks
/// disagree; a batch too small to share), so each can exit on its own.
static EVERY_RANK_FAILS: AtomicBool = AtomicBool::new(false);

/// Ends the process after an error. In a distributed run, an error only
/// this rank has ends every rank (`MPI_Abort`), since the others may be
/// waiting on this one; one that every rank has found exits normally.
pub fn fail(world: Option<&World>) -> std::process::ExitCode {
    match world {
        Some(w) if w.size() > 1 && !EVERY_RANK_FAILS.load(Ordering::Relaxed) => w.abort(1),
        _ => std::process::ExitCode::FAILURE,
    }
}

fn everywhere(message: String) -> String {
    EVERY_RANK_FAILS.store(true, Ordering::Relaxed);
    message
}

/// One process, or one rank of many.
pub enum Ranks<'w> {
    /// A single process: backward is `loss.backward()`.
    Alone,
    /// A rank of a data-parallel run.
    Many {
        /// The run.
        world: &'w World,
        /// Averages the gradients after each backward.
        averager: Box<GradientAverager<'w>>,
        /// Seconds of one blocking all-reduce of all the gradients.
        allreduce_seconds: f64,
    },
}

impl<'w> Ranks<'w> {
    /// Sets up this rank: only rank 0 writes files or draws progress; the
    /// options, model and data must agree on every rank. Call
    /// [`Ranks::broadcast`] once the model is loaded (after `--resume`).
    ///
    /// # Errors
    /// If the ranks disagree (the same message on every rank), or a batch
    /// would leave a rank without samples.
    pub fn new(
        world: Option<&'w World>,
        args: &mut CommonArgs,
        model: &dyn Module,
        train: &MnistSet,
        batch_size: usize,
        extra: &[(&str, String)],
    ) -> Result<Ranks<'w>, String> {
        let Some(world) = world else {
            return Ok(Ranks::Alone);
        };
        let size = world.size();
        let last = train.len() % batch_size;
        if batch_size < size || (last > 0 && last < size) {
            return Err(everywhere(format!(
                "--batch-size {batch_size} over {} training images leaves a batch of {} for {size} ranks: \
                 every rank needs at least one image of every batch",
                train.len(),
                if batch_size < size { batch_size } else { last }
            )));
        }
        if !world.is_root() {
            args.save = None;
            args.metrics = None;
            args.plot = None;
            args.quiet = true;
        }
        world
            .check_agreement(&fingerprint(args, model, train, batch_size, extra)?)
            .map_err(|e| everywhere(e.to_string()))?;
        let mut averager = world.averager(model);
        let allreduce_seconds = averager.time_blocking_allreduce(5);
        if world.is_root() && !args.quiet {
            println!(
                "data-parallel over {size} ranks: {} gradient buckets {:?}, one all-reduce of all of them {:.2} ms",
                averager.plan().len(),
                averager.plan().bucket_lens(),
                1e3 * allreduce_seconds
            );
        }
        Ok(Ranks::Many {
            world,
            averager: Box::new(averager),
            allreduce_seconds,
        })
    }

    /// Gives every rank rank 0's parameters and buffers.
    pub fn broadcast(&self, model: &dyn Module) {
        if let Ranks::Many { world, .. } = self {
            world.broadcast_state(model);
        }
    }

    /// How many of an epoch's `len` images this rank trains on.
    pub fn local_len(&self, len: usize, batch_size: usize) -> usize {
        match self {
            Ranks::Alone => len,
            Ranks::Many { world, .. } => (0..len.div_ceil(batch_size))
                .map(|b| {
                    let global = super::global_batch(len, batch_size, b);
                    ember::mnist::batches::share(global, world.rank(), world.size()).len()
                })
                .sum(),
        }
    }

    /// This rank's share of every batch of `config`.
    pub fn shard(&self, config: BatchConfig) -> BatchConfig {
        match self {
            Ranks::Alone => config,
            Ranks::Many { world, .. } => config.shard(world.rank(), world.size()),
        }
    }

    /// Tells `model` which rows of the next global batch of `global` images
    /// this rank has, so dropout draws the masks a single process would.
    pub fn share(&self, model: &dyn Module, global: usize) {
        if let Ranks::Many { world, .. } = self {
            let rows = ember::mnist::batches::share(global, world.rank(), world.size());
            model.set_batch_share(BatchShare {
                offset: rows.start,
                global,
            });
        }
    }

    /// `loss.backward()`, and in a distributed run the gradients averaged
    /// over the global batch of `global` images, `local` of them here.
    pub fn backward(&mut self, loss: &Var, local: usize, global: usize) {
        match self {
            Ranks::Alone => loss.backward(),
            Ranks::Many { averager, .. } => averager.backward(Some(loss), local, global),
        }
    }

    /// The JSON fields a run adds to its summary: rank, world size, the
    /// parameters' hash, and (distributed) the whole run's samples/s and
    /// communication figures. Collective: every rank calls it.
    pub fn summary(
        &self,
        model: &dyn Module,
        samples: usize,
        seconds: f64,
    ) -> Vec<(String, String)> {
        let mut fields = vec![];
        let sha = format!("\"{}\"", parameters_sha256(model));
        match self {
            Ranks::Alone => {
                fields.push(("rank".into(), "0".into()));
                fields.push(("world_size".into(), "1".into()));
            }
            Ranks::Many {
                world,
                averager,
                allreduce_seconds,
            } => {
                let all_samples = world.sum(samples as u64);
                let slowest = world.max(seconds);
                let stats = averager.stats();
                let steps = stats.steps.max(1) as f64;
                fields.push(("rank".into(), world.rank().to_string()));
                fields.push(("world_size".into(), world.size().to_string()));
                fields.push((
                    "samples_per_second".into(),
                    format!("{:.1}", all_samples as f64 / slowest.max(1e-9)),
                ));
                fields.push((
                    "rank_samples_per_second".into(),
                    format!("{:.1}", samples as f64 / seconds.max(1e-9)),
                ));
                fields.push(("step_seconds".into(), format!("{:.6}", seconds / steps)));
                fields.push((
                    "allreduce_seconds".into(),
                    format!("{allreduce_seconds:.6}"),
                ));
                fields.push((
                    "allreduce_exposed_seconds".into(),
                    format!("{:.6}", stats.exposed_seconds / steps),
                ));
            }
        }
        fields.push(("parameters_sha256".into(), sha));
        fields
    }
}

/// What every rank must agree on: each option that changes training, the
/// example's own options, the model's parameter names and shapes, the
/// training data (count and a hash of its labels), the checkpoint resumed.
fn fingerprint(
    args: &CommonArgs,
    model: &dyn Module,
    train: &MnistSet,
    batch_size: usize,
    extra: &[(&str, String)],
) -> Result<Fingerprint, String> {
    let mut f = Fingerprint::default();
    f.add("--epochs", shown(&args.epochs));
    f.add("--batch-size", batch_size);
    f.add("--lr", shown(&args.lr));
    f.add("--optimizer", shown(&args.optimizer));
    f.add("--schedule", shown(&args.schedule));
    f.add("--label-smoothing", args.label_smoothing);
    f.add("--init", format!("{:?}", args.init));
    f.add("--bias-init", &args.bias_init);
    f.add("--seed", args.seed);
    f.add("--train-limit", shown(&args.train_limit));
    f.add("--test-limit", shown(&args.test_limit));
    for (name, value) in extra {
        f.add(*name, value);
    }
    f.add_model(model);
    f.add(
        "training data",
        format!(
            "{} images, labels sha256 {}",
            train.len(),
            hex(&Sha256::digest(train.labels()))
        ),
    );
    let resumed = match &args.resume {
        Some(path) => file_sha256(path)?,
        None => "none".into(),
    };
    f.add("--resume (sha256)", resumed);
    Ok(f)
}

/// An option's value as given, or "default".
fn shown<T: std::fmt::Debug>(value: &Option<T>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "default".into(),
    }
}

fn file_sha256(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
