//! Adagrad (Duchi, Hazan & Singer, 2011).

use super::StateError;
use super::{
    check_config, check_lr, export_state, import_state, par_update, update_param, Optimizer,
    ParamState,
};
use crate::Named;
use multiversion::multiversion;

const SLOTS: &[&str] = &["sum"];

/// Settings of [`Adagrad`].
///
/// | | Ember (`Default`) | PyTorch `optim.Adagrad` | Keras `Adagrad` |
/// |---|---|---|---|
/// | `lr` | 1e-2 | 1e-2 | 1e-3 |
/// | `lr_decay` | 0 | 0 | — |
/// | `initial_accumulator_value` | 0 | 0 | 0.1 |
/// | `eps` | 1e-10 (outside √) | 1e-10 (outside √) | 1e-7 (inside √) |
/// | `weight_decay` | 0 | 0 | — |
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate.
    pub lr: f32,
    /// The rate decays as `lr / (1 + (t − 1)·lr_decay)`.
    pub lr_decay: f32,
    /// Start value of the sum of squared gradients.
    pub initial_accumulator_value: f32,
    /// Added to `√sum`.
    pub eps: f32,
    /// L2 penalty added to the gradient: `g ← g + λp`.
    pub weight_decay: f32,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            weight_decay: 0.0,
        }
    }
}

/// Adagrad, PyTorch's update rule:
///
/// ```text
/// g ← ∇ + λ·p
/// s ← s + g²
/// p ← p − lr/(1 + (t − 1)·lr_decay) · g / (√s + ε)
/// ```
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::optim::{Adagrad, AdagradConfig, Optimizer};
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0], &[1]));
/// let mut opt = Adagrad::new(vec![ember_layers::Named::new("w", &w)], AdagradConfig::default());
/// w.mul_scalar(3.0).sum().backward();
/// opt.step(); // g/√(g²) = 1: the first step is lr
/// assert!((w.value().item() - 0.99).abs() < 1e-6);
/// ```
pub struct Adagrad {
    params: Vec<Named>,
    config: AdagradConfig,
    states: Vec<ParamState>,
}

impl Adagrad {
    /// An optimizer for `params` (for example `model.parameters()`).
    ///
    /// # Panics
    /// On a negative learning rate, decay, accumulator start, ε or weight
    /// decay.
    /// Any NaN or infinite setting is refused too; the message names the
    /// function, the setting and the value (`Sgd::new: invalid learning rate NaN`).
    #[track_caller]
    pub fn new(params: Vec<Named>, config: AdagradConfig) -> Adagrad {
        let c = &config;
        check_config("Adagrad", "learning rate", c.lr, c.lr >= 0.0);
        check_config("Adagrad", "lr decay", c.lr_decay, c.lr_decay >= 0.0);
        let init = c.initial_accumulator_value;
        check_config("Adagrad", "initial accumulator value", init, init >= 0.0);
        check_config("Adagrad", "epsilon", c.eps, c.eps >= 0.0);
        check_config(
            "Adagrad",
            "weight decay",
            c.weight_decay,
            c.weight_decay >= 0.0,
        );
        let states = ParamState::for_params(&params, SLOTS.len(), init);
        Adagrad {
            params,
            config,
            states,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdagradConfig {
        &self.config
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self) {
        let AdagradConfig {
            lr,
            lr_decay,
            eps,
            weight_decay,
            ..
        } = self.config;
        for (Named { var: param, .. }, state) in self.params.iter().zip(&mut self.states) {
            update_param(param, |p, g| {
                state.step += 1;
                let clr = lr / (1.0 + (state.step - 1) as f32 * lr_decay);
                par_update(p, g, [state.slots[0].data_mut()], |p, g, [sum]| {
                    adagrad_kernel(p, g, sum, clr, eps, weight_decay)
                });
            });
        }
    }

    fn parameters(&self) -> &[Named] {
        &self.params
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }

    #[track_caller]
    fn set_lr(&mut self, lr: f32) {
        check_lr("Adagrad", lr);
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, super::StateValue)> {
        export_state(self.config.lr, &self.params, SLOTS, &self.states)
    }

    fn load_state(&mut self, state: Vec<(String, super::StateValue)>) -> Result<(), StateError> {
        import_state(
            state,
            &mut self.config.lr,
            &self.params,
            SLOTS,
            &mut self.states,
        )
    }
}

/// One fused pass; slices and scalars are arguments (not closure captures)
/// so the compiler vectorises it. Compiled for AVX-512 and AVX2
/// as well and picked at run time, with the bits of [`adagrad_body`].
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2"))]
fn adagrad_kernel(p: &mut [f32], g: &[f32], sum: &mut [f32], lr: f32, eps: f32, wd: f32) {
    adagrad_body(p, g, sum, lr, eps, wd)
}

/// The loop of [`adagrad_kernel`], as written; inlined into each version.
#[inline(always)]
fn adagrad_body(p: &mut [f32], g: &[f32], sum: &mut [f32], lr: f32, eps: f32, wd: f32) {
    for ((p, &g), s) in p.iter_mut().zip(g).zip(sum) {
        let g = g + wd * *p;
        *s += g * g;
        *p -= lr * g / (s.sqrt() + eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{test_bits, test_values};

    #[test]
    fn the_update_run_at_run_time_width_matches_the_plain_loop_bit_for_bit() {
        type Kernel = fn(&mut [f32], &[f32], &mut [f32], f32, f32, f32);
        let run = |f: Kernel| {
            let [mut p, g, mut sum] = test_values::<3>(1_037);
            sum.iter_mut().for_each(|s| *s = s.abs());
            for _ in 0..3 {
                f(&mut p, &g, &mut sum, 0.01, 1e-10, 1e-4);
            }
            test_bits([p, sum])
        };
        assert_eq!(run(adagrad_kernel), run(adagrad_body));
    }
}
