//! Softmax and log-softmax. The losses built on them are fused kernels in
//! [`crate::fused_loss`].

use crate::graph::{record, Grads};
use crate::Var;

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
}
