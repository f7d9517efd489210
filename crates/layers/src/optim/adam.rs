//! Adam and AdamW: one update loop, two ways to decay weights.

use super::{
    bias_correction, check_config, check_lr, export_state, flush_subnormal, import_state,
    par_update, update_param, Optimizer, ParamState, StateError,
};
use crate::Named;
use multiversion::multiversion;

const SLOTS: &[&str] = &["exp_avg", "exp_avg_sq"];

/// Settings of [`Adam`].
///
/// | | Ember (`Default`) | PyTorch `optim.Adam` | Keras `Adam` |
/// |---|---|---|---|
/// | `lr` | 1e-3 | 1e-3 | 1e-3 |
/// | `betas` | (0.9, 0.999) | (0.9, 0.999) | β₁ 0.9, β₂ 0.999 |
/// | `eps` | 1e-8 | 1e-8 | 1e-7 |
/// | `weight_decay` (L2, into the gradient) | 0 | 0 | — |
///
/// Keras adds ε to `√v` *before* bias-correcting it, which amounts to
/// PyTorch's rule with ε divided by `√(1 − β₂ᵗ)` (a larger ε in the first
/// few thousand steps; the same afterwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay rates (β₁, β₂) of the first and second moment averages.
    pub betas: (f32, f32),
    /// Added to `√v̂` to keep the step finite.
    pub eps: f32,
    /// L2 penalty added to the gradient: `g ← g + λp` (what PyTorch's `Adam`
    /// does; prefer [`AdamW`]'s decoupled decay).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Settings of [`AdamW`]: as [`AdamConfig`], but the weight decay is
/// decoupled and on by default.
///
/// | | Ember (`Default`) | PyTorch `optim.AdamW` | Keras `AdamW` |
/// |---|---|---|---|
/// | `lr` | 1e-3 | 1e-3 | 1e-3 |
/// | `betas` | (0.9, 0.999) | (0.9, 0.999) | β₁ 0.9, β₂ 0.999 |
/// | `eps` | 1e-8 | 1e-8 | 1e-7 |
/// | `weight_decay` | 1e-2 | 1e-2 | 4e-3 |
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay rates (β₁, β₂) of the first and second moment averages.
    pub betas: (f32, f32),
    /// Added to `√v̂` to keep the step finite.
    pub eps: f32,
    /// Decoupled decay: `p ← p·(1 − lr·λ)` before the Adam step.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

/// Where weight decay enters.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Decay {
    /// Into the gradient (Adam's L2 penalty).
    L2,
    /// Straight on the weights (AdamW).
    Decoupled,
}

/// The state and loop Adam and AdamW share.
struct AdamCore {
    params: Vec<Named>,
    lr: f32,
    betas: (f32, f32),
    eps: f32,
    weight_decay: f32,
    decay: Decay,
    states: Vec<ParamState>,
}

impl AdamCore {
    #[track_caller]
    fn new(name: &str, params: Vec<Named>, c: AdamWConfig, decay: Decay) -> AdamCore {
        check_config(name, "learning rate", c.lr, c.lr >= 0.0);
        check_config(name, "beta1", c.betas.0, (0.0..1.0).contains(&c.betas.0));
        check_config(name, "beta2", c.betas.1, (0.0..1.0).contains(&c.betas.1));
        check_config(name, "epsilon", c.eps, c.eps >= 0.0);
        check_config(name, "weight decay", c.weight_decay, c.weight_decay >= 0.0);
        let states = ParamState::for_params(&params, SLOTS.len(), 0.0);
        AdamCore {
            params,
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decay,
            states,
        }
    }

    fn step(&mut self) {
        let (lr, (b1, b2), wd) = (self.lr, self.betas, self.weight_decay);
        let (l2, shrink) = match self.decay {
            Decay::L2 => (wd, 1.0),
            Decay::Decoupled => (0.0, 1.0 - lr * wd),
        };
        for (Named { var: param, .. }, state) in self.params.iter().zip(&mut self.states) {
            update_param(param, |p, g| {
                state.step += 1;
                // lr/(1 − β₁ᵗ) and √(1 − β₂ᵗ) once per parameter, as PyTorch.
                let k = AdamStep {
                    betas: (b1, b2),
                    eps: self.eps,
                    l2,
                    shrink,
                    step_size: lr / bias_correction(b1, state.step),
                    root_bc2: bias_correction(b2, state.step).sqrt(),
                };
                let [m, v] = &mut state.slots[..] else {
                    unreachable!("Adam keeps two slots per parameter")
                };
                par_update(p, g, [m.data_mut(), v.data_mut()], |p, g, [m, v]| {
                    adam_kernel(p, g, m, v, k)
                });
            });
        }
    }

    fn load_state(&mut self, state: Vec<(String, super::StateValue)>) -> Result<(), StateError> {
        import_state(state, &mut self.lr, &self.params, SLOTS, &mut self.states)
    }
}

/// The scalars of one parameter's Adam step.
#[derive(Clone, Copy)]
struct AdamStep {
    betas: (f32, f32),
    eps: f32,
    l2: f32,
    shrink: f32,
    step_size: f32,
    root_bc2: f32,
}

/// One fused pass over value, gradient and both moments. Slices and scalars
/// are arguments (not closure captures) so the compiler vectorises it;
/// compiled for AVX-512 and AVX2 as well and picked at run time (see the
/// module docs), with the bits of [`adam_body`] on any of them.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2"))]
fn adam_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    adam_body(p, g, m, v, k)
}

/// The loop of [`adam_kernel`], as written; inlined into each of its versions.
#[inline(always)]
fn adam_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: AdamStep) {
    let (b1, b2) = k.betas;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        let g = g + k.l2 * *p;
        *m = flush_subnormal(b1 * *m + (1.0 - b1) * g);
        *v = flush_subnormal(b2 * *v + (1.0 - b2) * g * g);
        *p = *p * k.shrink - k.step_size * *m / (v.sqrt() / k.root_bc2 + k.eps);
    }
}

/// Adam (Kingma & Ba, 2015), PyTorch's update rule, with `t` counted per
/// parameter:
///
/// ```text
/// g ← ∇ + λ·p
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::optim::{Adam, AdamConfig, Optimizer};
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0], &[1]));
/// let mut opt = Adam::new(vec![ember_layers::Named::new("w", &w)], AdamConfig::default());
/// w.mul_scalar(5.0).sum().backward();
/// opt.step();
/// // Adam's first step moves each weight by ≈ lr, whatever the gradient's size.
/// assert!((w.value().item() - (1.0 - 1e-3)).abs() < 1e-6);
/// ```
pub struct Adam(AdamCore);

impl Adam {
    /// An optimizer for `params` (for example `model.parameters()`).
    ///
    /// # Panics
    /// On a negative learning rate, ε or weight decay, or a β outside [0, 1).
    /// Any NaN or infinite setting is refused too; the message names the
    /// function, the setting and the value (`Sgd::new: invalid learning rate NaN`).
    #[track_caller]
    pub fn new(params: Vec<Named>, config: AdamConfig) -> Adam {
        let c = AdamWConfig {
            lr: config.lr,
            betas: config.betas,
            eps: config.eps,
            weight_decay: config.weight_decay,
        };
        Adam(AdamCore::new("Adam", params, c, Decay::L2))
    }
}

/// AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay,
/// PyTorch's update rule:
///
/// ```text
/// p ← p·(1 − lr·λ)
/// then Adam's step with λ = 0
/// ```
pub struct AdamW(AdamCore);

impl AdamW {
    /// An optimizer for `params` (for example `model.parameters()`).
    ///
    /// # Panics
    /// On a negative learning rate, ε or weight decay, or a β outside [0, 1).
    /// Any NaN or infinite setting is refused too; the message names the
    /// function, the setting and the value (`Sgd::new: invalid learning rate NaN`).
    #[track_caller]
    pub fn new(params: Vec<Named>, config: AdamWConfig) -> AdamW {
        AdamW(AdamCore::new("AdamW", params, config, Decay::Decoupled))
    }
}

macro_rules! delegate_to_core {
    ($ty:ty) => {
        impl Optimizer for $ty {
            fn step(&mut self) {
                self.0.step();
            }
            fn parameters(&self) -> &[Named] {
                &self.0.params
            }
            fn lr(&self) -> f32 {
                self.0.lr
            }
            #[track_caller]
            fn set_lr(&mut self, lr: f32) {
                check_lr(stringify!($ty), lr);
                self.0.lr = lr;
            }
            fn state(&self) -> Vec<(String, super::StateValue)> {
                export_state(self.0.lr, &self.0.params, SLOTS, &self.0.states)
            }
            fn load_state(
                &mut self,
                state: Vec<(String, super::StateValue)>,
            ) -> Result<(), StateError> {
                self.0.load_state(state)
            }
        }
    };
}

delegate_to_core!(Adam);
delegate_to_core!(AdamW);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{test_bits, test_values};

    #[test]
    fn the_update_run_at_run_time_width_matches_the_plain_loop_bit_for_bit() {
        let k = AdamStep {
            betas: (0.9, 0.999),
            eps: 1e-8,
            l2: 1e-4,
            shrink: 0.999,
            step_size: 1e-3 / bias_correction(0.9, 3),
            root_bc2: bias_correction(0.999, 3).sqrt(),
        };
        type Kernel = fn(&mut [f32], &[f32], &mut [f32], &mut [f32], AdamStep);
        let run = |f: Kernel| {
            let [mut p, g, mut m, mut v] = test_values::<4>(1_037);
            v.iter_mut().for_each(|v| *v = v.abs());
            for _ in 0..3 {
                f(&mut p, &g, &mut m, &mut v, k);
            }
            test_bits([p, m, v])
        };
        assert_eq!(run(adam_kernel), run(adam_body));
    }
}
