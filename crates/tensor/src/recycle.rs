//! Recycled storage for large tensors.
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
    buffers: Vec<Vec<f32>>,
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

/// A tensor's values. When the last tensor sharing it is dropped, a large
/// buffer is returned to the thread's free list instead of the allocator.
pub(crate) struct Storage(Vec<f32>);

impl Storage {
    pub(crate) fn new(values: Vec<f32>) -> Storage {
        Storage(values)
    }
}

impl Deref for Storage {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl DerefMut for Storage {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// `len` values, every one `value`: a recycled buffer when one of that length
/// is free on this thread, else a new one.
pub(crate) fn filled(len: usize, value: f32) -> Vec<f32> {
    match take(len) {
        Some(mut buffer) => {
            buffer.fill(value);
            buffer
        }
        None => vec![value; len],
    }
}

/// `len` values whose contents are unspecified (a recycled buffer keeps its
/// old values; a new one is zeroed), for callers that overwrite every element.
pub(crate) fn for_overwrite(len: usize) -> Vec<f32> {
    take(len).unwrap_or_else(|| vec![0.0; len])
}

/// `values` copied into a buffer of their length.
pub(crate) fn copied(values: &[f32]) -> Vec<f32> {
    match take(values.len()) {
        Some(mut buffer) => {
            buffer.copy_from_slice(values);
            buffer
        }
        None => values.to_vec(),
    }
}

fn take(len: usize) -> Option<Vec<f32>> {
    if len < MIN_LEN {
        return None;
    }
    FREE.try_with(|free| {
        let mut free = free.borrow_mut();
        let at = free.buffers.iter().rposition(|b| b.len() == len)?;
        let buffer = free.buffers.swap_remove(at);
        free.bytes -= buffer.capacity() * size_of::<f32>();
        Some(buffer)
    })
    .ok()
    .flatten()
}

fn give_back(buffer: Vec<f32>) {
    if buffer.len() < MIN_LEN {
        return;
    }
    let bytes = buffer.capacity() * size_of::<f32>();
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
            free.bytes -= oldest.capacity() * size_of::<f32>();
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
        assert_eq!(held_bytes(), before + n * 4);
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
        assert_eq!(held_bytes(), before + n * 4);
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
