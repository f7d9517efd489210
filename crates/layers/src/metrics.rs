//! Metrics for training loops: accuracy, a running mean, a confusion matrix.

use std::fmt;

use ember_tensor::Tensor;

/// The fraction of rows of `logits (N, C)` whose largest entry is at the label.
///
/// ```
/// use ember_layers::metrics::accuracy;
/// use ember_tensor::Tensor;
/// let logits = Tensor::from_vec(vec![2.0, 1.0, 0.0, 3.0], &[2, 2]);
/// assert_eq!(accuracy(&logits, &[0, 0]), 0.5);
/// ```
///
/// # Panics
/// If `logits` is not `(N, C)` with N = `labels.len()`.
#[track_caller]
pub fn accuracy(logits: &Tensor, labels: &[usize]) -> f32 {
    correct(logits, labels) as f32 / labels.len().max(1) as f32
}

/// How many rows of `logits (N, C)` have their largest entry at the label.
///
/// # Panics
/// If `logits` is not `(N, C)` with N = `labels.len()`.
#[track_caller]
pub fn correct(logits: &Tensor, labels: &[usize]) -> usize {
    assert!(
        logits.ndim() == 2 && logits.shape()[0] == labels.len(),
        "accuracy: logits of shape {:?} do not fit {} labels",
        logits.shape(),
        labels.len()
    );
    logits
        .argmax_axis(1)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
}

/// A mean of values weighted by how many samples each stands for (a loss
/// over batches of different sizes), accumulated in f64.
///
/// ```
/// use ember_layers::metrics::RunningMean;
/// let mut loss = RunningMean::default();
/// loss.add(1.0, 128);
/// loss.add(4.0, 32); // a smaller last batch counts less
/// assert!((loss.mean() - 1.6).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RunningMean {
    sum: f64,
    weight: f64,
}

impl RunningMean {
    /// Adds `value`, standing for `count` samples.
    pub fn add(&mut self, value: f32, count: usize) {
        self.sum += f64::from(value) * count as f64;
        self.weight += count as f64;
    }

    /// The weighted mean so far (NaN before anything was added).
    pub fn mean(&self) -> f64 {
        self.sum / self.weight
    }

    /// The total weight (samples) so far.
    pub fn count(&self) -> usize {
        self.weight as usize
    }
}

/// Counts of (true class, predicted class) pairs.
///
/// ```
/// use ember_layers::metrics::ConfusionMatrix;
/// use ember_tensor::Tensor;
/// let mut cm = ConfusionMatrix::new(2);
/// cm.add(&Tensor::from_vec(vec![2.0, 1.0, 0.0, 3.0, 5.0, 0.0], &[3, 2]), &[0, 0, 0]);
/// assert_eq!(cm.count(0, 1), 1);
/// assert_eq!(cm.accuracy(), 2.0 / 3.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> ConfusionMatrix {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds the predictions of `logits (N, C)` against `labels`.
    ///
    /// # Panics
    /// If the shapes disagree or a label is out of range.
    #[track_caller]
    pub fn add(&mut self, logits: &Tensor, labels: &[usize]) {
        assert!(
            logits.ndim() == 2 && logits.shape() == [labels.len(), self.classes],
            "ConfusionMatrix::add: logits of shape {:?} do not fit {} labels of {} classes",
            logits.shape(),
            labels.len(),
            self.classes
        );
        for (p, &l) in logits.argmax_axis(1).into_iter().zip(labels) {
            assert!(
                l < self.classes,
                "ConfusionMatrix::add: label {l} is out of range"
            );
            self.counts[l * self.classes + p] += 1;
        }
    }

    /// How often class `truth` was predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// The fraction on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let right: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        right as f64 / total.max(1) as f64
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true classes, columns predictions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "true\\pred")?;
        for p in 0..self.classes {
            write!(f, "{p:>7}")?;
        }
        writeln!(f)?;
        for t in 0..self.classes {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, "{:>7}", self.count(t, p))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_matrix_counts_and_prints() {
        let mut cm = ConfusionMatrix::new(3);
        let logits = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0], &[3, 3]);
        cm.add(&logits, &[0, 1, 2]);
        assert_eq!(cm.count(2, 1), 1);
        assert_eq!(cm.count(1, 1), 1);
        assert!((cm.accuracy() - 2.0 / 3.0).abs() < 1e-12);
        let text = cm.to_string();
        assert_eq!(text.lines().count(), 4);
        assert!(text
            .lines()
            .nth(3)
            .unwrap()
            .ends_with("      0      1      0"));
    }

    #[test]
    #[should_panic(expected = "accuracy: logits of shape [2, 3] do not fit 3 labels")]
    fn accuracy_checks_shapes() {
        accuracy(&Tensor::zeros(&[2, 3]), &[0, 1, 2]);
    }
}
