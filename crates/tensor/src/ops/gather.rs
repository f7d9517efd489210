//! Gathering slices along an axis by index (`index_select`).

use crate::shape::resolve_axis;
use crate::tensor::Tensor;

impl Tensor {
    /// A new tensor made of the slices at `indices` along `axis`, in that
    /// order (repeats allowed): PyTorch's `index_select`. Along axis 0 it
    /// gathers the rows of a batch, e.g. a shuffled mini-batch of a dataset.
    /// Copies; the result is contiguous, with `indices.len()` on `axis`.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    ///
    /// let x = Tensor::arange(6).reshape(&[3, 2]); // rows [0 1] [2 3] [4 5]
    /// let rows = x.index_select(0, &[2, 0, 2]);
    /// assert_eq!(rows.shape(), &[3, 2]);
    /// assert_eq!(rows.to_vec(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    /// assert_eq!(x.index_select(-1, &[1]).to_vec(), vec![1.0, 3.0, 5.0]);
    /// ```
    ///
    /// # Panics
    /// If `axis` is out of range, or an index is not below the axis's
    /// length; the message names the op, the index and the shape.
    #[track_caller]
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Tensor {
        let axis = resolve_axis("index_select", axis, self.ndim());
        let len = self.shape()[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            panic!(
                "index_select: index {bad} is out of range for axis {axis} of shape {:?}",
                self.shape()
            );
        }
        let outer: usize = self.shape()[..axis].iter().product();
        let inner: usize = self.shape()[axis + 1..].iter().product();
        let source = self.contiguous();
        let data = source.as_slice().expect("contiguous");
        let mut out = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &i in indices {
                let start = (o * len + i) * inner;
                out.extend_from_slice(&data[start..start + inner]);
            }
        }
        let mut shape = self.shape().to_vec();
        shape[axis] = indices.len();
        Tensor::from_vec(out, &shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn rows_of_a_batch_keep_their_trailing_axes() {
        let x = Tensor::arange(24).reshape(&[4, 1, 2, 3]);
        let g = x.index_select(0, &[3, 1]);
        assert_eq!(g.shape(), &[2, 1, 2, 3]);
        assert_eq!(g.to_vec()[..6], x.select(0, 3).to_vec()[..]);
        assert_eq!(g.to_vec()[6..], x.select(0, 1).to_vec()[..]);
    }

    #[test]
    fn a_middle_axis_of_a_view_and_no_indices() {
        let x = Tensor::arange(24).reshape(&[2, 3, 4]).transpose(0, 1); // (3, 2, 4), a view
        let g = x.index_select(1, &[1]);
        assert_eq!(g.shape(), &[3, 1, 4]);
        assert_eq!(g.to_vec(), x.narrow(1, 1, 1).to_vec());
        assert_eq!(x.index_select(0, &[]).shape(), &[0, 2, 4]);
    }

    #[test]
    #[should_panic(expected = "index_select: index 3 is out of range for axis 0 of shape [3, 2]")]
    fn an_index_out_of_range_names_the_op_and_shape() {
        Tensor::zeros(&[3, 2]).index_select(0, &[0, 3]);
    }
}
