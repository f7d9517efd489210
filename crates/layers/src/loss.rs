//! Loss functions: Ember's one public loss API.
//!
//! Each is a single fused op with a hand-derived backward (the kernels live
//! in `ember_autograd`, which keeps them out of its documented API).
//!
//! Each takes a [`Reduction`]: [`Reduction::Mean`] (PyTorch's default,
//! `reduction="mean"`) averages over the batch (over every element for the
//! elementwise losses), [`Reduction::Sum`] adds (computed as a sum, never
//! as the mean times the count). A summed loss makes the
//! gradient grow with the batch size, so the learning rate must shrink with it.
//!
//! ```
//! use ember_autograd::Var;
//! use ember_layers::loss::{cross_entropy, Reduction};
//! use ember_tensor::Tensor;
//!
//! // Two samples, three classes, all logits equal: the loss is ln 3 each.
//! let logits = Var::parameter(Tensor::zeros(&[2, 3]));
//! let loss = cross_entropy(&logits, &[0, 2], Reduction::Mean);
//! assert!((loss.item() - 3f32.ln()).abs() < 1e-6);
//! let total = cross_entropy(&logits, &[0, 2], Reduction::Sum);
//! assert!((total.item() - 2.0 * 3f32.ln()).abs() < 1e-6);
//! ```

use ember_autograd::fused_loss;
use ember_autograd::Var;

#[doc(inline)]
pub use ember_autograd::fused_loss::Reduction;

/// Cross-entropy of logits `(N, C)` against class indices `targets` (length
/// N), fused and stable: `logsumexp(xᵢ) − xᵢ[tᵢ]` per sample, with the
/// backward `softmax(x) − onehot(t)` computed in one pass. PyTorch's
/// `F.cross_entropy`, Keras's `SparseCategoricalCrossentropy(from_logits=True)`.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::loss::{cross_entropy, Reduction};
/// use ember_tensor::Tensor;
///
/// let logits = Var::parameter(Tensor::zeros(&[2, 4]));
/// let loss = cross_entropy(&logits, &[1, 3], Reduction::Mean);
/// assert!((loss.item() - 4f32.ln()).abs() < 1e-6); // uniform over 4 classes
/// loss.backward();
/// // (softmax − onehot) / N at the target of sample 0:
/// let g = logits.grad().unwrap();
/// assert!((g.get(&[0, 1]) - (0.25 - 1.0) / 2.0).abs() < 1e-6);
/// ```
///
/// # Panics
/// If `logits` is not `(N, C)` with N = `targets.len()`, or a target is ≥ C.
#[track_caller]
pub fn cross_entropy(logits: &Var, targets: &[usize], reduction: Reduction) -> Var {
    cross_entropy_smoothed(logits, targets, 0.0, reduction)
}

/// [`cross_entropy`] with label smoothing `ε ∈ [0, 1]`: the target
/// distribution is `1 − ε + ε/C` on the true class and `ε/C` elsewhere
/// (PyTorch's `label_smoothing`; Keras's `label_smoothing` means the same).
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::loss::{cross_entropy_smoothed, Reduction};
/// use ember_tensor::Tensor;
///
/// // softmax(0, ln 3) = (1/4, 3/4); ε = 0.2 over 2 classes targets (0.1, 0.9).
/// let logits = Var::parameter(Tensor::from_vec(vec![0.0, 3f32.ln()], &[1, 2]));
/// let loss = cross_entropy_smoothed(&logits, &[1], 0.2, Reduction::Mean);
/// let want = -0.1 * 0.25f32.ln() - 0.9 * 0.75f32.ln();
/// assert!((loss.item() - want).abs() < 1e-6);
/// loss.backward();
/// let g = logits.grad().unwrap().to_vec(); // softmax − target
/// assert!((g[0] - 0.15).abs() < 1e-6 && (g[1] + 0.15).abs() < 1e-6);
/// ```
///
/// # Panics
/// As [`cross_entropy`], and if `ε ∉ [0, 1]`.
#[track_caller]
pub fn cross_entropy_smoothed(
    logits: &Var,
    targets: &[usize],
    smoothing: f32,
    reduction: Reduction,
) -> Var {
    fused_loss::cross_entropy(logits, targets, smoothing, reduction)
}

/// Negative log-likelihood of log-probabilities `(N, C)` (for example the
/// output of `log_softmax(1)`) at the target classes: `−xᵢ[tᵢ]` per sample.
/// `nll_loss(log_softmax(x))` equals [`cross_entropy`]`(x)`; prefer the
/// latter, which is fused.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::loss::{cross_entropy, nll_loss, Reduction};
/// use ember_tensor::Tensor;
///
/// let x = Var::constant(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.0], &[2, 3]));
/// let nll = nll_loss(&x.log_softmax(1), &[2, 0], Reduction::Sum);
/// let ce = cross_entropy(&x, &[2, 0], Reduction::Sum);
/// assert!((nll.item() - ce.item()).abs() < 1e-5);
/// ```
///
/// # Panics
/// If the shapes disagree or a target is out of range.
#[track_caller]
pub fn nll_loss(log_probs: &Var, targets: &[usize], reduction: Reduction) -> Var {
    fused_loss::nll_loss(log_probs, targets, reduction)
}

/// Squared error `(x − y)²` per element, averaged or summed over every
/// element (PyTorch's `F.mse_loss`). `target` may also require a gradient.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::loss::{mse_loss, Reduction};
/// use ember_tensor::Tensor;
///
/// let prediction = Var::parameter(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// let target = Var::constant(Tensor::zeros(&[2]));
/// assert_eq!(mse_loss(&prediction, &target, Reduction::Sum).item(), 5.0);
/// let loss = mse_loss(&prediction, &target, Reduction::Mean);
/// assert_eq!(loss.item(), 2.5);
/// loss.backward();
/// assert_eq!(prediction.grad().unwrap().to_vec(), vec![1.0, 2.0]); // 2(x − y)/n
/// ```
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mse_loss(prediction: &Var, target: &Var, reduction: Reduction) -> Var {
    fused_loss::mse_loss(prediction, target, reduction)
}

/// Binary cross-entropy of logits against targets in `[0, 1]` (same shape),
/// computed stably as `max(x, 0) − x·t + ln(1 + e^{−|x|})` per element, then
/// averaged or summed over every element. PyTorch's
/// `F.binary_cross_entropy_with_logits`, Keras's
/// `BinaryCrossentropy(from_logits=True)`.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::loss::{binary_cross_entropy_with_logits, Reduction};
/// use ember_tensor::Tensor;
///
/// let logits = Var::parameter(Tensor::from_vec(vec![-50.0, 0.0, 50.0], &[3]));
/// let targets = Var::constant(Tensor::from_vec(vec![0.0, 1.0, 1.0], &[3]));
/// let loss = binary_cross_entropy_with_logits(&logits, &targets, Reduction::Sum);
/// assert!((loss.item() - 2f32.ln()).abs() < 1e-6); // only the middle term is not ≈ 0
/// ```
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Var, targets: &Var, reduction: Reduction) -> Var {
    fused_loss::binary_cross_entropy_with_logits(logits, targets, reduction)
}
