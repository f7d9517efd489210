//! How the tasks of one parallel split are shared out between threads.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::blocking;

/// Runs `task(t)` for every `t` in `range`, on up to `threads` threads of
/// the current rayon pool, and returns when all have finished.
///
/// Each participating thread owns a contiguous band of the tasks
/// ([`blocking::band`]) and takes them from the band's front through an
/// atomic counter; a thread whose band is done takes from the others'
/// fronts in turn. So when every thread is on time each runs its own band,
/// neighbouring B panels on one core as with a fixed split, and a thread
/// that arrives late (a worker asleep since the last parallel operation
/// takes 40–90 µs to wake on this VM) finds its band already started by
/// the others. Whichever thread runs a task, it computes the same elements
/// of C with the same operations, so results stay bit-identical.
///
/// A thread out of tasks then waits for the others by spinning on a count
/// of finished tasks. The nested `rayon::join`s this replaced let a thread
/// that waited for a stolen half sleep after some microseconds without
/// work, and waking it again took tens of microseconds on this VM: traced
/// on 64×288×576 (9 panel tasks of 17–28 µs, 2 threads, workers awake),
/// the product returned 25–90 µs after its last task had ended. (One
/// counter for all tasks, taken in turn by both threads, lost 1–7 % on the
/// Linear forwards against the joins: adjacent panels then ran on
/// different cores.)
///
/// Medians of 100 alternated pairs against the joins, this Xeon, 2
/// threads, three runs each, workers kept awake | called back to back |
/// after 500 µs of serial work: 64×288×576 +23–29 % | +19–26 % | +16–17 %,
/// 288×64×576 Aᵀ +22–30 % | +29–30 % | +26–30 %, 128×512×784 +6–8 % |
/// +8–10 % | +6–8 %, 128×784×512 Bᵀ +3–6 % | +6–9 % | +5–13 %,
/// 128×512×512 Bᵀ +3–9 % | +10–17 % | +8–15 %, 256³ +1–5 % | +11–17 % |
/// +8–20 %, 512³ +2–3 % | +5 % | +2–3 %, 784×128×512 Aᵀ +1–5 % | +1–7 % |
/// +4–7 %, 288×576×64 Bᵀ (two row bands) ±1 % | ±2 % | +13–25 %.
pub(crate) fn run_tasks(range: Range<usize>, threads: usize, task: &(impl Fn(usize) + Sync)) {
    let parts = threads.min(range.len());
    if parts <= 1 {
        return range.for_each(task);
    }
    let len = range.len();
    // The next task of each band, counted from 0; on the stack, as a GEMM
    // in a training loop allocates nothing. Past MAX_BANDS participants,
    // some share a band.
    let bands = parts.min(MAX_BANDS);
    let next: [AtomicUsize; MAX_BANDS] =
        std::array::from_fn(|band| AtomicUsize::new(blocking::band(len, bands, band).start));
    let finished = AtomicUsize::new(0);
    let participate = |me: usize| {
        let first = me % bands;
        for band in (first..bands).chain(0..first) {
            let end = blocking::band(len, bands, band).end;
            loop {
                let t = next[band].fetch_add(1, Ordering::Relaxed);
                if t >= end {
                    break;
                }
                // Counted when the task ends, also by a panic: the others
                // must stop waiting so that the panic reaches the caller.
                let _counted = CountOnDrop(&finished);
                task(range.start + t);
            }
        }
        wait_for(&finished, len);
    };
    spread(0..parts, &participate);
}

/// The most bands [`run_tasks`] splits its tasks into.
const MAX_BANDS: usize = 64;

/// Adds one to its counter when dropped.
struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Spins until `finished` reaches `len`; after a few thousand rounds it
/// yields the core between looks, in case the thread it waits for needs it
/// (a pool with more threads than cores).
fn wait_for(finished: &AtomicUsize, len: usize) {
    let mut rounds = 0u32;
    while finished.load(Ordering::Acquire) < len {
        if rounds < 1 << 12 {
            rounds += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Runs `f(i)` for every participant `i` in `parts`, in parallel through
/// nested `rayon::join`s (unlike `rayon::scope`, they allocate nothing).
fn spread(parts: Range<usize>, f: &(impl Fn(usize) + Sync)) {
    if parts.len() <= 1 {
        return f(parts.start);
    }
    let mid = parts.start + parts.len() / 2;
    rayon::join(|| spread(parts.start..mid, f), || spread(mid..parts.end, f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool")
    }

    #[test]
    fn every_task_runs_once_whatever_the_thread_count() {
        for pool_threads in [1, 2, 3] {
            pool(pool_threads).install(|| {
                // 100 threads: more participants than MAX_BANDS, some sharing a band.
                for threads in [1, 2, 3, 4, 100] {
                    for len in (0..12).chain([130]) {
                        let runs: Vec<AtomicUsize> =
                            (0..len + 3).map(|_| AtomicUsize::new(0)).collect();
                        run_tasks(3..len + 3, threads, &|t| {
                            runs[t].fetch_add(1, Ordering::Relaxed);
                        });
                        let counts: Vec<usize> =
                            runs.iter().map(|r| r.load(Ordering::Relaxed)).collect();
                        let want: Vec<usize> = (0..len + 3).map(|t| usize::from(t >= 3)).collect();
                        assert_eq!(
                            counts, want,
                            "{len} tasks on {threads} of {pool_threads} threads"
                        );
                    }
                }
            });
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_instead_of_hanging_the_others() {
        // On a thread of its own, so that a hang fails the test (timeout)
        // instead of stalling the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = pool(2).install(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    run_tasks(0..8, 2, &|t| {
                        if t == 1 {
                            panic!("task {t} failed");
                        }
                    });
                }))
            });
            let _ = tx.send(result.is_err());
        });
        let panicked = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("run_tasks still waiting a minute after a task panicked");
        assert!(panicked, "the task's panic did not reach the caller");
    }
}
