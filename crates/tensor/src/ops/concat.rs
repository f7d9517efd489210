//! Joining tensors along an axis.

use crate::shape::resolve_axis;
use crate::tensor::Tensor;

impl Tensor {
    /// Joins tensors along `axis`; every other axis must agree.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let a = Tensor::zeros(&[2, 1]);
    /// let b = Tensor::ones(&[2, 2]);
    /// let c = Tensor::concat(&[&a, &b], 1);
    /// assert_eq!(c.to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// ```
    ///
    /// # Panics
    /// If `parts` is empty or the shapes differ off the axis; the message names them.
    #[track_caller]
    pub fn concat(parts: &[&Tensor], axis: isize) -> Tensor {
        assert!(!parts.is_empty(), "concat: nothing to join");
        let first = parts[0].shape();
        let axis = resolve_axis("concat", axis, first.len());
        for p in parts {
            let same = p.ndim() == first.len()
                && (0..first.len()).all(|i| i == axis || p.shape()[i] == first[i]);
            assert!(
                same,
                "concat: shapes {:?} and {:?} differ off axis {axis}",
                first,
                p.shape()
            );
        }
        let outer: usize = first[..axis].iter().product();
        let inner: usize = first[axis + 1..].iter().product();
        let total: usize = parts.iter().map(|p| p.shape()[axis]).sum();
        let contiguous: Vec<Tensor> = parts.iter().map(|p| p.contiguous()).collect();
        let mut out = Vec::with_capacity(outer * total * inner);
        for o in 0..outer {
            for p in &contiguous {
                let run = p.shape()[axis] * inner;
                out.extend_from_slice(&p.as_slice().expect("contiguous")[o * run..(o + 1) * run]);
            }
        }
        let mut shape = first.to_vec();
        shape[axis] = total;
        Tensor::from_vec(out, &shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn concat_then_narrow_round_trips() {
        let a = Tensor::arange(6).reshape(&[2, 3]);
        let b = Tensor::arange(6).reshape(&[2, 3]).t();
        let c = Tensor::concat(&[&a.t(), &b], 1);
        assert_eq!(c.shape(), &[3, 4]);
        assert_eq!(c.narrow(1, 0, 2).to_vec(), a.t().to_vec());
        assert_eq!(c.narrow(1, 2, 2).to_vec(), b.to_vec());
        let rows = Tensor::concat(&[&a, &a], 0);
        assert_eq!(rows.shape(), &[4, 3]);
    }

    #[test]
    #[should_panic(expected = "concat: shapes [2, 3] and [3, 3] differ off axis 1")]
    fn concat_checks_other_axes() {
        Tensor::concat(&[&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[3, 3])], 1);
    }
}
