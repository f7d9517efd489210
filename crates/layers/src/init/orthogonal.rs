//! Random orthogonal matrices (Saxe et al. 2014), by Householder QR of a
//! Gaussian matrix in f64.

use ember_tensor::Tensor;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{Fans, Initializer};

/// `gain` times a uniformly (Haar) distributed random matrix with orthonormal
/// rows or columns.
///
/// A weight of shape `(d0, d1, …)` is treated as a `rows × cols` matrix with
/// rows = d0 and cols = d1·d2·… (PyTorch's `orthogonal_` convention; a
/// `Conv2d` weight `(out_c, in_c, kh, kw)` becomes `out_c × (in_c·kh·kw)`).
/// Then
/// - rows ≤ cols: the rows are orthonormal, W·Wᵀ = gain²·I;
/// - rows > cols: the columns are, Wᵀ·W = gain²·I.
///
/// It draws a `max × min` standard normal matrix A, factors A = QR by
/// Householder reflections in f64, and flips the sign of each column of Q
/// whose diagonal entry of R is negative. Without that flip Q would be
/// biased: the reflections choose each sign of R's diagonal from the data
/// (e.g. Q₀₀ would always be negative). With it, QR is the unique
/// factorization whose R has a positive diagonal, which makes Q exactly
/// Haar-distributed (Mezzadri 2007).
///
/// ```
/// use ember_layers::init::{Initializer, Orthogonal};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
/// let w = Orthogonal::new(1.0).init_from_shape(&[3, 5], &mut rng);
/// let wwt = w.matmul(&w.t()); // (3, 3)
/// for i in 0..3 {
///     for j in 0..3 {
///         let want = if i == j { 1.0 } else { 0.0 };
///         assert!((wwt.get(&[i, j]) - want).abs() < 1e-5);
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orthogonal {
    /// Multiplies the orthogonal matrix (√2 is common before a ReLU).
    pub gain: f32,
}

impl Orthogonal {
    /// An orthogonal initializer with the given gain.
    pub fn new(gain: f32) -> Orthogonal {
        Orthogonal { gain }
    }
}

impl Default for Orthogonal {
    /// Gain 1.
    fn default() -> Orthogonal {
        Orthogonal::new(1.0)
    }
}

impl Initializer for Orthogonal {
    /// # Panics
    /// If `shape` has fewer than 2 dimensions.
    #[track_caller]
    fn init(&self, shape: &[usize], _fans: Fans, rng: &mut dyn Rng) -> Tensor {
        assert!(
            shape.len() >= 2,
            "Orthogonal init: needs a shape with at least 2 dimensions, got {shape:?}"
        );
        let rows = shape[0];
        let numel: usize = shape.iter().product();
        if numel == 0 {
            return Tensor::zeros(shape);
        }
        let cols = numel / rows;
        let (m, n) = (rows.max(cols), rows.min(cols));
        let a: Vec<f64> = (0..m * n).map(|_| StandardNormal.sample(rng)).collect();
        let q = haar_orthonormal_columns(a, m, n);
        let gain = self.gain as f64;
        let data = if rows >= cols {
            q.iter().map(|&x| (gain * x) as f32).collect()
        } else {
            // W = Qᵀ, so the n = rows rows of W are Q's orthonormal columns.
            let mut w = vec![0.0f32; numel];
            for i in 0..m {
                for j in 0..n {
                    w[j * m + i] = (gain * q[i * n + j]) as f32;
                }
            }
            w
        };
        Tensor::from_vec(data, shape)
    }
}

/// The thin Q (row-major `m × n`, m ≥ n) of A = QR, signs fixed so that R
/// has a non-negative diagonal. `a` is row-major `m × n` and is overwritten.
fn haar_orthonormal_columns(mut a: Vec<f64>, m: usize, n: usize) -> Vec<f64> {
    debug_assert!(m >= n && a.len() == m * n);
    // Householder vectors vₖ (acting on rows k..m) and R's diagonal.
    let mut reflectors: Vec<Option<Vec<f64>>> = Vec::with_capacity(n);
    let mut r_diag = vec![0.0f64; n];
    for k in 0..n {
        let x: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            reflectors.push(None); // a zero column: nothing to reflect
            continue;
        }
        // Reflect x onto alpha·e₁, with alpha's sign opposite x₀ so that
        // v = x − alpha·e₁ never cancels.
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        apply_reflector(&mut a, n, k, k, &v);
        r_diag[k] = alpha;
        reflectors.push(Some(v));
    }
    // Q = H₀·H₁···Hₙ₋₁ applied to the first n columns of the identity.
    let mut q = vec![0.0f64; m * n];
    for j in 0..n {
        q[j * n + j] = 1.0;
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        if let Some(v) = v {
            apply_reflector(&mut q, n, k, 0, v);
        }
    }
    for (j, &r) in r_diag.iter().enumerate() {
        if r < 0.0 {
            for i in 0..m {
                q[i * n + j] = -q[i * n + j];
            }
        }
    }
    q
}

/// Applies H = I − 2vvᵀ/(vᵀv) to rows `row0..row0 + v.len()`, columns
/// `col0..ncols`, of the row-major matrix `mat` with `ncols` columns.
/// Walks rows, not columns, so memory is read contiguously.
fn apply_reflector(mat: &mut [f64], ncols: usize, row0: usize, col0: usize, v: &[f64]) {
    let vtv: f64 = v.iter().map(|x| x * x).sum();
    let width = ncols - col0;
    // s = vᵀ·M (one entry per column).
    let mut s = vec![0.0f64; width];
    for (i, &vi) in v.iter().enumerate() {
        let row = &mat[(row0 + i) * ncols + col0..(row0 + i + 1) * ncols];
        for (sj, &mij) in s.iter_mut().zip(row) {
            *sj += vi * mij;
        }
    }
    // M ← M − (2/vᵀv)·v·s.
    let coef = 2.0 / vtv;
    for (i, &vi) in v.iter().enumerate() {
        let row = &mut mat[(row0 + i) * ncols + col0..(row0 + i + 1) * ncols];
        for (mij, &sj) in row.iter_mut().zip(&s) {
            *mij -= coef * vi * sj;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn qr_reconstructs_the_matrix() {
        // A = Q·R with R = Qᵀ·A upper triangular with a positive diagonal.
        let (m, n) = (7, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a: Vec<f64> = (0..m * n)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let q = haar_orthonormal_columns(a.clone(), m, n);
        for r in 0..n {
            for c in 0..n {
                let rc: f64 = (0..m).map(|i| q[i * n + r] * a[i * n + c]).sum();
                if r > c {
                    assert!(rc.abs() < 1e-12, "R[{r},{c}] = {rc}");
                }
                if r == c {
                    assert!(rc > 0.0, "R[{r},{r}] = {rc}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least 2 dimensions")]
    fn vectors_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        Orthogonal::default().init_from_shape(&[5], &mut rng);
    }
}
