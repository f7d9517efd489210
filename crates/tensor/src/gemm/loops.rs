//! The BLIS loop nest around the micro-kernel, and its threading.
//!
//! ```text
//! JC: for each NC-wide block of B's columns          (B block lives in L3)
//!   PC: for each KC-deep slice of K                  (pack B block: KC × NC, in L2)
//!     IC: for each MC-tall block of A's rows         (pack A block: MC × KC, unless row-major)
//!       IR: for each MR-tall micro-panel of A        (A micro-panel stays in L1)
//!         JR: for each NR-wide micro-panel of B      (micro-kernel: MR × NR of C)
//! ```
//!
//! Threads split the IC and JR loops (rows and columns of C), never K: each
//! element of C is computed by exactly one thread with the same sequence of
//! operations, so the result is bit-identical for any thread count. Bands
//! that pack their own B split above the PC loop (each band runs its own K
//! slices): row bands that each pack all of a small B block
//! ([`row_bands_own_b`]), or column bands; when all rows fit one A block,
//! each B panel is a task: through every K slice where A is read in place
//! ([`panels_through_k`], [`PanelTasks`]), per K slice against an A packed
//! once by the calling thread otherwise ([`few_rows`]).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::blocking;
use super::kernel::{MicroKernel, Tile};
use super::pack::{pack_a, pack_b, with_buf, A_BUF, B_BUF};
use super::tasks::run_tasks;
use super::{Epilogue, MatRef};
use crate::recycle::{starts_on_line, FLOATS_PER_LINE};

/// Where C lives: a raw pointer so that threads can write disjoint tiles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct COut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

// SAFETY: `COut` is only shared between the tasks of one GEMM, which write
// disjoint tiles of C (or run sequentially when C's view aliases itself).
unsafe impl Send for COut {}
// SAFETY: as above.
unsafe impl Sync for COut {}

/// A buffer whose disjoint parts the tasks of one split fill: a raw
/// pointer, from which each task makes the `&mut` slice of its own part.
struct DisjointParts(*mut f32);

// SAFETY: shared only between the tasks of one split, each of which
// writes a part of the buffer that no other task touches.
unsafe impl Send for DisjointParts {}
// SAFETY: as above.
unsafe impl Sync for DisjointParts {}

/// One product `C ← αAB + βC` with C given as a raw view of `a.rows × b.cols`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Product<'a> {
    pub alpha: f32,
    pub a: MatRef<'a>,
    pub b: MatRef<'a>,
    pub beta: f32,
    /// Bias and ReLU, applied by the first and last K slices' write-backs.
    pub epilogue: Epilogue<'a>,
    pub c: COut,
}

/// Runs the packed loop nest on up to `threads` threads; returns the number of
/// micro-kernel calls.
pub(crate) fn packed(kern: &MicroKernel, p: &Product<'_>, threads: usize) -> usize {
    let (m, k, n) = (p.a.rows, p.a.cols, p.b.cols);
    let (nr, kc, nc) = (
        kern.nr,
        blocking::kc(kern, k),
        blocking::nc(kern, n, threads),
    );
    let tiles = AtomicUsize::new(0);
    // JC: blocks of NC columns.
    for jc in (0..n).step_by(nc) {
        let ncb = nc.min(n - jc);
        let panels = ncb.div_ceil(nr);
        let (tm, tn) = blocking::grid(kern, m, ncb, kc, threads);
        // Enough panels to share out one at a time; with fewer (256³:
        // 4 panels), packing A alone before the split cost more (237 →
        // 220 GFLOP/s on 2 threads) than late workers did.
        let column_bands = tm == 1 && tn > 1;
        let shared_a = column_bands && blocking::mc(kern, m) >= m && panels >= 4 * threads;
        let b_by_pass = !(first_tile_may_pack(kern, p) || b_in_place(kern, p, threads));
        let own_b = row_bands_own_b(kern, m, k, panels, kc, tm * tn, shared_a, b_by_pass);
        if own_b || (column_bands && !shared_a) {
            // One band per thread, each packing the B panels it reads into
            // its own buffer, in the L2 of the core that streams them, and
            // owning its part of C through every K slice, so the threads
            // split once per B block, not once per K slice (each split
            // waits for the slowest band). Row bands that each pack all of
            // a small B block where `row_bands_own_b` says; column bands,
            // each packing the panels it alone reads, otherwise.
            let bands = tm * tn;
            let task = |t: usize| {
                let (rows, cols) = if own_b {
                    (blocking::row_band(m, kern.mr, bands, t), 0..panels)
                } else {
                    (0..m, blocking::band(panels, bands, t))
                };
                if cols.is_empty() {
                    return; // more threads than panels
                }
                let (j0, j1) = (cols.start * nr, (cols.end * nr).min(ncb));
                with_buf(&B_BUF, cols.len() * nr * kc, |band_buf| {
                    for pc in (0..k).step_by(kc) {
                        let block = Block::slice(kern, p, threads, jc, ncb, pc, kc.min(k - pc));
                        let block = block.packed_by_first_tile(kern, p);
                        block.pack_b(band_buf, p.b.block(pc, jc + j0, block.kcb, j1 - j0), kern);
                        let mut b = block.first_pass(band_buf);
                        let rows = rows.clone();
                        let done = ic_loop(kern, p, &mut b, cols.start, &block, rows, cols.clone());
                        tiles.fetch_add(done, Ordering::Relaxed);
                    }
                });
            };
            run_tasks(0..bands, threads, &task);
            continue;
        }
        // Row bands over several K slices of a small B block (all its
        // slices in half of a full block): all of it packed first, then
        // one split.
        let row_bands = tm > 1 && tn == 1;
        if row_bands && k > kc && panels * nr * k * 2 <= kern.kc * kern.nc {
            let done = row_bands_once(kern, p, jc, ncb, tm);
            tiles.fetch_add(done, Ordering::Relaxed);
            continue;
        }
        if shared_a && a_in_place(kern, p.a) {
            let done = panels_through_k(kern, p, jc, ncb, panels, threads);
            tiles.fetch_add(done, Ordering::Relaxed);
            continue;
        }
        // PC: slices of KC along K; only the first applies the caller's β
        // (and the bias), only the last the ReLU.
        for pc in (0..k).step_by(kc) {
            let block = Block::slice(kern, p, threads, jc, ncb, pc, kc.min(k - pc));
            if shared_a {
                let done = few_rows(kern, p, &block, panels, threads);
                tiles.fetch_add(done, Ordering::Relaxed);
                continue;
            }
            if tm * tn == 1 {
                // One task: the buffer is its own.
                let block = block.packed_by_first_tile(kern, p);
                with_buf(&B_BUF, panels * nr * block.kcb, |bbuf| {
                    block.pack_b(bbuf, p.b.block(pc, jc, block.kcb, ncb), kern);
                    let mut b = block.first_pass(bbuf);
                    let done = ic_loop(kern, p, &mut b, 0, &block, 0..m, 0..panels);
                    tiles.fetch_add(done, Ordering::Relaxed);
                });
                continue;
            }
            with_buf(&B_BUF, panels * nr * block.kcb, |bbuf| {
                let b = p.b.block(pc, jc, block.kcb, ncb);
                if block.b_source == BSource::InPlace {
                    block.pack_b(bbuf, b, kern);
                } else {
                    pack_b_parallel(bbuf, b, kern, threads);
                }
                let bbuf = &*bbuf;
                // Task t covers row band t / tn and column band t % tn.
                let task = |t: usize| {
                    let rows = blocking::row_band(m, kern.mr, tm, t / tn);
                    let cols = blocking::band(panels, tn, t % tn);
                    let done = ic_loop(kern, p, &mut BBuf::Ready(bbuf), 0, &block, rows, cols);
                    tiles.fetch_add(done, Ordering::Relaxed);
                };
                run_tasks(0..tm * tn, threads, &task);
            });
        }
    }
    tiles.into_inner()
}

/// Whether a split into `bands` tasks should be row bands that each pack
/// all of the B block for themselves (`panels` panels, `kc` deep, of a
/// product of `m` rows and depth `k`): when that block fits half of L2,
/// as a 1-thread block does, and each band has at least 8 row tiles, or
/// 16 where B is packed by a pass of its own (`b_by_pass`: the
/// transposing pack, which each band then runs in full). Not instead of
/// the panel tasks for rows in one A block (`shared_a`: the MLP's
/// batches against a layer's weight), unless K is at most half a slice.
///
/// Each core then sweeps every B panel from each A micro-panel, as one
/// thread does, and walks C along its rows; it packs its own copy of B
/// (with its first row of tiles where B is row-major: at most an eighth
/// of its tiles copy). With B packed by a pass, 8-tile bands lost
/// (96×512×256 Bᵀ −5 %, 96×1024×128 Bᵀ −5 %, 128×512×256 Bᵀ −0.6 %) and
/// taller ones gained (200×384×320 Bᵀ +12 %). Medians of 60–80
/// alternated pairs, 2 threads (this Xeon, 7 Dec 2026), awake | after
/// 300 µs of serial work:
/// - against column bands: 256³ +4.5–5.2 % | +7.2 %, 512³ +4.8 % |
///   +4.4 %, 600³ +6 %, 512³ Aᵀ +4 %, 256³ Aᵀ +3.6 %, 1024×256×256
///   +3 %, 384³ +1.8 %; 512³ Bᵀ and 320×512×448 within ±0.3 %;
/// - against row bands sharing one B block packed once (tall A, small
///   B): the weight gradients 784×128×512 Aᵀ +4–5 % | +1 % and
///   512×128×512 Aᵀ +8 % | +2 %, the convnet's 288×576×64 Bᵀ +23–25 % |
///   +2 %, 512×1024×64 Bᵀ +7 %;
/// - against panel tasks, K short: 288×64×576 Aᵀ +4–15 %, 576×64×576 Aᵀ
///   +14 %, 256×64×576 +13 %, 128×64×784 +7 %, 288×192×576 Aᵀ +4 %
///   (with so short a k loop C's write-back weighs more, and panel tasks
///   walk C down its columns); with K of a slice or more they lose:
///   128×512×784 −9 %, 128×784×512 Bᵀ −7 %, 256×512×784 −3.5 %,
///   160×288×576 −1 %.
///
/// With the AVX2 kernel forced on the same Xeon, against the same code
/// without own-B bands: 512³ +3 %, 288×576×64 Bᵀ +10 %, 288×64×576 Aᵀ
/// +17 %, 256³ and 784×128×512 Aᵀ ±1 %.
///
/// Not measured on more than two threads, where each band copies B once
/// more; the row-tile floor bounds what the copies cost.
#[allow(clippy::too_many_arguments)] // the product's shape and the split's
fn row_bands_own_b(
    kern: &MicroKernel,
    m: usize,
    k: usize,
    panels: usize,
    kc: usize,
    bands: usize,
    shared_a: bool,
    b_by_pass: bool,
) -> bool {
    let tiles_per_band = if b_by_pass { 16 } else { 8 };
    bands > 1
        && m.div_ceil(kern.mr) >= tiles_per_band * bands
        && panels * kern.nr * kc <= kern.kc * kern.nc
        && (!shared_a || 2 * k <= kern.kc)
}

/// Row bands over every K slice of the B block of `ncb` columns at `jc`,
/// with one split: all of the block's K slices are packed first, a task
/// per slice (the caller checked that they take at most half of a full B
/// block, a quarter of L2 where NC fills half of it), then each of `tm`
/// tasks runs its rows through every slice, in order.
///
/// Split once per K slice, each slice waited for the slower band and woke
/// the other thread again: the convnet's weight gradient, 288×576×64 Bᵀ in
/// 2 slices, ran at 129–140 GFLOP/s on 2 cold threads (below one thread's
/// ~150) and runs at 168–175 (this Xeon, `gemm_report`, alternated five
/// times over two builds). And while the calling thread packed every slice
/// alone, the worker waited and went back to sleep; packed as tasks,
/// 288×576×64 Bᵀ on 2 threads (medians of 100 alternated pairs, awake |
/// back to back | after 500 µs of serial work) gained +3–14 % | +43 % |
/// +10–16 %, and 512×1024×64 Bᵀ +1 % | +17 % | +5 %.
fn row_bands_once(kern: &MicroKernel, p: &Product<'_>, jc: usize, ncb: usize, tm: usize) -> usize {
    let (m, k, nr) = (p.a.rows, p.a.cols, kern.nr);
    let kc = blocking::kc(kern, k);
    let panels = ncb.div_ceil(nr);
    let slices = || {
        (0..k)
            .step_by(kc)
            .map(|pc| Block::slice(kern, p, tm, jc, ncb, pc, kc.min(k - pc)))
    };
    let tiles = AtomicUsize::new(0);
    with_buf(&B_BUF, panels * nr * k, |bbuf| {
        // Slice s at panels · NR · pc: one task per slice.
        let parts = DisjointParts(bbuf.as_mut_ptr());
        let parts = &parts;
        run_tasks(0..k.div_ceil(kc), tm, &|s| {
            let block = Block::slice(kern, p, tm, jc, ncb, s * kc, kc.min(k - s * kc));
            let (at, len) = (panels * nr * block.pc, panels * nr * block.kcb);
            // SAFETY: floats at .. at + len lie inside the buffer (panels ·
            // NR · k long) and overlap no other slice's; `run_tasks` runs
            // each slice once, so this is the only reference to them.
            let dst = unsafe { std::slice::from_raw_parts_mut(parts.0.add(at), len) };
            block.pack_b(dst, p.b.block(block.pc, jc, block.kcb, ncb), kern);
        });
        let bbuf = &*bbuf;
        let task = |t: usize| {
            let rows = blocking::row_band(m, kern.mr, tm, t);
            for block in slices() {
                let b = &bbuf[panels * nr * block.pc..];
                let done = ic_loop(
                    kern,
                    p,
                    &mut BBuf::Ready(b),
                    0,
                    &block,
                    rows.clone(),
                    0..panels,
                );
                tiles.fetch_add(done, Ordering::Relaxed);
            }
        };
        run_tasks(0..tm, tm, &task);
    });
    tiles.into_inner()
}

/// One (JC, PC) block of a product whose rows fit one A block (the MLP
/// shapes: a batch of 128) and must be packed: A is packed once, by the
/// calling thread, and shared; then each B micro-panel is a task that
/// packs its panel and runs every A micro-panel against it. (Where the
/// kernel reads A in place, [`panels_through_k`] runs instead.)
///
/// Small tasks matter more than they seem. A worker that has gone to sleep
/// since the last parallel operation (the usual case in a training step)
/// takes tens of microseconds to wake on a virtual machine; with one task
/// per thread the calling thread finished its half and then waited for the
/// late one's, so 2 threads ran a 500 µs product only 1.2× faster than 1.
/// With a task per panel the calling thread keeps taking panels until the
/// worker arrives, which then takes half of what is left. (Column bands
/// that each packed the whole A would pack it once per panel here.)
fn few_rows(
    kern: &MicroKernel,
    p: &Product<'_>,
    blk: &Block,
    panels: usize,
    threads: usize,
) -> usize {
    let (m, mr, nr, kcb) = (p.a.rows, kern.mr, kern.nr, blk.kcb);
    // Each task packs its panel into a buffer of its own.
    let blk = &blk.packed_by_first_tile(kern, p);
    let tiles = AtomicUsize::new(0);
    with_buf(&A_BUF, m.div_ceil(mr) * mr * kcb, |abuf| {
        let a = a_block(kern, p, abuf, 0, m, blk, false);
        let task = |panel: usize| {
            let j0 = panel * nr;
            let j1 = (j0 + nr).min(blk.ncb);
            with_buf(&B_BUF, nr * kcb, |bbuf| {
                blk.pack_b(bbuf, p.b.block(blk.pc, blk.jc + j0, kcb, j1 - j0), kern);
                let mut b = blk.first_pass(bbuf);
                let done = micro_loops(kern, p, a, 0, m, &mut b, panel, blk, panel..panel + 1);
                tiles.fetch_add(done, Ordering::Relaxed);
            });
        };
        run_tasks(0..panels, threads, &task);
    });
    tiles.into_inner()
}

/// The B block of `ncb` columns at `jc` against an A read in place whose
/// rows fit one A block: each B micro-panel is a task that runs through
/// every K slice, in order, packing its panel for each slice and running
/// every A micro-panel against it (or half of them, when the full panels
/// do not share out evenly between the threads); one split per B block.
/// (With A packed, [`few_rows`] splits once per K slice, after the calling
/// thread packs that slice of A.) A last A panel of fewer than MR rows is
/// packed once, through all of K, before the split, not by every task for
/// every slice (64×288×576, a 4-row tail: +1–5 %, medians of 60
/// alternated pairs, 2 threads).
///
/// On 2 threads (this Xeon, medians of 60 alternated pairs, workers
/// awake | cold), against the calling thread packing A first and a split
/// per K slice, the hidden Linear forward 128×512×512 Bᵀ ran 10–18 % |
/// 8–20 % faster with A read in place, and 1–2 % | 2–6 % more with one
/// split; the first Linear 128×784×512 Bᵀ (three K slices) 12–14 % |
/// 18–20 %, then 4–8 % | 6–7 %; the input gradient 128×512×784 6 % |
/// 7–8 %, then within ±2 %; the convnet's input gradient 288×64×576 Aᵀ
/// (one slice) 4–20 % | 4–22 %.
fn panels_through_k(
    kern: &MicroKernel,
    p: &Product<'_>,
    jc: usize,
    ncb: usize,
    panels: usize,
    threads: usize,
) -> usize {
    let (m, k, mr, nr) = (p.a.rows, p.a.cols, kern.mr, kern.nr);
    let kc = blocking::kc(kern, k);
    let (split, packed_from) = in_place_tail(kern, m);
    let tail_len = if packed_from.is_some() { mr * k } else { 0 };
    let tiles = AtomicUsize::new(0);
    with_buf(&A_BUF, tail_len, |tail| {
        if let Some(full) = packed_from {
            pack_a(tail, p.a.block(full, 0, m - full, k), mr);
        }
        let tail = &*tail;
        let tasks = PanelTasks::new(panels, ncb / nr, m / mr, threads);
        let task = |t: usize| {
            let (panel, rows) = tasks.task(t);
            let j0 = panel * nr;
            let j1 = (j0 + nr).min(ncb);
            let Range { start: r0, end: r1 } = tasks.row_range(rows, m, mr);
            // Only the part that ends at row m has the block's tail.
            let a_tail = |tail| {
                if r1 == m {
                    APanels::InPlace { tail, split }
                } else {
                    APanels::InPlace {
                        tail: &[],
                        split: None,
                    }
                }
            };
            with_buf(&B_BUF, nr * kc, |bbuf| {
                for pc in (0..k).step_by(kc) {
                    let blk = Block::slice(kern, p, threads, jc, ncb, pc, kc.min(k - pc))
                        .packed_by_first_tile(kern, p);
                    // Packed through all of K, slice pc's part of the tail
                    // panel starts at pc · MR.
                    let tail = if tail_len > 0 { &tail[pc * mr..] } else { tail };
                    let b = p.b.block(pc, jc + j0, blk.kcb, j1 - j0);
                    blk.pack_b(bbuf, b, kern);
                    let (a, rows) = (a_tail(tail), r1 - r0);
                    let mut b = blk.first_pass(bbuf);
                    let done =
                        micro_loops(kern, p, a, r0, rows, &mut b, panel, &blk, panel..panel + 1);
                    tiles.fetch_add(done, Ordering::Relaxed);
                }
            });
        };
        run_tasks(0..tasks.len(), threads, &task);
    });
    tiles.into_inner()
}

/// How [`panels_through_k`] makes tasks of a block's B panels: one task
/// per panel, unless the full panels do not share out evenly between the
/// threads (9 panels on 2: one thread would run 5). Then each thread's band
/// of tasks holds as many whole panels as every thread gets, plus its part
/// of each panel left over, whose rows are cut at multiples of MR into one
/// part per thread (so every tile keeps its rows, and its bits).
///
/// Cutting every panel's rows in two instead (9 panels on 2 threads: 18
/// tasks) packed each B panel twice, once per half, and the copying tile
/// that packs it is the slow one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PanelTasks {
    /// Whole panels in each thread's band of tasks (when none is cut: all
    /// the panels, a task each, shared out by [`run_tasks`]).
    whole: usize,
    /// Panels left over, cut into `parts` row parts each (0 when none is).
    left_over: usize,
    /// Row parts per left-over panel: the thread count.
    parts: usize,
}

/// The rows of a panel that a [`PanelTasks`] task runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PanelRows {
    All,
    /// Part `i` of the row parts, cut at multiples of MR.
    Part(usize),
}

impl PanelTasks {
    /// Tasks for `panels` B panels (`full` of them NR wide) against an A
    /// of `row_tiles` full MR-row tiles, on `threads` threads.
    fn new(panels: usize, full: usize, row_tiles: usize, threads: usize) -> Self {
        let whole_panels = PanelTasks {
            whole: panels,
            left_over: 0,
            parts: 1,
        };
        if threads <= 1 || full.is_multiple_of(threads) || row_tiles < threads {
            return whole_panels;
        }
        // With a ragged panel, `panels` may share out evenly while the full
        // ones do not: then a whole panel per thread is cut as well.
        let left_over = match panels % threads {
            0 => threads,
            r => r,
        };
        PanelTasks {
            whole: (panels - left_over) / threads,
            left_over,
            parts: threads,
        }
    }

    /// How many tasks there are: one band of equal length per thread.
    fn len(&self) -> usize {
        if self.left_over == 0 {
            self.whole
        } else {
            self.parts * (self.whole + self.left_over)
        }
    }

    /// The rows of an A of `m` rows (MR = `mr`) that a task's `rows` cover:
    /// a part is cut at multiples of MR among the full tiles, and the last
    /// part also takes the rows after the last full tile (so the part that
    /// ends at row `m` holds the block's tail, as when uncut).
    fn row_range(&self, rows: PanelRows, m: usize, mr: usize) -> Range<usize> {
        match rows {
            PanelRows::All => 0..m,
            PanelRows::Part(part) => {
                let tiles = blocking::band(m / mr, self.parts, part);
                let end = if tiles.end == m / mr {
                    m
                } else {
                    tiles.end * mr
                };
                tiles.start * mr..end
            }
        }
    }

    /// Task `t`'s panel and rows.
    fn task(&self, t: usize) -> (usize, PanelRows) {
        if self.left_over == 0 {
            return (t, PanelRows::All);
        }
        let band = self.whole + self.left_over;
        let (thread, i) = (t / band, t % band);
        if i < self.whole {
            (thread * self.whole + i, PanelRows::All)
        } else {
            let panel = self.parts * self.whole + (i - self.whole);
            (panel, PanelRows::Part(thread))
        }
    }
}

/// Packs a B block, its panels shared out between `parts` threads by
/// splitting the block (and the buffer) in two recursively.
fn pack_b_parallel(dst: &mut [f32], b: MatRef<'_>, kern: &MicroKernel, parts: usize) {
    let nr = kern.nr;
    let panels = b.cols.div_ceil(nr);
    let left = panels * (parts / 2) / parts.max(1);
    if parts < 2 || left == 0 {
        pack_b(dst, b, kern);
        return;
    }
    let (dst_l, dst_r) = dst.split_at_mut(left * nr * b.rows);
    let (b_l, b_r) = (
        b.block(0, 0, b.rows, left * nr),
        b.block(0, left * nr, b.rows, b.cols - left * nr),
    );
    rayon::join(
        || pack_b_parallel(dst_l, b_l, kern, parts / 2),
        || pack_b_parallel(dst_r, b_r, kern, parts - parts / 2),
    );
}

/// The current (JC, PC) block, as seen by the inner loops.
#[derive(Clone, Copy)]
struct Block<'a> {
    jc: usize,
    pc: usize,
    kcb: usize,
    ncb: usize,
    beta: f32,
    /// The part of the epilogue this K slice applies.
    epilogue: Epilogue<'a>,
    /// Where the tiles find the full B panels.
    b_source: BSource,
}

/// Where the tiles of a block find its full B panels (a ragged last panel
/// is always packed first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BSource {
    /// Packed before the tiles run.
    Packed,
    /// Read where they lie ([`b_in_place`]).
    InPlace,
    /// Read where they lie by the first row tile against each, which packs
    /// them as it goes ([`MicroKernel::packing_b`]); packed for the rest.
    PackedByFirstTile,
}

impl<'a> Block<'a> {
    /// The block of `ncb` columns from `jc` and `kcb` rows of K from `pc`:
    /// only the first K slice applies the caller's β (and the bias), only
    /// the last the ReLU.
    fn slice(
        kern: &MicroKernel,
        p: &Product<'a>,
        threads: usize,
        jc: usize,
        ncb: usize,
        pc: usize,
        kcb: usize,
    ) -> Block<'a> {
        let k = p.a.cols;
        Block {
            jc,
            pc,
            kcb,
            ncb,
            beta: if pc == 0 { p.beta } else { 1.0 },
            epilogue: p.epilogue.for_slice(pc == 0, pc + kcb == k),
            b_source: if b_in_place(kern, p, threads) {
                BSource::InPlace
            } else {
                BSource::Packed
            },
        }
    }

    /// This block for a task that owns its B buffer: a row-major B's full
    /// panels are then packed by the first row tile that reads them
    /// ([`BSource::PackedByFirstTile`]), not by a pass of their own, where
    /// all of A's rows fit one A block or all of B fits in L2.
    ///
    /// The packing pass waits on L2 and L3 while the FMA units idle: it was
    /// 10.5 % of the input gradient 128×512×784 on one thread (`perf`,
    /// this Xeon), and the first tile's k loop has load and store slots to
    /// spare for the copy. Medians of 60 alternated pairs, 1 thread: the
    /// input gradient +3–5 %, 128×512×512 +2–5 %, 256³ +3–4 %, 288×64×576
    /// Aᵀ +1–4 %; 2 threads (column bands, panel tasks) +1–6 %. With A
    /// taller than a block, many row tiles share the pass, and the copy
    /// pays only while B's rows come from L2: 512³ +1–2 % (1 and 2
    /// threads), 512×128×784 Aᵀ +2 %, 784×128×512 Aᵀ +0.5–1 %, 1024×512×512
    /// +1–2 %; with B beyond L2, 1000³ lost 0.5 % and 2048³ 3 % (B from
    /// L3, a row apart at each k step, which the tile waits on).
    fn packed_by_first_tile(mut self, kern: &MicroKernel, p: &Product<'_>) -> Block<'a> {
        if self.b_source == BSource::Packed && first_tile_may_pack(kern, p) {
            self.b_source = BSource::PackedByFirstTile;
        }
        self
    }

    /// Where a task that owns `bbuf` finds this block's B panels on its
    /// first pass over them (later passes find them packed).
    fn first_pass<'b>(&self, bbuf: &'b mut [f32]) -> BBuf<'b> {
        if self.b_source == BSource::PackedByFirstTile {
            BBuf::FilledByFirstTile(bbuf)
        } else {
            BBuf::Ready(bbuf)
        }
    }

    /// Packs the B panels of `b` (this block's columns `j0 ..`, panel
    /// `j0 / NR` at the start of `dst`) that are not read in place or
    /// packed by their first tile: all of them, or only a ragged last one.
    fn pack_b(&self, dst: &mut [f32], b: MatRef<'_>, kern: &MicroKernel) {
        if self.b_source == BSource::Packed {
            return pack_b(dst, b, kern);
        }
        let full = b.cols / kern.nr * kern.nr;
        if full < b.cols {
            let last = b.block(0, full, b.rows, b.cols - full);
            pack_b(&mut dst[full * b.rows..], last, kern);
        }
    }
}

/// Whether the first row tile may pack a row-major B's panels as it reads
/// them, for a task that owns its B buffer
/// ([`BSource::PackedByFirstTile`]): where every row of A is in one A
/// block or all of B fits in L2.
fn first_tile_may_pack(kern: &MicroKernel, p: &Product<'_>) -> bool {
    let one_a_block = blocking::mc(kern, p.a.rows) >= p.a.rows;
    // A full B block (KC × NC) takes half of L2.
    let b_in_l2 = p.a.cols * p.b.cols <= 2 * kern.kc * kern.nc;
    p.b.col_stride == 1 && (one_a_block || b_in_l2)
}

/// Whether the micro-kernel reads B's full panels where they lie instead of
/// packed: a row-major B (a panel's k rows are `NR` contiguous floats
/// each) against a short A ([`b_in_place_max_rows`]), on a kernel whose
/// strided body is as fast as its packed one. Packing copies every
/// element of B, and so few A panels read each B panel that the copy did
/// not pay: 64×288×576, the convnet's forward for one image, spent 15 %
/// of its time packing B in a pass of its own. Read in place, its full
/// panels stream from L2 as the packed ones do, at a row stride instead of
/// `NR` floats (this Xeon, medians of 40 batches, alternated twice: 144 →
/// 148 GFLOP/s; 64×288×512, power-of-two rows, 137 → 143; but 128 rows
/// 152 → 148, 512³ 161 → 145, so only short A).
fn b_in_place(kern: &MicroKernel, p: &Product<'_>, threads: usize) -> bool {
    kern.a_in_place && p.b.col_stride == 1 && p.a.rows <= b_in_place_max_rows(kern, &p.b, threads)
}

/// The most rows of A against which B is read in place ([`b_in_place`]),
/// for a product on `threads` threads: where every row of B starts on a
/// cache line, [`B_IN_PLACE_ON_LINES_MAX_ROWS`] on one thread and
/// [`B_IN_PLACE_MAX_PANELS`] panels on more; where they do not,
/// [`B_IN_PLACE_OFF_LINES_MAX_PANELS`] panels for a tile that reads four
/// lines of a B row a k step, [`B_IN_PLACE_MAX_PANELS`] for the others.
pub(crate) fn b_in_place_max_rows(kern: &MicroKernel, b: &MatRef<'_>, threads: usize) -> usize {
    let anywhere = B_IN_PLACE_MAX_PANELS * kern.mr;
    if rows_on_lines(b) {
        if threads == 1 {
            anywhere.max(B_IN_PLACE_ON_LINES_MAX_ROWS)
        } else {
            anywhere
        }
    } else if reads_four_lines_of_b(kern) {
        B_IN_PLACE_OFF_LINES_MAX_PANELS * kern.mr
    } else {
        anywhere
    }
}

/// The most A micro-panels against which B is read in place (64 rows, 11
/// panels of the 6-row tile, gained; 96 rows, 16 panels, broke even; B 16
/// bytes off a line, as a `Vec` from the allocator is, and packed by a
/// pass of its own: against the copying tile that packs it now, such a B
/// is read in place only by the narrower tiles, see
/// [`B_IN_PLACE_OFF_LINES_MAX_PANELS`]).
pub(crate) const B_IN_PLACE_MAX_PANELS: usize = 12;

/// The same where every row of B starts on a 64-byte line
/// ([`rows_on_lines`]: a tensor of Ember's own, such as a parameter, whose
/// rows are a multiple of 16 floats long). Each k step then loads its four
/// vectors from four lines, not five, and reading B in place keeps paying
/// with more rows. Medians of 20–30 alternated pairs against packing past
/// 12 panels, one thread, this Xeon, 6×64 tile: 96 rows +5–7 % (×288×576,
/// ×512×512, ×512×784, ×784×512), 128 rows +2.6–5 %, 160 rows −0.4 to
/// +4 %; 1024³ −16 % and 2048³ −29 % (B from L3). One thread only: on 2
/// the GEMM moved −0.6 to +1.5 %, and the classic MLP's training 0.99×
/// (median of 8 alternated runs), so there the panel tasks keep B packed.
/// 132 rows (22 panels of 6) take a batch of 128; a kernel whose 12
/// panels reach further (the 24-row Zen tile) keeps its own limit.
pub(crate) const B_IN_PLACE_ON_LINES_MAX_ROWS: usize = 132;

/// The most A micro-panels against which a B whose rows do not all start
/// on cache lines is read in place, by a kernel whose k step reads four
/// lines or more of a B row (the 6×64 tile; the 24×16 Zen tile and the
/// AVX2 6×16 read one, and keep [`B_IN_PLACE_MAX_PANELS`]). Off a line
/// those four vectors touch five lines of a row streamed from L2, and the
/// copying tile's packing wins from 32 rows on: medians of 15–30
/// alternated pairs, B 16 bytes off a line, this Xeon, 1 | 2 threads:
/// 64×288×576 +5 | +8 %, 64×512×512 +3 | +9 %, 32×288×576 +8 | +11 %,
/// 64×512×784 +5 | +10 %, 64×128×512 +4 | +13 %; but 24 rows −8 to −15 %
/// | −2 to −7 %, 16 rows −10 % | ±0.5 %. (The Zen tile on this Xeon, 48
/// and 96 rows: packing −3 to −7 %; AVX2 ±0.2 %.)
pub(crate) const B_IN_PLACE_OFF_LINES_MAX_PANELS: usize = 4;

/// Whether the kernel's k step reads four cache lines or more of a B row
/// (NR floats): see [`B_IN_PLACE_OFF_LINES_MAX_PANELS`].
fn reads_four_lines_of_b(kern: &MicroKernel) -> bool {
    kern.nr >= 4 * FLOATS_PER_LINE
}

/// Whether every row of `m` starts on a cache line, as the tensors Ember
/// allocates do ([`crate::recycle`]).
fn rows_on_lines(m: &MatRef<'_>) -> bool {
    starts_on_line(m.data) && m.row_stride.is_multiple_of(FLOATS_PER_LINE)
}

/// Whether the kernel may read A's full micro-panels where they lie, at
/// A's strides, instead of packed (`ic_loop` adds a condition on the B
/// panels they meet):
///
/// - **Row-major A**: a micro-panel is MR rows of `kc` contiguous floats,
///   as compact as packed.
/// - **Column-major A** (a transposed operand: the weight gradient's Xᵀ,
///   a convolution's input gradient), when a column is shorter than
///   [`A_COLUMNS_IN_PLACE_MAX_STRIDE`]: each k step reads MR contiguous
///   floats of the next column. Its panels' cache lines are the same as
///   packing reads, and the copy (a strip of MR floats per column, per
///   panel) goes. Medians of 60 alternated pairs, this Xeon, 1 thread:
///   784×128×512 Aᵀ +2 % (the MLP's weight gradient), 288×64×576 Aᵀ +4 %
///   (the convnet's input gradient), 256³ +22 %, 512³ +8 %, 1000³ +3–4 %,
///   1000×4000×512 (A of 16 MB) +2 %.
/// - Anything else is packed: neither stride 1, or columns a page apart or
///   more, where every k step reads a line on another page: 1024³ −14 %,
///   2048³ −16 %, 2560×384×512 −23 %, 3072×384×512 −55 %. (Columns of
///   1025 to 1536 floats gained 3–5 % with K = 384, A at most 2.4 MB; the
///   line is drawn at a page rather than at a size of A that this machine's
///   caches would set.)
fn a_in_place(kern: &MicroKernel, a: MatRef<'_>) -> bool {
    kern.a_in_place
        && (a.col_stride == 1
            || (a.row_stride == 1 && a.col_stride < A_COLUMNS_IN_PLACE_MAX_STRIDE))
}

/// A column-major A is read in place only when its columns start fewer than
/// this many floats apart (4 KiB: one page). See [`a_in_place`].
const A_COLUMNS_IN_PLACE_MAX_STRIDE: usize = 1024;

/// IC → IR → JR over C's `rows` and B's micro-panels `cols` for one
/// B block, whose panel `b_first` is at the start of `bbuf` (packed, or
/// filled by the first A block's first row of tiles).
#[allow(clippy::too_many_arguments)] // the block, its buffer and the task's ranges
fn ic_loop(
    kern: &MicroKernel,
    p: &Product<'_>,
    bbuf: &mut BBuf<'_>,
    b_first: usize,
    blk: &Block,
    rows: Range<usize>,
    cols: Range<usize>,
) -> usize {
    let (mr, kcb) = (kern.mr, blk.kcb);
    if rows.is_empty() || cols.is_empty() {
        return 0;
    }
    let mc = blocking::mc(kern, rows.len());
    let mut tiles = 0;
    // A is read where it lies (see `a_in_place`) when each
    // micro-panel meets several B panels and the kernel's strided body is
    // as fast as its packed one (`MicroKernel::a_in_place`): the kernel only
    // broadcasts A, through any strides, and a full micro-panel is as
    // compact in A as packed, so packing only copied A once more per NC
    // block and per column band (`gemm_report`, alternated: 2048³ 0.96 →
    // 0.99–1.04× the gemm crate on one thread). Against a single narrow B
    // panel (the logits, N = 10: an edge tile, one B vector to six strided
    // broadcasts) the packed panel measured 4 % faster; against a single
    // full one, in place is (the convnet's weight gradient as dWᵀ = X̂·Gᵀ,
    // 288×576×64: 131 → 161 GFLOP/s on this Xeon, packing a 6-row
    // transposition of all of X̂ before).
    let full_panels = cols.end * kern.nr <= blk.ncb;
    let in_place = a_in_place(kern, p.a) && (cols.len() > 1 || full_panels);
    with_buf(&A_BUF, mc.div_ceil(mr) * mr * kcb, |abuf| {
        // IC: blocks of MC rows, packed into this thread's buffer (in
        // place: only a last panel of fewer than MR rows, which the edge
        // tiles read zero-padded).
        for ic in rows.clone().step_by(mc) {
            let mcb = mc.min(rows.end - ic);
            let panels = a_block(kern, p, abuf, ic, mcb, blk, in_place);
            tiles += micro_loops(
                kern,
                p,
                panels,
                ic,
                mcb,
                &mut *bbuf,
                b_first,
                blk,
                cols.clone(),
            );
        }
    });
    tiles
}

/// Prepares the A block of rows `ic .. ic + mcb` for this K slice: packed
/// into `abuf`, or, `in_place`, read where it lies with only a last panel
/// of fewer than MR rows packed (the edge tiles read it zero-padded),
/// unless the tail runs as two tiles in place ([`in_place_tail`]).
fn a_block<'b>(
    kern: &MicroKernel,
    p: &Product<'_>,
    abuf: &'b mut [f32],
    ic: usize,
    mcb: usize,
    blk: &Block,
    in_place: bool,
) -> APanels<'b> {
    let (mr, kcb) = (kern.mr, blk.kcb);
    if !in_place {
        pack_a(abuf, p.a.block(ic, blk.pc, mcb, kcb), mr);
        return APanels::Packed(abuf);
    }
    let (split, packed_from) = in_place_tail(kern, mcb);
    if let Some(full) = packed_from {
        pack_a(abuf, p.a.block(ic + full, blk.pc, mcb - full, kcb), mr);
    }
    APanels::InPlace { tail: abuf, split }
}

/// How an A block of `mcb` rows read in place ends:
/// - the split: `Some(h)` when its last `MR + r` rows (`r = mcb % MR`) run
///   as two tiles of `h` rows instead of one of MR and one of `r`
///   ([`MicroKernel::tail_split`]);
/// - otherwise, when a last panel has fewer than MR rows, the block row
///   where it starts: that panel is read packed and zero-padded.
fn in_place_tail(kern: &MicroKernel, mcb: usize) -> (Option<usize>, Option<usize>) {
    let (mr, full) = (kern.mr, mcb / kern.mr * kern.mr);
    let split = if mcb > mr {
        kern.tail_split(mcb % mr)
    } else {
        None
    };
    let packed_from = (full < mcb && split.is_none()).then_some(full);
    (split, packed_from)
}

/// Where the IR loop finds the micro-panels of an A block.
#[derive(Clone, Copy)]
enum APanels<'a> {
    /// All of them packed, one after another.
    Packed(&'a [f32]),
    /// The full ones in A itself, at its strides ([`a_in_place`]); a last
    /// panel of fewer than MR rows packed at the start of `tail`, unless
    /// `split` says that the last rows run in place as two tiles of that
    /// many rows ([`in_place_tail`]).
    InPlace {
        tail: &'a [f32],
        split: Option<usize>,
    },
}

impl APanels<'_> {
    /// The tail split of an A block read in place; a packed block keeps its
    /// MR-row panels.
    fn split(&self) -> Option<usize> {
        match *self {
            APanels::InPlace { split, .. } => split,
            APanels::Packed(_) => None,
        }
    }
}

/// The buffer of a block's packed B panels, as a row of A tiles meets it.
enum BBuf<'a> {
    /// Every panel it holds is packed (or read in place); possibly shared
    /// with other tasks.
    Ready(&'a [f32]),
    /// This task's own buffer, whose full panels the first row tile packs
    /// as it reads them from B ([`BSource::PackedByFirstTile`]).
    FilledByFirstTile(&'a mut [f32]),
}

impl BBuf<'_> {
    /// After a pass that filled the buffer: every panel is packed now.
    fn now_ready(&mut self) {
        *self = match std::mem::replace(self, BBuf::Ready(&[])) {
            BBuf::FilledByFirstTile(b) => BBuf::Ready(b),
            ready => ready,
        };
    }
}

/// The row tiles of an A block of `mcb` rows, as (first row, rows): MR
/// rows each, then the rest, or the last `MR + r` rows as two tiles of `h`.
fn row_tiles(mcb: usize, mr: usize, split: Option<usize>) -> impl Iterator<Item = (usize, usize)> {
    let whole = mcb / mr - usize::from(split.is_some());
    let rest = whole * mr;
    let (tail, count) = match split {
        Some(h) => ([(rest, h), (rest + h, h)], 2),
        None => ([(rest, mcb - rest), (0, 0)], usize::from(rest < mcb)),
    };
    (0..whole)
        .map(move |ir| (ir * mr, mr))
        .chain(tail.into_iter().take(count))
}

/// IR → JR for the A block of rows `ic .. ic + mcb` (its panels where
/// `a_panels` says) against B's micro-panels `cols` (panel `b_first` at
/// the start of `bbuf`).
#[allow(clippy::too_many_arguments)] // both blocks and where they sit
fn micro_loops(
    kern: &MicroKernel,
    p: &Product<'_>,
    a_panels: APanels<'_>,
    ic: usize,
    mcb: usize,
    bbuf: &mut BBuf<'_>,
    b_first: usize,
    blk: &Block,
    cols: Range<usize>,
) -> usize {
    let (mr, nr, kcb) = (kern.mr, kern.nr, blk.kcb);
    let mut tiles = 0;
    let split = a_panels.split();
    // Reads and (on the first pass) writes of the buffer go through one
    // pointer, taken from the `&mut` when this pass fills it.
    let (bbuf_ptr, bbuf_len, mut fill) = match bbuf {
        BBuf::Ready(b) => (b.as_ptr(), b.len(), false),
        BBuf::FilledByFirstTile(b) => (b.as_mut_ptr().cast_const(), b.len(), true),
    };
    if fill {
        debug_assert_eq!(blk.b_source, BSource::PackedByFirstTile);
    }
    let slot = |jr: usize| {
        let at = (jr - b_first) * nr * kcb;
        assert!(at + nr * kcb <= bbuf_len, "B panel {jr} outside its buffer");
        // SAFETY: inside the buffer (asserted).
        unsafe { bbuf_ptr.add(at) }
    };
    // The row stride of a ragged last panel, found once rather than per
    // tile (it scans the edge tiles).
    let last_live = blk.ncb.saturating_sub(cols.end.saturating_sub(1) * nr);
    let ragged_width = if last_live < nr {
        kern.panel_width(last_live)
    } else {
        nr
    };
    // IR: micro-panels of MR rows (each stays in L1 across JR).
    for (at, rows) in row_tiles(mcb, mr, split) {
        let i = ic + at;
        // (pointer, row stride, column stride) of the panel, and whether
        // it is packed (the strides the packed kernel has built in).
        let (a, a_rs, a_cs, packed) = match a_panels {
            APanels::Packed(abuf) => (abuf[at * kcb..].as_ptr(), 1, mr, true),
            APanels::InPlace { tail, .. } if rows < mr && split.is_none() => {
                (tail.as_ptr(), 1, mr, true)
            }
            APanels::InPlace { .. } => (
                // SAFETY: rows i .. i + MR (all < m) at columns pc .. pc +
                // kcb are inside A's view, which was checked against its slice.
                // (A split tail's two tiles read only their own rows: see
                // `MicroKernel::tail_split`.)
                unsafe {
                    p.a.data
                        .as_ptr()
                        .add(i * p.a.row_stride + blk.pc * p.a.col_stride)
                },
                p.a.row_stride,
                p.a.col_stride,
                false,
            ),
        };
        // JR: micro-panels of NR columns, streamed from L2.
        for jr in cols.clone() {
            let j = blk.jc + jr * nr;
            let n_live = nr.min(blk.jc + blk.ncb - j);
            // A full panel of a B read in place: its kcb rows of NR floats
            // at B's row stride; any other comes packed, its slot in bbuf.
            let b_direct = blk.b_source == BSource::InPlace && n_live == nr;
            // A full panel this tile packs: read in place, copied to its slot.
            let packs = fill && n_live == nr;
            if packs && rows < mr {
                // Only a full tile packs as it goes; an edge tile first.
                let dst = slot(jr).cast_mut();
                // SAFETY: the slot holds kcb × NR floats of this task's
                // own buffer (asserted in `slot`), nothing else refers to it.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst, nr * kcb) };
                pack_b(dst, p.b.block(blk.pc, j, kcb, nr), kern);
            }
            let (b, b_rs) = if b_direct || (packs && rows == mr) {
                // SAFETY: rows pc .. pc + kcb and columns j .. j + NR (all
                // < n) are inside B's view, which was checked against its slice.
                let b = unsafe { p.b.data.as_ptr().add(blk.pc * p.b.row_stride + j) };
                (b, p.b.row_stride)
            } else {
                let width = if n_live == nr { nr } else { ragged_width };
                debug_assert_eq!(width, kern.panel_width(n_live));
                (slot(jr), width)
            };
            let (bias, bias_rows) = blk.epilogue.tile_bias(i, j);
            let tile = Tile {
                k: kcb,
                a,
                a_rs,
                a_cs,
                b,
                b_rs,
                // SAFETY: (i, j) is inside C (i < m, j < n), and the
                // view of C was checked against its slice.
                c: unsafe { p.c.ptr.add(i * p.c.rs + j * p.c.cs) },
                c_rs: p.c.rs,
                c_cs: p.c.cs,
                m: rows,
                n: n_live,
                alpha: p.alpha,
                beta: blk.beta,
                bias,
                bias_rows,
                relu: blk.epilogue.relu,
            };
            // SAFETY: the B panel is packed and zero-padded to kcb × NR
            // (kcb × panel_width for a ragged last one, which only edge
            // tiles read, no wider), or is kcb full rows of B in place;
            // the A panel is packed and zero-padded to MR × kcb, or has MR
            // real rows of kcb values at its strides; the live corner is
            // inside C, and this task alone writes these rows × columns.
            unsafe {
                if packs && rows == mr {
                    // SAFETY (the copy): the slot holds kcb × NR floats of
                    // this task's own buffer, which neither A, B nor C is.
                    kern.packing_b(&tile, slot(jr).cast_mut());
                } else if kern.is_edge(&tile) {
                    kern.edge(&tile);
                } else if packed && !b_direct {
                    kern.packed(&tile);
                } else {
                    // The full tile's body with the tile's strides (as the
                    // small path runs it); kernel_check checks its k loop.
                    kern.strided(&tile);
                }
            }
            tiles += 1;
        }
        // Every panel of `cols` is packed after the first row of tiles.
        fill = false;
    }
    bbuf.now_ready();
    tiles
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gemm::Kernel;
    use crate::recycle::floats_to_line;

    /// Where a block's B panels come from, for an A of `m` rows against a
    /// `k × n` B, row-major or not, as a task that owns its buffer sees it.
    fn source(kern: &MicroKernel, m: usize, k: usize, n: usize, b_row_major: bool) -> BSource {
        source_with_b_at(kern, m, k, n, b_row_major, 4)
    }

    /// As [`source`], with B starting `offset` bytes past a cache line.
    fn source_with_b_at(
        kern: &MicroKernel,
        m: usize,
        k: usize,
        n: usize,
        b_row_major: bool,
        offset: usize,
    ) -> BSource {
        let (a, mut c) = (vec![0.0; m * k], vec![0.0; m * n]);
        let b_room = vec![0.0f32; k * n + 32];
        let start = floats_to_line(b_room.as_ptr()) + offset / 4;
        let b = &b_room[start..start + k * n];
        let (rs, cs) = if b_row_major { (n, 1) } else { (1, k) };
        let p = Product {
            alpha: 1.0,
            a: MatRef::new(&a, m, k, k, 1),
            b: MatRef::new(b, k, n, rs, cs),
            beta: 0.0,
            epilogue: Epilogue::default(),
            c: COut {
                ptr: c.as_mut_ptr(),
                rs: n,
                cs: 1,
            },
        };
        Block::slice(kern, &p, 1, 0, n, 0, k.min(kern.kc))
            .packed_by_first_tile(kern, &p)
            .b_source
    }

    /// Rows, depth and columns of a product that row bands packing their
    /// own B run on 2 and 3 threads ([`row_bands_own_b`]), on 2 also with
    /// B packed by a pass: 40 row tiles, 6 B panels, 4 K slices.
    pub(crate) fn own_b_shape(kern: &MicroKernel) -> (usize, usize, usize) {
        (40 * kern.mr - 1, 3 * kern.kc + 9, 5 * kern.nr + 7)
    }

    /// Row bands pack their own B only where each band makes 8 row tiles
    /// or more (16 with B packed by a pass) and all of the B block fits
    /// half of L2, and replace the
    /// panel tasks of rows in one A block only for K of half a slice or
    /// less.
    #[test]
    fn row_bands_own_b_only_for_tall_bands_against_a_b_block_in_l2() {
        for kind in Kernel::supported() {
            let kern = MicroKernel::new(kind).expect("a supported kernel");
            let (m, k, n) = own_b_shape(&kern);
            let (kc, panels) = (blocking::kc(&kern, k), n.div_ceil(kern.nr));
            let own = |m, k, panels, bands, shared_a| {
                row_bands_own_b(&kern, m, k, panels, kc, bands, shared_a, false)
            };
            assert!(own(m, k, panels, 2, false), "{kind:?}");
            assert!(own(m, k, panels, 3, false), "{kind:?}");
            assert!(!own(m, k, panels, 1, false), "{kind:?}");
            // Too few row tiles per band.
            assert!(!own(m, k, panels, 6, false), "{kind:?}");
            assert!(!own(15 * kern.mr, k, panels, 2, false), "{kind:?}");
            // A B block past half of L2.
            let wide = kern.kc * kern.nc / (kern.nr * kc) + 1;
            assert!(!own(m, k, wide, 2, false), "{kind:?}");
            // Instead of panel tasks: K of half a slice, not more.
            assert!(own(m, kern.kc / 2, panels, 2, true), "{kind:?}");
            assert!(!own(m, kern.kc / 2 + 1, panels, 2, true), "{kind:?}");
            // B packed by a pass: 16 row tiles per band.
            let by_pass = |m, bands| row_bands_own_b(&kern, m, k, panels, kc, bands, false, true);
            assert!(by_pass(m, 2), "{kind:?}");
            assert!(!by_pass(m, 3), "{kind:?}");
            assert!(by_pass(32 * kern.mr, 2), "{kind:?}");
            assert!(!by_pass(31 * kern.mr, 2), "{kind:?}");
        }
    }

    /// Every panel runs once, whole or as one row part per thread, whose
    /// rows tile the panel's at multiples of MR, and each thread's band of
    /// tasks holds the same share of the panels.
    #[test]
    fn panel_tasks_cover_every_panel_once_in_equal_bands() {
        for threads in 1..=5 {
            for panels in 1..=20 {
                for full in [panels, panels - 1] {
                    for row_tiles in [1, 3, 10] {
                        let tasks = PanelTasks::new(panels, full, row_tiles, threads);
                        let case = format!("{panels} panels ({full} full), {row_tiles} row tiles, {threads} threads");
                        let cut = threads > 1 && full % threads != 0 && row_tiles >= threads;
                        assert_eq!(tasks.left_over > 0, cut, "{case}");
                        // Work in row parts: a whole panel is `parts` of them.
                        let mut runs = vec![0; panels * tasks.parts];
                        let mut work = vec![0; threads];
                        // Each panel's rows, of an A with a 4-row tail (MR 6).
                        let (mr, m) = (6, row_tiles * 6 + 4);
                        let mut ranges = vec![Vec::new(); panels];
                        let band = tasks.len() / threads.min(tasks.len());
                        for t in 0..tasks.len() {
                            let (panel, rows) = tasks.task(t);
                            ranges[panel].push(tasks.row_range(rows, m, mr));
                            let parts = match rows {
                                PanelRows::All => 0..tasks.parts,
                                PanelRows::Part(i) => i..i + 1,
                            };
                            for i in parts.clone() {
                                runs[panel * tasks.parts + i] += 1;
                            }
                            if cut {
                                work[t / band] += parts.len();
                            }
                        }
                        assert!(runs.iter().all(|&r| r == 1), "{case}: {runs:?}");
                        // The parts tile 0..m, cut at multiples of MR.
                        for mut parts in ranges {
                            parts.sort_by_key(|r| r.start);
                            let mut at = 0;
                            for r in parts {
                                assert!(r.start == at && at % mr == 0 && r.end > at, "{case}");
                                at = r.end;
                            }
                            assert_eq!(at, m, "{case}");
                        }
                        if cut {
                            assert_eq!(tasks.len() % threads, 0, "{case}");
                            assert!(work.iter().all(|&w| w == work[0]), "{case}: {work:?}");
                        }
                    }
                }
            }
        }
    }

    /// A row-major B is packed by the first row tile against each panel
    /// only where every row of A is in one A block (the MLP's batches) or
    /// B fits in L2 (1000³ and 2048³ lost 0.5–3 % with it, their B copied
    /// from L3 with each k step a row apart); short A reads B in place, a
    /// B with strided rows is packed by a pass of its own.
    #[test]
    fn one_a_block_or_b_in_l2_has_b_packed_by_its_first_tile() {
        for kind in Kernel::supported() {
            let kern = MicroKernel::new(kind).expect("a supported kernel");
            let tall = B_IN_PLACE_MAX_PANELS * kern.mr + 1;
            assert!(tall <= kern.mc, "{kind:?}: MC {}", kern.mc);
            let (k, n) = (kern.kc + 1, 3 * kern.nr);
            assert_eq!(
                source(&kern, tall, k, n, true),
                BSource::PackedByFirstTile,
                "{kind:?}"
            );
            assert_eq!(
                source(&kern, kern.mc, k, n, true),
                BSource::PackedByFirstTile,
                "{kind:?}"
            );
            assert_eq!(
                source(&kern, tall, k, n, false),
                BSource::Packed,
                "{kind:?}"
            );
            let taller = kern.mc + 1;
            let first_tile = BSource::PackedByFirstTile;
            assert_eq!(source(&kern, taller, k, n, true), first_tile, "{kind:?}");
            // B of more than L2 (a full block, KC × NC, takes half of it).
            let wide = 2 * kern.nc + kern.nr;
            assert_eq!(
                source(&kern, taller, k, wide, true),
                BSource::Packed,
                "{kind:?}"
            );
            let short = if kern.a_in_place {
                BSource::InPlace
            } else {
                BSource::PackedByFirstTile
            };
            assert_eq!(source(&kern, kern.mr, k, n, true), short, "{kind:?}");
            // B's rows on cache lines (rows of a multiple of 16 floats): read
            // in place against more rows, on one thread.
            let n = 3 * kern.nr.max(16);
            let on_lines = (B_IN_PLACE_MAX_PANELS * kern.mr).max(B_IN_PLACE_ON_LINES_MAX_ROWS);
            assert!(on_lines < kern.mc, "{kind:?}: MC {}", kern.mc);
            let at = |m, offset| source_with_b_at(&kern, m, k, n, true, offset);
            assert_eq!(at(on_lines, 0), short, "{kind:?}");
            assert_eq!(at(on_lines + 1, 0), first_tile, "{kind:?}");
            // Off lines, the shorter limit: B 16 bytes off a line, or rows
            // of 16·j + 4 floats (the first on a line, the others not).
            assert_eq!(at(tall, 16), first_tile, "{kind:?}: 16 bytes off");
            // Off lines, a tile that reads four lines of a B row a k step
            // reads B in place against fewer rows; the narrower ones keep 12
            // panels.
            let off_lines = if reads_four_lines_of_b(&kern) {
                B_IN_PLACE_OFF_LINES_MAX_PANELS * kern.mr
            } else {
                B_IN_PLACE_MAX_PANELS * kern.mr
            };
            assert_eq!(at(off_lines, 16), short, "{kind:?}: 16 bytes off");
            assert_eq!(at(off_lines + 1, 16), first_tile, "{kind:?}: 16 bytes off");
            let ragged = source_with_b_at(&kern, tall, k, n + 4, true, 0);
            assert_eq!(ragged, first_tile, "{kind:?}: rows off lines");
        }
    }
}
