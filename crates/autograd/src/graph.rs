//! The recorded computation: nodes, the backward pass, and `no_grad`.
//!
//! Each [`Var`] produced by an op keeps its inputs and a one-shot backward
//! closure. `backward()` orders the nodes that lead to the output (a
//! depth-first topological sort), then runs each closure once, newest first,
//! handing it the gradient of its output and a [`Grads`] to accumulate the
//! gradients of its inputs into. Closures are consumed as they run, so the
//! tensors they captured are freed as soon as the backward pass is past them;
//! everything else goes when the last `Var` of the graph is dropped.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use ember_tensor::Tensor;

use crate::var::{Node, Var};

/// A backward closure: given the output's gradient, adds each input's gradient.
pub(crate) type BackwardFn = Box<dyn FnOnce(&Tensor, &mut Grads<'_>)>;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops are being recorded on this thread (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` without recording: ops inside build no graph and their results
/// do not require gradients. Use it for evaluation and parameter updates.
///
/// ```
/// use ember_autograd::{no_grad, Var};
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::ones(&[2]));
/// let y = no_grad(|| &w * &w);
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = NoGradGuard::new();
    f()
}

/// While alive, ops on this thread are not recorded (see [`no_grad`]).
/// Restores the previous state when dropped, so guards nest.
#[must_use = "recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    /// Stops recording until the guard is dropped.
    pub fn new() -> NoGradGuard {
        NoGradGuard {
            previous: GRAD_ENABLED.with(|g| g.replace(false)),
        }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        NoGradGuard::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Records the result of an op: a new `Var` holding `value`, which remembers
/// `inputs` and how to send its gradient back to them — unless recording is
/// off or no input requires a gradient, in which case it is a plain constant.
pub(crate) fn record(
    op: &'static str,
    value: Tensor,
    inputs: &[&Var],
    backward: impl FnOnce(&Tensor, &mut Grads<'_>) + 'static,
) -> Var {
    let needs: Vec<bool> = inputs.iter().map(|v| v.requires_grad()).collect();
    if !is_grad_enabled() || !needs.iter().any(|&n| n) {
        return Var::constant(value);
    }
    let parents = inputs.iter().map(|&v| v.clone()).collect();
    Var(Rc::new(Node::new(
        op,
        value,
        true,
        parents,
        Some(Box::new(backward)),
    )))
}

/// One input's gradient while an op's backward runs.
enum Slot {
    /// No gradient yet.
    Empty,
    /// No gradient yet, but a buffer of the input's shape (a parameter's
    /// gradient cleared by `zero_grad`) that may be overwritten.
    Spare(Tensor),
    /// The gradient accumulated so far.
    Grad(Tensor),
}

/// The gradient slots of one op's inputs during the backward pass.
///
/// An op adds the gradient of each input it is responsible for; inputs that
/// do not require a gradient are skipped (check [`Grads::wants`] to avoid
/// computing what nobody needs).
pub(crate) struct Grads<'a> {
    slots: &'a mut [Slot],
    wants: &'a [bool],
    shapes: &'a [Vec<usize>],
}

impl Grads<'_> {
    /// Whether input `i` needs a gradient.
    pub(crate) fn wants(&self, i: usize) -> bool {
        self.wants.get(i).copied().unwrap_or(false)
    }

    /// Adds `grad` to input `i`'s gradient. A gradient with the broadcast
    /// shape of the op is first summed back down to the input's shape.
    pub(crate) fn add(&mut self, i: usize, grad: Tensor) {
        if !self.wants(i) {
            return;
        }
        let grad = if grad.shape() == self.shapes[i].as_slice() {
            grad
        } else {
            grad.sum_to(&self.shapes[i])
        };
        match &mut self.slots[i] {
            Slot::Grad(existing) => existing.add_assign(&grad),
            slot => *slot = Slot::Grad(grad),
        }
    }

    /// Adds `alpha · a · b` to input `i`'s gradient with one GEMM: β = 1 when a
    /// gradient is already there; otherwise β = 0 (C is only written) into the
    /// spare buffer if there is one, else into a new one.
    pub(crate) fn add_matmul(&mut self, i: usize, alpha: f32, a: &Tensor, b: &Tensor) {
        if !self.wants(i) {
            return;
        }
        let slot = std::mem::replace(&mut self.slots[i], Slot::Empty);
        self.slots[i] = Slot::Grad(match slot {
            Slot::Grad(mut existing) => {
                existing.gemm_assign(alpha, a, b, 1.0);
                existing
            }
            Slot::Spare(mut buffer) => {
                buffer.gemm_assign(alpha, a, b, 0.0);
                buffer
            }
            Slot::Empty => {
                let mut fresh = Tensor::empty(&self.shapes[i]);
                fresh.gemm_assign(alpha, a, b, 0.0); // β = 0: C only written
                fresh
            }
        });
    }
}

/// The node's identity, for the maps of the backward pass.
fn key(v: &Var) -> *const Node {
    Rc::as_ptr(&v.0)
}

/// Nodes that lead to `root` and require gradients, inputs before outputs.
fn topological_order(root: &Var) -> Vec<Var> {
    let mut order = Vec::new();
    let mut visited = std::collections::HashSet::new();
    // An explicit stack: deep graphs must not overflow the call stack.
    let mut stack: Vec<(Var, bool)> = vec![(root.clone(), false)];
    while let Some((node, children_done)) = stack.pop() {
        if children_done {
            order.push(node);
            continue;
        }
        if !visited.insert(key(&node)) {
            continue;
        }
        stack.push((node.clone(), true));
        for parent in node.0.parents.iter().rev() {
            if parent.requires_grad() && !visited.contains(&key(parent)) {
                stack.push((parent.clone(), false));
            }
        }
    }
    order
}

/// Told of each leaf whose gradient this backward pass has finished.
pub(crate) type LeafObserver<'o> = Option<&'o mut dyn FnMut(&Var)>;

/// Runs the backward pass from `root`, seeded with `seed` (the gradient of
/// whatever is being differentiated with respect to `root`). `observer`, if
/// any, is called with each leaf as soon as its gradient is final: a leaf is
/// visited after every op that consumes it, since the order is topological.
pub(crate) fn run_backward(root: &Var, seed: Tensor, mut observer: LeafObserver<'_>) {
    if !root.requires_grad() {
        return;
    }
    let _guard = NoGradGuard::new();
    let order = topological_order(root);
    let mut grads: HashMap<*const Node, Tensor> = HashMap::new();
    grads.insert(key(root), seed);
    for node in order.iter().rev() {
        let Some(grad) = grads.remove(&key(node)) else {
            continue;
        };
        let Some(backward) = node.0.backward.borrow_mut().take() else {
            if node.0.parents.is_empty() {
                // A leaf: gradients accumulate across backward() calls.
                let mut slot = node.0.grad.borrow_mut();
                match slot.as_mut() {
                    Some(existing) => existing.add_assign(&grad),
                    None => *slot = Some(grad),
                }
                drop(slot);
                if let Some(observe) = observer.as_mut() {
                    observe(node);
                }
                continue;
            }
            panic!(
                "backward: the graph through `{}` was already used by an earlier backward() \
                 (its buffers are freed); run the forward pass again",
                node.0.op
            );
        };
        let parents = &node.0.parents;
        let wants: Vec<bool> = parents.iter().map(Var::requires_grad).collect();
        let shapes: Vec<Vec<usize>> = parents.iter().map(Var::shape).collect();
        // Each distinct parent's pending gradient is lent to the op once, so
        // β = 1 accumulation works; repeated inputs (x · x) start empty.
        let mut slots: Vec<Slot> = Vec::with_capacity(parents.len());
        for (i, p) in parents.iter().enumerate() {
            let first = parents[..i].iter().all(|q| key(q) != key(p));
            if !(first && wants[i]) {
                slots.push(Slot::Empty);
                continue;
            }
            // A leaf's stored gradient is lent too, so dW += Xᵀ·dY lands in
            // place; after zero_grad, its old buffer is lent to be overwritten.
            let slot = match grads.remove(&key(p)) {
                Some(pending) => Slot::Grad(pending),
                None if p.is_leaf() => match p.0.grad.borrow_mut().take() {
                    Some(stored) => Slot::Grad(stored),
                    None => {
                        p.0.spare_grad
                            .borrow_mut()
                            .take()
                            .map_or(Slot::Empty, Slot::Spare)
                    }
                },
                None => Slot::Empty,
            };
            slots.push(slot);
        }
        backward(
            &grad,
            &mut Grads {
                slots: &mut slots,
                wants: &wants,
                shapes: &shapes,
            },
        );
        for (p, slot) in parents.iter().zip(slots) {
            match slot {
                Slot::Grad(g) => match grads.get_mut(&key(p)) {
                    Some(existing) => existing.add_assign(&g),
                    None => {
                        grads.insert(key(p), g);
                    }
                },
                // Not used by this op: kept for the leaf's next consumer.
                Slot::Spare(buffer) => *p.0.spare_grad.borrow_mut() = Some(buffer),
                Slot::Empty => {}
            }
        }
    }
}
