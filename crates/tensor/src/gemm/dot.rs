//! The dot path: a product whose B has fewer columns than the rank-1 tiles
//! fill (a classifier's logits, N = 10) runs on the dot kernel
//! (`kernel/dot.rs`), vector lanes along K. A is read where it lies, once;
//! B (at most [`MAX_B_FLOATS`]) is packed first, a straight copy when its
//! columns are contiguous (a Linear layer's `X·Wᵀ`).
//! Threads split C's rows; each element is computed the same way whoever
//! computes it, so the bits do not depend on the thread count.

use super::kernel::dot::{pack_b, packed_b_len, DotTile};
use super::kernel::{MicroKernel, Output};
use super::loops::Product;
use super::pack::{self, with_buf, A_BUF, B_BUF};
use super::{tasks, MatRef};

/// K must be at least this many vectors: folding each sum's lanes costs
/// about as much as a few vectors of K.
const MIN_K_VECTORS: usize = 8;

/// B at most this many floats (32 KiB): every tile reads all of it, so it
/// must stay in L1.
const MAX_B_FLOATS: usize = 8192;

/// A B whose columns are not contiguous must be transposed into the
/// packing, which pays only for at least this many rows of A per vector
/// lane: the transposition must be small beside the product.
const MIN_ROWS_PER_LANE_TO_TRANSPOSE_B: usize = 2;

/// Whether the dot kernel can run `A·B` on `kern` at all: it has one as
/// wide as B, and A's rows are contiguous (read in place).
pub(crate) fn can_run(kern: &MicroKernel, a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    kern.dot_shape(b.cols).is_some() && (a.col_stride == 1 || a.cols <= 1)
}

/// Whether `C ← αAB + βC` takes the dot path on `kern`: it [`can_run`],
/// K is long enough and B small.
pub(crate) fn fits(kern: &MicroKernel, a: &MatRef<'_>, b: &MatRef<'_>) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    can_run(kern, a, b)
        && k >= MIN_K_VECTORS * kern.lanes
        && n * k <= MAX_B_FLOATS
        && (b.row_stride == 1 || m >= MIN_ROWS_PER_LANE_TO_TRANSPOSE_B * kern.lanes)
}

/// Runs the product (which the dot kernel [`can_run`]) on up to `threads` threads; returns
/// the number of dot-kernel calls.
pub(crate) fn run(kern: &MicroKernel, p: &Product<'_>, threads: usize) -> usize {
    let (m, k, n) = (p.a.rows, p.a.cols, p.b.cols);
    let (rows, g) = kern.dot_shape(n).expect("`can_run` checked the width");
    with_buf(&B_BUF, packed_b_len(k, n, kern.lanes, g), |packed| {
        if p.b.row_stride != 1 && p.b.col_stride == 1 {
            // A row-major B: transposed in register blocks first, so that
            // its columns are contiguous runs to copy.
            with_buf(&A_BUF, n * k, |bt| {
                // SAFETY: `bt` holds n rows of k floats and is apart from B.
                unsafe { pack::transpose_into(bt.as_mut_ptr(), k, p.b) };
                pack_b(packed, bt, (k, n), (1, k), kern.lanes, g);
            });
        } else {
            let strides = (p.b.row_stride, p.b.col_stride);
            pack_b(packed, p.b.data, (k, n), strides, kern.lanes, g);
        }
        let packed = &*packed;
        // Full tiles, then the last `m % rows` rows one at a time.
        let full = m / rows;
        let tiles = full + m % rows;
        let task = |t: usize| {
            let (i, live) = if t < full {
                (t * rows, rows)
            } else {
                (full * rows + (t - full), 1)
            };
            let (bias, bias_rows) = p.epilogue.tile_bias(i, 0);
            let tile = DotTile {
                k,
                n,
                // SAFETY: row i < m of A's view is inside its slice.
                a: unsafe { p.a.data.as_ptr().add(i * p.a.row_stride) },
                a_rs: p.a.row_stride,
                b: packed.as_ptr(),
                m: live,
                out: Output {
                    // SAFETY: row i < m of C's view is inside it.
                    c: unsafe { p.c.ptr.add(i * p.c.rs) },
                    c_rs: p.c.rs,
                    c_cs: p.c.cs,
                    alpha: p.alpha,
                    beta: p.beta,
                    bias,
                    bias_rows,
                    relu: p.epilogue.relu,
                },
            };
            // SAFETY: rows i .. i + live of A (contiguous along K, `can_run`;
            // with k = 1 its one column is, whatever the stride) and
            // of C are inside their views, B is packed for this k, n and
            // kernel, and the bias has one value per row or column of C
            // (checked by the caller). Tasks write disjoint rows of C.
            unsafe { kern.dot(&tile) };
        };
        tasks::run_tasks(0..tiles, threads, &task);
        tiles
    })
}
