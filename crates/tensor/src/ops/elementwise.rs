//! Elementwise operations with NumPy broadcasting, and in-place updates.

use std::ops::{Add, Div, Mul, Neg, Sub};

use rayon::prelude::*;

use crate::parallel::{worth_splitting, CHUNK};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

/// Fills `out` (row-major over `a`'s shape) with `f(a, b)`, where `a` and `b`
/// already have the same (broadcast) shape and any strides.
fn zip_rows(a: &Tensor, b: &Tensor, out: &mut [f32], f: &(impl Fn(f32, f32) -> f32 + Sync)) {
    let inner = *a.shape.last().unwrap_or(&1);
    if out.is_empty() || inner == 0 {
        return;
    }
    let (sa, sb) = (
        *a.strides.last().unwrap_or(&1),
        *b.strides.last().unwrap_or(&1),
    );
    let fill = |first_row: usize, chunk: &mut [f32]| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            let (oa, ob) = (a.row_offset(first_row + r), b.row_offset(first_row + r));
            // The common layouts get loops the compiler can vectorise.
            match (sa, sb) {
                (1, 1) => {
                    let (xa, xb) = (&a.storage[oa..oa + inner], &b.storage[ob..ob + inner]);
                    for ((o, &x), &y) in row.iter_mut().zip(xa).zip(xb) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b.storage[ob];
                    for (o, &x) in row.iter_mut().zip(&a.storage[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a.storage[oa];
                    for (o, &y) in row.iter_mut().zip(&b.storage[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = f(a.storage[oa + j * sa], b.storage[ob + j * sb]);
                    }
                }
            }
        }
    };
    if worth_splitting(out.len()) {
        let rows_per_task = (CHUNK / inner).max(1);
        out.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(task, chunk)| fill(task * rows_per_task, chunk));
    } else {
        fill(0, out);
    }
}

/// Applies `f` to every element of a contiguous slice, in parallel when large.
fn map_slice(values: &mut [f32], f: &(impl Fn(f32) -> f32 + Sync)) {
    if worth_splitting(values.len()) {
        values
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    } else {
        values.iter_mut().for_each(|v| *v = f(*v));
    }
}

impl Tensor {
    /// A new tensor with `f` applied to every element.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let t = Tensor::arange(3).map(|x| x * x);
    /// assert_eq!(t.to_vec(), vec![0.0, 1.0, 4.0]);
    /// ```
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
        let Some(input) = self.as_slice() else {
            let mut data = self.to_buffer();
            map_slice(&mut data, &f);
            return Tensor::from_buffer(data, &self.shape);
        };
        // One pass from the input into the output: copying first and mapping
        // in place read and wrote every value twice (ReLU's forward, 5 % of a
        // convnet step in memmove).
        let mut data = crate::recycle::for_overwrite(input.len());
        let apply = |out: &mut [f32], input: &[f32]| {
            for (o, &x) in out.iter_mut().zip(input) {
                *o = f(x);
            }
        };
        if worth_splitting(input.len()) {
            data.par_chunks_mut(CHUNK)
                .zip(input.par_chunks(CHUNK))
                .for_each(|(out, input)| apply(out, input));
        } else {
            apply(&mut data, input);
        }
        Tensor::from_buffer(data, &self.shape)
    }

    /// A new tensor `f(self, other)`, elementwise after broadcasting both
    /// operands to a common shape. `op` names the operation in panics.
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `op` and both shapes.
    #[track_caller]
    pub fn zip_map(&self, other: &Tensor, op: &str, f: impl Fn(f32, f32) -> f32 + Sync) -> Tensor {
        let shape = broadcast_shapes(&self.shape, &other.shape).unwrap_or_else(|| {
            panic!(
                "{op}: shapes {:?} and {:?} do not broadcast",
                self.shape, other.shape
            )
        });
        let (a, b) = (self.broadcast_to(&shape), other.broadcast_to(&shape));
        let mut out = crate::recycle::for_overwrite(crate::shape::numel(&shape));
        zip_rows(&a, &b, &mut out, &f);
        Tensor::from_buffer(out, &shape)
    }

    /// Applies `f` to every element in place (copying first if the storage is shared).
    pub fn map_inplace(&mut self, f: impl Fn(f32) -> f32 + Sync) {
        map_slice(self.data_mut(), &f);
    }

    /// `self[i] = f(self[i], other[i])` in place, with `other` broadcast to
    /// `self`'s shape (the shape of `self` never changes).
    ///
    /// # Panics
    /// If `other` does not broadcast to `self`'s shape.
    #[track_caller]
    pub fn zip_inplace(&mut self, other: &Tensor, op: &str, f: impl Fn(f32, f32) -> f32 + Sync) {
        let fits = broadcast_shapes(&self.shape, &other.shape).is_some_and(|s| s == self.shape);
        assert!(
            fits,
            "{op}: shape {:?} cannot be broadcast into {:?}",
            other.shape, self.shape
        );
        let b = other.broadcast_to(&self.shape);
        let shape = self.shape.clone();
        zip_rows_inplace(&shape, self.data_mut(), &b, &f);
    }

    /// `self += alpha * x`, in place (x broadcast to `self`'s shape).
    #[track_caller]
    pub fn axpy(&mut self, alpha: f32, x: &Tensor) {
        self.zip_inplace(x, "axpy", |s, v| s + alpha * v);
    }

    /// `self += other`, in place.
    #[track_caller]
    pub fn add_assign(&mut self, other: &Tensor) {
        self.zip_inplace(other, "add_assign", |s, v| s + v);
    }

    /// `self -= other`, in place.
    #[track_caller]
    pub fn sub_assign(&mut self, other: &Tensor) {
        self.zip_inplace(other, "sub_assign", |s, v| s - v);
    }

    /// `self *= other`, in place.
    #[track_caller]
    pub fn mul_assign(&mut self, other: &Tensor) {
        self.zip_inplace(other, "mul_assign", |s, v| s * v);
    }

    /// `self *= factor`, in place.
    pub fn scale_inplace(&mut self, factor: f32) {
        self.map_inplace(|v| v * factor);
    }

    /// Sets every element to `value`, in place.
    pub fn fill(&mut self, value: f32) {
        self.data_mut().fill(value);
    }

    /// Elementwise sum with broadcasting.
    #[track_caller]
    pub fn add(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "add", |a, b| a + b)
    }

    /// Elementwise difference with broadcasting.
    #[track_caller]
    pub fn sub(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "sub", |a, b| a - b)
    }

    /// Elementwise product with broadcasting.
    #[track_caller]
    pub fn mul(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "mul", |a, b| a * b)
    }

    /// Elementwise quotient with broadcasting.
    #[track_caller]
    pub fn div(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "div", |a, b| a / b)
    }

    /// Elementwise maximum with broadcasting.
    #[track_caller]
    pub fn maximum(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "maximum", f32::max)
    }

    /// Elementwise minimum with broadcasting.
    #[track_caller]
    pub fn minimum(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "minimum", f32::min)
    }

    /// `-x`.
    pub fn neg(&self) -> Tensor {
        self.map(|x| -x)
    }

    /// `x + s`.
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.map(|x| x + s)
    }

    /// `x * s`.
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.map(|x| x * s)
    }

    /// `x / s`.
    pub fn div_scalar(&self, s: f32) -> Tensor {
        self.map(|x| x / s)
    }

    /// `e^x`.
    pub fn exp(&self) -> Tensor {
        self.map(f32::exp)
    }

    /// The natural logarithm.
    pub fn ln(&self) -> Tensor {
        self.map(f32::ln)
    }

    /// The square root.
    pub fn sqrt(&self) -> Tensor {
        self.map(f32::sqrt)
    }

    /// `x^p`.
    pub fn powf(&self, p: f32) -> Tensor {
        self.map(|x| x.powf(p))
    }

    /// `|x|`.
    pub fn abs(&self) -> Tensor {
        self.map(f32::abs)
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.map(|x| x.max(0.0))
    }

    /// `1 / (1 + e^−x)`, computed without overflow for large |x|.
    pub fn sigmoid(&self) -> Tensor {
        self.map(sigmoid)
    }

    /// The hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.map(f32::tanh)
    }

    /// Clamps every element into `[min, max]`.
    pub fn clamp(&self, min: f32, max: f32) -> Tensor {
        self.map(|x| x.clamp(min, max))
    }

    /// 1.0 where `self > other`, else 0.0 (broadcasting).
    #[track_caller]
    pub fn gt(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "gt", |a, b| f32::from(u8::from(a > b)))
    }

    /// 1.0 where `self >= other`, else 0.0 (broadcasting).
    #[track_caller]
    pub fn ge(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "ge", |a, b| f32::from(u8::from(a >= b)))
    }

    /// 1.0 where `self < other`, else 0.0 (broadcasting).
    #[track_caller]
    pub fn lt(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "lt", |a, b| f32::from(u8::from(a < b)))
    }

    /// 1.0 where `self <= other`, else 0.0 (broadcasting).
    #[track_caller]
    pub fn le(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "le", |a, b| f32::from(u8::from(a <= b)))
    }

    /// 1.0 where `self == other`, else 0.0 (broadcasting).
    #[track_caller]
    pub fn eq_mask(&self, other: &Tensor) -> Tensor {
        self.zip_map(other, "eq_mask", |a, b| f32::from(u8::from(a == b)))
    }

    /// 1.0 where `x > s`, else 0.0.
    pub fn gt_scalar(&self, s: f32) -> Tensor {
        self.map(|x| f32::from(u8::from(x > s)))
    }
}

/// Like `zip_rows`, but updates `data` (contiguous, of `shape`) in place.
fn zip_rows_inplace(
    shape: &[usize],
    data: &mut [f32],
    b: &Tensor,
    f: &(impl Fn(f32, f32) -> f32 + Sync),
) {
    let inner = *shape.last().unwrap_or(&1);
    let n = crate::shape::numel(shape);
    if n == 0 || inner == 0 {
        return;
    }
    let sb = *b.strides.last().unwrap_or(&1);
    let fill = |first_row: usize, chunk: &mut [f32]| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            let ob = b.row_offset(first_row + r);
            match sb {
                1 => {
                    for (o, &y) in row.iter_mut().zip(&b.storage[ob..ob + inner]) {
                        *o = f(*o, y);
                    }
                }
                0 => {
                    let y = b.storage[ob];
                    row.iter_mut().for_each(|o| *o = f(*o, y));
                }
                _ => {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = f(*o, b.storage[ob + j * sb]);
                    }
                }
            }
        }
    };
    let data = &mut data[..n];
    if worth_splitting(n) {
        let rows_per_task = (CHUNK / inner).max(1);
        data.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(task, chunk)| fill(task * rows_per_task, chunk));
    } else {
        fill(0, data);
    }
}

/// The logistic function, stable for large |x|.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$method(self, rhs)
            }
        }
        impl $trait<f32> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: f32) -> Tensor {
                Tensor::$method(self, &Tensor::scalar(rhs))
            }
        }
    };
}

binary_operator!(Add, add);
binary_operator!(Sub, sub);
binary_operator!(Mul, mul);
binary_operator!(Div, div);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape)
    }

    #[test]
    fn broadcasting_row_and_column() {
        let col = t(&[1.0, 2.0], &[2, 1]);
        let row = t(&[10.0, 20.0, 30.0], &[3]);
        let s = &col + &row;
        assert_eq!(s.shape(), &[2, 3]);
        assert_eq!(s.to_vec(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
        assert_eq!(
            (&row - &col).to_vec(),
            vec![9.0, 19.0, 29.0, 8.0, 18.0, 28.0]
        );
        assert_eq!((&col * 2.0).to_vec(), vec![2.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [2] do not broadcast")]
    fn mismatched_shapes_name_the_op() {
        let _ = &Tensor::zeros(&[2, 3]) + &Tensor::zeros(&[2]);
    }

    #[test]
    fn ops_on_non_contiguous_views_match_copies() {
        let a = Tensor::arange(12).reshape(&[3, 4]);
        let b = Tensor::arange(12).reshape(&[4, 3]).t();
        let view_result = &a * &b;
        let copy_result = &a * &b.contiguous();
        assert_eq!(view_result.to_vec(), copy_result.to_vec());
        assert_eq!(a.t().exp().to_vec(), a.t().contiguous().exp().to_vec());
    }

    #[test]
    fn large_broadcasts_match_element_by_element() {
        // Large enough to be split across threads.
        let a = Tensor::arange(300 * 400).reshape(&[300, 400]);
        let b = Tensor::arange(400).mul_scalar(0.5);
        let s = &a + &b;
        let (av, sv) = (a.to_vec(), s.to_vec());
        for i in [0, 399, 400, 119_999] {
            assert_eq!(sv[i], av[i] + (i % 400) as f32 * 0.5);
        }
    }

    #[test]
    fn unary_maths() {
        let x = t(&[-2.0, 0.0, 3.0], &[3]);
        assert_eq!(x.relu().to_vec(), vec![0.0, 0.0, 3.0]);
        assert_eq!(x.abs().to_vec(), vec![2.0, 0.0, 3.0]);
        assert_eq!(x.neg().to_vec(), vec![2.0, -0.0, -3.0]);
        assert_eq!(x.gt_scalar(0.0).to_vec(), vec![0.0, 0.0, 1.0]);
        assert_eq!(t(&[4.0], &[1]).sqrt().item(), 2.0);
        assert_eq!(t(&[2.0], &[1]).powf(3.0).item(), 8.0);
        assert!((t(&[1.0], &[1]).exp().ln().item() - 1.0).abs() < 1e-6);
        let s = t(&[-1000.0, 0.0, 1000.0], &[3]).sigmoid().to_vec();
        assert_eq!(s, vec![0.0, 0.5, 1.0]);
        assert_eq!(x.clamp(-1.0, 1.0).to_vec(), vec![-1.0, 0.0, 1.0]);
    }

    #[test]
    fn masks_compare_with_broadcasting() {
        let x = t(&[1.0, 2.0, 3.0], &[3]);
        let y = Tensor::scalar(2.0);
        assert_eq!(x.gt(&y).to_vec(), vec![0.0, 0.0, 1.0]);
        assert_eq!(x.ge(&y).to_vec(), vec![0.0, 1.0, 1.0]);
        assert_eq!(x.lt(&y).to_vec(), vec![1.0, 0.0, 0.0]);
        assert_eq!(x.le(&y).to_vec(), vec![1.0, 1.0, 0.0]);
        assert_eq!(x.eq_mask(&y).to_vec(), vec![0.0, 1.0, 0.0]);
        assert_eq!(x.maximum(&y).to_vec(), vec![2.0, 2.0, 3.0]);
        assert_eq!(x.minimum(&y).to_vec(), vec![1.0, 2.0, 2.0]);
    }

    #[test]
    fn in_place_updates_broadcast_into_self() {
        let mut w = Tensor::ones(&[2, 3]);
        w.axpy(-0.5, &t(&[1.0, 2.0, 3.0], &[3]));
        assert_eq!(w.to_vec(), vec![0.5, 0.0, -0.5, 0.5, 0.0, -0.5]);
        w.add_assign(&Tensor::scalar(1.0));
        w.mul_assign(&t(&[2.0, 1.0], &[2, 1]));
        assert_eq!(w.to_vec(), vec![3.0, 2.0, 1.0, 1.5, 1.0, 0.5]);
        w.scale_inplace(2.0);
        w.sub_assign(&Tensor::ones(&[2, 3]));
        assert_eq!(w.to_vec(), vec![5.0, 3.0, 1.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn in_place_update_does_not_touch_a_shared_clone() {
        let a = Tensor::ones(&[3]);
        let mut b = a.clone();
        b.axpy(1.0, &Tensor::ones(&[3]));
        assert_eq!(a.to_vec(), vec![1.0; 3]);
        assert_eq!(b.to_vec(), vec![2.0; 3]);
    }

    #[test]
    #[should_panic(expected = "axpy: shape [2, 3] cannot be broadcast into [3]")]
    fn in_place_cannot_grow_self() {
        Tensor::ones(&[3]).axpy(1.0, &Tensor::ones(&[2, 3]));
    }
}
