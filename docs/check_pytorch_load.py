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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/pytorch_check")
