#!/usr/bin/env python3
"""Check that an Ember checkpoint loads into the equivalent PyTorch model.

Not run in CI (it needs Python packages). Produce the files, then run:

    cargo test -p ember-layers --test checkpoint writes_a_file_for_the_pytorch_check
    pip install safetensors numpy        # and torch, for the PyTorch half
    python3 docs/check_pytorch_load.py target/tmp/pytorch_check

The test writes `model.safetensors`, a checkpoint of the Ember model
`Linear(5→7) → BatchNorm1d(7) → ReLU → Linear(7→3)` (with Adam state), and
`io.json`, an input batch with Ember's eval-mode output. This script

1. reads the file with `safetensors.numpy` and checks names, dtypes, shapes
   (`"0.weight"` is `(out, in)`, as `nn.Linear` stores it; counts, that is
   `num_batches_tracked` and the optimizer's `.step` entries, are int64
   scalars, everything else float32) and metadata;
2. recomputes the forward pass with NumPy from PyTorch's definitions;
3. if `torch` is installed, loads the file exactly as a PyTorch user would,
   with `safetensors.torch.load_file` and `load_state_dict` (strict), into
   the same `nn.Sequential`, checks every tensor has the dtype of PyTorch's
   own `state_dict()` (no `.float()` or `.long()` anywhere), and compares
   its predictions with Ember's.

The residual net of `examples/mnist_resnet.rs` is checked the same way, on
real MNIST, from a file written by its `--save`:

    cargo run --release --example mnist_resnet -- --epochs 1 --json --save resnet.safetensors
    python3 docs/check_pytorch_load.py resnet resnet.safetensors /path/to/mnist ACCURACY

with ACCURACY the `test_accuracy` of the example's JSON line (a fraction):
the file must load with `load_state_dict(strict=True)` into the mirrored
PyTorch module, and its eval-mode test accuracy must be within 0.1 point.

The one step an Ember checkpoint needs in PyTorch is to drop the optimizer
state stored beside the model under the `optimizer.` prefix (a file written
by `ember_layers::checkpoint::save_weights` has none).
"""

import json
import pathlib
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

TOLERANCE = 1e-5


def model_state(tensors):
    """The entries PyTorch's load_state_dict expects: all but optimizer state."""
    return {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}


def numpy_forward(sd, x, bn_eps=1e-5):
    """nn.Sequential(Linear, BatchNorm1d (eval), ReLU, Linear) in NumPy."""
    h = x @ sd["0.weight"].T + sd["0.bias"]
    h = (h - sd["1.running_mean"]) / np.sqrt(sd["1.running_var"] + bn_eps)
    h = h * sd["1.weight"] + sd["1.bias"]
    h = np.maximum(h, 0.0)
    return h @ sd["3.weight"].T + sd["3.bias"]


def main(folder):
    folder = pathlib.Path(folder)
    path = str(folder / "model.safetensors")
    io = json.loads((folder / "io.json").read_text())
    x = np.asarray(io["input"], dtype=np.float32).reshape(io["batch"], -1)
    expected = np.asarray(io["output"], dtype=np.float32).reshape(io["batch"], -1)

    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "ember", meta
    print(f"metadata: format_version={meta['format_version']} epoch={meta['epoch']} step={meta['step']}")

    tensors = load_file(path)
    sd = model_state(tensors)
    for name, t in sorted(tensors.items()):
        is_count = name.endswith(".num_batches_tracked") or (
            name.startswith("optimizer.") and name.endswith(".step"))
        if is_count:
            assert t.dtype == np.int64 and t.shape == () and t >= 0, (name, t.dtype, t.shape)
        else:
            assert t.dtype == np.float32, (name, t.dtype)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes == {
        "0.weight": (7, 5), "0.bias": (7,),
        "1.weight": (7,), "1.bias": (7,),
        "1.running_mean": (7,), "1.running_var": (7,), "1.num_batches_tracked": (),
        "3.weight": (3, 7), "3.bias": (3,),
    }, shapes
    print(f"{len(sd)} model tensors with PyTorch names and shapes, "
          f"{len(tensors) - len(sd)} optimizer tensors; counts int64, the rest float32")

    y = numpy_forward(sd, x)
    err = float(np.max(np.abs(y - expected)))
    print(f"NumPy forward vs Ember: max |difference| = {err:.3g}")
    assert err < TOLERANCE

    try:
        import torch
        from safetensors.torch import load_file as torch_load_file
    except ImportError:
        print("torch is not installed: skipped the load_state_dict check")
        return

    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.ReLU(), torch.nn.Linear(7, 3)
    )
    state = model_state(torch_load_file(path))
    own = model.state_dict()
    for name, t in state.items():
        assert t.dtype == own[name].dtype, (name, t.dtype, own[name].dtype)
    model.load_state_dict(state)  # strict: every name and shape must match
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    err = float(np.max(np.abs(y - expected)))
    print(f"torch {torch.__version__}: load_state_dict + forward vs Ember: max |difference| = {err:.3g}")
    assert err < TOLERANCE
    print("OK: PyTorch loads the Ember checkpoint and predicts the same")


def resnet_net(nn, F):
    """The PyTorch module that examples/mnist_resnet.rs mirrors."""

    class Block(nn.Module):
        def __init__(s, c):
            super().__init__()
            s.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False); s.bn1 = nn.BatchNorm2d(c)
            s.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False); s.bn2 = nn.BatchNorm2d(c)

        def forward(s, x):
            return F.relu(x + s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x))))))

    class Net(nn.Module):
        def __init__(s):
            super().__init__()
            s.stem = nn.Conv2d(1, 32, 3, padding=1, bias=False); s.bn = nn.BatchNorm2d(32)
            s.blocks = nn.Sequential(Block(32), Block(32)); s.head = nn.Linear(32, 10)

        def forward(s, x):
            x = F.max_pool2d(F.relu(s.bn(s.stem(x))), 2)
            return s.head(s.blocks(x).mean((2, 3)))

    return Net()


def read_idx(path):
    """An MNIST IDX file (gzipped or not) as a NumPy array."""
    import gzip

    raw = pathlib.Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{stem}(.gz) in {folder}")


def numpy_resnet_forward(sd, x, bn_eps=1e-5):
    """The resnet in eval mode, in NumPy (x: (N, 1, 28, 28))."""

    def conv3(h, w):  # 3x3, stride 1, padding 1, no bias
        n, c, hh, ww = h.shape
        p = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = np.stack([p[:, :, i:i + hh, j:j + ww] for i in range(3) for j in range(3)], 2)
        return np.einsum("nckhw,ock->nohw", cols, w.reshape(w.shape[0], c, 9), optimize=True)

    def bn(h, prefix):
        g = lambda k: sd[f"{prefix}.{k}"][None, :, None, None]
        return (h - g("running_mean")) / np.sqrt(g("running_var") + bn_eps) * g("weight") + g("bias")

    relu = lambda h: np.maximum(h, 0.0)
    h = relu(bn(conv3(x, sd["stem.weight"]), "bn"))
    n, c, hh, ww = h.shape
    h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    for b in range(2):
        p = f"blocks.{b}"
        r = relu(bn(conv3(h, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
        h = relu(h + bn(conv3(r, sd[f"{p}.conv2.weight"]), f"{p}.bn2"))
    return h.mean(axis=(2, 3)) @ sd["head.weight"].T + sd["head.bias"]


def check_resnet(checkpoint, mnist_dir, ember_accuracy):
    """Strict load of mnist_resnet's --save file; eval-mode test accuracy
    within 0.1 point of Ember's (`test_accuracy` of its --json line).
    Without torch, the same accuracy from a NumPy forward pass."""
    mnist_dir = pathlib.Path(mnist_dir)
    images = read_idx(find_idx(mnist_dir, "t10k-images-idx3-ubyte"))
    labels = read_idx(find_idx(mnist_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x = (images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    sd = model_state(load_file(checkpoint))
    right = 0
    for i in range(0, len(labels), 1000):
        pred = numpy_resnet_forward(sd, x[i:i + 1000]).argmax(1)
        right += int((pred == labels[i:i + 1000]).sum())
    accuracy = right / len(labels)
    print(f"NumPy: resnet test accuracy {100 * accuracy:.2f} % (Ember: {100 * ember_accuracy:.2f} %)")
    assert abs(accuracy - ember_accuracy) <= 0.001, (accuracy, ember_accuracy)
    try:
        import torch
        import torch.nn.functional as F
        from safetensors.torch import load_file as torch_load_file
    except (ImportError, OSError, ValueError) as e:  # a CUDA wheel without its libraries: ValueError
        print(f"torch does not import ({e}): skipped the load_state_dict check")
        return

    model = resnet_net(torch.nn, F)
    state = model_state(torch_load_file(checkpoint))
    model.load_state_dict(state, strict=True)  # every name and shape must match
    model.eval()
    x = torch.from_numpy(x)
    right = 0
    with torch.no_grad():
        for i in range(0, len(labels), 1000):
            pred = model(x[i:i + 1000]).argmax(1).numpy()
            right += int((pred == labels[i:i + 1000]).sum())
    accuracy = right / len(labels)
    print(f"torch {torch.__version__}: resnet test accuracy {100 * accuracy:.2f} % "
          f"(Ember: {100 * ember_accuracy:.2f} %)")
    assert abs(accuracy - ember_accuracy) <= 0.001, (accuracy, ember_accuracy)
    print("OK: PyTorch loads the Ember resnet strictly and scores the same")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "resnet":
        # python3 docs/check_pytorch_load.py resnet RUN.safetensors MNIST_DIR ACCURACY
        check_resnet(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/pytorch_check")
