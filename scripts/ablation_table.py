#!/usr/bin/env python3
"""Prints the GlaS ablation table (markdown) from runs/ablation/*.json written by scripts/ablation.sh."""
import json
import pathlib
import re

ROWS = [
    ("pre-100", "diffusion-pretrained", "100%", "50", "0,1", "frozen"),
    ("rand-100", "random init", "100%", "50", "0,1", "frozen"),
    ("pre-10", "diffusion-pretrained", "10%", "50", "0,1", "frozen"),
    ("rand-10", "random init", "10%", "50", "0,1", "frozen"),
    ("pre-t10", "diffusion-pretrained", "100%", "10", "0,1", "frozen"),
    ("pre-t200", "diffusion-pretrained", "100%", "200", "0,1", "frozen"),
    ("pre-l0", "diffusion-pretrained", "100%", "50", "0", "frozen"),
    ("pre-finetune", "diffusion-pretrained", "100%", "50", "0,1", "fine-tune"),
]
root = pathlib.Path(__file__).resolve().parent.parent / "runs" / "ablation"
print("| row | UNet | labels | t | levels | training | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, init, labels, t, levels, mode in ROWS:
    f = root / f"{name}.json"
    if not f.exists():
        print(f"| {name} | {init} | {labels} | {t} | {levels} | {mode} | not run | | | | |")
        continue
    r = json.loads(f.read_text())
    log = (root / f"{name}.log").read_text(errors="replace")
    m = re.search(r"validation \(\d+ images\): pixel Dice ([0-9.]+)", log)
    val = f"{float(m.group(1)):.3f}" if m else "?"
    print(f"| {name} | {init} | {labels} | {t} | {levels} | {mode} | {val} | {r['pixel_dice']:.3f} | {r['object_f1']:.3f} "
          f"| {r['object_dice']:.3f} | {r['object_hausdorff']:.1f} |")
