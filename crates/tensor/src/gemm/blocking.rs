//! Block sizes for the loop nest, and how work is split between threads.
//!
//! Each kernel carries its cache blocking (`kc`, `mc`, `nc`, with the reason
//! beside each constant in its file): **KC** keeps one B micro-panel
//! (`KC × NR`) plus one A micro-panel in L1d, **MC** keeps the packed A block
//! (`MC × KC`) in L2, **NC** keeps the packed B block (`KC × NC`) in L3. The
//! functions here even those maxima out over the actual problem, so a
//! dimension just above a block size is not left with a sliver.

use super::kernel::MicroKernel;

/// The step that splits `len` into the fewest parts of at most `max`, all
/// about equal, rounded up to a multiple of `unit`.
pub(crate) fn balanced(len: usize, max: usize, unit: usize) -> usize {
    let parts = len.div_ceil(max).max(1);
    len.div_ceil(parts).div_ceil(unit).max(1) * unit
}

/// The PC step. It depends only on `k` and the kernel, never on the thread
/// count: every element of C sees the same sequence of K slices, which is
/// what makes results bit-identical for any number of threads.
pub(crate) fn kc(kern: &MicroKernel, k: usize) -> usize {
    balanced(k, kern.kc, 8)
}

/// The JC step for `n` columns.
pub(crate) fn nc(kern: &MicroKernel, n: usize) -> usize {
    balanced(n, kern.nc, kern.nr)
}

/// The IC step for a thread's `rows`.
pub(crate) fn mc(kern: &MicroKernel, rows: usize) -> usize {
    balanced(rows, kern.mc, kern.mr)
}

/// GEMMs below this many flops (2·m·n·k) run on the calling thread: handing
/// work to rayon costs a few microseconds, worth it only from ~100 µs of work.
pub(crate) const PARALLEL_MIN_FLOPS: usize = 4 << 20;

/// Each extra thread must get at least this much work.
const FLOPS_PER_THREAD: usize = 2 << 20;

/// How many threads a product of this size deserves, out of `budget`.
pub(crate) fn threads_for(m: usize, n: usize, k: usize, budget: usize) -> usize {
    let flops = m.saturating_mul(n).saturating_mul(k).saturating_mul(2);
    if flops < PARALLEL_MIN_FLOPS {
        return 1;
    }
    budget.clamp(1, (flops / FLOPS_PER_THREAD).max(1))
}

/// How `threads` tasks tile a block of `m` rows by `n` columns: `(tm, tn)`
/// with `tm · tn = threads`, tm row bands (IC loop) times tn column bands (JR
/// loop). Chooses the split that wastes the fewest micro-tiles, favouring row
/// bands, which share the packed B instead of each packing A.
pub(crate) fn grid(kern: &MicroKernel, m: usize, n: usize, threads: usize) -> (usize, usize) {
    let (mp, np) = (m.div_ceil(kern.mr), n.div_ceil(kern.nr));
    let used =
        |parts: usize, panels: usize| panels as f64 / (parts * panels.div_ceil(parts)) as f64;
    let mut best = (1, threads);
    let mut best_score = -1.0;
    for tm in 1..=threads {
        if !threads.is_multiple_of(tm) {
            continue;
        }
        let tn = threads / tm;
        // Column bands each pack the same A: prefer rows unless clearly better.
        let col_cost = if tn > 1 { 0.97 } else { 1.0 };
        let score = used(tm, mp) * used(tn, np) * col_cost;
        if score >= best_score {
            best = (tm, tn);
            best_score = score;
        }
    }
    best
}

/// Band `i` of `panels` micro-panels split into `parts` contiguous,
/// near-equal ranges.
pub(crate) fn band(panels: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (panels * i / parts)..(panels * (i + 1) / parts)
}
