#!/usr/bin/env python3
"""Prints issue 13's seeded ablation tables (markdown) from results/ablation/, written by
scripts/ablation_seeds.sh: for each UNet, training mode and label fraction, the mean ± sample
standard deviation over the seeds that have finished, then the paired pretrained − random
differences; then the feature rows (timesteps and decoder levels under a frozen head, with raw and
with standardised features); then the
rows of both UNets with the features chosen there, paired by seed, with raw and with standardised
features; then the nuclei head rows (2 classes against background / nucleus / boundary, on
MoNuSeg); then both UNets, frozen and fine-tuned, under the best standardised feature row; then
the fine-tuned 10% cells again with the UNet of the CPU pretraining that went on from 809 steps
(results/cpu-pretrain/finetune-STEP/, one folder per checkpoint), against random init.
tests/readme_figures.rs checks the README's copy of the tables against the same files.
With --readme it writes them between the README's ablation-seeds, ablation-features,
ablation-chosen, ablation-standardised, ablation-instances, ablation-best and ablation-cpu-finetune
markers. With --by-seed it prints the last table's cells seed by seed instead."""
import json
import math
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "results" / "ablation"
INITS = [("pre", "diffusion-pretrained (809 steps)"), ("rand", "random init")]
MODES = [("frozen", "frozen"), ("finetune", "fine-tuned")]


# the best timestep with the best levels, both chosen by validation in the feature rows; its row is
# run standardised only, and both UNets are compared again under it
BEST_FEATURES = ("-t10-l0.1.2", "t = 10, levels 0, 1, 2")
# the cell's name suffix (scripts/ablation_seeds.sh), and what it changes
VARIANTS = [("", "t = 50, levels 0, 1 (the table above)"), ("-t10", "t = 10"), ("-t200", "t = 200"),
            ("-t10.50.200", "t = 10, 50 and 200 side by side"), ("-l0", "level 0"), ("-l0.1.2", "levels 0, 1, 2"),
            ("-l0.1.2.3", "levels 0, 1, 2, 3")]
# each again under a head that standardises each channel first (`-z`, `--standardize-features`):
# the scale of the features no longer sets how fast the head learns from them
VARIANTS = ([(v, f"{name} (`{v}`)" if v else name) for v, name in VARIANTS]
            + [(v + "-z", f"{name.replace(' (the table above)', '')}, standardised (`{v}-z`)") for v, name in VARIANTS]
            + [(BEST_FEATURES[0] + "-z", f"{BEST_FEATURES[1]}, standardised (`{BEST_FEATURES[0]}-z`)")])
# the features chosen by validation in the feature rows (the highest seed-0 validation mean Dice),
# on which both UNets are compared again
CHOSEN = ("-t10", "t = 10")
# the chosen features again, under a head that standardises each channel first
# (`--standardize-features`): a diffusion-pretrained UNet's features spread a third as wide
STANDARDISED = (CHOSEN[0] + "-z", CHOSEN[1] + ", standardised by the head")
# the best feature row by validation, standardised: the two best axes together
BEST = (BEST_FEATURES[0] + "-z", BEST_FEATURES[1] + ", standardised by the head")
# the fine-tuned 10% cells rerun with the EMA UNet of the CPU pretraining after STEP more steps
# (`PRETRAINED=../runs/cpu-ema-STEP.histoseg ABLATION_OUT=results/cpu-pretrain/finetune-STEP
# HISTOSEG_RUNS=../runs/ftSTEP scripts/ablation_seeds.sh pre-finetune-10-s0 ...`)
CPU_FINETUNE = sorted(root.parent.joinpath("cpu-pretrain").glob("finetune-*"), key=lambda d: int(d.name.split("-")[1]))
HEADS = [("-n", "2 classes: background, nucleus"), ("-nb2", "instance head: background, nucleus, nucleus boundary (2 px)")]


# what a run's log says it kept its weights by: since session 29 the mean Dice over all classes,
# background included; before, the object classes' Dice alone (on which a head that calls every
# pixel gland scores 0.65); the old runs are in kept-by-object-dice/
KEPT_BY = {"mean ": "all classes", "": "object classes"}
OLD_RULE = root / "kept-by-object-dice"


def runs(init, mode, labels, variant="", folder=root):
    """{seed: (validation Dice, what the weights were kept by, test report)} of one cell."""
    out = {}
    for f in sorted(folder.glob(f"{init}-{mode}-{labels}-s*{variant}.json")):
        seed = f.stem[len(f"{init}-{mode}-{labels}-s"):len(f.stem) - len(variant)]
        if not seed.isdigit():
            continue
        seed = int(seed)
        log = f.with_suffix(".log").read_text(errors="replace")
        kept, val = re.findall(r"best validation (mean )?Dice ([0-9.]+)", log)[-1]
        out[seed] = (float(val), KEPT_BY[kept], json.loads(f.read_text()))
    return out


def row(r, background=False):
    """The seeds and mean ± sd cells of one row; with `background` also the background class's
    test Dice, which is 0 for a head that calls every pixel gland."""
    v = list(r.values())
    out = (f"{len(r)} | {kept_by(v)} | {cell([x[0] for x in v])} | {cell([x[2]['pixel_dice'] for x in v])} "
           f"| {cell([x[2]['object_f1'] for x in v])} | {cell([x[2]['object_dice'] for x in v])} "
           f"| {cell([x[2]['object_hausdorff'] for x in v], 1)} |")
    return out + f" {cell([x[2]['per_class'][0]['dice'] for x in v])} |" if background else out


def kept_by(v):
    """What every seed of a row kept its weights by; a row never mixes the two."""
    kept = {x[1] for x in v}
    assert len(kept) == 1, f"a row mixes runs kept by {kept}"
    return kept.pop()


def cell(values, digits=3):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def pixel_dice_gain(pre, rand):
    """The seeds both runs have, and pretrained − random test pixel Dice at each, in points."""
    seeds = sorted(set(pre) & set(rand))
    assert {pre[s][1] for s in seeds} == {rand[s][1] for s in seeds}, "paired runs are kept by the same score"
    return seeds, [100 * (pre[s][2]["pixel_dice"] - rand[s][2]["pixel_dice"]) for s in seeds]


def paired(mode, labels, variant=""):
    """The line of pretrained − random test pixel Dice, paired by seed, if a seed has both."""
    seeds, gain = pixel_dice_gain(runs("pre", mode, labels, variant), runs("rand", mode, labels, variant))
    if seeds:
        print(f"- {dict(MODES)[mode]}, {labels}% of labels: pretrained − random test pixel Dice, paired by seed "
              f"({', '.join(map(str, seeds))}): {cell(gain, 1)} points")

lines = []
print = lines.append  # noqa: A001 (the tables are collected, then printed or written)
print("| UNet | training | labels | seeds | validation Dice over | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for labels in (10, 100):
    for mode, mode_name in MODES:
        for init, init_name in INITS:
            r = runs(init, mode, labels)
            if not r:
                print(f"| {init_name} | {mode_name} | {labels}% | 0 | not run yet | | | | | |")
                continue
            print(f"| {init_name} | {mode_name} | {labels}% | {row(r)}")
print("")
for labels in (10, 100):
    for mode, mode_name in MODES:
        paired(mode, labels)
print("")
print("| features under the frozen head (pretrained UNet, 10% of labels) | seeds | validation Dice over | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) | test background Dice |")
print("|---|---|---|---|---|---|---|---|---|")
feature_rows = {variant: runs("pre", "frozen", 10, variant) for variant, _ in VARIANTS}
for variant, name in VARIANTS:
    r = feature_rows[variant]
    print(f"| {name} | {row(r, True)}" if r else f"| {name} | 0 | not run yet | | | | | | |")
# each row against t = 50, levels 0, 1 under the same head (raw or standardised), paired by seed:
# the seeds share their training and validation images, so a paired difference is what separates
# rows whose means are closer than the seeds' spread
for variant, name in VARIANTS:
    base = "-z" if variant.endswith("-z") else ""
    r, b = feature_rows[variant], feature_rows[base]
    seeds = sorted(set(r) & set(b))
    if variant != base and len(seeds) > 1:
        gain = [100 * (r[s][0] - b[s][0]) for s in seeds]
        print(f"- {name}: validation Dice − t = 50, levels 0, 1{', standardised' if base else ''}, paired by seed "
              f"({', '.join(map(str, seeds))}): {cell(gain, 1)} points ({', '.join(f'{g:+.1f}' for g in gain)})")



def both_unets_frozen(variant, name):
    """The table of both UNets, frozen at 10% of labels, under one feature variant, paired by seed."""
    print("")
    print(f"| UNet, frozen, features {name} (`{variant}`), 10% of labels | seeds | validation Dice over | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) | test background Dice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for init, init_name in INITS:
        r = runs(init, "frozen", 10, variant)
        print(f"| {init_name} | {row(r, True)}" if r else f"| {init_name} | 0 | not run yet | | | | | | |")
    paired("frozen", 10, variant)


def both_unets_both_modes(variant, name):
    """The table of both UNets, frozen and fine-tuned at 10% of labels, under one feature variant,
    paired by seed."""
    print("")
    print(f"| UNet, features {name} (`{variant}`), 10% of labels | training | seeds | validation Dice over | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) | test background Dice |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, mode_name in MODES:
        for init, init_name in INITS:
            r = runs(init, mode, 10, variant)
            print(f"| {init_name} | {mode_name} | {row(r, True)}" if r else f"| {init_name} | {mode_name} | 0 | not run yet | | | | | | |")
    for mode, _ in MODES:
        paired(mode, 10, variant)


both_unets_frozen(*CHOSEN)
both_unets_both_modes(*STANDARDISED)
print("")
print("| nuclei head (pretrained UNet fine-tuned, all MoNuSeg training labels) | seeds | validation Dice over | validation Dice | test pixel Dice | AJI |")
print("|---|---|---|---|---|---|")
# the runs kept by the mean Dice over all classes first, then, while they have fewer seeds, the
# ones kept by the object classes' Dice before session 29 (kept-by-object-dice/)
for folder in (root, OLD_RULE):
    for variant, name in HEADS:
        r = runs("pre", "finetune", 100, variant, folder)
        v = list(r.values())
        if r:
            print(f"| {name} (`{variant}`) | {len(r)} | {kept_by(v)} | {cell([x[0] for x in v])} | {cell([x[2]['pixel_dice'] for x in v])} "
                  f"| {cell([x[2]['aji'] for x in v])} |")
        elif folder == root:
            print(f"| {name} (`{variant}`) | 0 | not run yet | | | |")
# both UNets again under the best standardised feature row (t = 10, levels 0-2), frozen and fine-tuned
both_unets_both_modes(*BEST)

# fine-tuned at 10% of labels with the CPU-pretrained UNets, against the 809-step one and random init
print("")
print("| UNet, fine-tuned, 10% of labels | seeds | validation Dice over | validation Dice | test pixel Dice | object F1 | object Dice | object Hausdorff (px) | test background Dice |")
print("|---|---|---|---|---|---|---|---|---|")
rand = runs("rand", "finetune", 10)
cpu = [(f"diffusion-pretrained (809 + {d.name.split('-')[1]} steps, CPU)", runs("pre", "finetune", 10, folder=d)) for d in CPU_FINETUNE]
finetune_10 = [(INITS[0][1], runs("pre", "finetune", 10))] + cpu + [(INITS[1][1], rand)]
for name, r in finetune_10:
    print(f"| {name} | {row(r, True)}" if r else f"| {name} | 0 | not run yet | | | | | | |")
for name, pre in cpu:
    seeds, gain = pixel_dice_gain(pre, rand)
    if seeds:
        print(f"- {name}: pretrained − random test pixel Dice, paired by seed ({', '.join(map(str, seeds))}): "
              f"{cell(gain, 1)} points ({', '.join(f'{g:+.1f}' for g in gain)})")

text = "\n".join(lines) + "\n"
if "--readme" in sys.argv[1:]:
    main, features, chosen, standardised, heads, best, cpu_finetune = text.split("\n\n| ")
    readme = root.parent.parent / "README.md"
    r = readme.read_text()
    blocks = (("ablation-seeds", main + "\n"), ("ablation-features", "| " + features + "\n"),
              ("ablation-chosen", "| " + chosen.rstrip("\n") + "\n"),
              ("ablation-standardised", "| " + standardised.rstrip("\n") + "\n"), ("ablation-instances", "| " + heads.rstrip("\n") + "\n"), ("ablation-best", "| " + best.rstrip("\n") + "\n"),
              ("ablation-cpu-finetune", "| " + cpu_finetune))
    for marker, block in blocks:
        head, rest = r.split(f"<!-- {marker} -->\n", 1)
        r = head + f"<!-- {marker} -->\n" + block + "<!-- /" + rest.split("<!-- /", 1)[1]
    readme.write_text(r)
elif "--by-seed" in sys.argv[1:]:
    # the last table's cells seed by seed, which the README's prose compares between checkpoints
    sys.stdout.write("| UNet, fine-tuned, 10% of labels | seed | test pixel Dice | object F1 | object Dice | object Hausdorff (px) |\n|---|---|---|---|---|---|\n")
    for name, r in finetune_10:
        for seed, (_, _, test) in sorted(r.items()):
            sys.stdout.write(f"| {name} | {seed} | {test['pixel_dice']:.4f} | {test['object_f1']:.4f} | {test['object_dice']:.4f} | {test['object_hausdorff']:.1f} |\n")
else:
    sys.stdout.write(text)
