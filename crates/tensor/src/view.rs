//! Views: new shapes and strides over the same storage, without copying.

use crate::shape::{contiguous_strides, numel, resolve_axis};
use crate::tensor::Tensor;

impl Tensor {
    /// Swaps two axes (a view).
    ///
    /// # Panics
    /// If either axis is out of range.
    #[track_caller]
    pub fn transpose(&self, axis_a: isize, axis_b: isize) -> Tensor {
        let a = resolve_axis("transpose", axis_a, self.ndim());
        let b = resolve_axis("transpose", axis_b, self.ndim());
        let mut out = self.clone();
        out.shape.swap(a, b);
        out.strides.swap(a, b);
        out
    }

    /// The transpose of the last two axes (a view); a matrix `(m, n)` becomes `(n, m)`.
    ///
    /// # Panics
    /// If the tensor has fewer than two axes.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        assert!(
            self.ndim() >= 2,
            "t: needs at least 2 axes, got shape {:?}",
            self.shape
        );
        self.transpose(-2, -1)
    }

    /// Reorders the axes (a view): axis `i` of the result is axis `axes[i]` of `self`.
    ///
    /// # Panics
    /// If `axes` is not a permutation of `0..ndim`.
    #[track_caller]
    pub fn permute(&self, axes: &[usize]) -> Tensor {
        let mut seen = vec![false; self.ndim()];
        let valid = axes.len() == self.ndim()
            && axes
                .iter()
                .all(|&a| a < self.ndim() && !std::mem::replace(&mut seen[a], true));
        assert!(
            valid,
            "permute: {axes:?} is not a permutation of the axes of shape {:?}",
            self.shape
        );
        Tensor {
            storage: self.storage.clone(),
            shape: axes.iter().map(|&a| self.shape[a]).collect(),
            strides: axes.iter().map(|&a| self.strides[a]).collect(),
            offset: self.offset,
        }
    }

    /// The same elements in row-major order under a new shape.
    ///
    /// A view when `self` is contiguous; a copy otherwise.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        assert_eq!(
            numel(shape),
            self.numel(),
            "reshape: cannot view shape {:?} ({} elements) as {:?} ({} elements)",
            self.shape,
            self.numel(),
            shape,
            numel(shape)
        );
        let base = self.contiguous();
        Tensor {
            storage: base.storage,
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: base.offset,
        }
    }

    /// Collapses every axis from `start_axis` on into one (a view when contiguous).
    #[track_caller]
    pub fn flatten_from(&self, start_axis: usize) -> Tensor {
        assert!(
            start_axis <= self.ndim(),
            "flatten_from: axis {start_axis} is out of range for shape {:?}",
            self.shape
        );
        let mut shape = self.shape[..start_axis].to_vec();
        shape.push(self.shape[start_axis..].iter().product());
        self.reshape(&shape)
    }

    /// The slice `start .. start + len` along `axis` (a view).
    ///
    /// # Panics
    /// If the range reaches past the axis.
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor {
        let axis = resolve_axis("narrow", axis, self.ndim());
        assert!(
            start + len <= self.shape[axis],
            "narrow: range {start}..{} is out of bounds for axis {axis} of shape {:?}",
            start + len,
            self.shape
        );
        let mut out = self.clone();
        if len > 0 {
            out.offset += start * self.strides[axis];
        }
        out.shape[axis] = len;
        out
    }

    /// Index `index` along `axis`, dropping that axis (a view).
    #[track_caller]
    pub fn select(&self, axis: isize, index: usize) -> Tensor {
        let axis_u = resolve_axis("select", axis, self.ndim());
        self.narrow(axis, index, 1).squeeze(axis_u as isize)
    }

    /// Inserts an axis of size 1 at `axis` (a view); `axis` may equal `ndim`.
    #[track_caller]
    pub fn unsqueeze(&self, axis: usize) -> Tensor {
        assert!(
            axis <= self.ndim(),
            "unsqueeze: axis {axis} is out of range for shape {:?}",
            self.shape
        );
        let mut out = self.clone();
        let stride = self.strides.get(axis).map_or(1, |&s| s * self.shape[axis]);
        out.shape.insert(axis, 1);
        out.strides.insert(axis, stride);
        out
    }

    /// Removes an axis of size 1 (a view).
    ///
    /// # Panics
    /// If that axis is not of size 1.
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Tensor {
        let axis = resolve_axis("squeeze", axis, self.ndim());
        assert_eq!(
            self.shape[axis], 1,
            "squeeze: axis {axis} of shape {:?} is not of size 1",
            self.shape
        );
        let mut out = self.clone();
        out.shape.remove(axis);
        out.strides.remove(axis);
        out
    }

    /// Repeats the tensor along new or size-1 axes to `shape` (a view with
    /// stride 0 on the broadcast axes), following NumPy's rules.
    ///
    /// # Panics
    /// If `self.shape()` does not broadcast to `shape`.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        let extra = shape.len().checked_sub(self.ndim());
        let fits = extra.is_some_and(|extra| {
            self.shape
                .iter()
                .enumerate()
                .all(|(i, &d)| d == shape[extra + i] || d == 1)
        });
        assert!(
            fits,
            "broadcast_to: shape {:?} cannot broadcast to {:?}",
            self.shape, shape
        );
        let extra = extra.unwrap_or(0);
        let strides = (0..shape.len())
            .map(|i| {
                if i < extra || self.shape[i - extra] != shape[i] {
                    0
                } else {
                    self.strides[i - extra]
                }
            })
            .collect();
        Tensor {
            storage: self.storage.clone(),
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    fn grid() -> Tensor {
        Tensor::arange(24).reshape(&[2, 3, 4])
    }

    #[test]
    fn transpose_and_permute_are_views() {
        let a = grid();
        let p = a.permute(&[2, 0, 1]);
        assert!(p.shares_storage_with(&a));
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert_eq!(p.get(&[3, 1, 2]), a.get(&[1, 2, 3]));
        assert!(!p.is_contiguous());
        assert_eq!(a.transpose(0, 2).get(&[1, 2, 0]), a.get(&[0, 2, 1]));
    }

    #[test]
    fn reshape_views_contiguous_and_copies_otherwise() {
        let a = grid();
        let r = a.reshape(&[6, 4]);
        assert!(r.shares_storage_with(&a));
        let t = a.transpose(1, 2);
        let rt = t.reshape(&[8, 3]);
        assert!(!rt.shares_storage_with(&a));
        assert_eq!(rt.to_vec(), t.to_vec());
    }

    #[test]
    #[should_panic(expected = "reshape: cannot view shape [2, 3, 4] (24 elements) as [5, 5]")]
    fn reshape_checks_counts() {
        grid().reshape(&[5, 5]);
    }

    #[test]
    fn narrow_selects_a_range() {
        let a = grid();
        let n = a.narrow(1, 1, 2);
        assert!(n.shares_storage_with(&a));
        assert_eq!(n.shape(), &[2, 2, 4]);
        assert_eq!(n.get(&[1, 0, 3]), a.get(&[1, 1, 3]));
        assert_eq!(
            a.select(0, 1).to_vec(),
            (12..24).map(|i| i as f32).collect::<Vec<_>>()
        );
        assert_eq!(a.narrow(-1, 4, 0).numel(), 0);
    }

    #[test]
    #[should_panic(expected = "narrow: range 2..4 is out of bounds for axis 1")]
    fn narrow_checks_bounds() {
        grid().narrow(1, 2, 2);
    }

    #[test]
    fn broadcast_repeats_with_zero_strides() {
        let row = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
        let b = row.broadcast_to(&[2, 3]);
        assert_eq!(b.strides(), &[0, 1]);
        assert_eq!(b.to_vec(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        let col = Tensor::from_vec(vec![1.0, 2.0], &[2, 1]);
        assert_eq!(col.broadcast_to(&[2, 2]).to_vec(), vec![1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "broadcast_to: shape [3] cannot broadcast to [2, 4]")]
    fn broadcast_checks_shapes() {
        Tensor::zeros(&[3]).broadcast_to(&[2, 4]);
    }

    #[test]
    fn squeeze_and_unsqueeze_round_trip() {
        let a = grid();
        let u = a.unsqueeze(1);
        assert_eq!(u.shape(), &[2, 1, 3, 4]);
        assert_eq!(u.squeeze(1).shape(), &[2, 3, 4]);
        assert_eq!(a.unsqueeze(3).shape(), &[2, 3, 4, 1]);
        assert_eq!(a.flatten_from(1).shape(), &[2, 12]);
    }
}
