//! Every optimizer against its published update rule, computed here in f64
//! from the formula on a two-step example (two different gradients), plus
//! the behaviours around the rule: skipped parameters, in-place updates,
//! state export/import, clipping.

use ember_autograd::Var;
use ember_layers::loss::{cross_entropy, mse_loss, Reduction};
use ember_layers::optim::{
    clip_grad_norm, clip_grad_value, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig,
    EpsilonPlacement, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, StateError, StateValue,
};
use ember_layers::Named;
use ember_tensor::Tensor;

const P0: [f64; 3] = [0.5, -1.25, 2.0];
const G1: [f64; 3] = [0.3, -0.7, 1.1];
const G2: [f64; 3] = [-0.2, 0.4, 0.9];

fn tensor(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.iter().map(|&x| x as f32).collect(), &[v.len()])
}

fn param() -> (Var, Vec<Named>) {
    let w = Var::parameter(tensor(&P0));
    (w.clone(), vec![Named::new("w", &w)])
}

/// Runs two steps with gradients G1 then G2 and returns the values after each.
fn two_steps(opt: &mut dyn Optimizer, w: &Var) -> [Vec<f32>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for (i, g) in [G1, G2].iter().enumerate() {
        opt.zero_grad();
        w.set_grad(Some(tensor(g)));
        opt.step();
        out[i] = w.value().to_vec();
    }
    out
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 * (1.0 + w.abs());
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, the formula gives {w}"
        );
    }
}

/// Applies a per-element rule `f(step, p, g, state) -> p'` twice, in f64.
fn reference<S: Clone>(init: S, mut f: impl FnMut(u32, f64, f64, &mut S) -> f64) -> [Vec<f64>; 2] {
    let mut p = P0.to_vec();
    let mut states = vec![init; 3];
    let mut out = [Vec::new(), Vec::new()];
    for (t, g) in [G1, G2].iter().enumerate() {
        for i in 0..3 {
            p[i] = f(t as u32 + 1, p[i], g[i], &mut states[i]);
        }
        out[t] = p.clone();
    }
    out
}

fn check(opt: &mut dyn Optimizer, w: &Var, want: [Vec<f64>; 2], what: &str) {
    let got = two_steps(opt, w);
    assert_close(&got[0], &want[0], &format!("{what} step 1"));
    assert_close(&got[1], &want[1], &format!("{what} step 2"));
}

#[test]
fn sgd_plain_with_weight_decay() {
    let (w, params) = param();
    let (lr, wd) = (0.1, 0.01);
    let c = SgdConfig {
        lr: lr as f32,
        weight_decay: wd as f32,
        ..Default::default()
    };
    let want = reference((), |_, p, g, _| p - lr * (g + wd * p));
    check(&mut Sgd::new(params, c), &w, want, "sgd");
}

#[test]
fn sgd_momentum_with_dampening() {
    let (w, params) = param();
    let (lr, mu, damp) = (0.1, 0.9, 0.25);
    let c = SgdConfig {
        lr: lr as f32,
        momentum: mu as f32,
        dampening: damp as f32,
        ..Default::default()
    };
    // PyTorch: the buffer starts as the first gradient, undamped.
    let want = reference(0.0, |t, p, g, b: &mut f64| {
        *b = if t == 1 {
            g
        } else {
            mu * *b + (1.0 - damp) * g
        };
        p - lr * *b
    });
    check(&mut Sgd::new(params, c), &w, want, "sgd momentum");
}

#[test]
fn sgd_nesterov() {
    let (w, params) = param();
    let (lr, mu, wd) = (0.05, 0.8, 0.1);
    let c = SgdConfig {
        lr: lr as f32,
        momentum: mu as f32,
        nesterov: true,
        weight_decay: wd as f32,
        ..Default::default()
    };
    let want = reference(0.0, |t, p, g, b: &mut f64| {
        let g = g + wd * p;
        *b = if t == 1 { g } else { mu * *b + g };
        p - lr * (g + mu * *b)
    });
    check(&mut Sgd::new(params, c), &w, want, "sgd nesterov");
}

fn adam_reference(lr: f64, b1: f64, b2: f64, eps: f64, l2: f64, decoupled: f64) -> [Vec<f64>; 2] {
    reference((0.0, 0.0), move |t, p, g, (m, v): &mut (f64, f64)| {
        let p = p * (1.0 - lr * decoupled);
        let g = g + l2 * p;
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let m_hat = *m / (1.0 - b1.powi(t as i32));
        let v_hat = *v / (1.0 - b2.powi(t as i32));
        p - lr * m_hat / (v_hat.sqrt() + eps)
    })
}

#[test]
fn adam_with_l2_weight_decay() {
    let (w, params) = param();
    let c = AdamConfig {
        lr: 0.01,
        betas: (0.8, 0.95),
        eps: 1e-3,
        weight_decay: 0.1,
    };
    let want = adam_reference(0.01, 0.8, 0.95, 1e-3, 0.1, 0.0);
    check(&mut Adam::new(params, c), &w, want, "adam");
}

#[test]
fn adamw_decoupled_weight_decay() {
    let (w, params) = param();
    let c = AdamWConfig {
        lr: 0.01,
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.5,
    };
    // Decay first, on the weights only; the moments never see it.
    let want = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0, 0.5);
    check(&mut AdamW::new(params, c), &w, want, "adamw");
}

#[test]
fn rmsprop_pytorch_rule() {
    let (w, params) = param();
    let (lr, a, eps) = (0.01, 0.99, 1e-8);
    let want = reference(0.0, |_, p, g, v: &mut f64| {
        *v = a * *v + (1.0 - a) * g * g;
        p - lr * g / (v.sqrt() + eps)
    });
    check(
        &mut RmsProp::new(params, RmsPropConfig::default()),
        &w,
        want,
        "rmsprop",
    );
}

#[test]
fn rmsprop_keras_rule_puts_epsilon_inside_the_root() {
    let (w, params) = param();
    // A large ε makes the placement visible at this tolerance.
    let (lr, rho, eps) = (1e-3, 0.9, 0.05);
    let c = RmsPropConfig {
        eps: eps as f32,
        ..RmsPropConfig::keras()
    };
    assert_eq!(c.eps_placement, EpsilonPlacement::InsideSqrt);
    assert_eq!((c.lr, c.alpha), (1e-3, 0.9));
    let want = reference(0.0, |_, p, g, v: &mut f64| {
        *v = rho * *v + (1.0 - rho) * g * g;
        p - lr * g / (*v + eps).sqrt()
    });
    check(&mut RmsProp::new(params, c), &w, want, "rmsprop keras");
}

#[test]
fn rmsprop_centered_with_momentum_and_weight_decay() {
    let (w, params) = param();
    let (lr, a, eps, mu, wd) = (0.01, 0.9, 1e-6, 0.5, 0.05);
    let c = RmsPropConfig {
        lr: lr as f32,
        alpha: a as f32,
        eps: eps as f32,
        momentum: mu as f32,
        centered: true,
        weight_decay: wd as f32,
        ..Default::default()
    };
    let want = reference(
        (0.0, 0.0, 0.0),
        |_, p, g, (v, ga, b): &mut (f64, f64, f64)| {
            let g = g + wd * p;
            *v = a * *v + (1.0 - a) * g * g;
            *ga = a * *ga + (1.0 - a) * g;
            let d = (*v - *ga * *ga).sqrt() + eps;
            *b = mu * *b + g / d;
            p - lr * *b
        },
    );
    check(&mut RmsProp::new(params, c), &w, want, "rmsprop centred");
}

#[test]
fn adagrad_with_decay_and_initial_accumulator() {
    let (w, params) = param();
    let (lr, decay, init, eps, wd) = (0.1, 0.5, 0.2, 1e-10, 0.01);
    let c = AdagradConfig {
        lr: lr as f32,
        lr_decay: decay as f32,
        initial_accumulator_value: init as f32,
        eps: eps as f32,
        weight_decay: wd as f32,
    };
    let want = reference(init, |t, p, g, s: &mut f64| {
        let g = g + wd * p;
        *s += g * g;
        let clr = lr / (1.0 + f64::from(t - 1) * decay);
        p - clr * g / (s.sqrt() + eps)
    });
    check(&mut Adagrad::new(params, c), &w, want, "adagrad");
}

/// One of each optimizer, with state that a step changes.
fn every_optimizer(params: Vec<Named>) -> Vec<(&'static str, Box<dyn Optimizer>)> {
    vec![
        (
            "sgd",
            Box::new(Sgd::new(
                params.clone(),
                SgdConfig {
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            )),
        ),
        (
            "adam",
            Box::new(Adam::new(params.clone(), AdamConfig::default())),
        ),
        (
            "adamw",
            Box::new(AdamW::new(params.clone(), AdamWConfig::default())),
        ),
        (
            "rmsprop",
            Box::new(RmsProp::new(
                params.clone(),
                RmsPropConfig {
                    centered: true,
                    momentum: 0.9,
                    ..Default::default()
                },
            )),
        ),
        (
            "adagrad",
            Box::new(Adagrad::new(params, AdagradConfig::default())),
        ),
    ]
}

#[test]
fn parameters_without_gradient_are_left_alone() {
    let a = Var::parameter(tensor(&P0));
    let b = Var::parameter(tensor(&P0));
    let params = vec![Named::new("a", &a), Named::new("b", &b)];
    for (name, mut opt) in every_optimizer(params) {
        a.set_value(tensor(&P0));
        b.set_value(tensor(&P0));
        opt.zero_grad();
        a.set_grad(Some(tensor(&G1)));
        opt.step();
        assert_ne!(a.value().to_vec(), tensor(&P0).to_vec(), "{name}: a moved");
        assert_eq!(b.value().to_vec(), tensor(&P0).to_vec(), "{name}: b stayed");
        let state = opt.state();
        let b_step = state.iter().find(|(n, _)| n == "b.step").unwrap();
        assert_eq!(b_step.1.as_count(), Some(0), "{name}: b's step count");
        let a_step = state.iter().find(|(n, _)| n == "a.step").unwrap();
        assert_eq!(a_step.1.as_count(), Some(1), "{name}: a's step count");
    }
}

/// A weight whose gradient drops to 0 has its moments decay towards 0; on
/// the way they must go straight from normal to 0, never stored subnormal
/// (each operation on a subnormal float costs x86 a microcode assist).
/// Meanwhile the weight stops moving within a few steps, as the rule says.
#[test]
fn decaying_state_is_flushed_to_zero_not_stored_subnormal() {
    let w = Var::parameter(tensor(&P0));
    for (name, mut opt) in every_optimizer(vec![Named::new("w", &w)]) {
        w.set_value(tensor(&P0));
        let mut seen_normal_state = false;
        for step in 0..3000 {
            opt.zero_grad();
            let g = if step == 0 { G1 } else { [0.0; 3] };
            w.set_grad(Some(tensor(&g)));
            opt.step();
            for (slot, value) in opt.state() {
                let Some(t) = value.as_tensor().filter(|t| t.shape() == [3]) else {
                    continue;
                };
                for v in t.to_vec() {
                    seen_normal_state |= v.is_normal();
                    assert!(
                        !v.is_subnormal(),
                        "{name}: {slot} = {v:e} is subnormal after step {step}"
                    );
                }
            }
        }
        assert!(seen_normal_state, "{name}: no state slot to check");
        let last = w.value().to_vec();
        assert!(last.iter().all(|v| v.is_finite()), "{name}: {last:?}");
    }
}

#[test]
fn steps_update_the_parameter_storage_in_place() {
    let w = Var::parameter(Tensor::from_vec(
        (0..1000).map(|i| i as f32 * 1e-3).collect(),
        &[10, 100],
    ));
    let params = vec![Named::new("w", &w)];
    for (name, mut opt) in every_optimizer(params) {
        let before = w.value_ref().as_slice().unwrap().as_ptr();
        for _ in 0..3 {
            opt.zero_grad();
            w.set_grad(Some(Tensor::full(&[10, 100], 0.5)));
            opt.step();
        }
        let after = w.value_ref().as_slice().unwrap().as_ptr();
        assert_eq!(before, after, "{name}: the step reallocated the parameter");
    }
}

/// `every_optimizer` plus the variants whose unused state slots are empty.
fn every_variant(params: Vec<Named>) -> Vec<(&'static str, Box<dyn Optimizer>)> {
    let mut all = every_optimizer(params.clone());
    all.push((
        "plain sgd",
        Box::new(Sgd::new(params.clone(), SgdConfig::default())),
    ));
    all.push((
        "keras rmsprop",
        Box::new(RmsProp::new(params, RmsPropConfig::keras())),
    ));
    all
}

#[test]
fn large_parameters_split_across_threads_update_exactly_as_on_one() {
    // 100,003 values: several pieces for the thread pool, the last one short.
    let n = 100_003;
    let start: Vec<f32> = (0..n)
        .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5)
        .collect();
    let grad = |step: usize| {
        let g = (0..n).map(|i| ((i * 13 + step * 7) % 29) as f32 * 0.1 - 1.4);
        Tensor::from_vec(g.collect(), &[n])
    };
    let run = |threads: usize| {
        ember_tensor::on_threads(threads, || {
            let w = Var::parameter(Tensor::from_vec(start.clone(), &[n]));
            let mut finals = Vec::new();
            for (name, mut opt) in every_variant(vec![Named::new("w", &w)]) {
                w.set_value(Tensor::from_vec(start.clone(), &[n]));
                for step in 0..3 {
                    opt.zero_grad();
                    w.set_grad(Some(grad(step)));
                    opt.step();
                }
                finals.push((name, w.value().to_vec(), opt.state()));
            }
            finals
        })
    };
    for ((name, one, state_one), (_, two, state_two)) in run(1).into_iter().zip(run(2)) {
        assert_ne!(one, start, "{name}: the steps moved nothing");
        let same = one
            .iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: 2 threads changed the values");
        for ((slot, a), (_, b)) in state_one.iter().zip(&state_two) {
            assert_eq!(flat(a), flat(b), "{name}: 2 threads changed {slot}");
        }
    }
}

#[test]
fn exported_state_resumes_bit_for_bit() {
    let grads = [G1, G2, [0.7, 0.1, -0.3], [-1.0, 2.0, 0.5]];
    let (w_a, params_a) = param();
    let (w_b, params_b) = param();
    for ((name, mut a), (_, mut b)) in every_optimizer(params_a)
        .into_iter()
        .zip(every_optimizer(params_b))
    {
        w_a.set_value(tensor(&P0));
        for g in &grads[..2] {
            a.zero_grad();
            w_a.set_grad(Some(tensor(g)));
            a.step();
        }
        a.set_lr(a.lr() * 0.5);
        // b takes over a's position: its value and its state.
        w_b.set_value(w_a.value());
        b.load_state(a.state()).unwrap();
        assert_eq!(b.lr(), a.lr(), "{name}: lr restored");
        for g in &grads[2..] {
            for (opt, w) in [(&mut a, &w_a), (&mut b, &w_b)] {
                opt.zero_grad();
                w.set_grad(Some(tensor(g)));
                opt.step();
            }
        }
        let bits = |w: &Var| {
            w.value()
                .to_vec()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&w_a), bits(&w_b), "{name}");
    }
}

#[test]
fn load_state_rejects_bad_state_and_changes_nothing() {
    let (w, params) = param();
    let mut opt = Adam::new(params, AdamConfig::default());
    w.set_grad(Some(tensor(&G1)));
    opt.step();
    let good = opt.state();
    let names: Vec<&str> = good.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["lr", "w.step", "w.exp_avg", "w.exp_avg_sq"]);

    let without = |skip: &str| {
        good.iter()
            .filter(|(n, _)| n != skip)
            .cloned()
            .collect::<Vec<_>>()
    };
    let replaced = |name: &str, t: StateValue| {
        good.iter()
            .map(|(n, v)| (n.clone(), if n == name { t.clone() } else { v.clone() }))
            .collect::<Vec<_>>()
    };
    let replaced_name = |name: &str, by: &str| {
        good.iter()
            .map(|(n, v)| {
                (
                    if n == name { by.to_string() } else { n.clone() },
                    v.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let without_all = |skip: &[&str]| {
        good.iter()
            .filter(|(n, _)| !skip.contains(&n.as_str()))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut extra = good.clone();
    extra.push((
        "v.exp_avg".to_string(),
        StateValue::Tensor(Tensor::zeros(&[3])),
    ));
    let mut twice = good.clone();
    twice.push(good[2].clone());

    let cases: Vec<(Vec<(String, StateValue)>, StateError)> = vec![
        (
            without("w.exp_avg_sq"),
            StateError::Missing("w.exp_avg_sq".into()),
        ),
        (without("lr"), StateError::Missing("lr".into())),
        (extra, StateError::Unexpected("v.exp_avg".into())),
        // Another optimizer's state: RMSprop's slot, or plain SGD's none.
        (
            replaced_name("w.exp_avg", "w.square_avg"),
            StateError::OtherOptimizer {
                parameter: "w".into(),
                expected: vec!["exp_avg".into(), "exp_avg_sq".into()],
                found: vec!["exp_avg_sq".into(), "square_avg".into()],
            },
        ),
        (
            without_all(&["w.exp_avg", "w.exp_avg_sq"]),
            StateError::OtherOptimizer {
                parameter: "w".into(),
                expected: vec!["exp_avg".into(), "exp_avg_sq".into()],
                found: vec![],
            },
        ),
        (twice, StateError::Duplicate("w.exp_avg".into())),
        (
            replaced("w.exp_avg", StateValue::Tensor(Tensor::zeros(&[4]))),
            StateError::Shape {
                name: "w.exp_avg".into(),
                expected: vec![3],
                found: vec![4],
            },
        ),
    ];
    let mut fresh = Adam::new(
        vec![Named::new("w", &w)],
        AdamConfig {
            lr: 0.5,
            ..Default::default()
        },
    );
    let before = fresh.state();
    for (state, want) in cases {
        assert_eq!(fresh.load_state(state), Err(want));
    }
    // Older two-halves step counts that are not counts, a tensor of another
    // shape where the count belongs, and a count where a tensor belongs.
    let mut invalid: Vec<(&str, StateValue)> = [
        vec![0.0, -1.0],
        vec![0.0, 1.5],
        vec![f32::NAN, 0.0],
        vec![0.0, 16_777_216.0],
    ]
    .into_iter()
    .map(|v| ("w.step", StateValue::Tensor(Tensor::from_vec(v, &[2]))))
    .collect();
    invalid.push(("w.step", StateValue::Tensor(Tensor::scalar(1.0))));
    invalid.push(("w.exp_avg", StateValue::Count(3)));
    invalid.push(("lr", StateValue::Count(1)));
    for (entry, bad) in invalid {
        let err = fresh.load_state(replaced(entry, bad));
        assert!(
            matches!(err, Err(StateError::Invalid { ref name, .. }) if name == entry),
            "{err:?}"
        );
    }
    let after = fresh.state();
    assert_eq!(fresh.lr(), 0.5);
    for ((n1, t1), (n2, t2)) in before.iter().zip(&after) {
        assert_eq!(
            (n1, flat(t1)),
            (n2, flat(t2)),
            "a failed load changed state"
        );
    }
    // And the good state loads, step count included.
    fresh.load_state(good).unwrap();
    assert_eq!(fresh.lr(), 1e-3);
    let step = fresh
        .state()
        .into_iter()
        .find(|(n, _)| n == "w.step")
        .unwrap()
        .1;
    assert_eq!(step.as_count(), Some(1));
}

/// A state entry's values, counts as one value (exact in f64 below 2⁵³).
fn flat(v: &StateValue) -> Vec<f64> {
    match v {
        StateValue::Tensor(t) => t.to_vec().into_iter().map(f64::from).collect(),
        StateValue::Count(n) => vec![*n as f64],
    }
}

#[test]
fn large_step_counts_survive_export() {
    let (w, params) = param();
    let mut opt = Sgd::new(params, SgdConfig::default());
    let mut state = opt.state();
    // 2^24 · 3 + 5: not representable as one f32, given in the older
    // two-halves form.
    let count = (1u64 << 24) * 3 + 5;
    for (n, t) in &mut state {
        if n == "w.step" {
            *t = StateValue::Tensor(Tensor::from_vec(vec![3.0, 5.0], &[2]));
        }
    }
    opt.load_state(state).unwrap();
    w.set_grad(Some(tensor(&G1)));
    opt.step();
    let step = |opt: &Sgd| {
        opt.state()
            .into_iter()
            .find(|(n, _)| n == "w.step")
            .unwrap()
            .1
            .as_count()
    };
    assert_eq!(step(&opt), Some(count + 1));
    // And as a count, far beyond 2^48.
    let big = u64::MAX - 1;
    let mut state = opt.state();
    for (n, t) in &mut state {
        if n == "w.step" {
            *t = StateValue::Count(big);
        }
    }
    opt.load_state(state).unwrap();
    opt.step();
    assert_eq!(step(&opt), Some(big + 1));
}

#[test]
fn clip_grad_norm_scales_all_gradients_together() {
    let a = Var::parameter(Tensor::zeros(&[2]));
    let b = Var::parameter(Tensor::zeros(&[2, 1]));
    let c = Var::parameter(Tensor::zeros(&[1])); // no gradient: ignored
    a.set_grad(Some(Tensor::from_vec(vec![1.0, -2.0], &[2])));
    b.set_grad(Some(Tensor::from_vec(vec![2.0, 4.0], &[2, 1])));
    let params = vec![
        Named::new("a", &a),
        Named::new("b", &b),
        Named::new("c", &c),
    ];
    let norm = clip_grad_norm(&params, 2.5);
    assert_eq!(norm, 5.0); // √(1 + 4 + 4 + 16)
    let scale = 2.5 / (5.0 + 1e-6);
    assert_close(&a.grad().unwrap().to_vec(), &[scale, -2.0 * scale], "a");
    assert_close(
        &b.grad().unwrap().to_vec(),
        &[2.0 * scale, 4.0 * scale],
        "b",
    );
    assert!(c.grad().is_none());
    // Below the limit nothing changes.
    let again = clip_grad_norm(&params, 10.0);
    assert!((again - 2.5).abs() < 1e-5);
    assert_close(
        &a.grad().unwrap().to_vec(),
        &[scale, -2.0 * scale],
        "a unchanged",
    );
}

#[test]
fn clip_grad_value_clamps_each_element() {
    let a = Var::parameter(Tensor::zeros(&[4]));
    a.set_grad(Some(Tensor::from_vec(vec![-3.0, -0.5, 0.25, 9.0], &[4])));
    clip_grad_value(&[Named::new("a", &a)], 1.0);
    assert_eq!(a.grad().unwrap().to_vec(), vec![-1.0, -0.5, 0.25, 1.0]);
}

#[test]
#[should_panic(expected = "Nesterov")]
fn nesterov_without_momentum_is_refused() {
    let (_, params) = param();
    Sgd::new(
        params,
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
    );
}

/// The message a panic carried.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Every optimizer refuses a NaN, infinite or negative learning rate, at
/// construction and in `set_lr`, naming itself, the setting and the value.
#[test]
fn bad_learning_rates_panic_naming_the_optimizer_and_the_value() {
    type Build = fn(Vec<Named>, f32) -> Box<dyn Optimizer>;
    let builds: [(&str, Build); 5] = [
        ("Sgd", |p, lr| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr,
                    ..Default::default()
                },
            ))
        }),
        ("Adam", |p, lr| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    lr,
                    ..Default::default()
                },
            ))
        }),
        ("AdamW", |p, lr| {
            Box::new(AdamW::new(
                p,
                AdamWConfig {
                    lr,
                    ..Default::default()
                },
            ))
        }),
        ("RmsProp", |p, lr| {
            Box::new(RmsProp::new(
                p,
                RmsPropConfig {
                    lr,
                    ..Default::default()
                },
            ))
        }),
        ("Adagrad", |p, lr| {
            Box::new(Adagrad::new(
                p,
                AdagradConfig {
                    lr,
                    ..Default::default()
                },
            ))
        }),
    ];
    for (name, build) in builds {
        for lr in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0] {
            let message = panic_message(move || {
                build(param().1, lr);
            });
            assert_eq!(message, format!("{name}::new: invalid learning rate {lr}"));
            let message = panic_message(move || {
                build(param().1, 0.1).set_lr(lr);
            });
            assert_eq!(
                message,
                format!("{name}::set_lr: invalid learning rate {lr}")
            );
        }
        // Zero is a valid rate (PyTorch's too).
        build(param().1, 0.0).set_lr(0.0);
    }
    let message = panic_message(|| {
        Adam::new(
            param().1,
            AdamConfig {
                eps: f32::NAN,
                ..Default::default()
            },
        );
    });
    assert_eq!(message, "Adam::new: invalid epsilon NaN");
}

#[test]
fn rmsprop_keras_recipe_trains_a_tiny_regression() {
    // y = 2x − 1 from 8 points, full batch: the loss must fall by 100×.
    let x = Var::constant(Tensor::from_vec(
        (0..8).map(|i| i as f32 / 4.0).collect(),
        &[8, 1],
    ));
    let y = Var::constant(Tensor::from_vec(
        (0..8).map(|i| i as f32 / 2.0 - 1.0).collect(),
        &[8, 1],
    ));
    let w = Var::parameter(Tensor::zeros(&[1, 1]));
    let b = Var::parameter(Tensor::zeros(&[1]));
    let params = vec![Named::new("w", &w), Named::new("b", &b)];
    let mut opt = RmsProp::new(
        params,
        RmsPropConfig {
            lr: 0.02,
            ..RmsPropConfig::keras()
        },
    );
    let loss = |w: &Var, b: &Var| mse_loss(&x.matmul(w).add(b), &y, Reduction::Mean);
    let first = loss(&w, &b).item();
    for _ in 0..500 {
        opt.zero_grad();
        loss(&w, &b).backward();
        opt.step();
    }
    let last = loss(&w, &b).item();
    assert!(last < first / 100.0, "loss {first} → {last}");
}

#[test]
fn a_real_training_loop_updates_weights_in_place() {
    use ember_layers::{Linear, Module, ReLU, Sequential};
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = Sequential::new()
        .add(Linear::new(6, 16, &mut rng))
        .add(ReLU)
        .add(Linear::new(16, 3, &mut rng));
    let x = Var::constant(Tensor::randn(&[10, 6], &mut rng));
    let targets = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0];
    let pointers = |m: &Sequential| -> Vec<*const f32> {
        m.parameters()
            .iter()
            .map(|p| p.var.value_ref().as_slice().unwrap().as_ptr())
            .collect()
    };
    for (name, mut opt) in every_optimizer(model.parameters()) {
        let before = pointers(&model);
        for _ in 0..3 {
            opt.zero_grad();
            let loss = cross_entropy(&model.forward(&x), &targets, Reduction::Mean);
            loss.backward();
            opt.step();
        }
        assert_eq!(
            pointers(&model),
            before,
            "{name}: a step copied a parameter"
        );
    }
}
