//! Inverted dropout with a byte mask: `y = x·scale` where an element is kept,
//! `0·x` where it is dropped; `∂/∂x = g·scale` or `0·g` likewise.
//!
//! The mask is one byte per element rather than a tensor of `scale` and 0:
//! a quarter of the memory, written once by whoever draws it and read by the
//! forward and backward passes, which are one loop each.

use ember_tensor::{worth_splitting, Tensor};
use rayon::prelude::*;

use crate::graph::{record, Grads};
use crate::Var;

/// Elements per parallel chunk of the forward and backward loops.
const CHUNK: usize = 16 * 1024;

/// Which elements an inverted dropout keeps (one byte each, nonzero: kept)
/// and the factor the kept ones are scaled by, `1/(1 − p)`.
///
/// ```
/// use ember_autograd::{DropoutMask, Var};
/// use ember_tensor::Tensor;
///
/// let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
/// let y = x.dropout(DropoutMask::new(vec![1, 0, 0, 1], 2.0));
/// assert_eq!(y.value().to_vec(), vec![2.0, 0.0, 0.0, 8.0]);
/// y.sum().backward();
/// assert_eq!(x.grad().unwrap().to_vec(), vec![2.0, 0.0, 0.0, 2.0]);
/// ```
#[derive(Clone, Debug)]
pub struct DropoutMask {
    keep: Vec<u8>,
    scale: f32,
}

impl DropoutMask {
    /// A mask keeping the elements whose byte is nonzero, scaled by `scale`.
    pub fn new(keep: Vec<u8>, scale: f32) -> DropoutMask {
        DropoutMask { keep, scale }
    }

    /// The number of elements it covers.
    pub fn len(&self) -> usize {
        self.keep.len()
    }

    /// Whether it covers no element.
    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    /// `out[i] = x[i]·scale` where kept, `x[i]·0` elsewhere: the same
    /// product as with a mask tensor of `scale` and 0, so the same bits.
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let scale = self.scale;
        let run = move |((out, x), keep): ((&mut [f32], &[f32]), &[u8])| {
            scale_kept(out, x, keep, scale);
        };
        if worth_splitting(x.len()) {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .zip(self.keep.par_chunks(CHUNK))
                .for_each(run);
        } else {
            run(((out, x), &self.keep));
        }
    }

    /// `t ← mask · t` in place, the same bits as [`Self::applied_to`]: for
    /// an output that only the mask's op will ever see.
    pub(crate) fn apply_in_place(&self, t: &mut Tensor) {
        let scale = self.scale;
        let data = t.data_mut();
        let run = move |(out, keep): (&mut [f32], &[u8])| scale_kept_in_place(out, keep, scale);
        if worth_splitting(data.len()) {
            data.par_chunks_mut(CHUNK)
                .zip(self.keep.par_chunks(CHUNK))
                .for_each(run);
        } else {
            run((data, &self.keep));
        }
    }

    /// The gradient through a ReLU and then this mask, from the upstream
    /// `g` and the masked output `z`, in one pass: `g·s` where `z > 0`,
    /// `0·(g·s)` elsewhere (`s` the element's factor, `scale` or 0). That is
    /// the ReLU's backward of the dropout's, bit for bit: `z > 0` exactly
    /// where the element is kept and the ReLU's output was positive, and a
    /// dropped element's `g·0` is unchanged by the extra `0·`.
    pub(crate) fn relu_backward(&self, g: &Tensor, z: &Tensor) -> Tensor {
        let (g, z) = (g.contiguous(), z.contiguous());
        let mut out = Tensor::empty(g.shape());
        let scale = self.scale;
        let (g, z) = (
            g.as_slice().expect("contiguous"),
            z.as_slice().expect("contiguous"),
        );
        let keep = &self.keep;
        // Chunk `c` of the output and the same elements of the inputs.
        let run = move |(c, out): (usize, &mut [f32])| {
            let at = c * CHUNK..c * CHUNK + out.len();
            relu_dropout_grad(out, &g[at.clone()], &z[at.clone()], &keep[at], scale);
        };
        let data = out.data_mut();
        if worth_splitting(data.len()) {
            data.par_chunks_mut(CHUNK).enumerate().for_each(run);
        } else {
            run((0, data));
        }
        out
    }

    /// `mask · t`, elementwise, into fresh storage.
    fn applied_to(&self, t: &Tensor) -> Tensor {
        let t = t.contiguous();
        let mut out = Tensor::empty(t.shape());
        self.apply(t.as_slice().expect("contiguous"), out.data_mut());
        out
    }
}

/// `out[i] = x[i]·scale` where `keep[i] ≠ 0`, else `x[i]·0`. Slices and
/// the scale are arguments (not a closure's captures, which the loop would
/// reload from memory on every element) so that it vectorises.
fn scale_kept(out: &mut [f32], x: &[f32], keep: &[u8], scale: f32) {
    for ((o, &x), &k) in out.iter_mut().zip(x).zip(keep) {
        *o = x * if k != 0 { scale } else { 0.0 };
    }
}

/// [`scale_kept`] with the output as its own input.
fn scale_kept_in_place(out: &mut [f32], keep: &[u8], scale: f32) {
    for (o, &k) in out.iter_mut().zip(keep) {
        *o *= if k != 0 { scale } else { 0.0 };
    }
}

/// [`DropoutMask::relu_backward`]'s loop (arguments, not captures, so it
/// vectorises).
fn relu_dropout_grad(out: &mut [f32], g: &[f32], z: &[f32], keep: &[u8], scale: f32) {
    for (((o, &g), &z), &k) in out.iter_mut().zip(g).zip(z).zip(keep) {
        let through_dropout = g * if k != 0 { scale } else { 0.0 };
        *o = if z > 0.0 {
            through_dropout
        } else {
            0.0 * through_dropout
        };
    }
}

impl Var {
    /// Inverted dropout with a drawn `mask`: kept elements are scaled by its
    /// factor, dropped ones become 0. ∂/∂x = g·scale where kept, 0 elsewhere.
    ///
    /// # Panics
    /// If the mask does not have one byte per element of the input; the
    /// message names both sizes.
    #[track_caller]
    pub fn dropout(&self, mask: DropoutMask) -> Var {
        let shape = self.shape();
        let len: usize = shape.iter().product();
        assert!(
            mask.len() == len,
            "dropout: a mask of {} elements for an input of shape {shape:?} ({len} elements)",
            mask.len()
        );
        let value = mask.applied_to(&self.value_ref());
        record(
            "dropout",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, mask.applied_to(g)),
        )
    }
}
