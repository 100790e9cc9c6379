#!/usr/bin/env python3
"""Prints issue 13's seeded ablation table (markdown) from results/ablation/, written by
scripts/ablation_seeds.sh: for each UNet, training mode and label fraction, the mean ± sample
standard deviation over the seeds that have finished, then the paired pretrained − random
differences. tests/readme_figures.rs checks the README's copy of the table against the same files."""
import json
import math
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent / "results" / "ablation"
INITS = [("pre", "diffusion-pretrained (809 steps)"), ("rand", "random init")]
MODES = [("frozen", "frozen"), ("finetune", "fine-tuned")]


def runs(init, mode, labels):
    """{seed: (validation Dice, test report)} of one cell."""
    out = {}
    for f in sorted(root.glob(f"{init}-{mode}-{labels}-s*.json")):
        seed = int(f.stem.rsplit("-s", 1)[1])
        log = f.with_suffix(".log").read_text(errors="replace")
        val = float(re.findall(r"best validation Dice ([0-9.]+)", log)[-1])
        out[seed] = (val, json.loads(f.read_text()))
    return out


def cell(values, digits=3):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


print("| UNet | training | labels | seeds | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) |")
print("|---|---|---|---|---|---|---|---|---|")
for labels in (10, 100):
    for mode, mode_name in MODES:
        for init, init_name in INITS:
            r = runs(init, mode, labels)
            if not r:
                print(f"| {init_name} | {mode_name} | {labels}% | 0 | not run yet | | | | |")
                continue
            v = list(r.values())
            print(f"| {init_name} | {mode_name} | {labels}% | {len(r)} | {cell([x[0] for x in v])} "
                  f"| {cell([x[1]['pixel_dice'] for x in v])} | {cell([x[1]['object_f1'] for x in v])} "
                  f"| {cell([x[1]['object_dice'] for x in v])} | {cell([x[1]['object_hausdorff'] for x in v], 1)} |")
print()
for labels in (10, 100):
    for mode, mode_name in MODES:
        pre, rand = runs("pre", mode, labels), runs("rand", mode, labels)
        seeds = sorted(set(pre) & set(rand))
        if not seeds:
            continue
        gain = [100 * (pre[s][1]["pixel_dice"] - rand[s][1]["pixel_dice"]) for s in seeds]
        print(f"- {mode_name}, {labels}% of labels: pretrained − random test pixel Dice, paired by seed "
              f"({', '.join(map(str, seeds))}): {cell(gain, 1)} points")
