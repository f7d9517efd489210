//! The f32 GEMM every matmul in Ember goes through: `C ← αAB + βC`.
//!
//! Operands are strided views ([`MatRef`], [`MatMut`]), so a transposed
//! operand is just swapped strides and costs no copy.
//!
//! ```
//! use ember_tensor::gemm::{gemm, MatMut, MatRef, Parallelism};
//!
//! let a = [1.0, 2.0, 3.0, 4.0]; // 2×2, row-major
//! let b = [5.0, 6.0, 7.0, 8.0];
//! let mut c = [0.0; 4];
//! gemm(
//!     1.0,
//!     MatRef::new(&a, 2, 2, 2, 1),
//!     MatRef::new(&b, 2, 2, 1, 2), // B read transposed
//!     0.0,
//!     MatMut::new(&mut c, 2, 2, 2, 1),
//!     Parallelism::Sequential,
//! );
//! assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
//! ```

/// How many threads a GEMM may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Run on the calling thread only.
    Sequential,
    /// Use up to this many threads of the current rayon pool.
    Threads(usize),
}

/// A read-only strided matrix view.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A mutable strided matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// The index one past the last element a `rows × cols` view can touch.
fn reach(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

#[track_caller]
fn check_reach(what: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    let needed = reach(rows, cols, rs, cs);
    assert!(
        needed.is_some_and(|n| n <= len),
        "{what}: a {rows}×{cols} view with strides ({rs}, {cs}) reaches element {} but the slice has {len}",
        needed.map_or("beyond usize".to_string(), |n| (n - 1).to_string()),
    );
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` view where element `(i, j)` is `data[i * row_stride + j * col_stride]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`.
    #[track_caller]
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_reach(
            "MatRef::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        );
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transposed view (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

impl<'a> MatMut<'a> {
    /// A mutable `rows × cols` view where element `(i, j)` is `data[i * row_stride + j * col_stride]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`.
    #[track_caller]
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_reach(
            "MatMut::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        );
        MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// The name of the micro-kernel this process uses.
pub fn kernel_name() -> &'static str {
    "naive"
}

/// Computes `C ← αAB + βC`. With `β = 0`, C is only written, never read.
///
/// # Panics
/// If the shapes do not agree: A is m×k, B must be k×n and C m×n.
#[track_caller]
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>, par: Parallelism) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "gemm: A is {}×{}, B is {}×{}, C is {}×{}: need A m×k, B k×n, C m×n",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
    let _ = par;
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut acc = 0.0f32;
            for p in 0..a.cols {
                acc += a.at(i, p) * b.at(p, j);
            }
            let at = i * c.row_stride + j * c.col_stride;
            c.data[at] = if beta == 0.0 {
                alpha * acc
            } else {
                alpha * acc + beta * c.data[at]
            };
        }
    }
}
