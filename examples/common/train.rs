//! The training loop of the MNIST examples, written once: each example
//! says how to build its model and gives its recipe ([`Recipe`]) to
//! [`main`]. One step is what any PyTorch loop does (the lines after
//! "the training step"); around it: resuming, the schedule, the ranks of a
//! distributed run, the epoch's report and the checkpoint after each epoch.
//! `examples/custom_model.rs` is the same loop without the options.

use std::process::ExitCode;
use std::time::Instant;

use ember::autograd::{no_grad, Var};
use ember::distributed::World;
use ember::layers::diagnostics::InitReport;
use ember::layers::loss::{cross_entropy_smoothed, Reduction};
use ember::layers::metrics::ConfusionMatrix;
use ember::layers::optim::Optimizer;
use ember::layers::{LayerInit, Module};
use ember::mnist::{BatchConfig, Layout, MnistSet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::memory::{self, Budget};
use super::parallel::Ranks;
use super::{CommonArgs, EpochTracker, OptimizerKind, Reporter, ScheduleKind};

/// What an example fixes: its defaults, which the command line overrides.
pub struct Recipe<'a> {
    /// The first words of the header line ("MNIST CNN").
    pub title: String,
    /// The header's second line: what the defaults reach.
    pub expected: Option<&'a str>,
    /// Epochs in all (with `--resume`, counting those already done).
    pub epochs: usize,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// The learning rate with that optimizer (`None`: its usual one); any
    /// other optimizer gets its usual one.
    pub lr: Option<f32>,
    /// Images per (global) batch.
    pub batch_size: usize,
    /// The learning-rate schedule.
    pub schedule: ScheduleKind,
    /// How images reach the model: flat rows or `(1, 28, 28)` images.
    pub layout: Layout,
    /// The example's own options, which every rank must agree on.
    pub extra: &'a [(&'a str, String)],
    /// Print an [`InitReport`] on the first batch before training.
    pub init_report: bool,
    /// Print the test set's confusion matrix after training.
    pub confusion: bool,
    /// The model's parameter count where an option sets it, with that
    /// option as given (`--hidden 1024,1024`): checked against the memory
    /// budget before the model is built.
    pub parameters: Option<(String, u64)>,
}

/// The `main` of an MNIST example: the model that `build` makes from the
/// initializer (`--init`, `--bias-init`) and the seeded generator, trained
/// as `recipe` and the command line say ([`train`]); on one process, or as
/// one rank of `mpiexec` with `--distributed`.
pub fn main<M: Module>(
    args: &CommonArgs,
    recipe: &Recipe,
    build: impl Fn(&LayerInit, &mut ChaCha8Rng) -> M,
) -> ExitCode {
    if let Err(message) = args.check_outputs() {
        eprintln!("error: {message}");
        return ExitCode::from(2); // a usage error, as clap's
    }
    super::parallel::main(args, |world| {
        let threads = super::setup_threads(args.threads)?;
        let optimizer = args.optimizer.unwrap_or(recipe.optimizer);
        let lr = args.lr.unwrap_or(match recipe.lr {
            Some(lr) if optimizer == recipe.optimizer => lr,
            _ => optimizer.default_lr(),
        });
        let budget = Budget::from_env()?;
        if let (Some(budget), Some((option, parameters))) = (&budget, &recipe.parameters) {
            let slots = optimizer.state_slots();
            memory::check_parameters(option, *parameters, slots, budget)?;
        }
        let (train_set, test_set) = super::load_data(args)?;
        let init = args.init.layer_init(&args.bias_init)?;
        let model = build(&init, &mut ChaCha8Rng::seed_from_u64(args.seed));
        let mut built = optimizer.build(&model, lr);
        let chosen = Chosen {
            epochs: args.epochs.unwrap_or(recipe.epochs),
            optimizer,
            lr,
            batch_size: args.batch_size.unwrap_or(recipe.batch_size),
            schedule: args.schedule.unwrap_or(recipe.schedule),
            threads,
            budget,
        };
        let data = (&train_set, &test_set);
        train(world, args, recipe, &chosen, &model, built.as_mut(), data)
    })
}

/// The recipe with the command line applied.
struct Chosen {
    epochs: usize,
    optimizer: OptimizerKind,
    lr: f32,
    batch_size: usize,
    schedule: ScheduleKind,
    threads: usize,
    /// The memory the run may plan for (`None`: unknown, not checked).
    budget: Option<Budget>,
}

/// Trains `model` with `optimizer` on the training set, testing on the
/// test set after every epoch; ends with the summary ([`super::finish`]).
///
/// # Errors
/// If the ranks disagree, a step would not fit in memory, a checkpoint
/// cannot be read or written, or the loss stops being finite.
fn train(
    world: Option<&World>,
    args: &CommonArgs,
    recipe: &Recipe,
    chosen: &Chosen,
    model: &dyn Module,
    optimizer: &mut dyn Optimizer,
    (train_set, test_set): (&MnistSet, &MnistSet),
) -> Result<(), String> {
    let (epochs, batch_size, lr) = (chosen.epochs, chosen.batch_size, chosen.lr);
    // One process, or one rank of `mpiexec` (only rank 0 writes files).
    let mut args = args.clone();
    let mut ranks = Ranks::new(world, &mut args, model, train_set, batch_size, recipe.extra)?;
    let args = &args;
    let mut run = super::start(args, epochs, model, optimizer)?;
    if let Some(budget) = &chosen.budget {
        let data = (train_set, test_set, recipe.layout);
        memory::check_step(model, optimizer, data, batch_size, budget)?;
    }
    ember::tensor::memory::reset_peak(); // for the summary's peak_tensor_bytes
    ranks.broadcast(model);
    let batches = BatchConfig::new(batch_size)
        .shuffled(args.seed)
        .layout(recipe.layout);
    let batches = ranks.shard(batches);
    let schedule_kind = chosen.schedule;
    let total_steps = epochs * batches.batches_per_epoch(train_set.len());
    let schedule = schedule_kind.build(lr, total_steps);
    if !args.quiet {
        println!(
            "{} ({} parameters), {:?} lr {lr} ({} schedule), batch {batch_size}, {epochs} epochs, {}, seed {}",
            recipe.title,
            model.num_parameters(),
            chosen.optimizer,
            schedule_kind.name(),
            super::threads_label(chosen.threads),
            args.seed
        );
        if let Some(expected) = recipe.expected {
            println!("expected with the defaults: {expected}");
        }
    }
    if recipe.init_report {
        init_report(model, train_set, &batches, run.epoch);
    }
    let mut reporter = Reporter::new(args)?;
    // The other workers poll for work through the whole run instead of
    // sleeping between operations (waking one cost 40–90 µs a time).
    let mut test = None;
    ember::tensor::with_workers_awake(|| -> Result<(), String> {
        for epoch in run.epoch as usize..epochs {
            model.set_training(true);
            let local = ranks.local_len(train_set.len(), batch_size);
            let mut tracker = EpochTracker::new(local, epoch, epochs, lr, args);
            for (b, batch) in train_set.epoch(&batches, epoch as u64).enumerate() {
                // The training step, as in any PyTorch loop.
                let started = Instant::now();
                let global = super::global_batch(train_set.len(), batch_size, b);
                ranks.share(model, global); // this rank's rows of the global batch
                let step = run.next_step();
                optimizer.set_lr(schedule.lr(step.index));
                model.set_step(step); // dropout masks: f(seed, step, path)
                let logits = model.forward(&Var::constant(batch.images));
                let loss = cross_entropy_smoothed(
                    &logits,
                    &batch.labels,
                    args.label_smoothing,
                    Reduction::Mean,
                );
                optimizer.zero_grad();
                ranks.backward(&loss, batch.labels.len(), global);
                optimizer.step();
                let elapsed = started.elapsed();
                tracker.record(
                    loss.item(),
                    &logits.value(),
                    &batch.labels,
                    elapsed,
                    run.step,
                )?;
            }
            run.end_epoch();
            let evaluation = super::evaluate(model, test_set, recipe.layout);
            test = Some(evaluation);
            reporter.epoch(tracker.finish(evaluation), epochs)?;
            if let Some(path) = &args.save {
                super::save(path, model, optimizer, &run)?;
            }
        }
        Ok(())
    })?;
    let test = test.unwrap_or_else(|| super::evaluate(model, test_set, recipe.layout));
    if recipe.confusion && !args.quiet {
        println!("\nconfusion matrix on the test set (rows: true digit, columns: predicted)");
        print!("{}", confusion(model, test_set, recipe.layout));
    }
    super::finish(
        args,
        epochs,
        chosen.threads,
        reporter.history(),
        test,
        &ranks,
        model,
    );
    Ok(())
}

/// The network as built (or resumed), on the first batch it would train
/// on, dropout off so the report shows the network itself.
fn init_report(model: &dyn Module, train_set: &MnistSet, batches: &BatchConfig, epoch: u64) {
    if let Some(batch) = train_set.epoch(batches, epoch).next() {
        model.set_training(false);
        println!("{}", InitReport::new(model, &batch.images, &batch.labels));
        model.set_training(true);
    }
}

fn confusion(model: &dyn Module, set: &MnistSet, layout: Layout) -> ConfusionMatrix {
    model.set_training(false);
    let mut matrix = ConfusionMatrix::new(10);
    no_grad(|| {
        for batch in set.epoch(&BatchConfig::new(super::EVAL_BATCH).layout(layout), 0) {
            matrix.add(
                &model.forward(&Var::constant(batch.images)).value(),
                &batch.labels,
            );
        }
    });
    matrix
}
