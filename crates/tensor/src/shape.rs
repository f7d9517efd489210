//! Shape arithmetic: element counts, row-major strides and broadcasting.

/// The number of elements of a tensor of this shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C order) strides, in elements, for a contiguous tensor.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (stride, &dim) in strides.iter_mut().zip(shape).rev() {
        *stride = acc;
        acc *= dim;
    }
    strides
}

/// The shape two operands broadcast to under NumPy's rules, or `None`.
///
/// Shapes are aligned on their trailing axes; two sizes are compatible when
/// they are equal or one of them is 1.
///
/// ```
/// use ember_tensor::shape::broadcast_shapes;
/// assert_eq!(broadcast_shapes(&[4, 1, 3], &[5, 1]), Some(vec![4, 5, 3]));
/// assert_eq!(broadcast_shapes(&[2, 3], &[4]), None);
/// ```
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let ndim = a.len().max(b.len());
    let mut out = vec![0; ndim];
    for i in 0..ndim {
        let da = if i < ndim - a.len() {
            1
        } else {
            a[i - (ndim - a.len())]
        };
        let db = if i < ndim - b.len() {
            1
        } else {
            b[i - (ndim - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Resolves a possibly negative axis (`-1` is the last) against `ndim`.
///
/// # Panics
/// If the axis is out of range; the message names `op`.
#[track_caller]
pub fn resolve_axis(op: &str, axis: isize, ndim: usize) -> usize {
    let resolved = if axis < 0 { axis + ndim as isize } else { axis };
    assert!(
        resolved >= 0 && (resolved as usize) < ndim,
        "{op}: axis {axis} is out of range for a tensor with {ndim} dimensions"
    );
    resolved as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
        assert_eq!(contiguous_strides(&[5]), vec![1]);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[3], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[2, 1], &[1, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[0], &[1]), Some(vec![0]));
        assert_eq!(broadcast_shapes(&[2, 3], &[3, 2]), None);
    }

    #[test]
    fn negative_axes_count_from_the_end() {
        assert_eq!(resolve_axis("t", -1, 3), 2);
        assert_eq!(resolve_axis("t", 0, 3), 0);
    }

    #[test]
    #[should_panic(expected = "sum_axis: axis 3 is out of range")]
    fn axis_out_of_range_names_the_op() {
        resolve_axis("sum_axis", 3, 3);
    }
}
