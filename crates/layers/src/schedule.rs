//! Learning-rate schedules: pure functions of a step counter.
//!
//! A schedule maps a counter to a learning rate; the training loop decides
//! what the counter counts (epochs or batches) and calls
//! [`Optimizer::set_lr`](crate::optim::Optimizer::set_lr) with the result.
//! Being a pure function of the counter, a schedule needs no state of its
//! own in a checkpoint: a resumed run recomputes it from the saved step.
//! Counting starts at 0, so `lr(0)` is the rate of the first epoch or batch;
//! the counter is a `u64`, like [`TrainingState::step`](crate::checkpoint::TrainingState::step).
//!
//! ```
//! use ember_layers::schedule::{CosineAnnealing, LrSchedule, Warmup};
//!
//! // 5 warm-up steps from 0.2·lr, then a cosine decay from 0.1 to 0 over 100 steps.
//! let schedule = Warmup::new(CosineAnnealing::new(0.1, 100, 0.0), 5, 0.2);
//! assert!((schedule.lr(0) - 0.02).abs() < 1e-7);
//! assert!((schedule.lr(5) - 0.1).abs() < 1e-7);
//! assert!((schedule.lr(55) - 0.05).abs() < 1e-6);
//! assert_eq!(schedule.lr(105), 0.0);
//! ```

use std::f64::consts::PI;

/// A learning rate as a function of a step (or epoch) counter from 0.
pub trait LrSchedule {
    /// The learning rate for step `step`.
    fn lr(&self, step: u64) -> f32;
}

/// A schedule chosen at run time (say, from a command-line flag) is a
/// `Box<dyn LrSchedule>`, and can itself be wrapped in a [`Warmup`].
impl<S: LrSchedule + ?Sized> LrSchedule for Box<S> {
    fn lr(&self, step: u64) -> f32 {
        (**self).lr(step)
    }
}

impl<S: LrSchedule + ?Sized> LrSchedule for &S {
    fn lr(&self, step: u64) -> f32 {
        (**self).lr(step)
    }
}

/// A constant rate (the schedule that does nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstantLr(pub f32);

impl LrSchedule for ConstantLr {
    fn lr(&self, _step: u64) -> f32 {
        self.0
    }
}

/// Multiplies the rate by `gamma` every `step_size` steps:
/// `lr·γ^⌊step/step_size⌋` (PyTorch's `StepLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// The rate at step 0.
    pub base_lr: f32,
    /// Steps between decays (at least 1).
    pub step_size: usize,
    /// Factor applied at each decay.
    pub gamma: f32,
}

impl StepLr {
    /// A step decay.
    ///
    /// # Panics
    /// If `step_size` is 0.
    #[track_caller]
    pub fn new(base_lr: f32, step_size: usize, gamma: f32) -> StepLr {
        assert!(step_size > 0, "StepLr: step_size must be at least 1");
        StepLr {
            base_lr,
            step_size,
            gamma,
        }
    }
}

impl LrSchedule for StepLr {
    fn lr(&self, step: u64) -> f32 {
        let decays = step / self.step_size.max(1) as u64;
        (f64::from(self.base_lr) * f64::from(self.gamma).powf(decays as f64)) as f32
    }
}

/// Multiplies the rate by `gamma` every step: `lr·γ^step` (PyTorch's
/// `ExponentialLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    /// The rate at step 0.
    pub base_lr: f32,
    /// Factor per step.
    pub gamma: f32,
}

impl ExponentialLr {
    /// An exponential decay.
    pub fn new(base_lr: f32, gamma: f32) -> ExponentialLr {
        ExponentialLr { base_lr, gamma }
    }
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, step: u64) -> f32 {
        (f64::from(self.base_lr) * f64::from(self.gamma).powf(step as f64)) as f32
    }
}

/// Half a cosine from `base_lr` down to `min_lr` over `t_max` steps, then
/// `min_lr`: `min + (base − min)·(1 + cos(π·step/t_max))/2` (PyTorch's
/// `CosineAnnealingLR` closed form, which PyTorch lets climb again after
/// `t_max`; here it stays at the minimum).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealing {
    /// The rate at step 0.
    pub base_lr: f32,
    /// Steps to reach the minimum (at least 1).
    pub t_max: usize,
    /// The final rate (PyTorch's `eta_min`).
    pub min_lr: f32,
}

impl CosineAnnealing {
    /// A cosine decay.
    ///
    /// # Panics
    /// If `t_max` is 0.
    #[track_caller]
    pub fn new(base_lr: f32, t_max: usize, min_lr: f32) -> CosineAnnealing {
        assert!(t_max > 0, "CosineAnnealing: t_max must be at least 1");
        CosineAnnealing {
            base_lr,
            t_max,
            min_lr,
        }
    }
}

impl LrSchedule for CosineAnnealing {
    fn lr(&self, step: u64) -> f32 {
        let fraction = step.min(self.t_max as u64) as f64 / self.t_max.max(1) as f64;
        cosine(f64::from(self.base_lr), f64::from(self.min_lr), fraction) as f32
    }
}

/// From `start` (fraction 0) to `end` (fraction 1) along half a cosine.
fn cosine(start: f64, end: f64, fraction: f64) -> f64 {
    end + (start - end) * 0.5 * (1.0 + (PI * fraction).cos())
}

/// A linear warm-up in front of another schedule: for the first
/// `warmup_steps` steps the rate climbs linearly from
/// `start_factor·inner.lr(0)` towards `inner.lr(0)`; from then on it is
/// `inner.lr(step − warmup_steps)`, so the inner schedule starts where the
/// warm-up ends (PyTorch's `LinearLR` followed by the inner schedule in a
/// `SequentialLR`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup<S> {
    /// The schedule after the warm-up.
    pub inner: S,
    /// Length of the warm-up.
    pub warmup_steps: usize,
    /// The fraction of the inner schedule's first rate used at step 0.
    pub start_factor: f32,
}

impl<S: LrSchedule> Warmup<S> {
    /// A linear warm-up of `warmup_steps` steps from `start_factor·inner.lr(0)`.
    ///
    /// # Panics
    /// If `start_factor` is outside [0, 1].
    #[track_caller]
    pub fn new(inner: S, warmup_steps: usize, start_factor: f32) -> Warmup<S> {
        assert!(
            (0.0..=1.0).contains(&start_factor),
            "Warmup: start_factor {start_factor} is outside [0, 1]"
        );
        Warmup {
            inner,
            warmup_steps,
            start_factor,
        }
    }
}

impl<S: LrSchedule> LrSchedule for Warmup<S> {
    fn lr(&self, step: u64) -> f32 {
        let warmup = self.warmup_steps as u64;
        if step >= warmup {
            return self.inner.lr(step - warmup);
        }
        let start = f64::from(self.start_factor);
        let factor = start + (1.0 - start) * step as f64 / self.warmup_steps as f64;
        (f64::from(self.inner.lr(0)) * factor) as f32
    }
}

/// The 1cycle policy (Smith & Topin, 2017), as PyTorch's `OneCycleLR` with
/// `anneal_strategy="cos"` and two phases: a cosine rise from
/// `max_lr/div_factor` to `max_lr` over the first `pct_start` of
/// `total_steps`, then a cosine fall to `max_lr/(div_factor·final_div_factor)`
/// at step `total_steps − 1`, where it stays. (PyTorch also cycles momentum;
/// that is not done here.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// The peak rate.
    pub max_lr: f32,
    /// Length of the cycle, in steps (at least 2).
    pub total_steps: usize,
    /// Fraction of the cycle spent rising (PyTorch's default 0.3).
    pub pct_start: f32,
    /// `initial_lr = max_lr / div_factor` (default 25).
    pub div_factor: f32,
    /// `min_lr = initial_lr / final_div_factor` (default 1e4).
    pub final_div_factor: f32,
}

impl OneCycle {
    /// A cycle with PyTorch's defaults (`pct_start` 0.3, `div_factor` 25,
    /// `final_div_factor` 1e4).
    ///
    /// # Panics
    /// If `total_steps` < 2.
    #[track_caller]
    pub fn new(max_lr: f32, total_steps: usize) -> OneCycle {
        assert!(total_steps >= 2, "OneCycle: total_steps must be at least 2");
        OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
}

impl LrSchedule for OneCycle {
    fn lr(&self, step: u64) -> f32 {
        let max = f64::from(self.max_lr);
        let initial = max / f64::from(self.div_factor);
        let min = initial / f64::from(self.final_div_factor);
        let last = self.total_steps.saturating_sub(1) as f64;
        let step = (step as f64).min(last);
        // PyTorch's phase boundaries, fractional step numbers included.
        let peak = f64::from(self.pct_start) * self.total_steps as f64 - 1.0;
        if step <= peak && peak > 0.0 {
            cosine(initial, max, step / peak) as f32
        } else {
            cosine(max, min, (step - peak) / (last - peak)) as f32
        }
    }
}
