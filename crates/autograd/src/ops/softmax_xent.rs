//! Softmax, log-softmax and the losses built on them.
//!
//! Cross-entropy from logits is one fused op: composing log_softmax and a
//! gather would be correct too, but the fused backward `(softmax − onehot)/N`
//! is both cheaper and exact.

use ember_tensor::Tensor;

use crate::graph::{record, Grads};
use crate::Var;

/// Whether a loss is averaged over its N terms or summed.
#[derive(Clone, Copy)]
enum Per {
    Mean,
    Sum,
}

impl Per {
    /// What the total is divided by: N, or 1.
    fn divisor(self, n: usize) -> f64 {
        match self {
            Per::Mean => n as f64,
            Per::Sum => 1.0,
        }
    }
}

/// Checks `(N, C)` logits against N class indices below C.
#[track_caller]
fn check_targets(op: &str, logits: &Tensor, targets: &[usize]) -> (usize, usize) {
    assert!(
        logits.ndim() == 2 && logits.shape()[0] == targets.len(),
        "{op}: logits of shape {:?} do not fit {} targets (need (N, C) with N = number of targets)",
        logits.shape(),
        targets.len()
    );
    let classes = logits.shape()[1];
    if let Some((i, &t)) = targets.iter().enumerate().find(|(_, &t)| t >= classes) {
        panic!("{op}: target {t} at index {i} is out of range for {classes} classes");
    }
    (targets.len(), classes)
}

impl Var {
    /// Softmax along `axis`. With `y = softmax(x)`:
    /// `∂/∂x = y ⊙ (g − Σ_axis g ⊙ y)`.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Var {
        let y = self.value_ref().softmax(axis);
        record(
            "softmax",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                let dot = g.mul(&y).sum_axis(axis, true);
                grads.add(0, g.sub(&dot).mul(&y))
            },
        )
    }

    /// `log(softmax(x))` along `axis`, stable. With `y = log_softmax(x)`:
    /// `∂/∂x = g − softmax(x) ⊙ Σ_axis g`.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Var {
        let y = self.value_ref().log_softmax(axis);
        record(
            "log_softmax",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                let total = g.sum_axis(axis, true);
                grads.add(0, g.sub(&y.exp().mul(&total)))
            },
        )
    }

    /// Mean negative log-likelihood of log-probabilities `(N, C)` at the
    /// target classes: `−(1/N) Σᵢ x[i, tᵢ]`.
    ///
    /// # Panics
    /// If the shapes disagree or a target is out of range.
    #[track_caller]
    pub fn nll_loss(&self, targets: &[usize]) -> Var {
        self.nll_loss_over(targets, Per::Mean)
    }

    /// [`Var::nll_loss`] summed over the batch instead of averaged:
    /// `−Σᵢ x[i, tᵢ]`, computed as a sum (not the mean times N).
    ///
    /// # Panics
    /// As [`Var::nll_loss`].
    #[track_caller]
    pub fn nll_loss_sum(&self, targets: &[usize]) -> Var {
        self.nll_loss_over(targets, Per::Sum)
    }

    #[track_caller]
    fn nll_loss_over(&self, targets: &[usize], per: Per) -> Var {
        let x = self.value();
        let (n, c) = check_targets("nll_loss", &x, targets);
        let total: f64 = targets
            .iter()
            .enumerate()
            .map(|(i, &t)| f64::from(x.get(&[i, t])))
            .sum();
        let value = Tensor::scalar((-total / per.divisor(n)) as f32);
        let targets = targets.to_vec();
        record(
            "nll_loss",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| {
                let scale = -g.item() / per.divisor(n) as f32;
                let mut d = vec![0.0; n * c];
                for (i, &t) in targets.iter().enumerate() {
                    d[i * c + t] = scale;
                }
                grads.add(0, Tensor::from_vec(d, &[n, c]))
            },
        )
    }

    /// Mean cross-entropy of logits `(N, C)` against class indices, fused and
    /// stable: `(1/N) Σᵢ [logsumexp(xᵢ) − xᵢ[tᵢ]]`, with backward
    /// `(softmax(x) − onehot(t)) / N`.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let logits = Var::parameter(Tensor::zeros(&[2, 4]));
    /// let loss = logits.cross_entropy(&[1, 3]);
    /// assert!((loss.item() - 4f32.ln()).abs() < 1e-6); // uniform over 4 classes
    /// loss.backward();
    /// let g = logits.grad().unwrap();
    /// assert!((g.get(&[0, 1]) - (0.25 - 1.0) / 2.0).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// If the shapes disagree or a target is out of range.
    #[track_caller]
    pub fn cross_entropy(&self, targets: &[usize]) -> Var {
        self.cross_entropy_smoothed(targets, 0.0)
    }

    /// Cross-entropy with label smoothing `ε`: the target distribution puts
    /// `1 − ε + ε/C` on the true class and `ε/C` on the others (PyTorch's
    /// `label_smoothing`). Backward: `(softmax(x) − target) / N`.
    ///
    /// # Panics
    /// If the shapes disagree, a target is out of range, or `ε ∉ [0, 1]`.
    #[track_caller]
    pub fn cross_entropy_smoothed(&self, targets: &[usize], smoothing: f32) -> Var {
        self.cross_entropy_over(targets, smoothing, Per::Mean)
    }

    /// [`Var::cross_entropy_smoothed`] summed over the batch instead of
    /// averaged: `Σᵢ [logsumexp(xᵢ) − …]`, computed as a sum (not the mean
    /// times N); backward `softmax(x) − target`.
    ///
    /// # Panics
    /// As [`Var::cross_entropy_smoothed`].
    #[track_caller]
    pub fn cross_entropy_sum(&self, targets: &[usize], smoothing: f32) -> Var {
        self.cross_entropy_over(targets, smoothing, Per::Sum)
    }

    #[track_caller]
    fn cross_entropy_over(&self, targets: &[usize], smoothing: f32, per: Per) -> Var {
        assert!(
            (0.0..=1.0).contains(&smoothing),
            "cross_entropy: label smoothing {smoothing} is outside [0, 1]"
        );
        let logits = self.value();
        let (n, c) = check_targets("cross_entropy", &logits, targets);
        let log_p = logits.log_softmax(1);
        let lp = log_p.as_slice().expect("log_softmax is contiguous");
        let (on, off) = (1.0 - smoothing + smoothing / c as f32, smoothing / c as f32);
        let mut total = 0.0f64;
        for (i, &t) in targets.iter().enumerate() {
            let row = &lp[i * c..(i + 1) * c];
            total -= f64::from(on - off) * f64::from(row[t]);
            if off > 0.0 {
                total -= f64::from(off) * row.iter().map(|&v| f64::from(v)).sum::<f64>();
            }
        }
        let value = Tensor::scalar((total / per.divisor(n)) as f32);
        let targets = targets.to_vec();
        record(
            "cross_entropy",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| {
                let scale = g.item() / per.divisor(n) as f32;
                let mut d = log_p.to_vec();
                for (i, row) in d.chunks_mut(c).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        let target = if j == targets[i] { on } else { off };
                        *v = (v.exp() - target) * scale;
                    }
                }
                grads.add(0, Tensor::from_vec(d, &[n, c]))
            },
        )
    }

    /// Mean squared error `(1/n) Σ (x − y)²` against `target` (same shape).
    /// `∂/∂x = 2(x − y)/n`, and the negative of that for `target`.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn mse(&self, target: &Var) -> Var {
        self.mse_over(target, Per::Mean)
    }

    /// The summed squared error `Σ (x − y)²`, computed as a sum (not the
    /// mean times n). `∂/∂x = 2(x − y)`.
    ///
    /// # Panics
    /// As [`Var::mse`].
    #[track_caller]
    pub fn mse_sum(&self, target: &Var) -> Var {
        self.mse_over(target, Per::Sum)
    }

    #[track_caller]
    fn mse_over(&self, target: &Var, per: Per) -> Var {
        let (x, y) = (self.value(), target.value());
        assert_eq!(
            x.shape(),
            y.shape(),
            "mse: prediction shape {:?} differs from target shape {:?}",
            x.shape(),
            y.shape()
        );
        let diff = x.sub(&y);
        let n = per.divisor(diff.numel()) as f32;
        let value = Tensor::scalar(diff.map(|d| d * d).sum_all() / n);
        record(
            "mse",
            value,
            &[self, target],
            move |g, grads: &mut Grads<'_>| {
                let d = diff.mul_scalar(2.0 * g.item() / n);
                if grads.wants(1) {
                    grads.add(1, d.neg());
                }
                grads.add(0, d);
            },
        )
    }
}
