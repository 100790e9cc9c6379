#!/usr/bin/env python3
"""Checks an ONNX export against histoseg: runs the exported graph in onnxruntime (CPU) on the
real tiles that `histoseg export --format onnx --reference IMAGE` wrote, and compares the class
probabilities with histoseg's own. Exits 1 when the largest absolute difference exceeds the
tolerance (pixels whose class flips are reported too).

    target/release/histoseg export --format onnx --model models/glands.histoseg \
        --out runs/glands.onnx --reference ../shared/data/glas/images/testA_1.png
    python scripts/onnx_check.py runs/glands.reference.json [--tolerance 1e-3]

Needs `onnxruntime`, `onnx` and `numpy` (pip).
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference", type=pathlib.Path)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()
    ref = json.loads(args.reference.read_text())
    folder = args.reference.parent
    model_path = folder / ref["model"]

    # the ONNX checker validates the graph against the operator schemas
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}

    x = np.fromfile(folder / ref["input"], dtype="<f4").reshape(ref["input_shape"])
    expected = np.fromfile(folder / ref["probabilities"], dtype="<f4").reshape(ref["probabilities_shape"])
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["probabilities"], {"image": x})

    diff = np.abs(got - expected)
    labels_differ = int((got.argmax(1) != expected.argmax(1)).sum())
    print(f"model {model_path.name}: {meta.get('name')} ({meta.get('classes')}), opset "
          f"{model.opset_import[0].version}, {len(model.graph.node)} nodes")
    print(f"onnxruntime {ort.__version__} CPU on {x.shape[0]} real tiles of {ref['image']}")
    print(f"max abs difference {diff.max():.3e}, mean {diff.mean():.3e}; "
          f"pixels whose class differs: {labels_differ} of {expected.shape[0] * expected.shape[2] * expected.shape[3]}")
    if not np.isfinite(got).all():
        print("FAIL: onnxruntime produced non-finite values")
        return 1
    if diff.max() > args.tolerance:
        print(f"FAIL: tolerance {args.tolerance:g}")
        return 1
    print(f"OK: within {args.tolerance:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
