//! Refusing a run that cannot fit in memory before it starts. A batch size
//! or a layer width that would need more memory than the machine has gets an
//! error naming the option, the estimate and what would fit, instead of an
//! abort from the allocator ("memory allocation of 2211840060 bytes failed":
//! `mnist_cnn --batch-size 60000` under a 12 GB limit) or the kernel's
//! out-of-memory killer half-way through an epoch.
//!
//! The budget caps what the run's tensors hold at once, parameters and
//! optimizer state included: `EMBER_MEMORY_BUDGET` (bytes, or with a K, M,
//! G or T suffix) where set, else the memory Linux reports available as the
//! run starts (`MemAvailable`, lowered to what a cgroup's limit leaves).
//! Elsewhere nothing is checked. The summary line of `--json` reports what
//! the tensors held at most (`peak_tensor_bytes`).

use ember::autograd::{no_grad, Var};
use ember::layers::loss::{cross_entropy_smoothed, Reduction};
use ember::layers::optim::Optimizer;
use ember::layers::Module;
use ember::mnist::{BatchConfig, Layout, MnistSet};
use ember::tensor::memory;

use super::EVAL_BATCH;

/// The environment variable that sets the budget instead of the system.
pub const BUDGET_ENV: &str = "EMBER_MEMORY_BUDGET";

/// Images in the two probe steps a batch's memory is extrapolated from.
const PROBE_IMAGES: [usize; 2] = [4, 8];

/// The probes run in evaluation mode (a training-mode forward would move a
/// batch norm's running statistics); a training step keeps more per image
/// (dropout's masks, the loss's saved probabilities). Measured through the
/// same counters, a training epoch's peak took per image 1.0× what the
/// probes did for the classic MLP (batches of 2,048 and 8,192), 1.19× for
/// the convnet and 1.11× for the ResNet (512); this margin covers that and
/// what the counters do not see (buffers kept for reuse, the GEMM's packing
/// scratch).
const TRAINING_MARGIN: f64 = 1.5;

/// The most bytes the run's tensors may hold at once, and where that
/// figure comes from.
pub struct Budget {
    bytes: u64,
    /// "this machine has 21.9 GiB available", "EMBER_MEMORY_BUDGET allows 64.0 MiB".
    said: String,
}

impl Budget {
    /// The budget from `EMBER_MEMORY_BUDGET`, else from the system (`None`
    /// where it says nothing: not Linux, or no `/proc/meminfo`).
    ///
    /// # Errors
    /// If `EMBER_MEMORY_BUDGET` is set but is not a size.
    pub fn from_env() -> Result<Option<Budget>, String> {
        match std::env::var(BUDGET_ENV) {
            Ok(text) => {
                let bytes = parse_size(&text).ok_or_else(|| {
                    format!("{BUDGET_ENV}={text:?}: expected a size in bytes, such as 512M or 8G")
                })?;
                let said = format!("{BUDGET_ENV} allows {}", human(bytes));
                Ok(Some(Budget { bytes, said }))
            }
            Err(_) => Ok(available_bytes().map(|free| Budget {
                // What tensors hold already is not available any more.
                bytes: free + memory::allocated_bytes() as u64,
                said: format!("this machine has {} available", human(free)),
            })),
        }
    }
}

/// Refuses a model of `parameters` parameters (set by `option`, such as
/// `--hidden 65536,65536`) whose values, gradients and `slots` optimizer
/// buffers per parameter alone would not fit the budget. Run before
/// building it: the weights alone can be more than the machine has.
///
/// # Errors
/// The refusal, naming `option`.
pub fn check_parameters(
    option: &str,
    parameters: u64,
    slots: u64,
    budget: &Budget,
) -> Result<(), String> {
    let need = parameters.saturating_mul(4 * (2 + slots));
    if need <= budget.bytes {
        return Ok(());
    }
    Err(format!(
        "{option}: the model has {parameters} parameters, which with their gradients and the \
         optimizer's state need about {}, but {}",
        human(need),
        budget.said
    ))
}

/// Refuses a run whose training steps of `batch_size` images (as set by
/// `--batch-size` or the recipe; at most the training set) or evaluations
/// ([`EVAL_BATCH`] test images at a time) would not fit the budget. Each is
/// estimated from two small probes of `model` (in evaluation mode; the
/// training step's a forward and backward pass, the evaluation's a forward
/// pass without gradients) through the tensor memory counters
/// ([`memory`]), and extrapolated linearly in the batch; the refusal of a
/// training step says the largest batch that would fit.
///
/// The probes leave the model in training mode, its gradients zeroed (the
/// buffers kept, as after any step), and nothing else changed: the same
/// seed trains the same weights with or without them.
///
/// # Errors
/// The refusal: of the evaluation (which no batch size changes), else
/// naming `--batch-size`.
pub fn check_step(
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    (train_set, test_set, layout): (&MnistSet, &MnistSet, Layout),
    batch_size: usize,
    budget: &Budget,
) -> Result<(), String> {
    model.set_training(false);
    // A first step makes the gradients' buffers, which every later step
    // reuses, so the measured ones differ only in their batches.
    train_probe(model, optimizer, train_set, layout, PROBE_IMAGES[0]);
    let base = memory::allocated_bytes() as f64;
    let train = Growth::measure(train_set.len(), |images| {
        train_probe(model, optimizer, train_set, layout, images)
    });
    let evaluation = Growth::measure(test_set.len(), |images| {
        let config = BatchConfig::new(images).layout(layout);
        if let Some(batch) = test_set.epoch(&config, 0).next() {
            no_grad(|| model.forward(&Var::constant(batch.images)));
        }
    });
    model.set_training(true);

    let test_batch = EVAL_BATCH.min(test_set.len());
    let need = base + evaluation.bytes(test_batch);
    if need > budget.bytes as f64 {
        return Err(format!(
            "evaluating {test_batch} test images at a time would need about {} ({} an image), \
             but {}",
            human(need as u64),
            human(evaluation.per_image as u64),
            budget.said
        ));
    }
    let batch = batch_size.min(train_set.len());
    let need = base + train.bytes(batch);
    if need > budget.bytes as f64 {
        let fits = match train.images_within(budget.bytes as f64 - base) {
            0 => "not even one image would fit".to_string(),
            n => format!("--batch-size {n} or less would fit"),
        };
        return Err(format!(
            "--batch-size {batch_size}: a training step on {batch} images would need about {} \
             ({} an image), but {}; {fits}",
            human(need as u64),
            human(train.per_image as u64),
            budget.said
        ));
    }
    Ok(())
}

/// How the tensors' peak grows with a batch: what the smaller probe took
/// above what was held before it, and each image more (with
/// [`TRAINING_MARGIN`]).
struct Growth {
    images: usize,
    bytes: f64,
    per_image: f64,
}

impl Growth {
    /// Runs `probe` on the two [`PROBE_IMAGES`] batches (at most `len`).
    fn measure(len: usize, probe: impl Fn(usize)) -> Growth {
        let [small, large] = PROBE_IMAGES.map(|n| n.min(len));
        let base = memory::allocated_bytes();
        let peak_above = |images: usize| {
            memory::reset_peak();
            probe(images);
            memory::peak_bytes().saturating_sub(base) as f64
        };
        let (at_small, at_large) = (peak_above(small), peak_above(large));
        let per_image = match large - small {
            0 => 0.0,
            more => (at_large - at_small).max(0.0) / more as f64 * TRAINING_MARGIN,
        };
        Growth {
            images: small,
            bytes: at_small,
            per_image,
        }
    }

    /// The bytes a batch of `images` takes above what was held before it.
    fn bytes(&self, images: usize) -> f64 {
        self.bytes + self.per_image * images.saturating_sub(self.images) as f64
    }

    /// The most images whose batch takes at most `bytes`.
    fn images_within(&self, bytes: f64) -> usize {
        let images = self.images as f64 + (bytes - self.bytes) / self.per_image.max(1.0);
        images.max(0.0).floor() as usize
    }
}

/// One forward and backward pass on the first `images` training images; the
/// gradients are zeroed after it.
fn train_probe(
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    set: &MnistSet,
    layout: Layout,
    images: usize,
) {
    let config = BatchConfig::new(images).layout(layout);
    if let Some(batch) = set.epoch(&config, 0).next() {
        let logits = model.forward(&Var::constant(batch.images));
        cross_entropy_smoothed(&logits, &batch.labels, 0.0, Reduction::Mean).backward();
    }
    optimizer.zero_grad();
}

/// What Linux says this process could still take: `MemAvailable`, or less
/// where a cgroup (v2 or v1) limits this process's group to less.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())?
        .saturating_mul(1024);
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let left_in_group = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    .into_iter()
    .find_map(|(limit, used)| Some(read(limit)?.saturating_sub(read(used)?)));
    Some(left_in_group.map_or(available, |left| left.min(available)))
}

/// Bytes from "123", "512K", "64M", "8G" (powers of 1024; a trailing "B" or
/// "iB" allowed: "8GiB").
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_suffix("iB")
        .or_else(|| text.strip_suffix('B'))
        .unwrap_or(text);
    let (digits, shift) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 10),
        (at, 'm' | 'M') => (&text[..at], 20),
        (at, 'g' | 'G') => (&text[..at], 30),
        (at, 't' | 'T') => (&text[..at], 40),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// "1.5 GiB", "640.0 MiB", "12.0 KiB", "900 B".
pub fn human(bytes: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    match units.into_iter().find(|&(size, _)| bytes >= size) {
        Some((size, unit)) => format!("{:.1} {unit}", bytes as f64 / size as f64),
        None => format!("{bytes} B"),
    }
}
