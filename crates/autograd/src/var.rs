//! [`Var`]: a tensor that can take part in differentiation.

use std::cell::{Ref, RefCell};
use std::fmt;
use std::rc::Rc;

use ember_tensor::Tensor;

use crate::graph::{self, BackwardFn};

/// A node of the graph: a value, maybe a gradient, and how it was made.
pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) value: RefCell<Tensor>,
    pub(crate) grad: RefCell<Option<Tensor>>,
    /// The buffer of a gradient cleared by `zero_grad`, kept so the next
    /// backward can overwrite it instead of allocating and zeroing a new one.
    pub(crate) spare_grad: RefCell<Option<Tensor>>,
    pub(crate) requires_grad: bool,
    pub(crate) parents: Vec<Var>,
    pub(crate) backward: RefCell<Option<BackwardFn>>,
}

thread_local! {
    static LIVE_VARS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many graph nodes (leaves and op results) are alive on this thread: a
/// leak detector for tests and a sanity check for training loops.
pub fn live_vars() -> usize {
    LIVE_VARS.with(std::cell::Cell::get)
}

impl Node {
    pub(crate) fn new(
        op: &'static str,
        value: Tensor,
        requires_grad: bool,
        parents: Vec<Var>,
        backward: Option<BackwardFn>,
    ) -> Node {
        LIVE_VARS.with(|n| n.set(n.get() + 1));
        Node {
            op,
            value: RefCell::new(value),
            grad: RefCell::new(None),
            spare_grad: RefCell::new(None),
            requires_grad,
            parents,
            backward: RefCell::new(backward),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        LIVE_VARS.with(|n| n.set(n.get() - 1));
    }
}

/// A tensor recorded for reverse-mode differentiation.
///
/// Leaves are made with [`Var::parameter`] (requires a gradient) or
/// [`Var::constant`] (does not). Every op on a `Var` returns a new `Var` that
/// remembers its inputs; [`Var::backward`] on a scalar result then fills the
/// gradients of the parameters it depends on. Cloning a `Var` is O(1) and
/// refers to the same node.
///
/// ```
/// use ember_autograd::Var;
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
/// let x = Var::constant(Tensor::from_vec(vec![4.0, 5.0, 6.0], &[3]));
/// let loss = (&w * &x).sum(); // w · x
/// loss.backward();
/// assert_eq!(loss.item(), 32.0);
/// assert_eq!(w.grad().unwrap().to_vec(), vec![4.0, 5.0, 6.0]); // d/dw = x
/// ```
///
/// # Gradients accumulate
/// Each `backward()` *adds* into the gradients of the leaves, as in PyTorch;
/// call [`Var::zero_grad`] (or an optimizer's `zero_grad`) between steps.
#[derive(Clone)]
pub struct Var(pub(crate) Rc<Node>);

impl Var {
    fn leaf(value: Tensor, requires_grad: bool) -> Var {
        let op = if requires_grad {
            "parameter"
        } else {
            "constant"
        };
        Var(Rc::new(Node::new(
            op,
            value,
            requires_grad,
            Vec::new(),
            None,
        )))
    }

    /// A leaf that requires a gradient: a trainable parameter.
    ///
    /// The value is stored contiguous and starting on a 64-byte cache line
    /// ([`Tensor::contiguous_aligned`]: copied once, here, if it is not),
    /// where the GEMM reads a weight fastest.
    pub fn parameter(value: Tensor) -> Var {
        Var::leaf(value.contiguous_aligned(), true)
    }

    /// A leaf that does not require a gradient: data, labels, masks.
    pub fn constant(value: Tensor) -> Var {
        Var::leaf(value, false)
    }

    /// The current value (an O(1) handle to the same storage).
    pub fn value(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// Borrows the value without cloning the handle.
    pub fn value_ref(&self) -> Ref<'_, Tensor> {
        self.0.value.borrow()
    }

    /// The shape of the value, as an owned `Vec` (not a slice like
    /// [`Tensor::shape`]'s: a slice would hold a borrow of the value, and an
    /// optimizer step updating it while that borrow lived would panic).
    pub fn shape(&self) -> Vec<usize> {
        self.0.value.borrow().shape().to_vec()
    }

    /// The only element of a one-element value (for example a loss).
    #[track_caller]
    pub fn item(&self) -> f32 {
        self.0.value.borrow().item()
    }

    /// Whether gradients flow to this variable.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this is a leaf (made by `parameter` or `constant`, not by an op).
    pub fn is_leaf(&self) -> bool {
        self.0.parents.is_empty()
    }

    /// The name of the op that made this variable (`"parameter"` and
    /// `"constant"` for leaves).
    pub fn op_name(&self) -> &'static str {
        self.0.op
    }

    /// The accumulated gradient of a leaf, if any backward pass reached it.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    /// Clears the accumulated gradient (the next backward starts from zero).
    ///
    /// The cleared gradient's buffer is kept aside: a backward pass that
    /// computes this gradient with a GEMM (a linear layer's weight) writes it
    /// into that buffer rather than allocating and zeroing a new one. (A
    /// gradient tensor obtained earlier from [`Var::grad`] is unaffected:
    /// shared storage is copied before it is written.)
    pub fn zero_grad(&self) {
        if let Some(old) = self.0.grad.borrow_mut().take() {
            *self.0.spare_grad.borrow_mut() = Some(old);
        }
    }

    /// Replaces the gradient (used by gradient clipping and checkpoints).
    ///
    /// # Panics
    /// If the shape differs from the value's.
    #[track_caller]
    pub fn set_grad(&self, grad: Option<Tensor>) {
        if let Some(g) = &grad {
            assert_eq!(
                g.shape(),
                self.shape().as_slice(),
                "set_grad: gradient shape {:?} does not match value shape {:?}",
                g.shape(),
                self.shape()
            );
        }
        *self.0.grad.borrow_mut() = grad;
    }

    /// Replaces the value of a leaf.
    ///
    /// # Panics
    /// If the shape differs from the current value's.
    #[track_caller]
    pub fn set_value(&self, value: Tensor) {
        assert_eq!(
            value.shape(),
            self.shape().as_slice(),
            "set_value: new shape {:?} does not match {:?}",
            value.shape(),
            self.shape()
        );
        *self.0.value.borrow_mut() = value;
    }

    /// Updates the value in place together with its gradient: what an
    /// optimizer step does. `f` gets the value (mutable) and the gradient.
    /// Nothing is recorded.
    pub fn update(&self, f: impl FnOnce(&mut Tensor, Option<&Tensor>)) {
        let grad = self.0.grad.borrow();
        f(&mut self.0.value.borrow_mut(), grad.as_ref());
    }

    /// A constant sharing this variable's value: gradients stop here.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    /// Back-propagates from this scalar: fills the gradients of every
    /// parameter it depends on (adding to what is there).
    ///
    /// # Panics
    /// If the value is not a single element (use [`Var::backward_with`]), or
    /// if the graph was already consumed by an earlier backward pass.
    #[track_caller]
    pub fn backward(&self) {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward: called on a non-scalar of shape {shape:?}; reduce it to one element \
             (for example with .sum() or .mean()) or pass a seed gradient to backward_with"
        );
        graph::run_backward(self, Tensor::ones(&shape), None);
    }

    /// Back-propagates with an explicit gradient of the output (`seed`).
    ///
    /// # Panics
    /// If `seed` does not have the output's shape.
    #[track_caller]
    pub fn backward_with(&self, seed: Tensor) {
        assert_eq!(
            seed.shape(),
            self.shape().as_slice(),
            "backward_with: seed shape {:?} does not match output shape {:?}",
            seed.shape(),
            self.shape()
        );
        graph::run_backward(self, seed, None);
    }
}

impl Var {
    /// [`Var::backward`], telling `on_leaf_ready` of each leaf (parameter)
    /// the moment its gradient for this pass is complete, while the rest of
    /// the backward pass still runs. This is the hook a gradient all-reduce
    /// starts from, to overlap communication with the remaining backward
    /// (PyTorch DDP's post-accumulate-grad hooks). The observer is borrowed
    /// for this one pass only, so it may hold borrows of its caller's buffers.
    /// Leaves the pass never reaches are not reported.
    ///
    /// ```
    /// use ember_autograd::Var;
    /// use ember_tensor::Tensor;
    ///
    /// let a = Var::parameter(Tensor::ones(&[2]));
    /// let b = Var::parameter(Tensor::ones(&[2]));
    /// let loss = (&(&a * &a) + &b).sum();
    /// let mut ready = Vec::new();
    /// loss.backward_observed(&mut |leaf: &Var| ready.push(leaf.id()));
    /// assert_eq!(ready.len(), 2);
    /// assert!(ready.contains(&a.id()) && ready.contains(&b.id()));
    /// ```
    ///
    /// # Panics
    /// As [`Var::backward`].
    #[track_caller]
    pub fn backward_observed(&self, on_leaf_ready: &mut dyn FnMut(&Var)) {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward_observed: called on a non-scalar of shape {shape:?}; reduce it to one element"
        );
        graph::run_backward(self, Tensor::ones(&shape), Some(on_leaf_ready));
    }

    /// An identity for this node, equal for clones of the same `Var` and
    /// distinct between live nodes (to key maps of parameters).
    pub fn id(&self) -> usize {
        std::rc::Rc::as_ptr(&self.0) as usize
    }

    /// Changes the stored gradient in place, if there is one (gradient
    /// averaging, clipping). Nothing is recorded.
    pub fn update_grad(&self, f: impl FnOnce(&mut Tensor)) {
        if let Some(grad) = self.0.grad.borrow_mut().as_mut() {
            f(grad);
        }
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("op", &self.0.op)
            .field("requires_grad", &self.0.requires_grad)
            .field("value", &*self.0.value.borrow())
            .finish()
    }
}

impl From<Tensor> for Var {
    /// A constant.
    fn from(value: Tensor) -> Var {
        Var::constant(value)
    }
}
