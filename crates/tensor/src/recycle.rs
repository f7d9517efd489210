//! Tensor storage: line-aligned buffers, and recycling for large ones.
//!
//! A training step allocates and frees the same large buffers every step.
//! The system allocator tends to hand blocks this large back to the kernel
//! (unmapping them, or trimming the heap) and to get them back page by page,
//! each page faulted in and zeroed by the kernel: a few per cent of an MLP
//! step. So when the last tensor using a buffer of at least [`MIN_LEN`]
//! values is dropped, the buffer goes to a small free list of its thread,
//! and the next tensor of the same length on that thread takes it from there.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers shorter than this (64 KiB) are left to the allocator, which
/// recycles small blocks well by itself.
const MIN_LEN: usize = 1 << 14;

/// At least this many bytes may wait in one thread's free list; beyond its
/// limit, the buffers that have waited longest are freed. Enough for every
/// large buffer of an MLP step, small enough to keep the MLP example's peak
/// memory low.
const MIN_HELD_BYTES: usize = 16 << 20;

/// The limit also grows to this many times the largest buffer given back so
/// far, so a model whose tensors are each several megabytes (a convnet's
/// activations at batch 64: 5–9 MB) keeps a step's worth of them: with 16
/// MB, most were unmapped and faulted in again every step (≈ 15 % of a
/// convnet step in the kernel's page-fault path; `mnist_cnn`'s step ran
/// 830 → 960 samples/s on one thread). 8 keeps the classic MLP epoch at
/// 104 MiB peak (10 made it 112).
const HELD_PER_LARGEST: usize = 8;

/// Never more than this, whatever the buffers.
const MAX_HELD_BYTES: usize = 256 << 20;

struct FreeList {
    buffers: Vec<Buffer>,
    bytes: usize,
    /// The limit on `bytes`: see [`MIN_HELD_BYTES`] and [`HELD_PER_LARGEST`].
    limit: usize,
}

thread_local! {
    static FREE: RefCell<FreeList> = const {
        RefCell::new(FreeList {
            buffers: Vec::new(),
            bytes: 0,
            limit: MIN_HELD_BYTES,
        })
    };
}

/// The alignment, in bytes, of the buffers made here: a cache line, and the
/// width of an AVX-512 vector.
pub(crate) const ALIGN_BYTES: usize = 64;

/// Floats per [`ALIGN_BYTES`]: at most `FLOATS_PER_LINE - 1` floats of a new
/// buffer are skipped to start it on a line.
pub(crate) const FLOATS_PER_LINE: usize = ALIGN_BYTES / size_of::<f32>();

/// Whether `values` start on a line ([`ALIGN_BYTES`]).
pub(crate) fn starts_on_line(values: &[f32]) -> bool {
    (values.as_ptr() as usize).is_multiple_of(ALIGN_BYTES)
}

/// How many floats from `at` to the next line (0 when `at` is on one):
/// `f32` is 4-byte aligned, so the gap is a whole number of floats.
pub(crate) fn floats_to_line(at: *const f32) -> usize {
    (ALIGN_BYTES - at as usize % ALIGN_BYTES) % ALIGN_BYTES / size_of::<f32>()
}

/// `len` floats in a `Vec`, from `start` on.
///
/// The buffers made here ([`filled`], [`for_overwrite`], [`copied`]) start
/// on a 64-byte boundary (a cache line), as PyTorch's CPU allocator's do;
/// the system allocator promises only 16 bytes. The GEMM loads and stores
/// whole 64-byte vectors, and 16 bytes off a line each one touches two.
/// A product's output on a line made the MLP's weight gradient 784×128×512
/// Aᵀ 2.4 % faster on one thread, 288×64×576 Aᵀ 3 %, 256³ 1.3 %; a B read
/// in place against a short A gains 15–22 % (medians of alternated pairs,
/// the Xeon of `docs/gemm.md`). The `Vec` is over-allocated by up to 15
/// floats and `start` skips to the boundary, so no allocation with a
/// custom layout (and no `unsafe`) is needed. A caller's `Vec`
/// ([`Buffer::given`]) is used as it is.
#[derive(Default)]
pub(crate) struct Buffer {
    values: Vec<f32>,
    start: usize,
    len: usize,
}

impl Buffer {
    /// A caller's values, used in place.
    pub(crate) fn given(values: Vec<f32>) -> Buffer {
        let len = values.len();
        Buffer {
            values,
            start: 0,
            len,
        }
    }

    /// A new buffer of `len` copies of `value`, starting on a line (buffers
    /// shorter than a line are not padded).
    fn new_aligned(len: usize, value: f32) -> Buffer {
        if len < FLOATS_PER_LINE {
            return Buffer::given(vec![value; len]);
        }
        let values = vec![value; len + FLOATS_PER_LINE - 1];
        let start = floats_to_line(values.as_ptr());
        Buffer { values, start, len }
    }

    /// A new buffer holding a copy of `values`, starting on a line: one
    /// pass over them (only the padding before the line is zeroed).
    fn copy_aligned(values: &[f32]) -> Buffer {
        let len = values.len();
        if len < FLOATS_PER_LINE {
            return Buffer::given(values.to_vec());
        }
        // The allocation is made here and never grows, so `start` holds.
        let mut padded = Vec::with_capacity(len + FLOATS_PER_LINE - 1);
        let start = floats_to_line(padded.as_ptr());
        padded.resize(start, 0.0);
        padded.extend_from_slice(values);
        Buffer {
            values: padded,
            start,
            len,
        }
    }

    /// The bytes the buffer holds, padding included.
    fn bytes(&self) -> usize {
        self.values.capacity() * size_of::<f32>()
    }
}

impl Deref for Buffer {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values[self.start..self.start + self.len]
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.values[self.start..self.start + self.len]
    }
}

/// A tensor's values. When the last tensor sharing it is dropped, a large
/// line-aligned buffer is returned to the thread's free list instead of the
/// allocator.
pub(crate) struct Storage(Buffer);

impl Storage {
    pub(crate) fn new(buffer: Buffer) -> Storage {
        crate::memory::taken(buffer.bytes());
        Storage(buffer)
    }
}

impl Deref for Storage {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Storage {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        crate::memory::released(self.0.bytes());
        give_back(std::mem::take(&mut self.0));
    }
}

/// `len` values, every one `value`: a recycled buffer when one of that length
/// is free on this thread, else a new one; either way starting on a line.
pub(crate) fn filled(len: usize, value: f32) -> Buffer {
    match take(len) {
        Some(mut buffer) => {
            buffer.fill(value);
            buffer
        }
        None => Buffer::new_aligned(len, value),
    }
}

/// `len` values whose contents are unspecified (a recycled buffer keeps its
/// old values; a new one is zeroed), for callers that overwrite every element.
pub(crate) fn for_overwrite(len: usize) -> Buffer {
    take(len).unwrap_or_else(|| Buffer::new_aligned(len, 0.0))
}

/// `values` copied into a buffer of their length (recycled, or new and
/// starting on a line).
pub(crate) fn copied(values: &[f32]) -> Buffer {
    match take(values.len()) {
        Some(mut buffer) => {
            buffer.copy_from_slice(values);
            buffer
        }
        None => Buffer::copy_aligned(values),
    }
}

fn take(len: usize) -> Option<Buffer> {
    if len < MIN_LEN {
        return None;
    }
    FREE.try_with(|free| {
        let mut free = free.borrow_mut();
        let at = free.buffers.iter().rposition(|b| b.len == len)?;
        let buffer = free.buffers.swap_remove(at);
        free.bytes -= buffer.bytes();
        Some(buffer)
    })
    .ok()
    .flatten()
}

/// Keeps a large buffer for the next tensor of its length. Only line-aligned
/// ones are kept, so that every buffer [`take`] hands out is; a caller's
/// `Vec` that is not goes back to the allocator.
fn give_back(buffer: Buffer) {
    if buffer.len < MIN_LEN || !starts_on_line(&buffer) {
        return;
    }
    let bytes = buffer.bytes();
    if bytes > MAX_HELD_BYTES / HELD_PER_LARGEST {
        return;
    }
    // During thread teardown the list may be gone: then the buffer is freed.
    let _ = FREE.try_with(|free| {
        let mut free = free.borrow_mut();
        free.limit = free.limit.max(bytes * HELD_PER_LARGEST);
        free.bytes += bytes;
        free.buffers.push(buffer);
        // Oldest first: sizes used once (an evaluation batch) make way for
        // the ones every step uses.
        while free.bytes > free.limit {
            let oldest = free.buffers.remove(0);
            free.bytes -= oldest.bytes();
        }
    });
}

/// Bytes waiting in this thread's free list (for tests).
#[cfg(test)]
pub(crate) fn held_bytes() -> usize {
    FREE.with(|free| free.borrow().bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn a_dropped_large_buffer_is_reused_by_the_next_tensor_of_its_length() {
        let n = MIN_LEN + 3;
        let first = Tensor::full(&[n], 7.0);
        let address = first.as_slice().unwrap().as_ptr();
        let before = held_bytes();
        drop(first);
        // Its length, and the padding that put it on a line.
        let held = held_bytes() - before;
        assert!(
            (n * 4..(n + FLOATS_PER_LINE) * 4).contains(&held),
            "held {held}"
        );
        // Reused, and really filled: no stale 7s.
        let second = Tensor::zeros(&[n]);
        assert_eq!(second.as_slice().unwrap().as_ptr(), address);
        assert!(second.to_vec().iter().all(|&v| v == 0.0));
        assert_eq!(held_bytes(), before);
        // A view keeps the buffer alive; only the last handle returns it.
        let view = second.narrow(0, 1, 2);
        drop(second);
        assert_eq!(held_bytes(), before);
        drop(view);
        assert_eq!(held_bytes(), before + held);
    }

    #[test]
    fn new_tensors_start_on_a_cache_line() {
        // Small and large, new and recycled, and each way of making one.
        for n in [FLOATS_PER_LINE, 100, 1000, MIN_LEN + 5] {
            for _ in 0..2 {
                let t = Tensor::full(&[n], 2.0);
                assert!(t.starts_on_cache_line(), "full, {n} values");
                assert!(t.to_vec().iter().all(|&v| v == 2.0));
                let e = Tensor::empty(&[n]);
                assert!(e.starts_on_cache_line(), "empty, {n} values");
                let doubled = t.map(|v| v * 2.0);
                assert!(doubled.starts_on_cache_line(), "map, {n} values");
                assert!(doubled.to_vec().iter().all(|&v| v == 4.0));
                let sum = &t + &doubled;
                assert!(sum.starts_on_cache_line(), "add, {n} values");
                let product = t.reshape(&[n, 1]).matmul(&Tensor::ones(&[1, 3]));
                assert!(product.starts_on_cache_line(), "matmul, {n} rows");
            }
        }
    }

    #[test]
    fn a_copy_made_to_write_starts_on_a_line_and_keeps_the_values() {
        let n = MIN_LEN + 7;
        let base = Tensor::arange(2 * n).reshape(&[2, n]);
        // A transposed view copies into a buffer of its own before writing.
        let mut t = base.t();
        t.data_mut()[0] = -1.0;
        assert!(t.starts_on_cache_line());
        assert_eq!(t.to_vec()[1..4], [n as f32, 1.0, n as f32 + 1.0]);
        assert_eq!(base.to_vec()[0], 0.0, "the base is untouched");
        assert!(base.t().contiguous().starts_on_cache_line());
        // A contiguous tensor whose storage is shared: copied as a whole,
        // into a new buffer (1000 values, never recycled) or a recycled one.
        for len in [1000, n] {
            let shared = Tensor::arange(len);
            let mut own = shared.clone();
            own.data_mut()[0] = -1.0;
            assert!(own.starts_on_cache_line(), "{len} values");
            assert!(!own.shares_storage_with(&shared));
            assert_eq!(own.to_vec()[1..], shared.to_vec()[1..], "{len} values");
        }
    }

    #[test]
    fn a_callers_vec_is_used_as_given_and_not_kept_when_off_a_line() {
        let n = MIN_LEN + 1;
        // The allocator aligns to 16 bytes; among a few live Vecs of this
        // length (65 540 bytes, so each starts 16 bytes on from the last
        // modulo 64 on a fresh heap) one is off a line.
        let vecs: Vec<Vec<f32>> = (0..8).map(|i| vec![i as f32; n]).collect();
        let off = vecs
            .into_iter()
            .find(|v| !starts_on_line(v))
            .expect("one of eight 16-byte-aligned Vecs is off a line");
        let address = off.as_ptr();
        let t = Tensor::from_vec(off, &[n]);
        assert_eq!(t.as_slice().unwrap().as_ptr(), address, "from_vec copied");
        let before = held_bytes();
        drop(t);
        assert_eq!(held_bytes(), before, "a buffer off a line was kept");
    }

    fn limit() -> usize {
        FREE.with(|free| free.borrow().limit)
    }

    #[test]
    fn small_buffers_and_overflow_go_back_to_the_allocator() {
        let before = held_bytes();
        drop(Tensor::zeros(&[MIN_LEN - 1]));
        assert_eq!(held_bytes(), before);
        // Buffers of a third of the limit raise it to HELD_PER_LARGEST of
        // them, so one more overflows it: the oldest are freed, the newest kept.
        let big = limit() / 4 / 3 + 1;
        let count = HELD_PER_LARGEST + 1;
        let tensors: Vec<Tensor> = (0..count).map(|_| Tensor::zeros(&[big])).collect();
        let last = tensors[count - 1].as_slice().unwrap().as_ptr();
        drop(tensors);
        assert!(held_bytes() <= limit());
        assert!(held_bytes() < count * big * 4);
        assert_eq!(Tensor::zeros(&[big]).as_slice().unwrap().as_ptr(), last);
        // A buffer above the largest that may be held never is.
        let before = held_bytes();
        drop(Tensor::zeros(&[MAX_HELD_BYTES / HELD_PER_LARGEST / 4 + 16]));
        assert_eq!(held_bytes(), before);
    }

    #[test]
    fn a_convnets_several_megabyte_buffers_are_all_kept() {
        // Five 9 MB activations (45 MB): more than the 16 MB floor, but the
        // limit follows the largest buffer.
        let len = (9 << 20) / 4;
        let tensors: Vec<Tensor> = (0..5).map(|_| Tensor::zeros(&[len])).collect();
        let addresses: Vec<*const f32> = tensors
            .iter()
            .map(|t| t.as_slice().unwrap().as_ptr())
            .collect();
        drop(tensors);
        assert!(held_bytes() >= 5 * len * 4, "held {}", held_bytes());
        let again: Vec<Tensor> = (0..5).map(|_| Tensor::zeros(&[len])).collect();
        for t in &again {
            assert!(addresses.contains(&t.as_slice().unwrap().as_ptr()));
        }
    }
}
