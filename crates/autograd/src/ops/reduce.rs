//! Reductions: sum, mean and max, over everything or one axis.

use ember_tensor::Tensor;

use crate::graph::{record, Grads};
use crate::Var;

/// Puts back the reduced axis (size 1) so a gradient broadcasts over it.
fn unreduce(g: &Tensor, axis: usize, keepdim: bool) -> Tensor {
    if keepdim {
        g.clone()
    } else {
        g.unsqueeze(axis)
    }
}

fn resolve(op: &str, axis: isize, ndim: usize) -> usize {
    ember_tensor::shape::resolve_axis(op, axis, ndim)
}

impl Var {
    /// The sum of all elements, as a 0-dimensional scalar. ∂/∂x = g everywhere.
    pub fn sum(&self) -> Var {
        let shape = self.shape();
        let value = Tensor::scalar(self.value_ref().sum_all());
        record("sum", value, &[self], move |g, grads: &mut Grads<'_>| {
            grads.add(0, g.broadcast_to(&shape).contiguous())
        })
    }

    /// The mean of all elements. ∂/∂x = g/n everywhere.
    pub fn mean(&self) -> Var {
        let shape = self.shape();
        let n = self.value_ref().numel() as f32;
        let value = Tensor::scalar(self.value_ref().sum_all() / n);
        record("mean", value, &[self], move |g, grads: &mut Grads<'_>| {
            grads.add(0, g.mul_scalar(1.0 / n).broadcast_to(&shape).contiguous())
        })
    }

    /// Sums along `axis`; `keepdim` keeps it with size 1.
    #[track_caller]
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Var {
        let shape = self.shape();
        let axis_u = resolve("sum_axis", axis, shape.len());
        let value = self.value_ref().sum_axis(axis, keepdim);
        record(
            "sum_axis",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| {
                grads.add(
                    0,
                    unreduce(g, axis_u, keepdim)
                        .broadcast_to(&shape)
                        .contiguous(),
                )
            },
        )
    }

    /// Means along `axis`; `keepdim` keeps it with size 1.
    #[track_caller]
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Var {
        let n = self.shape()[resolve("mean_axis", axis, self.shape().len())];
        self.sum_axis(axis, keepdim).mul_scalar(1.0 / n as f32)
    }

    /// Maxima along `axis`. The gradient goes to the first maximal element of
    /// each slice (as PyTorch's `max(dim)` does), the others get 0.
    #[track_caller]
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Var {
        let x = self.value();
        let axis_u = resolve("max_axis", axis, x.ndim());
        let value = x.max_axis(axis, keepdim);
        let winners = x.argmax_axis(axis);
        let shape = x.shape().to_vec();
        record(
            "max_axis",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| {
                let g = g.contiguous();
                let g = g.as_slice().expect("contiguous");
                let inner: usize = shape[axis_u + 1..].iter().product();
                let len = shape[axis_u];
                let mut out = vec![0.0; shape.iter().product()];
                for (j, (&w, &gv)) in winners.iter().zip(g).enumerate() {
                    let (o, i) = (j / inner.max(1), j % inner.max(1));
                    out[(o * len + w) * inner + i] = gv;
                }
                grads.add(0, Tensor::from_vec(out, &shape))
            },
        )
    }
}
