//! A user's own model, written as a plain struct of layers: names, init,
//! buffers in checkpoints, train/eval and dropout masks, all through
//! `Module::visit`.

use ember_autograd::Var;
use ember_layers::checkpoint::{load_weights, save_weights};
use ember_layers::{
    Activation, BatchNorm1d, Dropout, LayerInit, Linear, Members, Module, Sequential, Step,
};
use ember_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `fc1 → relu → fc2`, as a PyTorch user would write it.
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(rng: &mut ChaCha8Rng) -> Mlp {
        Mlp {
            fc1: Linear::with_init(6, 16, &LayerInit::before(Activation::Relu), rng),
            fc2: Linear::new(16, 3, rng),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Var) -> Var {
        self.fc2.forward(&self.fc1.forward(x).relu())
    }
    fn visit(&self, m: &mut Members) {
        m.child("fc1", &self.fc1);
        m.child("fc2", &self.fc2);
    }
}

/// A block with batch norm and dropout, and a list of them inside a model.
struct Block {
    fc: Linear,
    bn: BatchNorm1d,
    drop: Dropout,
}

impl Module for Block {
    fn forward(&self, x: &Var) -> Var {
        self.drop
            .forward(&self.bn.forward(&self.fc.forward(x)).relu())
    }
    fn visit(&self, m: &mut Members) {
        m.child("fc", &self.fc);
        m.child("bn", &self.bn);
        m.child("drop", &self.drop);
    }
}

struct Net {
    blocks: Vec<Block>,
    head: Sequential,
}

impl Net {
    fn new(seed: u64) -> Net {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Batch norm follows, not a ReLU: Ember's default zero bias.
        let block = |rng: &mut ChaCha8Rng| Block {
            fc: Linear::new(8, 8, rng),
            bn: BatchNorm1d::new(8),
            drop: Dropout::new(0.5),
        };
        Net {
            blocks: vec![block(&mut rng), block(&mut rng)],
            head: Sequential::new().add(Linear::new(8, 2, &mut rng)),
        }
    }
}

impl Module for Net {
    fn forward(&self, x: &Var) -> Var {
        let x = self.blocks.iter().fold(x.clone(), |x, b| b.forward(&x));
        self.head.forward(&x)
    }
    fn visit(&self, m: &mut Members) {
        m.children("blocks", &self.blocks);
        m.child("head", &self.head);
    }
}

fn names(model: &dyn Module) -> Vec<String> {
    model.state().into_iter().map(|p| p.name).collect()
}

fn values(model: &dyn Module) -> Vec<Vec<u32>> {
    model
        .state()
        .iter()
        .map(|p| p.var.value().to_vec().iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn a_struct_mlp_is_named_like_pytorch_and_gets_the_relu_bias() {
    let model = Mlp::new(&mut ChaCha8Rng::seed_from_u64(1));
    assert_eq!(
        names(&model),
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    );
    let p = model.parameters();
    assert!(p[1].var.value().to_vec().iter().all(|&b| b == 0.1));
    assert!(p[3].var.value().to_vec().iter().all(|&b| b == 0.0));
    assert_eq!(model.num_parameters(), 6 * 16 + 16 + 16 * 3 + 3);
    assert_eq!(model.describe(), "Mlp");
    // Switched off for the whole model, the same struct starts at zero.
    let plain = LayerInit::before(Activation::Relu).no_relu_bias();
    let fc1 = Linear::with_init(6, 16, &plain, &mut ChaCha8Rng::seed_from_u64(1));
    assert!(fc1
        .bias()
        .unwrap()
        .value()
        .to_vec()
        .iter()
        .all(|&b| b == 0.0));
}

#[test]
fn nested_lists_and_sequentials_name_every_parameter_and_buffer() {
    let net = Net::new(2);
    let mut want = Vec::new();
    for b in 0..2 {
        for p in ["fc.weight", "fc.bias", "bn.weight", "bn.bias"] {
            want.push(format!("blocks.{b}.{p}"));
        }
    }
    want.extend(["head.0.weight".to_string(), "head.0.bias".to_string()]);
    for b in 0..2 {
        for p in ["running_mean", "running_var", "num_batches_tracked"] {
            want.push(format!("blocks.{b}.bn.{p}"));
        }
    }
    assert_eq!(names(&net), want);
}

#[test]
fn buffers_go_into_the_checkpoint_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let net = Net::new(3);
    // Training forwards move the batch-norm statistics away from (0, 1).
    let x = Var::constant(Tensor::randn(&[16, 8], &mut ChaCha8Rng::seed_from_u64(4)));
    net.forward(&x);
    net.forward(&x);
    save_weights(&path, &net).unwrap();
    let fresh = Net::new(99);
    assert_ne!(values(&fresh), values(&net));
    load_weights(&path, &fresh).unwrap();
    assert_eq!(values(&fresh), values(&net));
    let tracked = &fresh.buffers()[2];
    assert_eq!(tracked.name, "blocks.0.bn.num_batches_tracked");
    assert_eq!(tracked.var.value().to_vec(), [2.0]);
}

#[test]
fn eval_mode_reaches_every_child() {
    let net = Net::new(5);
    let x = Var::constant(Tensor::randn(&[16, 8], &mut ChaCha8Rng::seed_from_u64(6)));
    net.set_training(false);
    // In eval, dropout is the identity and batch norm uses its running
    // statistics: two forwards agree and no statistic moves.
    let before = values(&net);
    let a = net.forward(&x).value().to_vec();
    let b = net.forward(&x).value().to_vec();
    assert_eq!(a, b);
    assert_eq!(values(&net), before);
    net.set_training(true);
    net.set_step(Step::new(1, 0));
    let c = net.forward(&x).value().to_vec();
    assert_ne!(c, a, "training mode is back: batch statistics and masks");
}

/// The outputs of steps `steps` of a fresh model seeded `seed` (each step one
/// forward after `set_step`).
fn outputs(seed: u64, steps: std::ops::Range<u64>) -> Vec<Vec<u32>> {
    let net = Net::new(7);
    let x = Var::constant(Tensor::ones(&[128, 8]));
    steps
        .map(|step| {
            net.set_step(Step::new(seed, step));
            let y = net.blocks[1].drop.forward(&net.blocks[0].forward(&x));
            y.value().to_vec().iter().map(|v| v.to_bits()).collect()
        })
        .collect()
}

#[test]
fn masks_depend_only_on_seed_step_and_path() {
    // A resumed run starts at step 3 with a fresh model: it draws the masks
    // the uninterrupted run drew at steps 3 and 4.
    let through = outputs(11, 0..5);
    assert_eq!(outputs(11, 3..5), through[3..]);
    assert_ne!(through[3], through[4], "each step draws new masks");
    assert_ne!(outputs(12, 3..5), through[3..], "the seed matters");
    // The two blocks' dropout layers draw different masks at one step.
    let net = Net::new(7);
    net.set_step(Step::new(11, 0));
    let ones = Var::constant(Tensor::ones(&[64, 8]));
    let first = net.blocks[0].drop.forward(&ones).value().to_vec();
    let second = net.blocks[1].drop.forward(&ones).value().to_vec();
    assert_ne!(first, second);
}

#[test]
fn masks_and_weights_are_the_same_on_one_or_two_threads() {
    let run = |threads| {
        ember_tensor::on_threads(threads, || {
            // Wide enough that dropout's mask fill splits across threads.
            let drop = Dropout::new(0.3);
            let model = Sequential::new()
                .add(Linear::new(8, 8192, &mut ChaCha8Rng::seed_from_u64(8)))
                .add(drop);
            model.set_step(Step::new(5, 2));
            let y = model.forward(&Var::constant(Tensor::ones(&[16, 8])));
            (values(&model), y.value().to_vec())
        })
    };
    let (w1, y1) = run(1);
    let (w2, y2) = run(2);
    assert_eq!(w1, w2);
    assert!(y1 == y2, "masks differ between 1 and 2 threads");
}
