//! A model of your own: a struct of layers, seeded batches of your own data,
//! an optimizer and the library's evaluation (README: "Using Ember from your
//! own crate"). Synthetic data, so it runs anywhere: `cargo run --example custom_model`.
use ember::prelude::*;

struct Net {
    hidden: Linear,
    drop: Dropout,
    out: Linear,
}

impl Module for Net {
    fn forward(&self, x: &Var) -> Var {
        self.out
            .forward(&self.drop.forward(&self.hidden.forward(x).relu()))
    }
    fn visit(&self, m: &mut Members) {
        m.child("hidden", &self.hidden);
        m.child("drop", &self.drop);
        m.child("out", &self.out);
    }
}

fn main() {
    let (seed, mut rng) = (0, ChaCha8Rng::seed_from_u64(0));
    let x = Tensor::randn(&[1024, 4], &mut rng); // label: is x0 + x1 > 0?
    let labels = (0..1024).map(|i| usize::from(x.get(&[i, 0]) + x.get(&[i, 1]) > 0.0));
    let data = TensorDataset::new(x.clone(), labels.collect());
    let model = Net {
        hidden: Linear::with_init(4, 32, &LayerInit::before(Activation::Relu), &mut rng),
        drop: Dropout::new(0.1),
        out: Linear::new(32, 2, &mut rng),
    };
    let mut optimizer = Adam::new(model.parameters(), AdamConfig::default());
    let mut run = TrainingState::new(seed); // epoch and step, saved with checkpoints
    for epoch in 0..5 {
        for batch in data.epoch(32, seed, epoch) {
            model.set_step(run.next_step()); // dropout masks: f(seed, step, path)
            let logits = model.forward(&Var::constant(batch.inputs));
            let loss = cross_entropy(&logits, &batch.labels, Reduction::Mean);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
        run.end_epoch();
        let e = evaluate(&model, &data, 256); // eval mode, no graph; mode restored
        println!(
            "epoch {epoch}: loss {:.4}, accuracy {:.1}%",
            e.loss,
            100.0 * e.accuracy
        );
    }
}
