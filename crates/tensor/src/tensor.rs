//! The [`Tensor`] type: a strided view over shared f32 storage.

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;

use crate::parallel::{worth_splitting, CHUNK};
use crate::recycle::{self, Buffer, Storage};
use crate::shape::{contiguous_strides, numel};

/// An f32 n-dimensional array.
///
/// A tensor is a view: a `shape`, per-axis `strides` (in elements; 0 on a
/// broadcast axis) and an `offset` into reference-counted storage. Cloning
/// copies the view, not the data. Operations that must write (the `*_assign`
/// family, [`Tensor::data_mut`]) copy the storage first if it is shared, so a
/// tensor never changes under another tensor's feet.
///
/// ```
/// use ember_tensor::Tensor;
///
/// let a = Tensor::arange(6).reshape(&[2, 3]);
/// let t = a.t(); // a view: no data is copied
/// assert_eq!(t.shape(), &[3, 2]);
/// assert_eq!(t.to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
/// assert!(t.shares_storage_with(&a));
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) storage: Arc<Storage>,
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) offset: usize,
}

impl Tensor {
    /// A contiguous tensor owning `data`, laid out in row-major order.
    ///
    /// The values stay where they are, uncopied. (The tensors Ember makes
    /// itself, such as [`Tensor::empty`] or a product's output, start on a
    /// 64-byte cache line, which the GEMM's vector stores prefer; a `Vec`
    /// from the allocator is only 16-byte aligned.)
    ///
    /// # Panics
    /// If `data.len()` differs from the number of elements of `shape`.
    #[track_caller]
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Tensor {
        assert_eq!(
            data.len(),
            numel(shape),
            "from_vec: {} values cannot fill shape {:?} ({} elements)",
            data.len(),
            shape,
            numel(shape)
        );
        Tensor::from_buffer(Buffer::given(data), shape)
    }

    /// A contiguous tensor owning `buffer` (its length already checked
    /// against `shape`'s elements by the caller).
    pub(crate) fn from_buffer(buffer: Buffer, shape: &[usize]) -> Tensor {
        debug_assert_eq!(buffer.len(), numel(shape));
        Tensor {
            storage: Arc::new(Storage::new(buffer)),
            strides: contiguous_strides(shape),
            shape: shape.to_vec(),
            offset: 0,
        }
    }

    /// A 0-dimensional tensor holding one value.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::from_vec(vec![value], &[])
    }

    /// A tensor of the given shape filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::from_buffer(recycle::filled(numel(shape), value), shape)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor whose values are unspecified (PyTorch's `torch.empty`), for
    /// callers about to overwrite every one: a recycled buffer keeps what it
    /// held, a new one is zeros. It saves the pass that [`Tensor::zeros`]
    /// spends filling a buffer that is then overwritten (a convolution's
    /// output is megabytes a step).
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let mut t = Tensor::empty(&[2, 3]);
    /// t.data_mut().fill(1.5);
    /// assert_eq!(t.to_vec(), vec![1.5; 6]);
    /// ```
    pub fn empty(shape: &[usize]) -> Tensor {
        Tensor::from_buffer(recycle::for_overwrite(numel(shape)), shape)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// The values `0, 1, …, n − 1` as a 1-D tensor.
    pub fn arange(n: usize) -> Tensor {
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n])
    }

    /// The `n × n` identity matrix.
    pub fn eye(n: usize) -> Tensor {
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            data[i * n + i] = 1.0;
        }
        Tensor::from_vec(data, &[n, n])
    }

    /// The size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The step, in elements, between neighbours along each axis.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The size of axis `axis` (negative counts from the end).
    #[track_caller]
    pub fn dim(&self, axis: isize) -> usize {
        self.shape[crate::shape::resolve_axis("dim", axis, self.ndim())]
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the view is row-major with no gaps (its elements are one slice).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    /// Whether two tensors view the same storage (for tests of view semantics).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// How many tensors (views included) share this tensor's storage: a way
    /// for tests to show that no stale handle keeps a buffer alive.
    pub fn storage_handles(&self) -> usize {
        Arc::strong_count(&self.storage)
    }

    /// The elements as one slice, when the view is contiguous.
    pub fn as_slice(&self) -> Option<&[f32]> {
        self.is_contiguous()
            .then(|| &self.storage[self.offset..self.offset + self.numel()])
    }

    /// The storage from this view's first element on, and its strides: what a
    /// kernel needs to read the view in place (for example [`crate::gemm::MatRef`]).
    pub fn raw_parts(&self) -> (&[f32], &[usize]) {
        (&self.storage[self.offset..], &self.strides)
    }

    /// The elements as a mutable slice, for in-place updates.
    ///
    /// If the view is not contiguous or its storage is shared with another
    /// tensor, the data are first copied into storage of its own, so writing
    /// never changes another tensor.
    pub fn data_mut(&mut self) -> &mut [f32] {
        let n = self.numel();
        let owns_exactly = self.is_contiguous() && self.offset == 0 && self.storage.len() == n;
        if !owns_exactly || Arc::strong_count(&self.storage) > 1 {
            *self = Tensor::from_buffer(self.to_buffer(), &self.shape.clone());
        }
        let storage = Arc::get_mut(&mut self.storage).expect("storage is unique after copy");
        &mut storage[..n]
    }

    /// The elements in row-major order, as a new vector.
    pub fn to_vec(&self) -> Vec<f32> {
        if let Some(slice) = self.as_slice() {
            return slice.to_vec();
        }
        let mut out = vec![0.0; self.numel()];
        self.copy_into(&mut out);
        out
    }

    /// The elements in row-major order, in a new line-aligned buffer (see
    /// [`Buffer`]), for a tensor of their own.
    pub(crate) fn to_buffer(&self) -> Buffer {
        if let Some(slice) = self.as_slice() {
            return recycle::copied(slice);
        }
        let mut out = recycle::for_overwrite(self.numel());
        self.copy_into(&mut out);
        out
    }

    /// A contiguous tensor with the same values: `self` itself (O(1)) when it
    /// already is one, a copy otherwise.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        Tensor::from_buffer(self.to_buffer(), &self.shape)
    }

    /// A contiguous tensor with the same values whose first element starts
    /// on a 64-byte cache line: `self` itself (O(1)) when it already is
    /// one, a copy otherwise. (Tensors of fewer than 16 values are only
    /// made contiguous: they fill less than a line.)
    ///
    /// Ember's own tensors start on a line; a `Vec` given to
    /// [`Tensor::from_vec`] is used where the allocator put it, 16 bytes
    /// aligned. The GEMM reads and writes whole 64-byte vectors: a row-major
    /// B read in place against a short A (a batch of up to 72 rows) ran
    /// 15–22 % slower 16 bytes off a line (64×512×512, one thread, the
    /// Xeon of `docs/gemm.md`), which is why `ember_autograd`'s
    /// `Var::parameter` stores a parameter this way, once, when created.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let t = Tensor::from_vec((0..100).map(|i| i as f32).collect(), &[10, 10]);
    /// let a = t.contiguous_aligned();
    /// assert!(a.starts_on_cache_line());
    /// assert_eq!(a.to_vec(), t.to_vec());
    /// // Already so: the same storage, no copy.
    /// assert!(a.contiguous_aligned().shares_storage_with(&a));
    /// ```
    pub fn contiguous_aligned(&self) -> Tensor {
        let short = self.numel() < recycle::FLOATS_PER_LINE;
        if self.is_contiguous() && (short || self.starts_on_cache_line()) {
            return self.clone();
        }
        Tensor::from_buffer(self.to_buffer(), &self.shape)
    }

    /// Whether the first element lies on a 64-byte cache line boundary.
    pub fn starts_on_cache_line(&self) -> bool {
        recycle::starts_on_line(&self.storage[self.offset..])
    }

    /// The only element of a one-element tensor.
    ///
    /// # Panics
    /// If the tensor has more or fewer than one element.
    #[track_caller]
    pub fn item(&self) -> f32 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} does not hold exactly one element",
            self.shape
        );
        self.storage[self.offset]
    }

    /// The element at a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong length or is out of bounds.
    #[track_caller]
    pub fn get(&self, index: &[usize]) -> f32 {
        assert_eq!(
            index.len(),
            self.ndim(),
            "get: index {index:?} does not fit shape {:?}",
            self.shape
        );
        let mut at = self.offset;
        for ((&i, &dim), &stride) in index.iter().zip(&self.shape).zip(&self.strides) {
            assert!(
                i < dim,
                "get: index {index:?} is out of bounds for shape {:?}",
                self.shape
            );
            at += i * stride;
        }
        self.storage[at]
    }

    /// Writes the view's elements in row-major order into `out`.
    pub(crate) fn copy_into(&self, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.numel());
        if out.is_empty() {
            return;
        }
        let inner = *self.shape.last().unwrap_or(&1);
        if inner == 0 {
            return;
        }
        let rows_per_task = (CHUNK / inner).max(1);
        if worth_splitting(out.len()) {
            out.par_chunks_mut(rows_per_task * inner)
                .enumerate()
                .for_each(|(task, chunk)| self.copy_rows(task * rows_per_task, chunk));
        } else {
            self.copy_rows(0, out);
        }
    }

    /// Copies whole rows (runs along the last axis), starting at row `first_row`.
    fn copy_rows(&self, first_row: usize, out: &mut [f32]) {
        let inner = *self.shape.last().unwrap_or(&1);
        let inner_stride = *self.strides.last().unwrap_or(&1);
        for (r, row) in out.chunks_mut(inner).enumerate() {
            let start = self.row_offset(first_row + r);
            if inner_stride == 1 {
                row.copy_from_slice(&self.storage[start..start + inner]);
            } else {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self.storage[start + j * inner_stride];
                }
            }
        }
    }

    /// The storage offset of the first element of row `row`, where rows are
    /// the runs along the last axis counted in row-major order.
    pub(crate) fn row_offset(&self, mut row: usize) -> usize {
        let mut at = self.offset;
        let outer = self.ndim().saturating_sub(1);
        for axis in (0..outer).rev() {
            let dim = self.shape[axis];
            at += (row % dim) * self.strides[axis];
            row /= dim;
        }
        at
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        let values = self.to_vec();
        write!(f, "Tensor(shape={:?}, [", self.shape)?;
        for (i, v) in values.iter().take(SHOWN).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        if values.len() > SHOWN {
            write!(f, ", … {} more", values.len() - SHOWN)?;
        }
        write!(f, "])")
    }
}

impl PartialEq for Tensor {
    /// Equal shapes and equal values (NaN is unequal to itself, as in f32).
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape && self.to_vec() == other.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "from_vec: 5 values cannot fill shape [2, 3]")]
    fn from_vec_checks_the_length() {
        Tensor::from_vec(vec![0.0; 5], &[2, 3]);
    }

    #[test]
    fn contiguous_aligned_copies_only_what_is_off_a_line_or_strided() {
        let base = Tensor::arange(66).reshape(&[66]);
        let lined = base.contiguous_aligned();
        assert!(lined.starts_on_cache_line());
        // One float past a line: copied, onto one.
        let off = lined.narrow(0, 1, 64);
        assert!(!off.starts_on_cache_line());
        let fixed = off.contiguous_aligned();
        assert!(fixed.starts_on_cache_line() && !fixed.shares_storage_with(&off));
        assert_eq!(fixed.to_vec(), off.to_vec());
        // Strided: made contiguous, on a line.
        let grid = lined.narrow(0, 0, 64).reshape(&[8, 8]);
        let transposed = grid.t().contiguous_aligned();
        assert!(transposed.is_contiguous() && transposed.starts_on_cache_line());
        assert_eq!(transposed.to_vec(), grid.t().to_vec());
        // Already contiguous on a line: the same storage.
        assert!(lined.contiguous_aligned().shares_storage_with(&lined));
        // Shorter than a line: only made contiguous.
        let short = lined.narrow(0, 1, 8);
        assert!(short.contiguous_aligned().shares_storage_with(&short));
    }

    #[test]
    fn constructors_fill_as_documented() {
        assert_eq!(Tensor::zeros(&[2, 2]).to_vec(), vec![0.0; 4]);
        assert_eq!(Tensor::full(&[3], 2.5).to_vec(), vec![2.5; 3]);
        assert_eq!(Tensor::eye(2).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(Tensor::arange(3).to_vec(), vec![0.0, 1.0, 2.0]);
        assert_eq!(Tensor::scalar(4.0).item(), 4.0);
        assert_eq!(Tensor::zeros(&[0, 3]).numel(), 0);
    }

    #[test]
    fn clone_shares_and_data_mut_copies_on_write() {
        let a = Tensor::arange(4);
        let mut b = a.clone();
        assert!(a.shares_storage_with(&b));
        b.data_mut()[0] = 10.0;
        assert!(!a.shares_storage_with(&b));
        assert_eq!(a.to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(b.to_vec(), vec![10.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn data_mut_on_unique_tensor_writes_in_place() {
        let mut a = Tensor::zeros(&[3]);
        let before = a.storage.as_ptr();
        a.data_mut()[1] = 1.0;
        assert_eq!(a.storage.as_ptr(), before);
        assert_eq!(a.to_vec(), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn large_strided_copies_match_small_ones() {
        // Above the parallel threshold the copy is split; the result must not change.
        let n = 512;
        let a = Tensor::from_vec((0..n * n).map(|i| i as f32).collect(), &[n, n]);
        let t = a.t().to_vec();
        for i in [0, 1, 77, n - 1] {
            for j in [0, 5, n - 1] {
                assert_eq!(t[i * n + j], (j * n + i) as f32);
            }
        }
    }

    #[test]
    #[should_panic(expected = "item: tensor of shape [2]")]
    fn item_rejects_many_elements() {
        Tensor::zeros(&[2]).item();
    }
}
