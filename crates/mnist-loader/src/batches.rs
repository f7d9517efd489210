//! Feeding training: seeded epoch permutations and `u8` → `f32` batch conversion.
//!
//! Nothing here copies the whole set: an epoch is a permutation of indices
//! (8 bytes an example), and each batch converts only its own images, through
//! a 256-entry lookup table so that standardising costs the same as scaling.

use ember_tensor::Tensor;

use crate::mnist::MnistSet;

/// The shape each batch of images takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// `(batch, rows × cols)`, i.e. `(batch, 784)`: for fully connected nets.
    #[default]
    Flat,
    /// `(batch, 1, rows, cols)`, i.e. `(batch, 1, 28, 28)`: for convolutions (NCHW).
    Image,
}

/// How pixel bytes become `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Scaling {
    /// `p / 255`, in `[0, 1]`.
    #[default]
    Unit,
    /// `(p / 255 - mean) / std`.
    Standardize {
        /// Mean of the `[0, 1]` pixels.
        mean: f32,
        /// Standard deviation of the `[0, 1]` pixels.
        std: f32,
    },
}

impl Scaling {
    /// MNIST's training-set statistics (mean 0.1307, std 0.3081), as in the PyTorch examples.
    pub const MNIST_STANDARD: Scaling = Scaling::Standardize {
        mean: 0.1307,
        std: 0.3081,
    };

    /// The `f32` value of every possible byte.
    pub fn table(self) -> [f32; 256] {
        let mut table = [0.0f32; 256];
        for (byte, slot) in table.iter_mut().enumerate() {
            let unit = byte as f32 / 255.0;
            *slot = match self {
                Scaling::Unit => unit,
                Scaling::Standardize { mean, std } => (unit - mean) / std,
            };
        }
        table
    }
}

/// The order of the examples in an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// 0, 1, 2, … every epoch (for evaluation).
    #[default]
    Sequential,
    /// A fresh permutation each epoch, a pure function of `(seed, epoch)`; see [`permutation`].
    Shuffled {
        /// The seed of the run.
        seed: u64,
    },
}

/// Everything that decides the batches of an epoch.
///
/// ```
/// use ember_mnist::{BatchConfig, Layout, Scaling};
///
/// let config = BatchConfig::new(64)
///     .shuffled(42)
///     .drop_last(true)
///     .layout(Layout::Image)
///     .scaling(Scaling::MNIST_STANDARD);
/// assert_eq!(config.batch_size, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    /// Examples per batch (the last one may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// Sequential or seeded shuffled.
    pub order: Order,
    /// Whether to skip a final incomplete batch.
    pub drop_last: bool,
    /// Flat `(batch, 784)` or image `(batch, 1, 28, 28)`.
    pub layout: Layout,
    /// `[0, 1]` or standardised.
    pub scaling: Scaling,
    /// Which share of every batch this process takes (data-parallel
    /// training); the whole batch by default.
    pub shard: Shard,
}

/// One process's share of every batch in data-parallel training.
///
/// Every process computes the same epoch permutation and the same global
/// batches; process `rank` of `world` keeps rows
/// `len·rank/world .. len·(rank+1)/world` of each (see [`share`]), so the
/// batch size stays the global one and the shares differ by at most one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// This process, `0..world`.
    pub rank: usize,
    /// How many processes share each batch.
    pub world: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { rank: 0, world: 1 }
    }
}

/// The rows of a batch of `len` that process `rank` of `world` takes.
///
/// ```
/// use ember_mnist::batches::share;
///
/// assert_eq!(share(128, 0, 2), 0..64);
/// assert_eq!(share(128, 1, 2), 64..128);
/// assert_eq!(share(5, 2, 3), 3..5); // 1, 2, 2 rows
/// ```
///
/// # Panics
/// If `rank >= world`.
#[track_caller]
pub fn share(len: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    assert!(rank < world, "share: rank {rank} of a world of {world}");
    (len * rank / world)..(len * (rank + 1) / world)
}

impl BatchConfig {
    /// Sequential batches of `batch_size`, last one kept, flat, in `[0, 1]`.
    ///
    /// # Panics
    /// If `batch_size == 0`, with a message naming the function and the value.
    #[track_caller]
    pub fn new(batch_size: usize) -> BatchConfig {
        assert!(
            batch_size > 0,
            "BatchConfig::new: batch size {batch_size}, must be at least 1"
        );
        BatchConfig {
            batch_size,
            order: Order::Sequential,
            drop_last: false,
            layout: Layout::Flat,
            scaling: Scaling::Unit,
            shard: Shard::default(),
        }
    }

    /// Keep only process `rank`'s share of every batch, of `world` processes.
    ///
    /// # Panics
    /// If `rank >= world`.
    #[track_caller]
    pub fn shard(mut self, rank: usize, world: usize) -> BatchConfig {
        assert!(
            rank < world,
            "BatchConfig::shard: rank {rank} of a world of {world}"
        );
        self.shard = Shard { rank, world };
        self
    }

    /// Shuffle every epoch with this seed.
    pub fn shuffled(mut self, seed: u64) -> BatchConfig {
        self.order = Order::Shuffled { seed };
        self
    }

    /// Skip (`true`) or keep (`false`) a final incomplete batch.
    pub fn drop_last(mut self, drop_last: bool) -> BatchConfig {
        self.drop_last = drop_last;
        self
    }

    /// Choose the image layout.
    pub fn layout(mut self, layout: Layout) -> BatchConfig {
        self.layout = layout;
        self
    }

    /// Choose the pixel scaling.
    pub fn scaling(mut self, scaling: Scaling) -> BatchConfig {
        self.scaling = scaling;
        self
    }

    /// Number of batches an epoch of `len` examples yields.
    pub fn batches_per_epoch(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }
}

/// One batch: images as `f32` and their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(batch, 784)` or `(batch, 1, 28, 28)`, as the [`Layout`] says.
    pub images: Tensor,
    /// The class of each image, `0..10`.
    pub labels: Vec<usize>,
}

/// The order of `len` examples in `epoch` of a run seeded with `seed`: the
/// one implementation every Ember dataset shuffles with (see
/// [`ember_tensor::shuffle::permutation`]).
pub use ember_tensor::shuffle::permutation;

impl MnistSet {
    /// The batches of one epoch, as `config` describes them.
    ///
    /// ```
    /// use ember_mnist::{BatchConfig, Batch, Layout, MnistSet};
    ///
    /// // Ten tiny 2×2 "images" whose pixels equal their label × 20.
    /// let labels: Vec<u8> = (0..10).collect();
    /// let pixels: Vec<u8> = labels.iter().flat_map(|&l| [l * 20; 4]).collect();
    /// let set = MnistSet::from_parts(pixels, labels, 2, 2);
    ///
    /// let config = BatchConfig::new(4).shuffled(1);
    /// let batches: Vec<Batch> = set.epoch(&config, 0).collect();
    /// assert_eq!(batches.len(), 3); // 4 + 4 + 2
    /// assert_eq!(batches[0].images.shape(), &[4, 4]);
    /// assert_eq!(batches[2].images.shape(), &[2, 4]);
    /// for batch in &batches {
    ///     for (row, &label) in batch.labels.iter().enumerate() {
    ///         let pixel = batch.images.get(&[row, 0]);
    ///         assert_eq!(pixel, (label * 20) as f32 / 255.0); // images stay with their labels
    ///     }
    /// }
    ///
    /// let image = set.epoch(&config.layout(Layout::Image).drop_last(true), 0);
    /// assert_eq!(image.len(), 2);
    /// ```
    pub fn epoch(&self, config: &BatchConfig, epoch: u64) -> Batches<'_> {
        let order = match config.order {
            Order::Sequential => (0..self.len()).collect(),
            Order::Shuffled { seed } => permutation(self.len(), seed, epoch),
        };
        Batches {
            set: self,
            order,
            next: 0,
            end: config.batches_per_epoch(self.len()),
            batch_size: config.batch_size,
            layout: config.layout,
            table: config.scaling.table(),
            shard: config.shard,
        }
    }

    /// The batch made of the examples at `indices`, in that order.
    ///
    /// Together with [`permutation`] this rebuilds any batch of any epoch
    /// without iterating, e.g. to resume training mid-epoch.
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn batch(&self, indices: &[usize], layout: Layout, scaling: Scaling) -> Batch {
        convert(self, indices, layout, &scaling.table())
    }
}

/// The batches of one epoch over an [`MnistSet`]; made by [`MnistSet::epoch`].
///
/// Skipping (`nth`, `skip`) costs nothing: only yielded batches are converted.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    set: &'a MnistSet,
    order: Vec<usize>,
    next: usize,
    end: usize,
    batch_size: usize,
    layout: Layout,
    table: [f32; 256],
    shard: Shard,
}

impl Batches<'_> {
    /// The order of the examples in this epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The example indices of batch `b` of this epoch (whether or not it was yielded yet).
    ///
    /// # Panics
    /// If `b` is not below the number of batches in the epoch.
    #[track_caller]
    pub fn indices_of(&self, b: usize) -> &[usize] {
        assert!(
            b < self.end,
            "Batches::indices_of: batch {b} of an epoch of {}",
            self.end
        );
        let start = b * self.batch_size;
        let stop = (start + self.batch_size).min(self.order.len());
        &self.order[start..stop]
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let global = self.indices_of(self.next);
        let mine = share(global.len(), self.shard.rank, self.shard.world);
        let batch = convert(self.set, &global[mine], self.layout, &self.table);
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }

    fn nth(&mut self, n: usize) -> Option<Batch> {
        self.next = self.next.saturating_add(n).min(self.end);
        self.next()
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// Gathers the images at `indices` through `table` into one tensor.
#[track_caller]
fn convert(set: &MnistSet, indices: &[usize], layout: Layout, table: &[f32; 256]) -> Batch {
    let per_image = set.pixels_per_image();
    let mut data = Vec::with_capacity(indices.len() * per_image);
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        data.extend(set.image(i).iter().map(|&p| table[p as usize]));
        labels.push(set.label(i));
    }
    let images = match layout {
        Layout::Flat => Tensor::from_vec(data, &[indices.len(), per_image]),
        Layout::Image => Tensor::from_vec(data, &[indices.len(), 1, set.rows(), set.cols()]),
    };
    Batch { images, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 2×3 images whose pixels encode their index, labels `index % 10`.
    fn toy(n: usize) -> MnistSet {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = (0..n)
            .flat_map(|i| (0..6).map(move |k| (i * 6 + k) as u8))
            .collect();
        MnistSet::from_parts(pixels, labels, 2, 3)
    }

    #[test]
    fn sequential_epoch_covers_everything_in_order() {
        let set = toy(10);
        let batches: Vec<Batch> = set.epoch(&BatchConfig::new(3), 5).collect();
        assert_eq!(batches.len(), 4);
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, (0..10).collect::<Vec<_>>());
        assert_eq!(batches[3].images.shape(), &[1, 6]);
        assert_eq!(batches[1].images.get(&[0, 2]), (3 * 6 + 2) as f32 / 255.0);
    }

    #[test]
    fn shuffled_epochs_are_permutations_and_reproducible() {
        let set = toy(23);
        let config = BatchConfig::new(5).shuffled(99);
        let seen = |epoch| -> Vec<usize> {
            set.epoch(&config, epoch)
                .flat_map(|b| {
                    // Recover the example index from its first pixel.
                    (0..b.labels.len())
                        .map(|r| (b.images.get(&[r, 0]) * 255.0).round() as usize / 6)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let e0 = seen(0);
        assert_eq!(e0, permutation(23, 99, 0));
        assert_eq!(e0, seen(0), "same seed and epoch, same order");
        assert_ne!(e0, seen(1), "a new epoch reshuffles");
        let mut sorted = e0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
        assert_ne!(permutation(23, 98, 0), e0, "the seed matters");
    }

    #[test]
    fn drop_last_and_counts() {
        let set = toy(10);
        let config = BatchConfig::new(4).drop_last(true);
        assert_eq!(config.batches_per_epoch(10), 2);
        let sizes: Vec<usize> = set.epoch(&config, 0).map(|b| b.labels.len()).collect();
        assert_eq!(sizes, vec![4, 4]);
        assert_eq!(set.epoch(&BatchConfig::new(4), 0).len(), 3);
        assert_eq!(toy(0).epoch(&BatchConfig::new(4), 0).count(), 0);
        assert_eq!(toy(3).epoch(&config, 0).count(), 0);
    }

    #[test]
    fn nth_skips_without_changing_what_comes_next() {
        let set = toy(50);
        let config = BatchConfig::new(7).shuffled(3);
        let all: Vec<Vec<usize>> = set.epoch(&config, 2).map(|b| b.labels).collect();
        let mut it = set.epoch(&config, 2);
        assert_eq!(it.nth(4).unwrap().labels, all[4]);
        assert_eq!(it.next().unwrap().labels, all[5]);
        assert_eq!(it.len(), all.len() - 6);
        assert!(set.epoch(&config, 2).nth(100).is_none());
        // The same batch, rebuilt from its indices.
        let it = set.epoch(&config, 2);
        let direct = set.batch(it.indices_of(3), Layout::Flat, Scaling::Unit);
        assert_eq!(direct.labels, all[3]);
    }

    #[test]
    fn layouts_and_scalings() {
        let set = toy(4);
        let b = set.batch(&[2, 0], Layout::Image, Scaling::Unit);
        assert_eq!(b.images.shape(), &[2, 1, 2, 3]);
        assert_eq!(b.labels, vec![2, 0]);
        assert_eq!(b.images.get(&[0, 0, 1, 2]), 17.0 / 255.0);
        assert_eq!(b.images.get(&[1, 0, 0, 1]), 1.0 / 255.0);

        let std = set.batch(&[3], Layout::Flat, Scaling::MNIST_STANDARD);
        let want = (19.0 / 255.0 - 0.1307) / 0.3081;
        assert!((std.images.get(&[0, 1]) - want).abs() < 1e-6);
        let table = Scaling::Unit.table();
        assert_eq!((table[0], table[255]), (0.0, 1.0));
    }

    #[test]
    #[should_panic(expected = "MnistSet::image: index 4 out of range for 4 images")]
    fn out_of_range_index_panics_with_its_name() {
        toy(4).batch(&[1, 4], Layout::Flat, Scaling::Unit);
    }

    #[test]
    #[should_panic(expected = "BatchConfig::new: batch size 0, must be at least 1")]
    fn a_zero_batch_size_panics_naming_the_function_and_value() {
        BatchConfig::new(0);
    }

    #[test]
    fn shards_of_every_batch_put_together_are_the_global_batch() {
        let set = toy(23);
        let global = BatchConfig::new(8).shuffled(3);
        for world in 1..=3 {
            let shards: Vec<Vec<Batch>> = (0..world)
                .map(|rank| set.epoch(&global.shard(rank, world), 1).collect())
                .collect();
            for (b, whole) in set.epoch(&global, 1).enumerate() {
                let joined: Vec<usize> = shards.iter().flat_map(|s| s[b].labels.clone()).collect();
                assert_eq!(joined, whole.labels, "world {world}, batch {b}");
            }
        }
    }
}
