//! Binary cross-entropy from logits, fused for stability.
//!
//! Composing `sigmoid` then `ln` loses everything once `σ(x)` rounds to 0 or
//! 1 (|x| ≳ 17 in f32); the fused form never takes the log of a small number.

use crate::graph::{record, Grads};
use crate::Var;

impl Var {
    /// Elementwise binary cross-entropy of logits `x` against targets
    /// `t ∈ [0, 1]` (same shape): `−t·ln σ(x) − (1 − t)·ln(1 − σ(x))`,
    /// computed stably as `max(x, 0) − x·t + ln(1 + e^{−|x|})`.
    ///
    /// Returns the per-element losses; reduce them with [`Var::mean`] or
    /// [`Var::sum`]. Backward: `∂/∂x = g·(σ(x) − t)` and `∂/∂t = −g·x`.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::parameter(Tensor::from_vec(vec![0.0, 100.0], &[2]));
    /// let t = Var::constant(Tensor::from_vec(vec![1.0, 0.0], &[2]));
    /// let loss = x.bce_with_logits(&t);
    /// assert!((loss.value().get(&[0]) - 2f32.ln()).abs() < 1e-6);
    /// assert_eq!(loss.value().get(&[1]), 100.0); // finite, where ln(1 − σ(100)) is not
    /// ```
    ///
    /// # Panics
    /// If the shapes of logits and targets differ.
    #[track_caller]
    pub fn bce_with_logits(&self, targets: &Var) -> Var {
        let (x, t) = (self.value(), targets.value());
        assert_eq!(
            x.shape(),
            t.shape(),
            "bce_with_logits: logits shape {:?} differs from targets shape {:?}",
            x.shape(),
            t.shape()
        );
        let value = x.zip_map(&t, "bce_with_logits", |x, t| {
            x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
        });
        record(
            "bce_with_logits",
            value,
            &[self, targets],
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
    use crate::gradcheck::{gradcheck, Tolerance};
    use crate::Var;
    use ember_tensor::Tensor;

    #[test]
    fn matches_the_naive_formula_where_that_is_accurate() {
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 2.5];
        let ts = [0.0f32, 0.3, 1.0, 0.9, 0.2];
        let x = Var::constant(Tensor::from_vec(xs.to_vec(), &[5]));
        let t = Var::constant(Tensor::from_vec(ts.to_vec(), &[5]));
        let got = x.bce_with_logits(&t).value().to_vec();
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
    fn stays_finite_for_huge_logits() {
        let x = Var::parameter(Tensor::from_vec(vec![-200.0, 200.0], &[2]));
        let t = Var::constant(Tensor::from_vec(vec![1.0, 0.0], &[2]));
        let loss = x.bce_with_logits(&t).sum();
        assert_eq!(loss.item(), 400.0);
        loss.backward();
        assert_eq!(x.grad().unwrap().to_vec(), vec![-1.0, 1.0]);
    }

    #[test]
    fn gradcheck_both_inputs() {
        let x = Tensor::from_vec(vec![-2.0, -0.4, 0.3, 1.5, 3.0, -1.1], &[2, 3]);
        let t = Tensor::from_vec(vec![0.0, 0.25, 1.0, 0.6, 0.1, 0.9], &[2, 3]);
        gradcheck(
            |v| v[0].bce_with_logits(&v[1]),
            &[x, t],
            Tolerance::default(),
        )
        .unwrap();
    }
}
