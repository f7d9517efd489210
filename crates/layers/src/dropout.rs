//! Inverted dropout.

use std::cell::{Cell, RefCell};

use ember_autograd::Var;
use ember_tensor::{Tensor, PARALLEL_THRESHOLD};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{BatchShare, Module};

/// Mask elements generated per task: a chunk (64 KiB of mask) costs tens of
/// µs, well above the cost of handing it to a thread.
const MASK_CHUNK: usize = 16 * 1024;

/// Inverted dropout: in training, zeroes each element with probability `p`
/// and scales the survivors by `1/(1 − p)`, so evaluation (where it is the
/// identity) needs no rescaling. Any shape → the same shape.
///
/// Masks come from its own seeded RNG; [`Module::reseed`] restarts it (the
/// training loops do so every epoch, which makes resumed runs exact).
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Dropout, Module};
/// use ember_tensor::Tensor;
///
/// let drop = Dropout::new(0.5, 7);
/// let x = Var::constant(Tensor::ones(&[1000]));
/// let y = drop.forward(&x).value().to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.set_training(false);
/// assert_eq!(drop.forward(&x).value().to_vec(), vec![1.0; 1000]);
/// ```
pub struct Dropout {
    p: f32,
    rng: RefCell<ChaCha8Rng>,
    training: Cell<bool>,
    share: Cell<BatchShare>,
}

impl Dropout {
    /// Dropout with probability `p` of zeroing, masks seeded by `seed`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1)` (NaN included), with a message naming the
    /// function and the value.
    #[track_caller]
    pub fn new(p: f32, seed: u64) -> Dropout {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout::new: probability {p} is not in [0, 1)"
        );
        Dropout {
            p,
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
            training: Cell::new(true),
            share: Cell::new(BatchShare::default()),
        }
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Var) -> Var {
        if !self.training.get() || self.p == 0.0 {
            return input.clone();
        }
        let shape = input.shape();
        let scale = 1.0 / (1.0 - self.p);
        // Keep an element when a uniform u32 falls below (1 − p)·2³²: one
        // integer compare per element on bulk-generated random words.
        let threshold = ((1.0 - f64::from(self.p)) * 4_294_967_296.0) as u64;
        let mut mask = vec![0.0f32; shape.iter().product()];
        let mut rng = self.rng.borrow_mut();
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
        let first_word = rng.get_word_pos() + skip;
        let base = rng.clone();
        // Element i takes word `first_word + i` of the stream, whichever
        // thread generates it: chunks jump to their own position, so the
        // mask is the same as one sequential fill for any thread count.
        let fill = |(chunk, out): (usize, &mut [f32])| {
            let mut stream = base.clone();
            stream.set_word_pos(first_word + (chunk * MASK_CHUNK) as u128);
            let mut words = [0u32; 1024];
            for part in out.chunks_mut(words.len()) {
                let words = &mut words[..part.len()];
                stream.fill(words);
                for (m, &w) in part.iter_mut().zip(words.iter()) {
                    *m = if u64::from(w) < threshold { scale } else { 0.0 };
                }
            }
        };
        if mask.len() >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1 {
            mask.par_chunks_mut(MASK_CHUNK).enumerate().for_each(fill);
        } else {
            mask.chunks_mut(MASK_CHUNK).enumerate().for_each(fill);
        }
        rng.set_word_pos(first_word - skip + words_used);
        input.dropout_with_mask(&Tensor::from_vec(mask, &shape))
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = ChaCha8Rng::seed_from_u64(seed);
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
    use super::*;

    /// The mask of `count` consecutive forwards over `n` ones, as one sequential
    /// stream of words would give it: word i of the seed's stream decides element i.
    fn sequential_masks(p: f32, seed: u64, n: usize, count: usize) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
        let n = PARALLEL_THRESHOLD + 123;
        let want = sequential_masks(0.3, 11, n, 2);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| {
                let drop = Dropout::new(0.3, 11);
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
    fn keeps_about_one_minus_p_and_reseeds() {
        let drop = Dropout::new(0.2, 3);
        let x = Var::constant(Tensor::ones(&[50_000]));
        let first = drop.forward(&x).value().to_vec();
        let kept = first.iter().filter(|&&v| v != 0.0).count() as f64 / 50_000.0;
        assert!((kept - 0.8).abs() < 0.01, "kept {kept}");
        assert_ne!(drop.forward(&x).value().to_vec(), first);
        drop.reseed(3);
        assert_eq!(drop.forward(&x).value().to_vec(), first);
    }

    #[test]
    fn shares_of_a_batch_draw_the_rows_of_the_global_masks() {
        // Two steps of a (5, 3) batch, whole and as rows 0..2 and 2..5.
        let whole = Dropout::new(0.4, 9);
        let x = Var::constant(Tensor::ones(&[5, 3]));
        let want: Vec<Vec<f32>> = (0..2).map(|_| whole.forward(&x).value().to_vec()).collect();
        for (offset, rows) in [(0, 2), (2, 3)] {
            let part = Dropout::new(0.4, 9);
            part.set_batch_share(BatchShare { offset, global: 5 });
            let x = Var::constant(Tensor::ones(&[rows, 3]));
            for step in &want {
                let got = part.forward(&x).value().to_vec();
                assert_eq!(got, step[offset * 3..(offset + rows) * 3]);
            }
        }
    }
}
