//! Inverted dropout.

use std::cell::Cell;

use ember_autograd::{DropoutMask, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{BatchShare, LayerKind, Module, Step};

/// Mask elements generated per task: a chunk (64 KiB of mask) costs tens of
/// µs, well above the cost of handing it to a thread.
const MASK_CHUNK: usize = 16 * 1024;

/// Inverted dropout: in training, zeroes each element with probability `p`
/// and scales the survivors by `1/(1 − p)`, so evaluation (where it is the
/// identity) needs no rescaling. Any shape → the same shape.
///
/// A mask is a pure function of the [`Step`] the model was last given
/// ([`Module::set_step`]: the run's seed, the step's index, this layer's
/// path in the model) and of how many elements this layer has already
/// masked in that step: element `i` takes word `i` of a ChaCha8 stream keyed
/// by (seed, path) and numbered by the step. So a resumed run draws the same
/// masks as one that never stopped, on any thread count, and two dropout
/// layers of one model never share masks.
///
/// ```
/// use ember_autograd::{DropoutMask, Var};
/// use ember_layers::{Dropout, Module, Step};
/// use ember_tensor::Tensor;
///
/// let drop = Dropout::new(0.5);
/// drop.set_step(Step::new(7, 0));
/// let x = Var::constant(Tensor::ones(&[1000]));
/// let y = drop.forward(&x).value().to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.set_training(false);
/// assert_eq!(drop.forward(&x).value().to_vec(), vec![1.0; 1000]);
/// ```
pub struct Dropout {
    p: f32,
    step: Cell<Step>,
    /// Words of the step's stream already used (by earlier forwards in it).
    words_used: Cell<u128>,
    training: Cell<bool>,
    share: Cell<BatchShare>,
}

impl Dropout {
    /// Dropout with probability `p` of zeroing.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1)` (NaN included), with a message naming the
    /// function and the value.
    #[track_caller]
    pub fn new(p: f32) -> Dropout {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout::new: probability {p} is not in [0, 1)"
        );
        Dropout {
            p,
            step: Cell::new(Step::default()),
            words_used: Cell::new(0),
            training: Cell::new(true),
            share: Cell::new(BatchShare::default()),
        }
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f32 {
        self.p
    }
}

/// The ChaCha8 stream of `step`: keyed by the run's seed and the layer's
/// path, numbered by the step's index.
fn mask_stream(step: Step) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(step.seed ^ splitmix64(step.path)));
    rng.set_stream(step.index);
    rng
}

/// SplitMix64's finalizer: a bijective mix, so distinct (seed, path) pairs
/// give unrelated keys.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Dropout {
    /// Draws the mask this layer's next forward would apply to an input of
    /// `shape` and moves past its words, as that forward does (a forward
    /// after it draws the next mask); `None` where the forward is the
    /// identity (evaluation, or `p = 0`). This is how the layer before a
    /// dropout applies the mask itself ([`Module::forward_relu_dropout`]).
    ///
    /// ```
    /// use ember_layers::{Dropout, Module, Step};
    ///
    /// let drop = Dropout::new(0.25);
    /// drop.set_step(Step::new(1, 0));
    /// let mask = drop.mask(&[4, 100]).expect("training, p > 0");
    /// assert_eq!(mask.len(), 400);
    /// drop.set_training(false);
    /// assert!(drop.mask(&[4, 100]).is_none());
    /// ```
    ///
    /// # Panics
    /// If a batch share was set ([`Module::set_batch_share`]) that `shape`'s
    /// rows do not fit; the message names the rows and the global batch.
    pub fn mask(&self, shape: &[usize]) -> Option<DropoutMask> {
        if !self.training.get() || self.p == 0.0 {
            return None;
        }
        let scale = 1.0 / (1.0 - self.p);
        // Keep an element when a uniform u32 falls below (1 − p)·2³²: one
        // integer compare per element on bulk-generated random words. With
        // 0 < p < 1 the threshold is below 2³², so it fits a u32 and the
        // compare stays in 32 bits (16 lanes a vector, not 8 as in u64).
        let threshold = ((1.0 - f64::from(self.p)) * 4_294_967_296.0) as u64;
        let threshold = u32::try_from(threshold).expect("0 < p < 1 puts it below 2³²");
        // One byte per element, applied by the forward and backward loops
        // (a tensor of scale and 0 was four times the memory to write and
        // read back twice).
        let mut keep = vec![0u8; shape.iter().product()];
        let mask = keep.as_mut_slice();
        let rng = mask_stream(self.step.get());
        // One word per element; a share of a global batch starts at its
        // first row's words and the stream moves past the whole batch.
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let per_row = (mask.len() / rows) as u128;
        let share = self.share.get();
        let (skip, words_used) = if share.global == 0 {
            (0, mask.len() as u128)
        } else {
            assert!(
                share.offset + rows <= share.global,
                "Dropout: rows {}..{} of a global batch of {}",
                share.offset,
                share.offset + rows,
                share.global
            );
            (
                share.offset as u128 * per_row,
                share.global as u128 * per_row,
            )
        };
        let first_word = self.words_used.get() + skip;
        // Element i takes word `first_word + i` of the stream, whichever
        // thread generates it: each chunk starts at its own position, so the
        // mask is the same as one sequential fill for any thread count.
        let fill = |(chunk, out): (usize, &mut [u8])| {
            let first = first_word + (chunk * MASK_CHUNK) as u128;
            ember_tensor::keep_mask(&rng, first, threshold, out);
        };
        if ember_tensor::worth_splitting(mask.len()) {
            mask.par_chunks_mut(MASK_CHUNK).enumerate().for_each(fill);
        } else {
            mask.chunks_mut(MASK_CHUNK).enumerate().for_each(fill);
        }
        self.words_used.set(first_word - skip + words_used);
        Some(DropoutMask::new(keep, scale))
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Var) -> Var {
        match self.mask(&input.shape()) {
            Some(mask) => input.dropout(mask),
            None => input.clone(),
        }
    }

    fn as_dropout(&self) -> Option<&Dropout> {
        Some(self)
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn is_training(&self) -> Option<bool> {
        Some(self.training.get())
    }

    fn set_step(&self, step: Step) {
        self.step.set(step);
        self.words_used.set(0);
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }

    fn set_batch_share(&self, share: BatchShare) {
        self.share.set(share);
    }

    fn describe(&self) -> String {
        format!("Dropout(p = {})", self.p)
    }
}

#[cfg(test)]
mod tests {
    use ember_tensor::Tensor;
    use rand::RngExt;

    use super::*;

    /// The masks of `count` consecutive forwards over `n` ones in one step, as
    /// one sequential stream of words gives them: word i decides element i.
    fn sequential_masks(p: f32, step: Step, n: usize, count: usize) -> Vec<Vec<f32>> {
        let mut rng = mask_stream(step);
        let threshold = ((1.0 - f64::from(p)) * 4_294_967_296.0) as u64;
        (0..count)
            .map(|_| {
                let mut words = vec![0u32; n];
                rng.fill(words.as_mut_slice());
                let keep = |w: u32| u64::from(w) < threshold;
                words
                    .into_iter()
                    .map(|w| if keep(w) { 1.0 / (1.0 - p) } else { 0.0 })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn masks_are_one_sequential_stream_for_any_thread_count() {
        // Above the parallel threshold and not a multiple of the chunk.
        let n = ember_tensor::PARALLEL_THRESHOLD + 123;
        let step = Step::new(11, 5).child("3");
        let want = sequential_masks(0.3, step, n, 2);
        for threads in [1, 2] {
            let got = ember_tensor::on_threads(threads, || {
                let drop = Dropout::new(0.3);
                drop.set_step(step);
                let x = Var::constant(Tensor::ones(&[n]));
                [
                    drop.forward(&x).value().to_vec(),
                    drop.forward(&x).value().to_vec(),
                ]
            });
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                assert!(got == want, "forward {i} on {threads} threads");
            }
        }
    }

    #[test]
    fn masks_are_a_function_of_seed_step_and_path() {
        let x = Var::constant(Tensor::ones(&[50_000]));
        let mask = |step: Step| {
            let drop = Dropout::new(0.2);
            drop.set_step(step);
            drop.forward(&x).value().to_vec()
        };
        let base = Step::new(3, 10).child("fc");
        let first = mask(base);
        let kept = first.iter().filter(|&&v| v != 0.0).count() as f64 / 50_000.0;
        assert!((kept - 0.8).abs() < 0.01, "kept {kept}");
        assert_eq!(mask(base), first, "the same step draws the same mask");
        for other in [
            Step::new(4, 10).child("fc"),
            Step::new(3, 11).child("fc"),
            Step::new(3, 10).child("fd"),
        ] {
            assert_ne!(mask(other), first, "{other:?}");
        }
    }

    #[test]
    fn shares_of_a_batch_draw_the_rows_of_the_global_masks() {
        // A (5, 3) batch, whole and as rows 0..2 and 2..5, over two steps.
        let x = Var::constant(Tensor::ones(&[5, 3]));
        for index in [0, 1] {
            let whole = Dropout::new(0.4);
            whole.set_step(Step::new(9, index));
            let want = whole.forward(&x).value().to_vec();
            for (offset, rows) in [(0, 2), (2, 3)] {
                let part = Dropout::new(0.4);
                part.set_step(Step::new(9, index));
                part.set_batch_share(BatchShare { offset, global: 5 });
                let x = Var::constant(Tensor::ones(&[rows, 3]));
                let got = part.forward(&x).value().to_vec();
                assert_eq!(got, want[offset * 3..(offset + rows) * 3]);
            }
        }
    }
}
