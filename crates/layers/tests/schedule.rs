//! Learning-rate schedules at points whose values are known in closed form.

use ember_layers::schedule::{
    ConstantLr, CosineAnnealing, ExponentialLr, LrSchedule, OneCycle, StepLr, Warmup,
};

#[track_caller]
fn close(got: f32, want: f64) {
    assert!(
        (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1e-3),
        "got {got}, want {want}"
    );
}

#[test]
fn step_lr_decays_every_step_size_steps() {
    let s = StepLr::new(0.1, 3, 0.5);
    let got: Vec<f32> = (0..8).map(|i| s.lr(i)).collect();
    for (i, &lr) in got.iter().enumerate() {
        close(lr, 0.1 * 0.5f64.powi((i / 3) as i32));
    }
    assert_eq!(got[2], got[0]);
    assert!(got[3] < got[2]);
}

#[test]
fn exponential_lr() {
    let s = ExponentialLr::new(0.2, 0.9);
    close(s.lr(0), 0.2);
    close(s.lr(1), 0.18);
    close(s.lr(10), 0.2 * 0.9f64.powi(10));
}

#[test]
fn cosine_annealing_known_points() {
    let s = CosineAnnealing::new(0.1, 100, 0.01);
    close(s.lr(0), 0.1);
    close(s.lr(50), 0.055); // halfway: the mean of the two ends
    close(
        s.lr(25),
        0.01 + 0.09 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0,
    );
    close(s.lr(100), 0.01);
    close(s.lr(1000), 0.01); // stays at the minimum
}

#[test]
fn warmup_is_linear_then_hands_over() {
    let s = Warmup::new(StepLr::new(1.0, 10, 0.1), 4, 0.0);
    let got: Vec<f32> = (0..6).map(|i| s.lr(i)).collect();
    assert_eq!(got, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
    // The inner schedule's clock starts after the warm-up.
    close(s.lr(4 + 10), 0.1);
    close(s.lr(4 + 9), 1.0);
    let gentle = Warmup::new(ConstantLr(0.3), 5, 0.5);
    close(gentle.lr(0), 0.15);
    close(gentle.lr(3), 0.3 * (0.5 + 0.5 * 3.0 / 5.0));
    close(gentle.lr(5), 0.3);
}

#[test]
fn one_cycle_follows_pytorch_phases() {
    // pct_start 0.21 of 100 steps: PyTorch's peak is at step 0.21·100 − 1 = 20.
    let s = OneCycle {
        pct_start: 0.21,
        ..OneCycle::new(1.0, 100)
    };
    let initial = 1.0 / 25.0;
    let min = initial / 1e4;
    close(s.lr(0), initial);
    close(s.lr(10), (initial + 1.0) / 2.0); // halfway up
    close(s.lr(20), 1.0);
    // Halfway down, with the default pct_start 0.3: the fall runs 29 → 99.
    close(OneCycle::new(1.0, 100).lr(64), (1.0 + min) / 2.0);
    close(s.lr(99), min);
    close(s.lr(500), min);
    // Rising, then falling.
    let lrs: Vec<f32> = (0..100).map(|i| s.lr(i)).collect();
    assert!(lrs[..=20].windows(2).all(|w| w[0] < w[1]));
    assert!(lrs[20..].windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn one_cycle_defaults_match_pytorch() {
    let s = OneCycle::new(0.01, 1000);
    assert_eq!(
        (s.pct_start, s.div_factor, s.final_div_factor),
        (0.3, 25.0, 1e4)
    );
    close(s.lr(0), 0.01 / 25.0);
    close(s.lr(299), 0.01); // 0.3·1000 − 1
}

#[test]
fn schedules_chosen_at_run_time_compose() {
    let chosen: Box<dyn LrSchedule> = if std::hint::black_box(true) {
        Box::new(ExponentialLr::new(0.1, 0.5))
    } else {
        Box::new(ConstantLr(0.1))
    };
    let s = Warmup::new(chosen, 2, 0.5);
    close(s.lr(0), 0.05);
    close(s.lr(1), 0.075);
    close(s.lr(2), 0.1);
    close(s.lr(3), 0.05);
}
