//! What every training loop writes around the model: seeded mini-batches of
//! an in-memory dataset ([`TensorDataset`]), and evaluation over a dataset
//! ([`evaluate`]).

use ember_autograd::{no_grad, Var};
use ember_tensor::shuffle::permutation;
use ember_tensor::Tensor;

use crate::loss::{cross_entropy, Reduction};
use crate::metrics::{correct, RunningMean};
use crate::Module;

/// A classification dataset held in memory: inputs `(N, ...)` and one class
/// label per row. Batches are gathered rows ([`Tensor::index_select`]);
/// shuffling uses the same seeded permutation as MNIST's batches
/// ([`ember_tensor::shuffle::permutation`]), a pure function of
/// `(seed, epoch)`.
///
/// ```
/// use ember_layers::data::TensorDataset;
/// use ember_tensor::Tensor;
///
/// let data = TensorDataset::new(Tensor::arange(10).reshape(&[5, 2]), vec![0, 1, 0, 1, 0]);
/// let batches: Vec<_> = data.epoch(2, 42, 0).collect();
/// assert_eq!(batches.len(), 3); // 2 + 2 + 1
/// assert_eq!(batches[0].inputs.shape(), &[2, 2]);
/// for b in &batches {
///     for (row, &label) in b.labels.iter().enumerate() {
///         // Row r of the inputs is [2r, 2r+1] and its label r % 2: they stay together.
///         let r = b.inputs.get(&[row, 0]) as usize / 2;
///         assert_eq!(label, r % 2);
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TensorDataset {
    inputs: Tensor,
    labels: Vec<usize>,
}

/// One mini-batch of a [`TensorDataset`].
#[derive(Debug, Clone)]
pub struct DataBatch {
    /// The rows, `(batch, ...)`.
    pub inputs: Tensor,
    /// Their class labels.
    pub labels: Vec<usize>,
}

impl TensorDataset {
    /// A dataset of `inputs` (`(N, ...)`) and their `N` class labels.
    ///
    /// # Panics
    /// If `inputs` is a scalar or its first axis is not `labels.len()`.
    #[track_caller]
    pub fn new(inputs: Tensor, labels: Vec<usize>) -> TensorDataset {
        assert!(
            inputs.ndim() >= 1 && inputs.shape()[0] == labels.len(),
            "TensorDataset::new: inputs of shape {:?} for {} labels (axis 0 must be the examples)",
            inputs.shape(),
            labels.len()
        );
        TensorDataset { inputs, labels }
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All the inputs, `(N, ...)`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// All the labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The batch of the examples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range (the message names `index_select`).
    #[track_caller]
    pub fn batch(&self, indices: &[usize]) -> DataBatch {
        DataBatch {
            inputs: self.inputs.index_select(0, indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Epoch `epoch` of a run seeded with `seed`: the examples in a fresh
    /// seeded order, in batches of `batch_size` (the last may be smaller).
    ///
    /// # Panics
    /// If `batch_size == 0`.
    #[track_caller]
    pub fn epoch(&self, batch_size: usize, seed: u64, epoch: u64) -> DataBatches<'_> {
        self.batches(batch_size, permutation(self.len(), seed, epoch))
    }

    /// The examples in their order, in batches of `batch_size` (evaluation).
    ///
    /// # Panics
    /// If `batch_size == 0`.
    #[track_caller]
    pub fn in_order(&self, batch_size: usize) -> DataBatches<'_> {
        self.batches(batch_size, (0..self.len()).collect())
    }

    #[track_caller]
    fn batches(&self, batch_size: usize, order: Vec<usize>) -> DataBatches<'_> {
        assert!(
            batch_size > 0,
            "TensorDataset: batch size {batch_size}, must be at least 1"
        );
        DataBatches {
            data: self,
            order,
            next: 0,
            batch_size,
        }
    }
}

/// The batches of one epoch of a [`TensorDataset`]; made by
/// [`TensorDataset::epoch`] and [`TensorDataset::in_order`].
#[derive(Debug, Clone)]
pub struct DataBatches<'a> {
    data: &'a TensorDataset,
    order: Vec<usize>,
    next: usize,
    batch_size: usize,
}

impl DataBatches<'_> {
    /// The order of the examples in this epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for DataBatches<'_> {
    type Item = DataBatch;

    fn next(&mut self) -> Option<DataBatch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.data.batch(&self.order[self.next..end]);
        self.next = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for DataBatches<'_> {}

/// A model's figures on a dataset, from [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy (nats) over the examples.
    pub loss: f64,
    /// The fraction of examples whose largest logit is the true class.
    pub accuracy: f64,
    /// How many examples were evaluated.
    pub examples: usize,
}

/// Evaluates `model` on `data` in batches of `batch_size`: in evaluation mode
/// (dropout off, batch-norm on its running statistics), without recording a
/// graph, and puts the model back in the mode it was in.
///
/// ```
/// use ember_layers::data::{evaluate, TensorDataset};
/// use ember_layers::{Dropout, Linear, Module, Sequential};
/// use ember_tensor::Tensor;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new().add(Linear::new(3, 2, &mut rng)).add(Dropout::new(0.5));
/// let data = TensorDataset::new(Tensor::ones(&[5, 3]), vec![0, 1, 1, 0, 1]);
/// let result = evaluate(&model, &data, 2);
/// assert_eq!(result.examples, 5);
/// assert!(result.loss.is_finite() && (0.0..=1.0).contains(&result.accuracy));
/// assert_eq!(model.is_training(), Some(true)); // as it was
/// ```
///
/// # Panics
/// If `batch_size == 0`.
#[track_caller]
pub fn evaluate(model: &dyn Module, data: &TensorDataset, batch_size: usize) -> Evaluation {
    evaluate_batches(model, data.in_order(batch_size))
}

/// [`evaluate`] over batches from anywhere (a loader that decodes as it
/// goes, so a large test set never sits in memory as floats all at once).
///
/// ```
/// use ember_layers::data::{evaluate, evaluate_batches, DataBatch, TensorDataset};
/// use ember_layers::{Linear, Sequential};
/// use ember_tensor::Tensor;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let model = Sequential::new().add(Linear::new(3, 2, &mut rng));
/// let data = TensorDataset::new(Tensor::ones(&[5, 3]), vec![0, 1, 1, 0, 1]);
/// let made = (0..5).step_by(2).map(|first| DataBatch {
///     inputs: Tensor::ones(&[2.min(5 - first), 3]),
///     labels: data.labels()[first..(first + 2).min(5)].to_vec(),
/// });
/// assert_eq!(evaluate_batches(&model, made), evaluate(&model, &data, 2));
/// ```
pub fn evaluate_batches(
    model: &dyn Module,
    batches: impl IntoIterator<Item = DataBatch>,
) -> Evaluation {
    let was = model.is_training();
    model.set_training(false);
    let mut loss = RunningMean::default();
    let (mut right, mut examples) = (0, 0);
    no_grad(|| {
        for batch in batches {
            let logits = model.forward(&Var::constant(batch.inputs));
            loss.add(
                cross_entropy(&logits, &batch.labels, Reduction::Mean).item(),
                batch.labels.len(),
            );
            right += correct(&logits.value(), &batch.labels);
            examples += batch.labels.len();
        }
    });
    if let Some(training) = was {
        model.set_training(training);
    }
    Evaluation {
        loss: loss.mean(),
        accuracy: right as f64 / examples.max(1) as f64,
        examples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dropout, Linear, Sequential};
    use rand::SeedableRng;

    #[test]
    fn an_epoch_is_the_shared_permutation_in_batches() {
        let data = TensorDataset::new(Tensor::arange(7).reshape(&[7, 1]), (0..7).collect());
        let seen: Vec<usize> = data.epoch(3, 5, 2).flat_map(|b| b.labels).collect();
        assert_eq!(seen, permutation(7, 5, 2));
        assert_eq!(data.epoch(3, 5, 2).len(), 3);
        let inputs: Vec<f32> = data.in_order(4).flat_map(|b| b.inputs.to_vec()).collect();
        assert_eq!(inputs, Tensor::arange(7).to_vec());
    }

    #[test]
    fn evaluation_is_in_eval_mode_and_restores_the_mode() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let model = Sequential::new()
            .add(Linear::new(4, 3, &mut rng))
            .add(Dropout::new(0.9));
        let data = TensorDataset::new(Tensor::ones(&[6, 4]), vec![2; 6]);
        let a = evaluate(&model, &data, 4);
        let b = evaluate(&model, &data, 6);
        assert!(
            (a.loss - b.loss).abs() < 1e-6,
            "no dropout while evaluating"
        );
        assert_eq!(model.is_training(), Some(true));
        model.set_training(false);
        evaluate(&model, &data, 6);
        assert_eq!(model.is_training(), Some(false));
    }

    #[test]
    #[should_panic(expected = "TensorDataset::new: inputs of shape [3, 2] for 2 labels")]
    fn mismatched_labels_name_the_shapes() {
        TensorDataset::new(Tensor::zeros(&[3, 2]), vec![0, 1]);
    }
}
