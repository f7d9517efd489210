"""PyTorch's side of Ember's `train_throughput` example (not run in CI).

The same models, batches and optimizers as examples/train_throughput.rs:
the classic MLP (784-512-512-10, ReLU, dropout 0.2, RMSprop as Keras has
it) at batch 128, the small MLP (784-128-10, SGD lr 0.1) at batch 64, and
the convnet of mnist_cnn (conv 32 3x3 - conv 64 3x3 - max-pool 2 - dropout
0.25 - dense 128 - dropout 0.5 - 10, Adam lr 0.001) at batch 64, on
synthetic inputs, timed over repeated training steps after a warm-up (the
convnet over a quarter as many steps, as Ember times it). Prints one line
per (model, threads) with the median samples per second over 15 rounds.

    python docs/bench/pytorch_train_step.py            # needs torch
"""
import statistics
import time

import torch
from torch import nn


def classic():
    return nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 10),
    )


def small():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


def measure(make_model, make_opt, batch, steps=40, rounds=15, shape=(784,)):
    torch.manual_seed(0)
    model = make_model()
    opt = make_opt(model.parameters())
    x = torch.rand(batch, *shape)
    y = torch.arange(batch) % 10
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(steps):
        step()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates)


if __name__ == "__main__":
    rmsprop = lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7)
    sgd = lambda p: torch.optim.SGD(p, lr=0.1)
    adam = lambda p: torch.optim.Adam(p, lr=1e-3)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"pytorch {torch.__version__} classic_mlp_b128 {threads}t: "
              f"{measure(classic, rmsprop, 128):.0f} samples/s")
        print(f"pytorch {torch.__version__} small_mlp_b64 {threads}t: "
              f"{measure(small, sgd, 64):.0f} samples/s")
        print(f"pytorch {torch.__version__} cnn_b64 {threads}t: "
              f"{measure(cnn, adam, 64, steps=10, shape=(1, 28, 28)):.0f} samples/s")
