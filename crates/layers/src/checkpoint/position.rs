//! Where a run stands: the position a checkpoint stores besides tensors
//! (epoch, step, seed, random generators), which is also the loop's
//! bookkeeping.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;

use crate::Step;

/// Where a run stands: what a checkpoint stores besides tensors.
///
/// It is also the loop's bookkeeping, so the position saved is the one the
/// run used: [`TrainingState::next_step`] hands out each step's
/// [`Step`] (for [`Module::set_step`](crate::Module::set_step): dropout's masks) and counts it, and
/// [`TrainingState::end_epoch`] counts epochs.
///
/// ```
/// use ember_layers::checkpoint::TrainingState;
///
/// let mut run = TrainingState::new(42);
/// for _epoch in 0..2 {
///     for _batch in 0..3 {
///         let step = run.next_step(); // model.set_step(step) before the forward
///         assert_eq!(step.seed, 42);
///     }
///     run.end_epoch(); // save_checkpoint(path, &model, Some(&opt), &run) here
/// }
/// assert_eq!((run.epoch, run.step), (2, 6));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrainingState {
    /// The run's seed (what [`Step::seed`] carries); 0 in files saved
    /// before it was stored.
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// The run's random generators, by name (for example `"shuffle"`).
    pub rngs: BTreeMap<String, RngState>,
    /// Anything else the caller wants to keep (stored as `extra.<key>`).
    pub extra: BTreeMap<String, String>,
}

impl TrainingState {
    /// The start of a run seeded with `seed`: epoch 0, step 0.
    pub fn new(seed: u64) -> TrainingState {
        TrainingState {
            seed,
            ..TrainingState::default()
        }
    }

    /// The step about to be computed, as the model sees it (pass it to
    /// [`Module::set_step`](crate::Module::set_step) before the forward), and counts it as done.
    pub fn next_step(&mut self) -> Step {
        let step = Step::new(self.seed, self.step);
        self.step += 1;
        step
    }

    /// Counts an epoch as completed.
    pub fn end_epoch(&mut self) {
        self.epoch += 1;
    }
}

/// The exact position of a [`ChaCha8Rng`]: its seed, stream and word
/// position. [`RngState::to_rng`] rebuilds a generator that continues with
/// the very numbers the saved one would have produced next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    /// The 32-byte key.
    pub seed: [u8; 32],
    /// The stream (nonce).
    pub stream: u64,
    /// How many 32-bit words have been consumed.
    pub word_pos: u128,
}

impl RngState {
    /// Captures a generator's position.
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator at the captured position.
    pub fn to_rng(&self) -> ChaCha8Rng {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}
