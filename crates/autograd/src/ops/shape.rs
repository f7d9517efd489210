//! Shape ops: their backward moves the gradient back into the input's layout.

use ember_tensor::Tensor;

use crate::graph::{record, Grads};
use crate::Var;

impl Var {
    /// The same elements under a new shape. ∂/∂x = g reshaped back.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Var {
        let from = self.shape();
        let value = self.value_ref().reshape(shape);
        record(
            "reshape",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.reshape(&from)),
        )
    }

    /// Collapses every axis from `start_axis` on into one.
    #[track_caller]
    pub fn flatten_from(&self, start_axis: usize) -> Var {
        let shape = self.value_ref().flatten_from(start_axis).shape().to_vec();
        self.reshape(&shape)
    }

    /// Swaps two axes. ∂/∂x = g with the same axes swapped back.
    #[track_caller]
    pub fn transpose(&self, axis_a: isize, axis_b: isize) -> Var {
        let value = self.value_ref().transpose(axis_a, axis_b);
        record(
            "transpose",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.transpose(axis_a, axis_b).contiguous()),
        )
    }

    /// The transpose of the last two axes.
    #[track_caller]
    pub fn t(&self) -> Var {
        self.transpose(-2, -1)
    }

    /// Reorders the axes. ∂/∂x = g under the inverse permutation.
    #[track_caller]
    pub fn permute(&self, axes: &[usize]) -> Var {
        let value = self.value_ref().permute(axes);
        let mut inverse = vec![0; axes.len()];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        record(
            "permute",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.permute(&inverse).contiguous()),
        )
    }

    /// The slice `start .. start + len` along `axis`. ∂/∂x = g placed in that
    /// slice, zeros elsewhere.
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Var {
        let shape = self.shape();
        let value = self.value_ref().narrow(axis, start, len);
        record("narrow", value, &[self], move |g, grads: &mut Grads<'_>| {
            let axis_u = ember_tensor::shape::resolve_axis("narrow", axis, shape.len());
            let mut before = shape.clone();
            before[axis_u] = start;
            let mut after = shape.clone();
            after[axis_u] = shape[axis_u] - start - len;
            let parts = [&Tensor::zeros(&before), g, &Tensor::zeros(&after)];
            grads.add(0, Tensor::concat(&parts, axis))
        })
    }

    /// Joins variables along `axis`. Each input's gradient is its slice of g.
    ///
    /// # Panics
    /// If `parts` is empty or the shapes differ off the axis.
    #[track_caller]
    pub fn concat(parts: &[&Var], axis: isize) -> Var {
        let values: Vec<Tensor> = parts.iter().map(|p| p.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let value = Tensor::concat(&refs, axis);
        let lens: Vec<usize> = values
            .iter()
            .map(|v| v.shape()[ember_tensor::shape::resolve_axis("concat", axis, v.ndim())])
            .collect();
        record("concat", value, parts, move |g, grads: &mut Grads<'_>| {
            let mut start = 0;
            for (i, &len) in lens.iter().enumerate() {
                if grads.wants(i) {
                    grads.add(i, g.narrow(axis, start, len).contiguous());
                }
                start += len;
            }
        })
    }
}
