//! What a GEMM does to each element of C as it writes it: add a bias, then
//! rectify. A layer's `y = relu(x·Wᵀ + b)` then costs one pass over C, the
//! write-back of each register tile while it is still in registers, instead
//! of a fill with the bias, the product reading it back, and a ReLU pass.

/// The bias and ReLU that [`gemm_fused`](super::gemm_fused) applies to
/// `αAB + βC`: `C ← relu(αAB + βC + bias)`.
///
/// The bias is added in the write-back of the first K slice, right after its
/// `β·C` term, and the ReLU in that of the last, so with `α = 1` and `β = 0`
/// the result is bit for bit what filling C with the bias, calling
/// [`gemm`](super::gemm) with `β = 1` and rectifying would give. The ReLU is
/// `Var::relu`'s: `z` where `z > 0`, else `0·z` (−0 for a negative `z`).
///
/// ```
/// use ember_tensor::gemm::{gemm_fused, Bias, Epilogue, MatMut, MatRef, Parallelism};
///
/// let x = [1.0, -2.0]; // one input row of a 2 → 2 layer
/// let w = [1.0, 1.0, 3.0, 1.0]; // (out, in), read transposed below
/// let mut y = [0.0; 2];
/// let bias = [0.5, 0.25];
/// gemm_fused(
///     1.0,
///     MatRef::new(&x, 1, 2, 2, 1),
///     MatRef::new(&w, 2, 2, 1, 2),
///     0.0,
///     MatMut::new(&mut y, 1, 2, 2, 1),
///     Epilogue { bias: Some(Bias::Columns(&bias)), relu: true },
///     Parallelism::Sequential,
/// );
/// assert_eq!(y, [0.0, 1.25]); // relu(-1 + 0.5), relu(1 + 0.25)
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epilogue<'a> {
    /// Added to every element of C.
    pub bias: Option<Bias<'a>>,
    /// Rectify the result.
    pub relu: bool,
}

/// A bias with one value per row or per column of C.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bias<'a> {
    /// `bias[i]` is added to row `i` (a convolution's C is channels × positions).
    Rows(&'a [f32]),
    /// `bias[j]` is added to column `j` (a Linear layer's C is batch × features).
    Columns(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    /// No bias, no ReLU: plain `C ← αAB + βC`.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };

    /// The same epilogue for `Cᵀ`: rows and columns swap.
    pub(crate) fn t(self) -> Epilogue<'a> {
        let bias = self.bias.map(|b| match b {
            Bias::Rows(v) => Bias::Columns(v),
            Bias::Columns(v) => Bias::Rows(v),
        });
        Epilogue { bias, ..self }
    }

    /// The part that one K slice applies: the bias with the first slice
    /// (beside the caller's β), the ReLU with the last.
    pub(crate) fn for_slice(self, first: bool, last: bool) -> Epilogue<'a> {
        Epilogue {
            bias: self.bias.filter(|_| first),
            relu: self.relu && last,
        }
    }

    /// The bias of a tile whose first element is C's `(i, j)`, offset to it,
    /// and whether it goes along rows; null when there is none.
    pub(crate) fn tile_bias(&self, i: usize, j: usize) -> (*const f32, bool) {
        match self.bias {
            None => (std::ptr::null(), false),
            Some(Bias::Rows(b)) => (b[i..].as_ptr(), true),
            Some(Bias::Columns(b)) => (b[j..].as_ptr(), false),
        }
    }

    /// Panics unless the bias has one value per row (or column) of an
    /// `m × n` C.
    #[track_caller]
    pub(crate) fn check(&self, op: &str, m: usize, n: usize) {
        let (len, want, axis) = match self.bias {
            None => return,
            Some(Bias::Rows(b)) => (b.len(), m, "rows"),
            Some(Bias::Columns(b)) => (b.len(), n, "columns"),
        };
        assert!(
            len == want,
            "{op}: a bias of {len} values for the {axis} of a {m}×{n} C (need {want})"
        );
    }

    /// `C ← relu(βC + bias)`, without reading C when β = 0: the whole
    /// product when `αAB` is empty (k = 0 or α = 0).
    pub(crate) fn scale(&self, c: super::MatMut<'_>, beta: f32) {
        if beta == 1.0 && *self == Epilogue::NONE {
            return;
        }
        for i in 0..c.rows {
            for j in 0..c.cols {
                let at = i * c.row_stride + j * c.col_stride;
                let mut e = if beta == 0.0 { 0.0 } else { beta * c.data[at] };
                match self.bias {
                    None => {}
                    Some(Bias::Rows(b)) => e += b[i],
                    Some(Bias::Columns(b)) => e += b[j],
                }
                c.data[at] = if self.relu { super::kernel::relu(e) } else { e };
            }
        }
    }
}
