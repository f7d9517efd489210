//! Matrix products. Their backward is two GEMM calls on transposed *views*
//! that accumulate straight into the gradient buffers (β = 1): no transposed
//! copies, no extra additions.
//!
//! For `C = A·B` with upstream gradient `G = ∂L/∂C`:
//! `∂L/∂A = G·Bᵀ` and `∂L/∂B = Aᵀ·G` (each `C[i,j] = Σₚ A[i,p]·B[p,j]`, so
//! `∂C[i,j]/∂A[i,p] = B[p,j]` and `∂C[i,j]/∂B[p,j] = A[i,p]`).

use ember_tensor::gemm::{Bias, Epilogue};
use ember_tensor::Tensor;

use super::elementwise::relu_grad;
use crate::graph::{record, Grads};
use crate::{DropoutMask, Var};

impl Var {
    /// The matrix product `(m, k)·(k, n) → (m, n)`, or batched
    /// `(b, m, k)·(b, k, n) → (b, m, n)`; a 2-D operand is shared across the batch.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0], &[1, 2]));
    /// let w = Var::parameter(Tensor::from_vec(vec![3.0, 4.0], &[2, 1]));
    /// let y = x.matmul(&w); // 1·3 + 2·4
    /// y.backward();
    /// assert_eq!(y.item(), 11.0);
    /// assert_eq!(w.grad().unwrap().to_vec(), vec![1.0, 2.0]); // xᵀ·1
    /// ```
    ///
    /// # Panics
    /// If the shapes do not multiply; the message names both.
    #[track_caller]
    pub fn matmul(&self, other: &Var) -> Var {
        let (a, b) = (self.value(), other.value());
        let value = a.matmul(&b);
        record(
            "matmul",
            value,
            &[self, other],
            move |g, grads: &mut Grads<'_>| matmul_backward(&a, &b, g, grads),
        )
    }

    /// A fully connected layer in one op: `x·wᵀ + bias`, with `x (batch, in)`,
    /// `w (out, in)` (PyTorch's layout) and `bias (out)`.
    ///
    /// The bias is written first and the product accumulated onto it by the
    /// GEMM (β = 1), so the forward makes one output buffer and no temporary.
    ///
    /// # Panics
    /// If the shapes do not fit; the message names them.
    #[track_caller]
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Var {
        self.linear_then(weight, bias, Then::Nothing)
    }

    /// [`linear`](Var::linear) followed by [`relu`](Var::relu): the output
    /// is rectified in place while the GEMM has just left it in cache,
    /// instead of in a second pass that writes a second buffer. The values
    /// and gradients are those of `.linear(..).relu()`, bit for bit.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0], &[1, 2]));
    /// let w = Var::parameter(Tensor::from_vec(vec![1.0, 1.0, -1.0, 0.0], &[2, 2]));
    /// let y = x.linear_relu(&w, None);
    /// assert_eq!(y.value().to_vec(), vec![3.0, 0.0]);
    /// ```
    ///
    /// # Panics
    /// As [`linear`](Var::linear).
    #[track_caller]
    pub fn linear_relu(&self, weight: &Var, bias: Option<&Var>) -> Var {
        self.linear_then(weight, bias, Then::Relu)
    }

    /// [`linear_relu`](Var::linear_relu) followed by
    /// [`dropout`](Var::dropout) with `mask`: the mask is applied in place
    /// to the rectified output, and the backward makes one pass (the
    /// gradient, the output and the mask in; the ReLU's and the dropout's
    /// gradient out) where apart they make two and keep the ReLU's output
    /// alive. The values and gradients are those of
    /// `.linear_relu(..).dropout(mask)`, bit for bit.
    ///
    /// ```
    /// use ember_autograd::{DropoutMask, Var};
    /// use ember_tensor::Tensor;
    ///
    /// let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0], &[1, 2]));
    /// let w = Var::parameter(Tensor::from_vec(vec![1.0, 1.0, 1.0, 0.0, -1.0, 0.0], &[3, 2]));
    /// let y = x.linear_relu_dropout(&w, None, DropoutMask::new(vec![1, 0, 1], 2.0));
    /// assert_eq!(y.value().to_vec(), vec![6.0, 0.0, 0.0]);
    /// ```
    ///
    /// # Panics
    /// As [`linear`](Var::linear), and if the mask does not have one byte
    /// per output element (the message names both sizes).
    #[track_caller]
    pub fn linear_relu_dropout(&self, weight: &Var, bias: Option<&Var>, mask: DropoutMask) -> Var {
        self.linear_then(weight, bias, Then::ReluDropout(mask))
    }

    #[track_caller]
    fn linear_then(&self, weight: &Var, bias: Option<&Var>, then: Then) -> Var {
        let (x, w) = (self.value(), weight.value());
        assert!(
            x.ndim() == 2 && w.ndim() == 2 && x.shape()[1] == w.shape()[1],
            "linear: input {:?} does not fit weight {:?} (need (batch, in) and (out, in))",
            x.shape(),
            w.shape()
        );
        let (batch, out) = (x.shape()[0], w.shape()[0]);
        let b = bias.map(|b| b.value().contiguous());
        if let Some(b) = &b {
            assert!(
                b.shape() == [out],
                "linear: bias {:?} does not fit weight {:?} (need (out,))",
                b.shape(),
                w.shape()
            );
        }
        if let Then::ReluDropout(mask) = &then {
            assert!(
                mask.len() == batch * out,
                "linear_relu_dropout: a mask of {} elements for an output of shape {:?} ({} elements)",
                mask.len(),
                [batch, out],
                batch * out
            );
        }
        // One pass over the output: the GEMM adds the bias (one per output
        // feature: a column) and rectifies as it writes each tile, with the
        // bits of a bias fill, β = 1 and `Var::relu` after. β = 0: only written.
        let epilogue = Epilogue {
            bias: b
                .as_ref()
                .map(|b| Bias::Columns(b.as_slice().expect("contiguous"))),
            relu: then.rectifies(),
        };
        let mut value = Tensor::empty(&[batch, out]);
        value.gemm_assign_fused(1.0, &x, &w.t(), 0.0, epilogue);
        if let Then::ReluDropout(mask) = &then {
            mask.apply_in_place(&mut value);
        }
        let inputs: Vec<&Var> = match bias {
            Some(b) => vec![self, weight, b],
            None => vec![self, weight],
        };
        let op = match then {
            Then::Nothing => "linear",
            Then::Relu => "linear_relu",
            Then::ReluDropout(_) => "linear_relu_dropout",
        };
        // What the backward masks the gradient with: the rectified output
        // is its own mask (positive exactly where the pre-activation is,
        // and after the dropout where the element was also kept).
        let output = then.rectifies().then(|| value.clone());
        record(op, value, &inputs, move |g, grads: &mut Grads<'_>| {
            let masked = output.as_ref().map(|y| match &then {
                Then::ReluDropout(mask) => mask.relu_backward(g, y),
                _ => g.zip_map(y, "relu_backward", relu_grad),
            });
            let g = masked.as_ref().unwrap_or(g);
            // y = x·wᵀ: ∂x = g·w, ∂w = gᵀ·x, ∂bias = Σ_batch g.
            grads.add_matmul(0, 1.0, g, &w);
            grads.add_matmul(1, 1.0, &g.t(), &x);
            if grads.wants(2) {
                grads.add(2, g.sum_axis(0, false));
            }
        })
    }
}

/// What a fused Linear applies to its output after the bias.
enum Then {
    Nothing,
    Relu,
    ReluDropout(DropoutMask),
}

impl Then {
    /// Whether the output is rectified (by the GEMM's epilogue), so that the
    /// backward masks the gradient with it.
    fn rectifies(&self) -> bool {
        !matches!(self, Then::Nothing)
    }
}

fn matmul_backward(a: &Tensor, b: &Tensor, g: &Tensor, grads: &mut Grads<'_>) {
    match (a.ndim(), b.ndim()) {
        // Shared 2-D B under a batched A: ∂B = Σ_batch Aᵦᵀ·Gᵦ, one GEMM over
        // the batch folded into rows.
        (3, 2) => {
            grads.add_matmul(0, 1.0, g, &b.t());
            if grads.wants(1) {
                let rows = a.shape()[0] * a.shape()[1];
                let a2 = a.reshape(&[rows, a.shape()[2]]);
                let g2 = g.reshape(&[rows, g.shape()[2]]);
                grads.add_matmul(1, 1.0, &a2.t(), &g2);
            }
        }
        // Shared 2-D A under a batched B: ∂A = Σ_batch Gᵦ·Bᵦᵀ.
        (2, 3) => {
            if grads.wants(0) {
                grads.add(0, g.matmul(&b.t()).sum_axis(0, false));
            }
            grads.add_matmul(1, 1.0, &a.t(), g);
        }
        _ => {
            grads.add_matmul(0, 1.0, g, &b.t());
            grads.add_matmul(1, 1.0, &a.t(), g);
        }
    }
}
