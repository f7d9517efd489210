//! The reference GEMM tests compare against: three loops, f64 accumulation.

use super::{MatMut, MatRef};

/// `C ← αAB + βC` with each dot product accumulated in f64 (β = 0 never
/// reads C). Slow on purpose: it is the oracle, not an engine.
pub(crate) fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut MatMut<'_>) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut acc = 0.0f64;
            for p in 0..a.cols {
                acc += f64::from(a.at(i, p)) * f64::from(b.at(p, j));
            }
            let at = i * c.row_stride + j * c.col_stride;
            let mut r = f64::from(alpha) * acc;
            if beta != 0.0 {
                r += f64::from(beta) * f64::from(c.data[at]);
            }
            c.data[at] = r as f32;
        }
    }
}
