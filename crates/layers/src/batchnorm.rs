//! Batch normalization over features (1-D) and channels (2-D).

use std::cell::Cell;

use ember_autograd::{no_grad, Var};
use ember_tensor::Tensor;

use crate::{LayerKind, Members, Module};

/// The shared core: normalizes a `(rows, features)` batch per feature.
struct Norm {
    features: usize,
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    momentum: f32,
    eps: f32,
    training: Cell<bool>,
}

impl Norm {
    #[track_caller]
    fn new(op: &str, features: usize, momentum: f32, eps: f32) -> Norm {
        assert!(
            (0.0..=1.0).contains(&momentum),
            "{op}::with_options: momentum {momentum} is not in [0, 1]"
        );
        assert!(
            eps > 0.0 && eps.is_finite(),
            "{op}::with_options: epsilon {eps} is not a positive finite number"
        );
        Norm {
            features,
            weight: Var::parameter(Tensor::ones(&[features])),
            bias: Var::parameter(Tensor::zeros(&[features])),
            running_mean: Var::constant(Tensor::zeros(&[features])),
            running_var: Var::constant(Tensor::ones(&[features])),
            num_batches_tracked: Var::constant(Tensor::scalar(0.0)),
            momentum,
            eps,
            training: Cell::new(true),
        }
    }

    /// `x (rows, features)` → normalized, scaled and shifted.
    #[track_caller]
    fn forward_2d(&self, op: &str, x: &Var) -> Var {
        let shape = x.shape();
        assert!(
            shape.len() == 2 && shape[1] == self.features,
            "{op}: input {shape:?} does not have {} features",
            self.features
        );
        let (centered, inv_std) = if self.training.get() {
            let mean = x.mean_axis(0, true);
            let centered = x.sub(&mean);
            let var = centered.mul(&centered).mean_axis(0, true);
            self.update_running(&mean.value(), &var.value(), shape[0]);
            (centered, var.add_scalar(self.eps).powf(-0.5))
        } else {
            let mean = Var::constant(self.running_mean.value());
            let inv = self.running_var.value().add_scalar(self.eps).powf(-0.5);
            (x.sub(&mean), Var::constant(inv))
        };
        centered.mul(&inv_std).mul(&self.weight).add(&self.bias)
    }

    /// Running statistics as PyTorch keeps them: the variance is unbiased.
    fn update_running(&self, mean: &Tensor, var: &Tensor, rows: usize) {
        no_grad(|| {
            let m = self.momentum;
            let unbiased = rows as f32 / (rows.max(2) - 1) as f32;
            let mean = mean.reshape(&[self.features]);
            let var = var.reshape(&[self.features]).mul_scalar(unbiased);
            let rm = self
                .running_mean
                .value()
                .mul_scalar(1.0 - m)
                .add(&mean.mul_scalar(m));
            let rv = self
                .running_var
                .value()
                .mul_scalar(1.0 - m)
                .add(&var.mul_scalar(m));
            self.running_mean.set_value(rm);
            self.running_var.set_value(rv);
            // An f32 count: exact up to 2^24, where it stops (2^24 + 1
            // rounds back to 2^24), which a checkpoint still stores exactly.
            self.num_batches_tracked
                .set_value(self.num_batches_tracked.value().add_scalar(1.0));
        });
    }

    fn visit(&self, m: &mut Members) {
        m.parameter("weight", &self.weight);
        m.parameter("bias", &self.bias);
        m.buffer("running_mean", &self.running_mean);
        m.buffer("running_var", &self.running_var);
        m.count("num_batches_tracked", &self.num_batches_tracked);
    }
}

/// Batch normalization, of features ([`BatchNorm1d`]) or of image channels
/// ([`BatchNorm2d`]): one implementation, `A` says which axes it normalizes.
pub struct BatchNorm<A: NormAxes> {
    norm: Norm,
    axes: std::marker::PhantomData<A>,
}

/// Which axes a [`BatchNorm`] takes its statistics over.
pub trait NormAxes {
    /// The layer's name, in messages and summaries.
    const NAME: &'static str;
    /// The input as `(rows, features)`, and how to give the output its shape back.
    fn to_rows(input: &Var, features: usize) -> (Var, Box<dyn FnOnce(Var) -> Var>);
}

/// `(batch, features)`: statistics over the batch (PyTorch's `BatchNorm1d`).
pub struct Features;

/// `(N, C, H, W)`: statistics over N, H and W per channel (`BatchNorm2d`).
pub struct Channels;

impl NormAxes for Features {
    const NAME: &'static str = "BatchNorm1d";
    fn to_rows(input: &Var, _features: usize) -> (Var, Box<dyn FnOnce(Var) -> Var>) {
        (input.clone(), Box::new(|y| y))
    }
}

impl NormAxes for Channels {
    const NAME: &'static str = "BatchNorm2d";
    #[track_caller]
    fn to_rows(input: &Var, channels: usize) -> (Var, Box<dyn FnOnce(Var) -> Var>) {
        let s = input.shape();
        assert!(
            s.len() == 4 && s[1] == channels,
            "BatchNorm2d: input {s:?} is not (N, {channels}, H, W)"
        );
        let rows = input
            .permute(&[0, 2, 3, 1])
            .reshape(&[s[0] * s[2] * s[3], s[1]]);
        let back = move |y: Var| y.reshape(&[s[0], s[2], s[3], s[1]]).permute(&[0, 3, 1, 2]);
        (rows, Box::new(back))
    }
}

/// Batch normalization of features: `(batch, features) → (batch, features)`.
///
/// In training, each feature is normalized with the batch's mean and
/// (biased) variance, then scaled by `weight` and shifted by `bias`; running
/// estimates (momentum 0.1, unbiased variance, as in PyTorch) are updated and
/// used instead in evaluation. ε = 1e-5.
///
/// Its buffers are `running_mean`, `running_var` and `num_batches_tracked`,
/// a count of training batches ([`Members::count`]): an f32 scalar here
/// that stops at 2²⁴, an int64 scalar in checkpoints, as in PyTorch.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{BatchNorm1d, Module};
/// use ember_tensor::Tensor;
///
/// let bn = BatchNorm1d::new(2);
/// let x = Var::constant(Tensor::from_vec(vec![1.0, 10.0, 3.0, 30.0], &[2, 2]));
/// let y = bn.forward(&x).value().to_vec();
/// assert!((y[0] + 1.0).abs() < 1e-3 && (y[2] - 1.0).abs() < 1e-3);
/// ```
pub type BatchNorm1d = BatchNorm<Features>;

/// Batch normalization of channels: `(N, C, H, W) → (N, C, H, W)`, with
/// statistics over N, H and W for each channel. Otherwise as [`BatchNorm1d`].
pub type BatchNorm2d = BatchNorm<Channels>;

impl<A: NormAxes> BatchNorm<A> {
    /// Normalization of `features` features (channels, for [`BatchNorm2d`]).
    pub fn new(features: usize) -> Self {
        Self::with_options(features, 0.1, 1e-5)
    }

    /// PyTorch's options: the running statistics move `momentum` of the way
    /// to each batch's (0.1 by default); `eps` is added to the variance
    /// before the square root (1e-5 by default).
    ///
    /// # Panics
    /// If `momentum` is not in [0, 1] or `eps` is not positive and finite,
    /// naming the value.
    #[track_caller]
    pub fn with_options(features: usize, momentum: f32, eps: f32) -> Self {
        BatchNorm {
            norm: Norm::new(A::NAME, features, momentum, eps),
            axes: std::marker::PhantomData,
        }
    }
}

impl<A: NormAxes> Module for BatchNorm<A> {
    #[track_caller]
    fn forward(&self, input: &Var) -> Var {
        let (rows, back) = A::to_rows(input, self.norm.features);
        back(self.norm.forward_2d(A::NAME, &rows))
    }
    fn visit(&self, m: &mut Members) {
        self.norm.visit(m);
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Normalization
    }
    fn set_training(&self, training: bool) {
        self.norm.training.set(training);
    }
    fn is_training(&self) -> Option<bool> {
        Some(self.norm.training.get())
    }
    fn describe(&self) -> String {
        format!("{}({})", A::NAME, self.norm.features)
    }
}
