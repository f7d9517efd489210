//! Optimizers: what turns gradients into parameter updates.
//!
//! Every optimizer is built from a model's named parameters and a config
//! whose `Default` follows PyTorch (each config's docs compare PyTorch's and
//! Keras's defaults). The loop is the familiar one:
//!
//! ```
//! use ember_autograd::Var;
//! use ember_layers::optim::{Optimizer, RmsProp, RmsPropConfig};
//! use ember_layers::Named;
//! use ember_tensor::Tensor;
//!
//! // Fit w to minimise (w − 3)².
//! let w = Var::parameter(Tensor::zeros(&[1]));
//! let params: Vec<Named> = vec![Named::new("w", &w)];
//! let mut opt = RmsProp::new(params, RmsPropConfig { lr: 0.05, ..RmsPropConfig::keras() });
//! for _ in 0..200 {
//!     opt.zero_grad();
//!     let loss = (&w - 3.0).powf(2.0).sum();
//!     loss.backward();
//!     opt.step();
//! }
//! assert!((w.value().item() - 3.0).abs() < 0.1);
//! ```
//!
//! ## In place, fused
//! A step walks each parameter once: one loop over the value, the gradient
//! and the optimizer's state slices together, writing the value in place
//! (through [`Var::update`]). No tensor is allocated per parameter per step.
//! Parameters without a gradient (not reached by the last backward) are
//! skipped, state and step count included, as in PyTorch.
//!
//! The loops with square roots and divisions (RMSprop, Adam, Adagrad) are
//! also compiled for AVX-512 and AVX2 and picked at run time
//! (`multiversion`): at the baseline's four lanes those instructions, not
//! memory, were their bound. IEEE rounds `sqrt` and `/` exactly at every
//! width and Rust never fuses a multiply and an add on its own, so every
//! version gives the same bits; each kernel's test checks it against its
//! plain loop.
//!
//! ## State
//! [`Optimizer::state`] exports everything a step depends on as named
//! [`StateValue`]s, so a checkpoint can resume a run exactly: `"lr"` (a
//! tensor of shape `[1]`), and per parameter `"<param>.step"` (an exact
//! [`StateValue::Count`], which checkpoints store as an I64 scalar) and
//! `"<param>.<slot>"` (tensors shaped like the parameter, named as in
//! PyTorch: `exp_avg`, `exp_avg_sq`, `square_avg`, `momentum_buffer`, …).
//!
//! [`Optimizer::load_state`] also takes a step count in the older form, a
//! tensor of shape `[2]` holding two 24-bit halves (high, low), so
//! checkpoints written before counts were integers still resume exactly.

mod adagrad;
mod adam;
mod clip;
mod rmsprop;
mod sgd;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use rmsprop::{EpsilonPlacement, RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use std::collections::HashMap;

use ember_autograd::Var;
use ember_tensor::Tensor;

use crate::Named;

/// What every optimizer does.
pub trait Optimizer {
    /// Updates every parameter that has a gradient, in place.
    fn step(&mut self);

    /// The parameters being optimized, with their names.
    fn parameters(&self) -> &[Named];

    /// Clears the gradients of all parameters (call before each backward).
    fn zero_grad(&self) {
        for Named { var: p, .. } in self.parameters() {
            p.zero_grad();
        }
    }

    /// The current learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate (what a schedule does between steps).
    ///
    /// # Panics
    /// If `lr` is NaN, infinite or negative (the message names the
    /// optimizer and the value).
    fn set_lr(&mut self, lr: f32);

    /// Everything the next steps depend on, as named tensors and counts
    /// (see the [module docs](self) for the names).
    fn state(&self) -> Vec<(String, StateValue)>;

    /// Restores what [`Optimizer::state`] exported. Either everything is
    /// restored or, on error, nothing changes.
    ///
    /// # Errors
    /// A missing, unexpected, duplicated or misshapen entry, a count where a
    /// tensor belongs (or the reverse), or a step count that is not a valid
    /// count.
    fn load_state(&mut self, state: Vec<(String, StateValue)>) -> Result<(), StateError>;
}

/// One entry of an optimizer's state ([`Optimizer::state`]).
#[derive(Clone, Debug)]
pub enum StateValue {
    /// Real values: the learning rate, or a slot shaped like its parameter.
    Tensor(Tensor),
    /// An exact count: a parameter's step count (checkpoints store it as an
    /// I64 scalar, as PyTorch would read it).
    Count(u64),
}

impl StateValue {
    /// The tensor, if this is [`StateValue::Tensor`].
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            StateValue::Tensor(t) => Some(t),
            StateValue::Count(_) => None,
        }
    }

    /// The count, if this is [`StateValue::Count`].
    pub fn as_count(&self) -> Option<u64> {
        match self {
            StateValue::Count(n) => Some(*n),
            StateValue::Tensor(_) => None,
        }
    }
}

/// Why optimizer state could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    /// An entry the optimizer needs is absent.
    #[error("optimizer state `{0}` is missing")]
    Missing(String),
    /// An entry the optimizer does not know (another optimizer's state, or
    /// a parameter this model does not have).
    #[error("unexpected optimizer state `{0}`")]
    Unexpected(String),
    /// The same name appears twice.
    #[error("optimizer state `{0}` appears twice")]
    Duplicate(String),
    /// A parameter's state has slots this optimizer does not keep: state
    /// saved by another optimizer (RMSprop's `square_avg` where Adam needs
    /// `exp_avg` and `exp_avg_sq`).
    #[error(
        "the optimizer state of `{parameter}` holds {}, but this optimizer keeps {}: \
         it was saved by another optimizer",
        listed(found),
        listed(expected)
    )]
    OtherOptimizer {
        /// The first parameter whose state differs.
        parameter: String,
        /// The slots this optimizer keeps per parameter.
        expected: Vec<String>,
        /// The slots the file has for it.
        found: Vec<String>,
    },
    /// An entry has the wrong shape.
    #[error("optimizer state `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The entry.
        name: String,
        /// The shape the optimizer needs.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// An entry's value is impossible (a negative or fractional step count,
    /// a non-finite learning rate).
    #[error("optimizer state `{name}` is invalid: {reason}")]
    Invalid {
        /// The entry.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// "`exp_avg`, `exp_avg_sq`", or "no slots".
fn listed(slots: &[String]) -> String {
    match slots {
        [] => "no slots".to_string(),
        _ => slots
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// One parameter's optimizer state: its step count and its slot tensors
/// (shaped like the parameter), in the order of the optimizer's slot names.
#[derive(Clone, Debug)]
pub(crate) struct ParamState {
    pub(crate) step: u64,
    pub(crate) slots: Vec<Tensor>,
}

impl ParamState {
    /// Zeroed state for every parameter (`fill` is the slots' start value).
    pub(crate) fn for_params(params: &[Named], slots: usize, fill: f32) -> Vec<ParamState> {
        params
            .iter()
            .map(|Named { var: p, .. }| ParamState {
                step: 0,
                slots: (0..slots).map(|_| Tensor::full(&p.shape(), fill)).collect(),
            })
            .collect()
    }
}

/// Runs `f(value, grad)` on a parameter's value and gradient as flat slices,
/// writing the value in place; does nothing when the parameter has no
/// gradient (and then `f` is not called).
pub(crate) fn update_param(param: &Var, f: impl FnOnce(&mut [f32], &[f32])) {
    param.update(|value, grad| {
        let Some(grad) = grad else { return };
        // Gradients are contiguous in practice; a strided one (possible in
        // principle after a user's set_grad) is copied rather than refused.
        let owned;
        let g = match grad.as_slice() {
            Some(s) => s,
            None => {
                owned = grad.to_vec();
                &owned
            }
        };
        f(value.data_mut(), g);
    });
}

/// Values per piece when a large parameter's update is split across threads:
/// a piece (≈ 128 KiB per array) costs tens of µs, far more than handing it
/// to a thread, and the 784×512 weight of the classic MLP gives 13 pieces,
/// enough to balance two threads.
const PIECE: usize = 32 * 1024;

/// One piece of a split update: value, gradient and state slots.
type Piece<'a, const S: usize> = (&'a mut [f32], &'a [f32], [&'a mut [f32]; S]);

/// Runs an element-wise optimizer `kernel` over a parameter's `value`, its
/// `grad` and its state `slots` (each as long as the value, or empty when the
/// variant does not use it). A parameter large enough for
/// [`ember_tensor::worth_splitting`] (the tensor ops' threshold) is split
/// into pieces run on the rayon pool; every
/// element still goes through the same arithmetic, so the result does not
/// depend on the split or the thread count.
pub(crate) fn par_update<const S: usize>(
    value: &mut [f32],
    grad: &[f32],
    slots: [&mut [f32]; S],
    kernel: impl Fn(&mut [f32], &[f32], [&mut [f32]; S]) + Sync,
) {
    use rayon::prelude::*;
    let n = value.len();
    if !ember_tensor::worth_splitting(n) {
        kernel(value, grad, slots);
        return;
    }
    let pieces = n.div_ceil(PIECE);
    let mut slot_pieces = slots.map(|slot| {
        let split: Vec<&mut [f32]> = if slot.is_empty() {
            (0..pieces).map(|_| <&mut [f32]>::default()).collect()
        } else {
            slot[..n].chunks_mut(PIECE).collect()
        };
        split.into_iter()
    });
    let work: Vec<Piece<'_, S>> = value
        .chunks_mut(PIECE)
        .zip(grad[..n].chunks(PIECE))
        .map(|(v, g)| {
            let s = std::array::from_fn(|k| slot_pieces[k].next().expect("one piece per chunk"));
            (v, g, s)
        })
        .collect();
    work.into_par_iter().for_each(|(v, g, s)| kernel(v, g, s));
}

/// The bits of each slice, so that a kernel test compares signed zeros
/// and NaNs exactly.
#[cfg(test)]
pub(crate) fn test_bits<const S: usize>(slices: [Vec<f32>; S]) -> [Vec<u32>; S] {
    slices.map(|s| s.iter().map(|x| x.to_bits()).collect())
}

/// `S` slices of `len` values for a kernel test: signs and magnitudes
/// from 1e-30 to 10 (so some moments decay into the flushed range), a
/// length that leaves a remainder after any vector width.
#[cfg(test)]
pub(crate) fn test_values<const S: usize>(len: usize) -> [Vec<f32>; S] {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(len as u64);
    std::array::from_fn(|_| {
        (0..len)
            .map(|_| {
                let magnitude = 10f32.powf(rng.random_range(-30.0..1.0));
                if rng.random::<bool>() {
                    magnitude
                } else {
                    -magnitude
                }
            })
            .collect()
    })
}

/// `x`, or 0 where it is subnormal (`|x| <` [`f32::MIN_POSITIVE`]), for
/// the state an optimizer keeps between steps (moments, running averages,
/// momentum).
///
/// A weight whose gradient is 0 step after step (one reading an always-black
/// MNIST pixel, or a dead unit) sees its moments decay geometrically, and on
/// the way to 0 they spend a hundred steps or more in the subnormal range,
/// where x86 CPUs take a microcode assist of about a hundred cycles for each
/// instruction that reads or writes one: on real MNIST, Adam's update went
/// from 3 % to 8 % of a convnet epoch. Stored as 0 from there, the moment
/// costs one assist, once (both examples' epochs ran 3–7 % faster, with
/// the same trained bits). A subnormal momentum moves its weight by less
/// than `lr · 2⁻¹²⁶` (Adam's first moment: `lr · 2⁻¹²⁶ / ε`), and a
/// subnormal second moment shifts `√v` by less than 2⁻⁶³ beside `ε`:
/// nothing a weight that is not itself within a few thousand ulps of 0
/// can register.
#[inline(always)]
pub(crate) fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// `1 − βᵗ` in f64 then rounded, the bias correction of Adam-style averages.
pub(crate) fn bias_correction(beta: f32, step: u64) -> f32 {
    let t = i32::try_from(step).unwrap_or(i32::MAX);
    (1.0 - f64::from(beta).powi(t)) as f32
}

/// Older files stored step counts as two f32 holding 24 bits each (high,
/// low); they are still read.
const HALF: u64 = 1 << 24;

/// A step count in the older two-halves form.
fn step_from_tensor(name: &str, t: &Tensor) -> Result<u64, StateError> {
    let v = t.to_vec();
    let is_half = |x: f32| x.is_finite() && x >= 0.0 && x.fract() == 0.0 && (x as u64) < HALF;
    if !v.iter().all(|&x| is_half(x)) {
        return Err(StateError::Invalid {
            name: name.to_string(),
            reason: format!("{v:?} is not a step count (two 24-bit halves)"),
        });
    }
    Ok(v[0] as u64 * HALF + v[1] as u64)
}

/// Exports `lr` and per-parameter step counts and slots under the names the
/// [module docs](self) give.
pub(crate) fn export_state(
    lr: f32,
    params: &[Named],
    slot_names: &[&str],
    states: &[ParamState],
) -> Vec<(String, StateValue)> {
    let mut out = vec![(
        "lr".to_string(),
        StateValue::Tensor(Tensor::from_vec(vec![lr], &[1])),
    )];
    for (Named { name, .. }, state) in params.iter().zip(states) {
        out.push((format!("{name}.step"), StateValue::Count(state.step)));
        for (slot, t) in slot_names.iter().zip(&state.slots) {
            out.push((format!("{name}.{slot}"), StateValue::Tensor(t.clone())));
        }
    }
    out
}

/// Validates everything in `state` against the parameters, then (only if
/// all is well) replaces `lr` and `states`.
pub(crate) fn import_state(
    state: Vec<(String, StateValue)>,
    lr: &mut f32,
    params: &[Named],
    slot_names: &[&str],
    states: &mut [ParamState],
) -> Result<(), StateError> {
    let mut by_name: HashMap<String, StateValue> = HashMap::with_capacity(state.len());
    for (name, v) in state {
        if by_name.contains_key(&name) {
            return Err(StateError::Duplicate(name));
        }
        by_name.insert(name, v);
    }
    fn take_value(
        by_name: &mut HashMap<String, StateValue>,
        name: &str,
    ) -> Result<StateValue, StateError> {
        by_name
            .remove(name)
            .ok_or_else(|| StateError::Missing(name.to_string()))
    }
    let take = |by_name: &mut HashMap<String, StateValue>,
                name: String,
                shape: &[usize]|
     -> Result<Tensor, StateError> {
        let t = match take_value(by_name, &name)? {
            StateValue::Tensor(t) => t,
            StateValue::Count(n) => {
                return Err(StateError::Invalid {
                    name,
                    reason: format!("the count {n} where a tensor of shape {shape:?} belongs"),
                })
            }
        };
        if t.shape() != shape {
            return Err(StateError::Shape {
                name,
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        Ok(t)
    };
    let new_lr = take(&mut by_name, "lr".to_string(), &[1])?.to_vec()[0];
    if !new_lr.is_finite() || new_lr < 0.0 {
        return Err(StateError::Invalid {
            name: "lr".to_string(),
            reason: format!("learning rate {new_lr} is not a finite non-negative number"),
        });
    }
    let mut staged = Vec::with_capacity(params.len());
    for Named { name, var: p } in params {
        other_optimizer(&by_name, name, slot_names)?;
        let step_name = format!("{name}.step");
        let step = match take_value(&mut by_name, &step_name)? {
            StateValue::Count(n) => n,
            StateValue::Tensor(t) if t.shape() == [2] => step_from_tensor(&step_name, &t)?,
            StateValue::Tensor(t) => {
                return Err(StateError::Invalid {
                    reason: format!(
                        "a tensor of shape {:?} where a step count belongs \
                         (a count, or the older two 24-bit halves of shape [2])",
                        t.shape()
                    ),
                    name: step_name,
                })
            }
        };
        let shape = p.shape();
        let slots = slot_names
            .iter()
            .map(|slot| take(&mut by_name, format!("{name}.{slot}"), &shape))
            .collect::<Result<Vec<_>, _>>()?;
        staged.push(ParamState { step, slots });
    }
    if let Some(extra) = by_name.into_keys().min() {
        return Err(StateError::Unexpected(extra));
    }
    *lr = new_lr;
    states.clone_from_slice(&staged);
    Ok(())
}

/// Fails when the state has a slot for `param` that `slot_names` lacks
/// (`{param}.{slot}`, the slot a name without dots), or a step count for it
/// and none of the slots `slot_names` has: state another optimizer saved
/// (plain SGD keeps none), which would otherwise be reported as one missing
/// or unexpected entry.
fn other_optimizer(
    by_name: &HashMap<String, StateValue>,
    param: &str,
    slot_names: &[&str],
) -> Result<(), StateError> {
    let prefix = format!("{param}.");
    let mut found: Vec<String> = by_name
        .keys()
        .filter_map(|key| key.strip_prefix(&prefix))
        .filter(|slot| !slot.contains('.') && *slot != "step")
        .map(str::to_string)
        .collect();
    let foreign = found
        .iter()
        .any(|slot| !slot_names.contains(&slot.as_str()));
    // A step count and no slot at all, where slots belong.
    let bare = found.is_empty()
        && !slot_names.is_empty()
        && by_name.contains_key(&format!("{prefix}step"));
    if !(foreign || bare) {
        return Ok(());
    }
    found.sort();
    Err(StateError::OtherOptimizer {
        parameter: param.to_string(),
        expected: slot_names.iter().map(|s| s.to_string()).collect(),
        found,
    })
}

/// Checks a config value at construction, PyTorch-style: it must be finite
/// (never NaN or infinite) and pass `ok`.
#[track_caller]
pub(crate) fn check_config(optimizer: &str, what: &str, value: f32, ok: bool) {
    assert!(
        ok && value.is_finite(),
        "{optimizer}::new: invalid {what} {value}"
    );
}

/// Checks a learning rate given to `set_lr`: finite and not negative.
#[track_caller]
pub(crate) fn check_lr(optimizer: &str, lr: f32) {
    assert!(
        lr.is_finite() && lr >= 0.0,
        "{optimizer}::set_lr: invalid learning rate {lr}"
    );
}
