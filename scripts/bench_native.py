#!/usr/bin/env python3
"""Native CPU benchmark (not a test): histoseg on burn flex against onnxruntime CPU on the same
network, the ONNX export of the same model file, on the same real GlaS tiles.

Prints a Markdown table: ms/tile, tiles/s, achieved GFLOP/s (FLOPs per tile counted from the
ONNX graph: 2 x multiply-adds of every Conv, plus the elementwise work, which is small) and peak
resident memory of the process. Every configuration runs in a fresh process so its peak memory is
its own.

    cargo build --release --features cli
    target/pyenv/bin/python scripts/bench_native.py models/glands.histoseg [--iters 5]
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
HISTOSEG = ROOT / "target/release/histoseg"
DATA = pathlib.Path(os.environ.get("HISTOSEG_DATA", ROOT.parent / "shared/data"))


def conv_flops(onnx_path):
    """FLOPs of one tile (batch 1): 2 * MACs of every Conv, from ONNX shape inference."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            w = inits[node.input[1]]  # [cout, cin/group, kh, kw]
            total += 2 * out[1] * out[2] * out[3] * w[1] * w[2] * w[3]
    return total


def run_ort(onnx_path, tiles_path, tile, batch, iters):
    """In a child process: onnxruntime CPU on `batch` real tiles, `iters` timed runs."""
    import numpy as np
    import onnxruntime as ort

    tiles = np.fromfile(tiles_path, dtype="<f4").reshape(-1, 3, tile, tile)
    x = np.ascontiguousarray(np.concatenate([tiles] * (batch // len(tiles) + 1))[:batch])
    opts = ort.SessionOptions()
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    session.run(["probabilities"], {"image": x})
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        session.run(["probabilities"], {"image": x})
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = batch * iters
    print(json.dumps({"engine": f"onnxruntime {ort.__version__} CPU", "tile": tile, "batch": batch,
                      "warmup_ms": warm * 1e3, "ms_per_tile": seconds * 1e3 / n, "tiles_per_s": n / seconds,
                      "peak_rss_mb": peak, "threads": opts.intra_op_num_threads or os.cpu_count()}))


def child(args):
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=pathlib.Path)
    ap.add_argument("--tiles", default="128,256")
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--ort-worker", nargs=4, metavar=("ONNX", "TILES", "TILE", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ort_worker:
        onnx_path, tiles_path, tile, batch = args.ort_worker
        run_ort(onnx_path, tiles_path, int(tile), int(batch), args.iters)
        return 0

    image = DATA / "glas/images/testA_1.png"
    work = pathlib.Path(tempfile.mkdtemp(prefix="histoseg-bench-"))
    rows = []
    for tile in [int(t) for t in args.tiles.split(",")]:
        onnx_path = work / f"model-{tile}.onnx"
        subprocess.run([HISTOSEG, "export", "--format", "onnx", "--checkpoint", args.model, "--out", onnx_path,
                        "--tile", str(tile), "--reference", image], check=True, capture_output=True)
        tiles_path = work / f"model-{tile}.reference-input.f32"
        flops = conv_flops(onnx_path)
        for batch in [int(b) for b in args.batches.split(",")]:
            burn = child([HISTOSEG, "bench", "--model", args.model, "--tile", str(tile), "--batch", str(batch),
                          "--iters", str(args.iters)])
            ort_r = child([sys.executable, __file__, str(args.model), "--iters", str(args.iters),
                           "--ort-worker", str(onnx_path), str(tiles_path), str(tile), str(batch)])
            for r in (burn, ort_r):
                r["gflops"] = flops * r["tiles_per_s"] / 1e9
            rows.append((tile, batch, flops, burn, ort_r))
            print(f"  done: tile {tile} batch {batch}", file=sys.stderr)

    print(f"Native CPU, {os.cpu_count()} cores, model {args.model.name}, {args.iters} timed batches after a warm-up, "
          f"real GlaS tiles ({image.name})\n")
    print("| tile | batch | GFLOP/tile | burn flex ms/tile | tiles/s | GFLOP/s | peak MB "
          "| onnxruntime ms/tile | tiles/s | GFLOP/s | peak MB | flex time / ort time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tile, batch, flops, b, o in rows:
        print(f"| {tile} | {batch} | {flops / 1e9:.2f} | {b['ms_per_tile']:.0f} | {b['tiles_per_s']:.2f} | {b['gflops']:.1f} "
              f"| {b['peak_rss_mb']:.0f} | {o['ms_per_tile']:.0f} | {o['tiles_per_s']:.2f} | {o['gflops']:.1f} "
              f"| {o['peak_rss_mb']:.0f} | {b['ms_per_tile'] / o['ms_per_tile']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
