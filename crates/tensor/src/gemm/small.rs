//! The small-problem path: for products so small that packing costs more
//! than it saves (measured: 64³ runs 15% faster, 32³ 30%), the micro-kernel reads A, and B when its rows are
//! contiguous, in place. Only ragged edges (a last panel of fewer than MR rows
//! or NR columns) are packed, because the kernel reads full panels.

use super::blocking;
use super::kernel::{MicroKernel, Tile};
use super::loops::Product;
use super::pack::{pack_a, pack_b, with_buf, A_BUF, B_BUF};

/// Products up to this many multiply-adds (m·n·k) skip the blocked path.
/// Measured on a Xeon with AVX-512 (6×64 tile): 64³ runs at ~185 GFLOP/s in
/// place, but 256³ packed beats 256³ in place by 3–5 %.
const SMALL_MAX: usize = 128 * 128 * 128;

/// B rows read in place must be short: with long power-of-two rows, a panel's
/// `k` rows fall on a few L1 sets and evict each other (128×256×512 ran 10%
/// slower in place than packed).
const SMALL_MAX_N: usize = 256;

/// Whether `m × k · k × n` takes this path.
pub(crate) fn fits(m: usize, n: usize, k: usize) -> bool {
    n <= SMALL_MAX_N && m.saturating_mul(n).saturating_mul(k) <= SMALL_MAX
}

/// Runs the product on the calling thread; returns the number of micro-kernel calls.
pub(crate) fn run(kern: &MicroKernel, p: &Product<'_>) -> usize {
    let (m, k, n) = (p.a.rows, p.a.cols, p.b.cols);
    // The same K slices as the packed path, so both give the same bits.
    let kc = blocking::kc(kern, k);
    let mut tiles = 0;
    for pc in (0..k).step_by(kc) {
        let kcb = kc.min(k - pc);
        let slice = Product {
            a: p.a.block(0, pc, m, kcb),
            b: p.b.block(pc, 0, kcb, n),
            beta: if pc == 0 { p.beta } else { 1.0 },
            epilogue: p.epilogue.for_slice(pc == 0, pc + kcb == k),
            ..*p
        };
        tiles += run_slice(kern, &slice);
    }
    tiles
}

/// One K slice (at most KC deep) of the product.
fn run_slice(kern: &MicroKernel, p: &Product<'_>) -> usize {
    let (m, k, n) = (p.a.rows, p.a.cols, p.b.cols);
    let (mr, nr) = (kern.mr, kern.nr);
    let b_direct = p.b.col_stride == 1;
    let (full_m, full_n) = (m - m % mr, n - n % nr);
    let b_len = if b_direct {
        nr * k
    } else {
        n.div_ceil(nr) * nr * k
    };
    let mut tiles = 0;
    with_buf(&B_BUF, b_len, |bbuf| {
        if !b_direct {
            pack_b(bbuf, p.b, kern);
        } else if full_n < n {
            pack_b(bbuf, p.b.block(0, full_n, k, n - full_n), kern);
        }
        with_buf(&A_BUF, mr * k, |a_edge| {
            if full_m < m {
                pack_a(a_edge, p.a.block(full_m, 0, m - full_m, k), mr);
            }
            for j in (0..n).step_by(nr) {
                // A packed panel's row stride: NR, or less for a ragged one.
                let width = kern.panel_width(n - j);
                let (b, b_rs) = if !b_direct {
                    (bbuf[j * k..].as_ptr(), width)
                } else if j < full_n {
                    // SAFETY: column j < n of row 0 is inside B's slice.
                    (unsafe { p.b.data.as_ptr().add(j) }, p.b.row_stride)
                } else {
                    (bbuf.as_ptr(), width)
                };
                for i in (0..m).step_by(mr) {
                    let (a, a_rs, a_cs) = if i < full_m {
                        // SAFETY: row i < m of column 0 is inside A's slice.
                        let a = unsafe { p.a.data.as_ptr().add(i * p.a.row_stride) };
                        (a, p.a.row_stride, p.a.col_stride)
                    } else {
                        (a_edge.as_ptr(), 1, mr)
                    };
                    let (bias, bias_rows) = p.epilogue.tile_bias(i, j);
                    let tile = Tile {
                        k,
                        a,
                        a_rs,
                        a_cs,
                        b,
                        b_rs,
                        // SAFETY: (i, j) is inside C, whose view was checked.
                        c: unsafe { p.c.ptr.add(i * p.c.rs + j * p.c.cs) },
                        c_rs: p.c.rs,
                        c_cs: p.c.cs,
                        m: mr.min(m - i),
                        n: nr.min(n - j),
                        alpha: p.alpha,
                        beta: p.beta,
                        bias,
                        bias_rows,
                        relu: p.epilogue.relu,
                    };
                    // SAFETY: full panels are read in place (MR rows < m, NR
                    // contiguous columns < n, k steps, all inside the views);
                    // ragged ones come packed and zero-padded (B as wide as
                    // `panel_width`, the most its edge tiles read).
                    unsafe {
                        if !kern.is_edge(&tile) {
                            kern.strided(&tile);
                        } else {
                            kern.edge(&tile);
                        }
                    }
                    tiles += 1;
                }
            }
        });
    });
    tiles
}
