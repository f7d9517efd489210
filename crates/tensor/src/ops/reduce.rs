//! Reductions over an axis or over everything, and a numerically stable softmax.
//!
//! Every reduction folds its values in a fixed order that does not depend on
//! the number of threads, so results are bit-identical on 1 or many threads.

use rayon::prelude::*;

use crate::parallel::{worth_splitting, CHUNK};
use crate::shape::resolve_axis;
use crate::tensor::Tensor;

/// A contiguous tensor seen as `(outer, len, inner)` around one axis.
struct AxisBlocks {
    data: Tensor,
    outer: usize,
    len: usize,
    inner: usize,
}

impl AxisBlocks {
    #[track_caller]
    fn new(t: &Tensor, op: &str, axis: isize) -> (AxisBlocks, usize) {
        let axis = resolve_axis(op, axis, t.ndim());
        let blocks = AxisBlocks {
            data: t.contiguous(),
            outer: t.shape[..axis].iter().product(),
            len: t.shape[axis],
            inner: t.shape[axis + 1..].iter().product(),
        };
        (blocks, axis)
    }

    /// Runs `f(block, out_block)` for every outer index, where `block` holds
    /// `len × inner` inputs and `out_block` has `out_per_outer` outputs.
    fn for_each(
        &self,
        out: &mut [f32],
        out_per_outer: usize,
        f: impl Fn(&[f32], &mut [f32]) + Sync,
    ) {
        let input = self.data.as_slice().expect("contiguous");
        let block = self.len * self.inner;
        if out_per_outer == 0 {
            return;
        }
        let run =
            |(o, out_block): (usize, &mut [f32])| f(&input[o * block..(o + 1) * block], out_block);
        if worth_splitting(input.len()) && self.outer > 1 {
            out.par_chunks_mut(out_per_outer).enumerate().for_each(run);
        } else {
            out.chunks_mut(out_per_outer).enumerate().for_each(run);
        }
    }
}

fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut out = shape.to_vec();
    if keepdim {
        out[axis] = 1;
    } else {
        out.remove(axis);
    }
    out
}

impl Tensor {
    /// The sum of all elements (0.0 for an empty tensor).
    pub fn sum_all(&self) -> f32 {
        let data = self.contiguous();
        let values = data.as_slice().expect("contiguous");
        // Fixed-size chunks summed in f64, then combined in order: accurate,
        // and the same on any number of threads.
        let chunk_sum = |c: &[f32]| c.iter().map(|&v| f64::from(v)).sum::<f64>();
        let total: f64 = if worth_splitting(values.len()) {
            let partial: Vec<f64> = values.par_chunks(CHUNK).map(chunk_sum).collect();
            partial.iter().sum()
        } else {
            values.chunks(CHUNK).map(chunk_sum).sum()
        };
        total as f32
    }

    /// The mean of all elements (NaN for an empty tensor).
    pub fn mean_all(&self) -> f32 {
        self.sum_all() / self.numel() as f32
    }

    /// The largest element (NaN if any element is NaN; −∞ for an empty tensor).
    pub fn max_all(&self) -> f32 {
        // Once the running maximum is NaN, `v > m` is false forever: NaN sticks.
        self.to_vec().into_iter().fold(
            f32::NEG_INFINITY,
            |m, v| if v > m || v.is_nan() { v } else { m },
        )
    }

    /// Sums along `axis` (negative counts from the end); `keepdim` keeps it with size 1.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let t = Tensor::arange(6).reshape(&[2, 3]);
    /// assert_eq!(t.sum_axis(0, false).to_vec(), vec![3.0, 5.0, 7.0]);
    /// assert_eq!(t.sum_axis(-1, true).shape(), &[2, 1]);
    /// ```
    ///
    /// # Panics
    /// If the axis is out of range.
    #[track_caller]
    pub fn sum_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        let (b, axis) = AxisBlocks::new(self, "sum_axis", axis);
        let mut out = crate::recycle::filled(b.outer * b.inner, 0.0);
        let (len, inner) = (b.len, b.inner);
        b.for_each(&mut out, inner, |block, acc| {
            for row in block.chunks(inner).take(len) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        });
        Tensor::from_buffer(out, &reduced_shape(&self.shape, axis, keepdim))
    }

    /// Means along `axis`.
    ///
    /// # Panics
    /// If the axis is out of range.
    #[track_caller]
    pub fn mean_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        let n = self.shape[resolve_axis("mean_axis", axis, self.ndim())];
        self.sum_axis(axis, keepdim).mul_scalar(1.0 / n as f32)
    }

    /// Maxima along `axis`.
    ///
    /// # Panics
    /// If the axis is out of range or empty.
    #[track_caller]
    pub fn max_axis(&self, axis: isize, keepdim: bool) -> Tensor {
        let (b, axis) = AxisBlocks::new(self, "max_axis", axis);
        assert!(
            b.len > 0,
            "max_axis: axis {axis} of shape {:?} is empty",
            self.shape
        );
        let mut out = crate::recycle::filled(b.outer * b.inner, f32::NEG_INFINITY);
        let (len, inner) = (b.len, b.inner);
        b.for_each(&mut out, inner, |block, acc| {
            for row in block.chunks(inner).take(len) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    if v > *a || v.is_nan() {
                        *a = v;
                    }
                }
            }
        });
        Tensor::from_buffer(out, &reduced_shape(&self.shape, axis, keepdim))
    }

    /// Indices of the maxima along `axis` (the first one on ties), in row-major
    /// order of the remaining axes.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let logits = Tensor::from_vec(vec![0.1, 2.0, -1.0, 3.0, 0.0, 3.0], &[2, 3]);
    /// assert_eq!(logits.argmax_axis(1), vec![1, 0]);
    /// ```
    ///
    /// # Panics
    /// If the axis is out of range or empty.
    #[track_caller]
    pub fn argmax_axis(&self, axis: isize) -> Vec<usize> {
        let (b, axis) = AxisBlocks::new(self, "argmax_axis", axis);
        assert!(
            b.len > 0,
            "argmax_axis: axis {axis} of shape {:?} is empty",
            self.shape
        );
        let input = b.data.as_slice().expect("contiguous");
        let mut out = Vec::with_capacity(b.outer * b.inner);
        for o in 0..b.outer {
            for i in 0..b.inner {
                let base = o * b.len * b.inner + i;
                let mut best = 0;
                for k in 1..b.len {
                    if input[base + k * b.inner] > input[base + best * b.inner] {
                        best = k;
                    }
                }
                out.push(best);
            }
        }
        out
    }

    /// Softmax along `axis`: `exp(x − max) / Σ exp(x − max)`, stable for any
    /// finite input.
    ///
    /// # Panics
    /// If the axis is out of range.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        self.softmax_impl("softmax", axis, false)
    }

    /// `log(softmax(x))` along `axis`, computed as `x − max − ln Σ exp(x − max)`
    /// so it never takes the log of an underflowed zero.
    ///
    /// # Panics
    /// If the axis is out of range.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        self.softmax_impl("log_softmax", axis, true)
    }

    #[track_caller]
    fn softmax_impl(&self, op: &str, axis: isize, log: bool) -> Tensor {
        let (b, _) = AxisBlocks::new(self, op, axis);
        let mut out = crate::recycle::filled(self.numel(), 0.0);
        let (len, inner) = (b.len, b.inner);
        b.for_each(&mut out, len * inner, |block, dst| {
            for i in 0..inner {
                let at = |k: usize| k * inner + i;
                let max = (0..len)
                    .map(|k| block[at(k)])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for k in 0..len {
                    let e = (block[at(k)] - max).exp();
                    dst[at(k)] = e;
                    sum += e;
                }
                if log {
                    let log_sum = sum.ln();
                    for k in 0..len {
                        dst[at(k)] = block[at(k)] - max - log_sum;
                    }
                } else {
                    let inv = 1.0 / sum;
                    for k in 0..len {
                        dst[at(k)] *= inv;
                    }
                }
            }
        });
        Tensor::from_buffer(out, &self.shape)
    }

    /// Sums over the axes along which `shape` was broadcast to `self.shape()`,
    /// giving a tensor of `shape`: the gradient of a broadcast.
    ///
    /// ```
    /// use ember_tensor::Tensor;
    /// let g = Tensor::ones(&[4, 3]);
    /// assert_eq!(g.sum_to(&[3]).to_vec(), vec![4.0; 3]);
    /// assert_eq!(g.sum_to(&[4, 1]).to_vec(), vec![3.0; 4]);
    /// ```
    ///
    /// # Panics
    /// If `shape` does not broadcast to `self.shape()`.
    #[track_caller]
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        let extra = self.ndim().checked_sub(shape.len());
        let fits = extra.is_some_and(|e| {
            shape
                .iter()
                .enumerate()
                .all(|(i, &d)| d == self.shape[e + i] || d == 1)
        });
        assert!(
            fits,
            "sum_to: shape {:?} does not broadcast to {:?}",
            shape, self.shape
        );
        let extra = extra.unwrap_or(0);
        let mut out = self.clone();
        for _ in 0..extra {
            out = out.sum_axis(0, false);
        }
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && out.shape[i] != 1 {
                out = out.sum_axis(i as isize, true);
            }
        }
        out.reshape(shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn sums_and_means_over_axes() {
        let t = Tensor::arange(24).reshape(&[2, 3, 4]);
        let s1 = t.sum_axis(1, false);
        assert_eq!(s1.shape(), &[2, 4]);
        assert_eq!(s1.get(&[1, 2]), 14.0 + 18.0 + 22.0);
        assert_eq!(t.sum_axis(0, true).shape(), &[1, 3, 4]);
        assert_eq!(t.mean_axis(2, false).get(&[0, 0]), 1.5);
        assert_eq!(t.sum_all(), 276.0);
        assert_eq!(t.mean_all(), 11.5);
    }

    #[test]
    fn reductions_on_non_contiguous_views() {
        let t = Tensor::arange(12).reshape(&[3, 4]);
        let tt = t.t(); // (4, 3)
        assert_eq!(
            tt.sum_axis(1, false).to_vec(),
            t.sum_axis(0, false).to_vec()
        );
        assert_eq!(tt.max_axis(0, false).to_vec(), vec![3.0, 7.0, 11.0]);
        assert_eq!(tt.argmax_axis(0), vec![3, 3, 3]);
        let narrow = t.narrow(1, 1, 2);
        assert_eq!(narrow.sum_all(), 1.0 + 2.0 + 5.0 + 6.0 + 9.0 + 10.0);
    }

    #[test]
    fn max_and_argmax() {
        let t = Tensor::from_vec(vec![1.0, 5.0, 5.0, -1.0, -2.0, -3.0], &[2, 3]);
        assert_eq!(t.max_axis(1, false).to_vec(), vec![5.0, -1.0]);
        assert_eq!(t.argmax_axis(1), vec![1, 0]);
        assert_eq!(t.argmax_axis(0), vec![0, 0, 0]);
        assert_eq!(t.max_all(), 5.0);
    }

    #[test]
    fn softmax_is_stable_at_large_inputs() {
        let t = Tensor::from_vec(vec![1e4, 1e4 - 1.0, -1e4, 0.0], &[2, 2]);
        let s = t.softmax(1).to_vec();
        assert!(s.iter().all(|v| v.is_finite()));
        let e = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((s[0] - e).abs() < 1e-6 && (s[1] - (1.0 - e)).abs() < 1e-6);
        assert_eq!(s[2], 0.0);
        assert_eq!(s[3], 1.0);
        let l = t.log_softmax(1).to_vec();
        assert!(l.iter().all(|v| v.is_finite()));
        assert!(
            (l[2] + 1e4).abs() < 1.0,
            "log_softmax keeps the tiny probability: {}",
            l[2]
        );
    }

    #[test]
    fn softmax_over_a_middle_axis_sums_to_one() {
        let t = Tensor::arange(24).reshape(&[2, 3, 4]).mul_scalar(0.3);
        let s = t.softmax(1);
        let sums = s.sum_axis(1, false).to_vec();
        assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-6));
        let direct = t.log_softmax(1).exp();
        for (a, b) in direct.to_vec().iter().zip(s.to_vec()) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn large_sum_is_accurate_and_thread_independent() {
        let n = 1 << 20;
        let t = Tensor::full(&[n], 0.1);
        let expected = 0.1f64 as f32 as f64 * n as f64;
        assert!((t.sum_all() as f64 - expected).abs() < 1e-3 * expected);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let x = Tensor::arange(n)
            .map(|v| (v * 0.37).sin())
            .reshape(&[1024, 1024]);
        let a = one.install(|| {
            (
                x.sum_all(),
                x.sum_axis(1, false).to_vec(),
                x.softmax(0).to_vec(),
            )
        });
        let b = two.install(|| {
            (
                x.sum_all(),
                x.sum_axis(1, false).to_vec(),
                x.softmax(0).to_vec(),
            )
        });
        assert_eq!(a.0.to_bits(), b.0.to_bits());
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
    }

    #[test]
    fn sum_to_reduces_broadcast_axes() {
        let g = Tensor::arange(24).reshape(&[2, 3, 4]);
        assert_eq!(g.sum_to(&[2, 3, 4]).to_vec(), g.to_vec());
        assert_eq!(g.sum_to(&[]).item(), 276.0);
        let s = g.sum_to(&[3, 1]);
        assert_eq!(s.shape(), &[3, 1]);
        assert_eq!(s.get(&[0, 0]), (0..4).chain(12..16).sum::<i32>() as f32);
    }
}
