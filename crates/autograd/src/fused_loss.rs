//! The fused loss kernels behind `ember_layers::loss`; use that module.
//!
//! This module is public only so that `ember-layers` can call it; its
//! functions are the implementation of `ember_layers::loss`, which re-exports
//! [`Reduction`] and documents each loss. Each kernel computes its forward in
//! one pass and records one backward rule, cheaper and more exact than the
//! composition of elementary ops (for cross-entropy the backward is
//! `softmax(x) − onehot(t)`; for binary cross-entropy the fused form never
//! takes the log of a small number, where `sigmoid` then `ln` would lose
//! everything once `σ(x)` rounds to 0 or 1, |x| ≳ 17 in f32).
//!
//! [`Reduction::Sum`] is computed as a sum, never as the mean times the
//! count.

use ember_tensor::Tensor;

use crate::graph::{record, Grads};
use crate::Var;

/// How a loss combines the per-sample (or per-element) losses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The average (PyTorch's and Keras's default, `reduction="mean"`).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

impl Reduction {
    /// What the total is divided by: `n`, or 1.
    fn divisor(self, n: usize) -> f64 {
        match self {
            Reduction::Mean => n as f64,
            Reduction::Sum => 1.0,
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

/// Negative log-likelihood of log-probabilities `(N, C)` at the target
/// classes: `−Σᵢ x[i, tᵢ]`, divided by N for [`Reduction::Mean`].
///
/// # Panics
/// If the shapes disagree or a target is out of range.
#[track_caller]
pub fn nll_loss(log_probs: &Var, targets: &[usize], reduction: Reduction) -> Var {
    let x = log_probs.value();
    let (n, c) = check_targets("nll_loss", &x, targets);
    let total: f64 = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| f64::from(x.get(&[i, t])))
        .sum();
    let value = Tensor::scalar((-total / reduction.divisor(n)) as f32);
    let targets = targets.to_vec();
    record(
        "nll_loss",
        value,
        &[log_probs],
        move |g, grads: &mut Grads<'_>| {
            let scale = -g.item() / reduction.divisor(n) as f32;
            let mut d = vec![0.0; n * c];
            for (i, &t) in targets.iter().enumerate() {
                d[i * c + t] = scale;
            }
            grads.add(0, Tensor::from_vec(d, &[n, c]))
        },
    )
}

/// Cross-entropy of logits `(N, C)` against class indices with label
/// smoothing `ε` (0 for none): `Σᵢ [logsumexp(xᵢ) − Σⱼ qᵢⱼ xᵢⱼ]` with
/// `qᵢ = 1 − ε + ε/C` on the true class and `ε/C` elsewhere, divided by N
/// for [`Reduction::Mean`]. Backward: `(softmax(x) − q)`, divided likewise.
///
/// # Panics
/// If the shapes disagree, a target is out of range, or `ε ∉ [0, 1]`.
#[track_caller]
pub fn cross_entropy(logits: &Var, targets: &[usize], smoothing: f32, reduction: Reduction) -> Var {
    assert!(
        (0.0..=1.0).contains(&smoothing),
        "cross_entropy: label smoothing {smoothing} is outside [0, 1]"
    );
    let x = logits.value();
    let (n, c) = check_targets("cross_entropy", &x, targets);
    let log_p = x.log_softmax(1);
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
    let value = Tensor::scalar((total / reduction.divisor(n)) as f32);
    let targets = targets.to_vec();
    record(
        "cross_entropy",
        value,
        &[logits],
        move |g, grads: &mut Grads<'_>| {
            let scale = g.item() / reduction.divisor(n) as f32;
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

/// Squared error `Σ (x − y)²` over every element, divided by the element
/// count n for [`Reduction::Mean`]. `∂/∂x = 2(x − y)` (divided likewise),
/// and the negative of that for `target`, which may also require a gradient.
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mse_loss(prediction: &Var, target: &Var, reduction: Reduction) -> Var {
    let (x, y) = (prediction.value(), target.value());
    assert_eq!(
        x.shape(),
        y.shape(),
        "mse_loss: prediction shape {:?} differs from target shape {:?}",
        x.shape(),
        y.shape()
    );
    let diff = x.sub(&y);
    let n = reduction.divisor(diff.numel()) as f32;
    let value = Tensor::scalar(diff.map(|d| d * d).sum_all() / n);
    record(
        "mse_loss",
        value,
        &[prediction, target],
        move |g, grads: &mut Grads<'_>| {
            let d = diff.mul_scalar(2.0 * g.item() / n);
            if grads.wants(1) {
                grads.add(1, d.neg());
            }
            grads.add(0, d);
        },
    )
}

/// Binary cross-entropy of logits `x` against targets `t ∈ [0, 1]` (same
/// shape), `−t·ln σ(x) − (1 − t)·ln(1 − σ(x))` per element computed stably
/// as `max(x, 0) − x·t + ln(1 + e^{−|x|})`, then averaged or summed over
/// every element.
///
/// # Panics
/// If the shapes of logits and targets differ.
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Var, targets: &Var, reduction: Reduction) -> Var {
    let per_element = bce_with_logits_elementwise(logits, targets);
    match reduction {
        Reduction::Mean => per_element.mean(),
        Reduction::Sum => per_element.sum(),
    }
}

/// The per-element losses of [`binary_cross_entropy_with_logits`].
/// Backward: `∂/∂x = g·(σ(x) − t)` and `∂/∂t = −g·x`.
#[track_caller]
fn bce_with_logits_elementwise(logits: &Var, targets: &Var) -> Var {
    let (x, t) = (logits.value(), targets.value());
    assert_eq!(
        x.shape(),
        t.shape(),
        "binary_cross_entropy_with_logits: logits shape {:?} differs from targets shape {:?}",
        x.shape(),
        t.shape()
    );
    let value = x.zip_map(&t, "bce_with_logits", |x, t| {
        x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
    });
    record(
        "bce_with_logits",
        value,
        &[logits, targets],
        move |g, grads: &mut Grads<'_>| {
            if grads.wants(0) {
                let residual = x.zip_map(&t, "bce_with_logits_backward", |x, t| sigmoid(x) - t);
                grads.add(0, residual.mul(g));
            }
            if grads.wants(1) {
                grads.add(1, x.mul(g).neg());
            }
        },
    )
}

/// `σ(x)` without overflow for large negative `x`.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::{bce_with_logits_elementwise, binary_cross_entropy_with_logits, Reduction};
    use crate::gradcheck::{gradcheck, Tolerance};
    use crate::Var;
    use ember_tensor::Tensor;

    #[test]
    fn bce_matches_the_naive_formula_where_that_is_accurate() {
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 2.5];
        let ts = [0.0f32, 0.3, 1.0, 0.9, 0.2];
        let x = Var::constant(Tensor::from_vec(xs.to_vec(), &[5]));
        let t = Var::constant(Tensor::from_vec(ts.to_vec(), &[5]));
        let got = bce_with_logits_elementwise(&x, &t).value().to_vec();
        for i in 0..5 {
            let (x, t) = (f64::from(xs[i]), f64::from(ts[i]));
            let s = 1.0 / (1.0 + (-x).exp());
            let want = -t * s.ln() - (1.0 - t) * (1.0 - s).ln();
            assert!(
                (f64::from(got[i]) - want).abs() < 1e-6,
                "{i}: {} vs {want}",
                got[i]
            );
        }
    }

    #[test]
    fn bce_stays_finite_for_huge_logits() {
        let x = Var::parameter(Tensor::from_vec(vec![-200.0, 200.0], &[2]));
        let t = Var::constant(Tensor::from_vec(vec![1.0, 0.0], &[2]));
        let loss = binary_cross_entropy_with_logits(&x, &t, Reduction::Sum);
        assert_eq!(loss.item(), 400.0);
        loss.backward();
        assert_eq!(x.grad().unwrap().to_vec(), vec![-1.0, 1.0]);
    }

    #[test]
    fn bce_elementwise_gradcheck_both_inputs() {
        let x = Tensor::from_vec(vec![-2.0, -0.4, 0.3, 1.5, 3.0, -1.1], &[2, 3]);
        let t = Tensor::from_vec(vec![0.0, 0.25, 1.0, 0.6, 0.1, 0.9], &[2, 3]);
        gradcheck(
            |v| bce_with_logits_elementwise(&v[0], &v[1]),
            &[x, t],
            Tolerance::default(),
        )
        .unwrap();
    }
}
