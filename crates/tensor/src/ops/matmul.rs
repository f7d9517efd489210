//! Matrix products of tensors, routed through [`crate::gemm`] with the
//! operands' own strides: a transposed view is multiplied without a copy.

use crate::gemm::{gemm_fused, Epilogue, MatMut, MatRef, Parallelism};
use crate::tensor::Tensor;

/// The shapes of a (possibly batched) product: batch, m, k, n.
#[track_caller]
fn product_dims(op: &str, a: &Tensor, b: &Tensor) -> (usize, usize, usize, usize) {
    let ok_rank = matches!((a.ndim(), b.ndim()), (2, 2) | (3, 3) | (3, 2) | (2, 3));
    let (m, k) = if ok_rank {
        (a.shape[a.ndim() - 2], a.shape[a.ndim() - 1])
    } else {
        (0, 0)
    };
    let (k2, n) = if ok_rank {
        (b.shape[b.ndim() - 2], b.shape[b.ndim() - 1])
    } else {
        (0, 0)
    };
    let batch_a = if a.ndim() == 3 {
        Some(a.shape[0])
    } else {
        None
    };
    let batch_b = if b.ndim() == 3 {
        Some(b.shape[0])
    } else {
        None
    };
    let batches_agree = match (batch_a, batch_b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    assert!(
        ok_rank && k == k2 && batches_agree,
        "{op}: cannot multiply shapes {:?} and {:?} (need (m, k)·(k, n), optionally with a common leading batch axis)",
        a.shape,
        b.shape
    );
    (batch_a.or(batch_b).unwrap_or(1), m, k, n)
}

/// The `index`-th matrix of a 2-D or 3-D tensor, as a strided GEMM view; a
/// 2-D tensor is the same matrix for every batch index.
fn matrix(t: &Tensor, index: usize) -> MatRef<'_> {
    let d = t.ndim();
    let (rows, cols) = (t.shape[d - 2], t.shape[d - 1]);
    let start = if d == 3 {
        t.offset + index * t.strides[0]
    } else {
        t.offset
    };
    let data = if rows == 0 || cols == 0 {
        &t.storage[..0]
    } else {
        &t.storage[start..]
    };
    MatRef::new(data, rows, cols, t.strides[d - 2], t.strides[d - 1])
}

/// The thread budget for a product: the current rayon pool.
pub(crate) fn current_parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        1 => Parallelism::Sequential,
        n => Parallelism::Threads(n),
    }
}

impl Tensor {
    /// The matrix product: `(m, k)·(k, n) → (m, n)`, or batched
    /// `(b, m, k)·(b, k, n) → (b, m, n)` (a 2-D operand is shared by every batch).
    ///
    /// Transposed views (`w.t()`) are read in place, never copied.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let w = Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0], &[2, 2]);
    /// assert_eq!(x.matmul(&w.t()).to_vec(), vec![1.0, 3.0, 3.0, 7.0]);
    /// ```
    ///
    /// # Panics
    /// If the inner dimensions or batch sizes differ; the message names both shapes.
    #[track_caller]
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        let (batch, m, _, n) = product_dims("matmul", self, other);
        let shape = if self.ndim() == 3 || other.ndim() == 3 {
            vec![batch, m, n]
        } else {
            vec![m, n]
        };
        // Not zeroed: β = 0 writes every value without reading it.
        let mut out = Tensor::empty(&shape);
        out.gemm_assign(1.0, self, other, 0.0);
        out
    }

    /// `self ← α·a·b + β·self`, in place: the accumulating product a backward
    /// pass needs (`dW += Xᵀ·dY` is `dw.gemm_assign(1.0, &x.t(), &dy, 1.0)`).
    /// With `β = 0` the old contents are never read.
    ///
    /// # Panics
    /// If the shapes do not agree; the message names all three.
    #[track_caller]
    pub fn gemm_assign(&mut self, alpha: f32, a: &Tensor, b: &Tensor, beta: f32) {
        self.gemm_assign_fused(alpha, a, b, beta, Epilogue::NONE);
    }

    /// `self ← relu(α·a·b + β·self + bias)`, the bias and ReLU as `epilogue`
    /// says, applied by the GEMM as it writes each tile (see
    /// [`crate::gemm::Epilogue`]): a Linear layer's `relu(x·wᵀ + b)` in one
    /// pass over its output. A batched product applies it to each matrix.
    ///
    /// ```
    /// use ember_tensor::gemm::{Bias, Epilogue};
    /// use ember_tensor::Tensor;
    ///
    /// let x = Tensor::from_vec(vec![1.0, -2.0], &[1, 2]);
    /// let w = Tensor::from_vec(vec![1.0, 1.0, 3.0, 1.0], &[2, 2]); // (out, in)
    /// let bias = [0.5, 0.25];
    /// let mut y = Tensor::empty(&[1, 2]);
    /// let epilogue = Epilogue { bias: Some(Bias::Columns(&bias)), relu: true };
    /// y.gemm_assign_fused(1.0, &x, &w.t(), 0.0, epilogue);
    /// assert_eq!(y.to_vec(), vec![0.0, 1.25]);
    /// ```
    ///
    /// # Panics
    /// If the shapes do not agree, or the bias does not have one value per
    /// row (or column) of each product; the message names the shapes.
    #[track_caller]
    pub fn gemm_assign_fused(
        &mut self,
        alpha: f32,
        a: &Tensor,
        b: &Tensor,
        beta: f32,
        epilogue: Epilogue<'_>,
    ) {
        let (batch, m, _, n) = product_dims("gemm_assign", a, b);
        let expected: &[usize] = if a.ndim() == 3 || b.ndim() == 3 {
            &[batch, m, n]
        } else {
            &[m, n]
        };
        assert_eq!(
            self.shape, expected,
            "gemm_assign: output shape {:?} does not match {:?}·{:?}",
            self.shape, a.shape, b.shape
        );
        let par = current_parallelism();
        let out = self.data_mut();
        for (index, c) in out.chunks_mut((m * n).max(1)).take(batch).enumerate() {
            let c = MatMut::new(c, m, n, n, 1);
            gemm_fused(
                alpha,
                matrix(a, index),
                matrix(b, index),
                beta,
                c,
                epilogue,
                par,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    fn naive(a: &Tensor, b: &Tensor) -> Vec<f32> {
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a.get(&[i, p]) * b.get(&[p, j])).sum();
            }
        }
        out
    }

    /// Equal up to rounding: the GEMM may fuse multiply-adds and reorder sums.
    #[track_caller]
    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn matmul_matches_the_definition_for_views() {
        let a = Tensor::arange(12).reshape(&[3, 4]).map(|v| v * 0.5 - 1.0);
        let b = Tensor::arange(20).reshape(&[5, 4]).map(|v| (v * 0.7).sin());
        let bt = b.t();
        assert_close(&a.matmul(&bt).to_vec(), &naive(&a, &bt));
        assert_close(&bt.t().matmul(&a.t()).to_vec(), &naive(&b, &a.t()));
    }

    #[test]
    fn batched_products_and_shared_operands() {
        let a = Tensor::arange(2 * 3 * 4).reshape(&[2, 3, 4]);
        let w = Tensor::arange(4 * 5).reshape(&[4, 5]);
        let out = a.matmul(&w);
        assert_eq!(out.shape(), &[2, 3, 5]);
        assert_close(&out.select(0, 1).to_vec(), &naive(&a.select(0, 1), &w));
        let wb = w.unsqueeze(0).broadcast_to(&[2, 4, 5]);
        assert_eq!(a.matmul(&wb).to_vec(), out.to_vec());
    }

    #[test]
    fn gemm_assign_accumulates() {
        let x = Tensor::arange(6).reshape(&[3, 2]);
        let dy = Tensor::ones(&[3, 4]);
        let mut dw = Tensor::ones(&[2, 4]);
        dw.gemm_assign(1.0, &x.t(), &dy, 1.0);
        assert_eq!(
            dw.to_vec(),
            vec![7.0, 7.0, 7.0, 7.0, 10.0, 10.0, 10.0, 10.0]
        );
        let mut fresh = Tensor::full(&[2, 4], f32::NAN);
        fresh.gemm_assign(2.0, &x.t(), &dy, 0.0);
        assert_eq!(
            fresh.to_vec(),
            vec![12.0, 12.0, 12.0, 12.0, 18.0, 18.0, 18.0, 18.0]
        );
    }

    #[test]
    fn empty_products() {
        let a = Tensor::zeros(&[3, 0]);
        let b = Tensor::zeros(&[0, 2]);
        assert_eq!(a.matmul(&b).to_vec(), vec![0.0; 6]);
        assert_eq!(
            Tensor::zeros(&[0, 4])
                .matmul(&Tensor::zeros(&[4, 2]))
                .numel(),
            0
        );
    }

    #[test]
    #[should_panic(expected = "matmul: cannot multiply shapes [2, 3] and [4, 5]")]
    fn mismatched_inner_dims_name_both_shapes() {
        Tensor::zeros(&[2, 3]).matmul(&Tensor::zeros(&[4, 5]));
    }
}
