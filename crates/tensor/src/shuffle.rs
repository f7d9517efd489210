//! Seeded permutations for shuffling a dataset each epoch, the same on every
//! machine and forever: one implementation for MNIST and for a user's data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The order of `len` examples in `epoch` of a run seeded with `seed`.
///
/// A pure function: the same `(len, seed, epoch)` gives the same permutation on
/// every machine, so a run resumed at epoch `e` sees exactly the batches it would
/// have seen. Each epoch uses its own ChaCha8 stream (`set_stream(epoch)`) of the
/// seed, so epochs are independent and none needs the ones before it.
///
/// ```
/// use ember_tensor::shuffle::permutation;
///
/// let p = permutation(10, 7, 0);
/// assert_eq!(p, permutation(10, 7, 0));
/// assert_ne!(p, permutation(10, 7, 1));
/// let mut sorted = p.clone();
/// sorted.sort();
/// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
/// ```
pub fn permutation(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..len).collect();
    shuffle(&mut order, &mut rng);
    order
}

/// Fisher–Yates from the last element down, each index drawn by
/// [`below`]. Written here rather than taken from `rand::seq` because rand
/// does not promise the same order across its major versions, and a seed
/// must name the same batches forever (this is the order rand 0.8 drew, so
/// runs from before the upgrade to rand 0.10 replay unchanged).
fn shuffle(order: &mut [usize], rng: &mut impl Rng) {
    for i in (1..order.len()).rev() {
        order.swap(i, below(rng, i + 1));
    }
}

/// A uniform index in `0..bound` (`bound ≥ 1`): the high half of a 32×32-bit
/// product, rejecting the few low halves that would bias it (Lemire's method
/// with a conservative zone, one `u32` per try); 64-bit for huge bounds.
fn below(rng: &mut impl Rng, bound: usize) -> usize {
    if let Ok(bound) = u32::try_from(bound) {
        let zone = (bound << bound.leading_zeros()).wrapping_sub(1);
        loop {
            let product = u64::from(rng.next_u32()) * u64::from(bound);
            if (product as u32) <= zone {
                return (product >> 32) as usize;
            }
        }
    }
    let bound = bound as u64;
    let zone = (bound << bound.leading_zeros()).wrapping_sub(1);
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) <= zone {
            return (product >> 64) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::permutation;

    #[test]
    fn the_shuffle_draws_the_order_rand_0_8_drew() {
        // Pinned from rand 0.8's `SliceRandom::shuffle` on the same stream,
        // checked over 300 (len, seed, epoch) triples when Ember moved to rand
        // 0.10: a seed must keep naming the same batches.
        assert_eq!(
            permutation(60_000, 7, 3)[..5],
            [18838, 24906, 28720, 59408, 45992]
        );
    }
}
