//! Packing: copying blocks of A and B into the order the micro-kernel reads.
//!
//! - A block (`mc × kc`) → `⌈mc/MR⌉` panels; panel `r` holds rows
//!   `r·MR .. r·MR + MR`, column by column: element `(i, p)` of the panel at
//!   `p·MR + i`. Missing rows of the last panel are zeros.
//! - B block (`kc × nc`) → `⌈nc/NR⌉` panels; panel `q` holds columns
//!   `q·NR .. q·NR + NR`, row by row: element `(p, j)` at `p·NR + j`. Missing
//!   columns are zeros.
//!
//! Sources may have any strides, so a transposed operand costs no extra copy:
//! the packing loop just walks whichever direction is contiguous.
//!
//! Buffers are 64-byte aligned, thread-local and only ever grow, so steady
//! state allocates nothing.

use std::cell::RefCell;
use std::ptr;
use std::thread::LocalKey;

use super::MatRef;

/// One cache line of floats: the unit the buffers are allocated in, so they
/// start on a 64-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A growable, 64-byte-aligned `f32` buffer.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl AlignedBuf {
    const fn new() -> Self {
        AlignedBuf { lines: Vec::new() }
    }

    /// The first `len` floats, growing the buffer if needed (contents unspecified).
    fn get(&mut self, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0.0; 16]));
        }
        // SAFETY: `Line` is `repr(C)` over 16 f32s, so the lines are at least
        // `len` contiguous, initialised floats owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), len) }
    }
}

thread_local! {
    /// Each thread's packed A block (the IC loop's buffer).
    pub(crate) static A_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
    /// The calling thread's packed B block (the PC loop's buffer).
    pub(crate) static B_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
}

/// Runs `f` on `len` floats of this thread's `buf`; if that buffer is already
/// in use (a GEMM nested inside another on this thread), on a fresh one.
pub(crate) fn with_buf<R>(
    buf: &'static LocalKey<RefCell<AlignedBuf>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    buf.with(|cell| match cell.try_borrow_mut() {
        Ok(mut owned) => f(owned.get(len)),
        Err(_) => f(AlignedBuf::new().get(len)),
    })
}

/// Packs the `rows × k` view `a` into `⌈rows/mr⌉` A panels at the start of `dst`.
pub(crate) fn pack_a(dst: &mut [f32], a: MatRef<'_>, mr: usize) {
    pack(
        dst,
        a.data.as_ptr(),
        a.rows,
        a.cols,
        a.row_stride,
        a.col_stride,
        mr,
    );
}

/// Packs the `k × cols` view `b` into `⌈cols/nr⌉` B panels at the start of `dst`.
pub(crate) fn pack_b(dst: &mut [f32], b: MatRef<'_>, nr: usize) {
    // A B panel is an A panel of Bᵀ: walk columns as "rows".
    pack(
        dst,
        b.data.as_ptr(),
        b.cols,
        b.rows,
        b.col_stride,
        b.row_stride,
        nr,
    );
}

/// Packs `lines × depth` elements (element `(i, p)` at `src + i·ls + p·ds`)
/// into panels of `w` lines: element `(i, p)` of panel `r` at `r·w·depth + p·w + i`.
fn pack(
    dst: &mut [f32],
    src: *const f32,
    lines: usize,
    depth: usize,
    ls: usize,
    ds: usize,
    w: usize,
) {
    if depth == 0 {
        return;
    }
    let panels = lines.div_ceil(w);
    assert!(dst.len() >= panels * w * depth, "pack: buffer too small");
    for (r, panel) in dst.chunks_exact_mut(w * depth).take(panels).enumerate() {
        let i0 = r * w;
        let live = w.min(lines - i0);
        let out = panel.as_mut_ptr();
        // SAFETY: `src` comes from a view whose every element (i < lines,
        // p < depth) lies inside its slice (checked by `MatRef::new`), and
        // `panel` has exactly `w · depth` floats, which bounds every write.
        unsafe {
            let base = src.add(i0 * ls);
            if live == w && ls == 1 {
                // Lines contiguous: each step is one straight copy.
                for p in 0..depth {
                    ptr::copy_nonoverlapping(base.add(p * ds), out.add(p * w), w);
                }
            } else if ds == 1 {
                // Depth contiguous: read each line straight, write with stride w.
                for i in 0..live {
                    let line = base.add(i * ls);
                    for p in 0..depth {
                        *out.add(p * w + i) = *line.add(p);
                    }
                }
                pad(out, live, depth, w);
            } else {
                for p in 0..depth {
                    for i in 0..live {
                        *out.add(p * w + i) = *base.add(i * ls + p * ds);
                    }
                }
                pad(out, live, depth, w);
            }
        }
    }
}

/// Zeroes lines `live..w` of a panel, so edge tiles multiply by zeros.
///
/// # Safety
/// `out` addresses `w · depth` writable floats.
unsafe fn pad(out: *mut f32, live: usize, depth: usize, w: usize) {
    if live == w {
        return;
    }
    for p in 0..depth {
        // SAFETY: `p·w + w ≤ w·depth` floats are writable (caller).
        unsafe { ptr::write_bytes(out.add(p * w + live), 0, w - live) };
    }
}
