//! The README's results tables say what the shipped model files say: every figure in the rows of
//! "Results" and "int8 against f32" is checked against the test-set metrics that `histoseg
//! export` recorded in the model's manifest; the few-shot and seeded ablation tables are checked
//! against the result files their scripts wrote, and the CPU pretraining block against its logs.
//! A stale or garbled row fails here.

use histoseg::weights::ModelFile;
use serde_json::Value;

fn manifest_metrics(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name);
    let file = ModelFile::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    file.manifest.metrics["test"].clone()
}

/// The cells of the README table row that starts with `start`, within the section `heading`.
fn row(readme: &str, heading: &str, start: &str) -> Vec<String> {
    let section = readme.split(heading).nth(1).unwrap_or_else(|| panic!("README has no '{heading}'"));
    let line = section.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no row '{start}' under '{heading}'"));
    line.trim_matches('|').split('|').map(|c| c.trim().replace("**", "")).collect()
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or_else(|| panic!("manifest metric {path:?} is missing"))
}

#[test]
fn results_tables_match_the_shipped_model_files() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let heading = "### Results";
    let int8 = "**int8 against f32**";

    let g = manifest_metrics("glands.histoseg");
    let n = manifest_metrics("nuclei.histoseg");
    for m in [&g, &n] {
        assert!(num(m, &["dice_change"]).abs() <= 0.005, "the int8 file is within half a Dice point of its f32 network: {m}");
    }
    let cells = row(&readme, heading, "| glands");
    assert_eq!(cells[1], format!("GlaS testA, {} images", g["images"]));
    assert_eq!(cells[2], format!("{:.3}", num(&g, &["int8", "pixel_dice"])), "pixel Dice");
    assert_eq!(cells[3], format!("{:.3}", num(&g, &["int8", "objects", "object_f1"])), "object F1");
    assert_eq!(cells[4], format!("{:.3}", num(&g, &["int8", "objects", "object_dice"])), "object Dice");
    assert_eq!(cells[5], format!("{:.1} px", num(&g, &["int8", "objects", "object_hausdorff"])), "object Hausdorff");
    let cells = row(&readme, int8, "| glands");
    assert_eq!(cells[1..4], [format!("{:.4}", num(&g, &["f32", "pixel_dice"])), format!("{:.4}", num(&g, &["int8", "pixel_dice"])), format!("{:+.4}", num(&g, &["dice_change"]))]);

    let cells = row(&readme, heading, "| nuclei");
    assert_eq!(cells[1], format!("MoNuSeg test, {} images", n["images"]));
    assert_eq!(cells[2], format!("{:.3}", num(&n, &["int8", "pixel_dice"])), "pixel Dice");
    assert_eq!(cells[6], format!("{:.3}", num(&n, &["int8", "objects", "aji"])), "AJI");
    let cells = row(&readme, int8, "| nuclei");
    assert_eq!(cells[1..4], [format!("{:.4}", num(&n, &["f32", "pixel_dice"])), format!("{:.4}", num(&n, &["int8", "pixel_dice"])), format!("{:+.4}", num(&n, &["dice_change"]))]);
}

/// Mean and sample standard deviation of the pixel Dice of `extractor`'s runs in a few-shot
/// benchmark file, as the README writes them.
fn few_shot_cell(results: &Value, extractor: &str) -> String {
    let dice: Vec<f64> = results["runs"].as_array().unwrap().iter().filter(|r| r["extractor"] == extractor).map(|r| r["dice"].as_f64().unwrap()).collect();
    assert!(!dice.is_empty(), "no runs of {extractor}");
    format!("{} ({} seeds)", mean_sd(&dice, 3), dice.len())
}

/// "mean ± sample standard deviation" (0 for a single value), as the README's seeded tables write it.
fn mean_sd(values: &[f64], digits: usize) -> String {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = (values.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64).sqrt();
    format!("{mean:.digits$} ± {sd:.digits$}")
}

#[test]
fn few_shot_table_matches_the_benchmark_results() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let read = |f: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(root.join("results/few-shot").join(f)).unwrap()).unwrap() };
    let (glas, monuseg) = (read("glas-testA.json"), read("monuseg-test.json"));
    for r in [&glas, &monuseg] {
        assert_eq!(r["scored_on"], "test");
        assert_eq!(r["strokes"], 50);
        assert_eq!(r["images"], 3);
    }
    for extractor in ["models/glands.histoseg", "models/nuclei.histoseg", "random", "filters"] {
        let cells = row(&readme, "### Teach it from a few strokes", &format!("| `{extractor}`"));
        assert_eq!(cells[2], few_shot_cell(&glas, extractor), "GlaS testA, {extractor}");
        assert_eq!(cells[3], few_shot_cell(&monuseg, extractor), "MoNuSeg test, {extractor}");
    }
}

/// The finished seeds of one cell of the seeded ablation (`scripts/ablation_seeds.sh`), the files
/// `{cell}-s{seed}{variant}.json` and `.log`: each seed's best validation Dice and what its
/// weights were kept by (from its log: "best validation mean Dice" over all classes since the
/// background counts, "best validation Dice" over the object classes before) and its test report,
/// by seed.
fn ablation_cell(dir: &std::path::Path, cell: &str, variant: &str) -> Vec<(u32, f64, &'static str, Value)> {
    let prefix = format!("{cell}-s");
    let mut runs: Vec<(u32, f64, &'static str, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let seed: u32 = name.strip_prefix(&prefix)?.strip_suffix(".json")?.strip_suffix(variant)?.parse().ok()?;
            let log = std::fs::read_to_string(dir.join(format!("{prefix}{seed}{variant}.log"))).unwrap();
            let last = log.rsplit("best validation ").next().unwrap();
            let (kept, best) = match last.strip_prefix("mean Dice ") { Some(rest) => ("all classes", rest), None => ("object classes", last.strip_prefix("Dice ").unwrap()) };
            let best = best.split_whitespace().next().unwrap().parse().unwrap();
            Some((seed, best, kept, serde_json::from_str(&std::fs::read_to_string(dir.join(&name)).unwrap()).unwrap()))
        })
        .collect();
    runs.sort_by_key(|r| r.0);
    runs
}

/// The table rows between `<!-- {marker} -->` and `<!-- /{marker} -->`, as cells, and the lines
/// there that are not table rows.
fn marked_table(readme: &str, marker: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let text = readme.split(&format!("<!-- {marker} -->")).nth(1).unwrap_or_else(|| panic!("README has the {marker} table")).split(&format!("<!-- /{marker} -->")).next().unwrap();
    let rows = text.lines().filter(|l| l.starts_with("| ") && !l.contains("| seeds |")).map(|l| l.trim_matches('|').split('|').map(|c| c.trim().replace("**", "")).collect()).collect();
    (rows, text.lines().filter(|l| !l.starts_with('|')).map(String::from).collect())
}

/// A row's seed count, what its runs kept their weights by, and the validation Dice: `cells[at]`
/// to `cells[at + 2]`, against the seeds' files; false for a row not run yet.
fn check_seeds_and_validation(cells: &[String], at: usize, runs: &[(u32, f64, &str, Value)]) -> bool {
    assert_eq!(cells[at], runs.len().to_string(), "seeds of {cells:?}");
    if runs.is_empty() {
        assert_eq!(cells[at + 1], "not run yet");
        return false;
    }
    for r in runs {
        assert_eq!(cells[at + 1], r.2, "what seed {} of {cells:?} kept its weights by", r.0);
    }
    assert_eq!(cells[at + 2], mean_sd(&runs.iter().map(|r| r.1).collect::<Vec<_>>(), 3), "validation Dice of {cells:?}");
    true
}

/// A row's seeds, validation and test mean ± sd cells, from `cells[at]` on, against the seeds'
/// files; rows of more cells end with the background class's test Dice (0 for a head that calls
/// every pixel gland).
fn check_seeded_cells(cells: &[String], at: usize, runs: &[(u32, f64, &str, Value)]) {
    if !check_seeds_and_validation(cells, at, runs) {
        return;
    }
    let metric = |key: &str| runs.iter().map(|r| r.3[key].as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(cells[at + 3], mean_sd(&metric("pixel_dice"), 3), "test pixel Dice of {cells:?}");
    assert_eq!(cells[at + 4], mean_sd(&metric("object_f1"), 3), "object F1 of {cells:?}");
    assert_eq!(cells[at + 5], mean_sd(&metric("object_dice"), 3), "object Dice of {cells:?}");
    assert_eq!(cells[at + 6], mean_sd(&metric("object_hausdorff"), 1), "object Hausdorff of {cells:?}");
    if cells.len() > at + 7 {
        let background: Vec<f64> = runs.iter().map(|r| r.3["per_class"][0]["dice"].as_f64().unwrap()).collect();
        assert_eq!(cells[at + 7], mean_sd(&background, 3), "background Dice of {cells:?}");
    }
    for r in runs {
        assert_eq!(r.3["images"], 60, "every run is scored on all of GlaS testA");
    }
}

/// Pretrained − random test pixel Dice in points, at each seed both cells have; paired runs must
/// have kept their weights by the same score (`what` names the line being checked).
fn pixel_dice_gain(pre: &[(u32, f64, &str, Value)], rand: &[(u32, f64, &str, Value)], what: &str) -> Vec<f64> {
    pre.iter()
        .filter_map(|p| rand.iter().find(|r| r.0 == p.0).map(|r| (p, r)))
        .map(|(p, r)| {
            assert_eq!(p.2, r.2, "{what}: seed {} of both UNets is kept by the same score", p.0);
            100.0 * (p.3["pixel_dice"].as_f64().unwrap() - r.3["pixel_dice"].as_f64().unwrap())
        })
        .collect()
}

/// The lines "- MODE, LABELS% of labels: pretrained − random ...: mean ± sd points" under a table,
/// against the seeds that both UNets' cells (with this variant) have.
fn check_paired_differences(dir: &std::path::Path, notes: &[String], variant: &str) {
    for line in notes.iter().filter(|l| l.starts_with("- ")) {
        let (mode, rest) = match line.strip_prefix("- frozen, ") { Some(rest) => ("frozen", rest), None => ("finetune", line.strip_prefix("- fine-tuned, ").unwrap()) };
        let labels = rest.split('%').next().unwrap();
        let gain = pixel_dice_gain(&ablation_cell(dir, &format!("pre-{mode}-{labels}"), variant), &ablation_cell(dir, &format!("rand-{mode}-{labels}"), variant), line);
        assert!(!gain.is_empty(), "{line}: no seed has both UNets");
        assert!(line.ends_with(&format!(": {} points", mean_sd(&gain, 1))), "{line}: {gain:?}");
    }
}

/// The lines "- ROW (`VARIANT`): validation Dice − t = 50, levels 0, 1 ...: mean ± sd points (by
/// seed)" under the feature rows: each row's validation Dice less that of the baseline under the
/// same head (raw, or standardised for a `-z` row), paired by seed, against the seeds' logs.
fn check_feature_differences(dir: &std::path::Path, notes: &[String]) {
    let lines: Vec<&String> = notes.iter().filter(|l| l.starts_with("- ")).collect();
    for line in &lines {
        let variant = line.split('`').nth(1).unwrap_or_else(|| panic!("{line}: names its cell"));
        let base = if variant.ends_with("-z") { "-z" } else { "" };
        let (row, baseline) = (ablation_cell(dir, "pre-frozen-10", variant), ablation_cell(dir, "pre-frozen-10", base));
        let gain: Vec<f64> = row.iter().filter_map(|r| baseline.iter().find(|b| b.0 == r.0).map(|b| 100.0 * (r.1 - b.1))).collect();
        assert!(gain.len() > 1, "{line}: seeds of both rows");
        let by_seed: Vec<String> = gain.iter().map(|g| format!("{g:+.1}")).collect();
        assert!(line.ends_with(&format!(": {} points ({})", mean_sd(&gain, 1), by_seed.join(", "))), "{line}: {gain:?}");
    }
    assert!(!lines.is_empty(), "the feature rows' paired differences are under their table");
}

/// The cell-name prefix of a row's UNet: "pre" for the diffusion-pretrained one, "rand" for random init.
fn init_of(unet: &str) -> &'static str {
    if unet.starts_with("diffusion-pretrained") {
        return "pre";
    }
    assert_eq!(unet, "random init");
    "rand"
}

/// The cell-name part of a row's training mode: "frozen", or "finetune" for "fine-tuned".
fn mode_of(training: &str) -> &'static str {
    match training {
        "frozen" => "frozen",
        "fine-tuned" => "finetune",
        m => panic!("mode {m}"),
    }
}

#[test]
fn ablation_tables_match_the_seeded_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = root.join("results/ablation");
    let (rows, notes) = marked_table(&readme, "ablation-seeds");
    for cells in &rows {
        let init = init_of(&cells[0]);
        let mode = mode_of(&cells[1]);
        let labels = cells[2].strip_suffix('%').unwrap();
        check_seeded_cells(cells, 3, &ablation_cell(&dir, &format!("{init}-{mode}-{labels}"), ""));
    }
    assert_eq!(rows.len(), 8, "2 UNets x 2 modes x 2 label fractions");
    check_paired_differences(&dir, &notes, "");
    // the feature rows: the cell suffix is in backticks in the first cell (none for the baseline)
    let (rows, notes) = marked_table(&readme, "ablation-features");
    let feature_variants: Vec<String> = rows.iter().map(|cells| cells[0].split('`').nth(1).unwrap_or("").to_string()).collect();
    for (cells, variant) in rows.iter().zip(&feature_variants) {
        check_seeded_cells(cells, 1, &ablation_cell(&dir, "pre-frozen-10", variant));
    }
    assert_eq!(rows.len(), 15, "the baseline, 3 timestep rows, 3 level rows, with raw and with standardised features, and t = 10 with levels 0-2 standardised");
    check_feature_differences(&dir, &notes);
    // both UNets again with the features chosen there (frozen), then standardised by the head, and
    // under the best feature row (frozen and fine-tuned both), the cells' suffix named in the header
    let variant_of = |marker: &str| readme.split(&format!("<!-- {marker} -->")).nth(1).unwrap_or_else(|| panic!("README has the {marker} table")).split('`').nth(1).unwrap().to_string();
    let both_unets_frozen = |marker: &str| {
        let variant = variant_of(marker);
        let (rows, notes) = marked_table(&readme, marker);
        for cells in &rows {
            check_seeded_cells(cells, 1, &ablation_cell(&dir, &format!("{}-frozen-10", init_of(&cells[0])), &variant));
        }
        assert_eq!(rows.len(), 2, "{marker}: the pretrained and the random UNet");
        check_paired_differences(&dir, &notes, &variant);
    };
    let both_unets_both_modes = |marker: &str| {
        let variant = variant_of(marker);
        let (rows, notes) = marked_table(&readme, marker);
        for cells in &rows {
            let mode = mode_of(&cells[1]);
            check_seeded_cells(cells, 2, &ablation_cell(&dir, &format!("{}-{mode}-10", init_of(&cells[0])), &variant));
        }
        assert_eq!(rows.len(), 4, "{marker}: both UNets, frozen and fine-tuned");
        check_paired_differences(&dir, &notes, &variant);
        variant
    };
    both_unets_frozen("ablation-chosen");
    let standardised = both_unets_both_modes("ablation-standardised");
    assert_eq!(standardised, format!("{}-z", variant_of("ablation-chosen")), "the chosen features, standardised");
    // and under the best feature row, t = 10 with levels 0-2, standardised: a -z row of the feature table
    let best = both_unets_both_modes("ablation-best");
    assert!(best.ends_with("-z") && feature_variants.contains(&best), "{best}: a standardised row of the feature table");
    // the nuclei heads: 2 classes against the instance head, scored on MoNuSeg test; rows kept by
    // the object classes' Dice (before session 29) are read from their own folder
    let (rows, _) = marked_table(&readme, "ablation-instances");
    let old_rule = dir.join("kept-by-object-dice");
    for cells in &rows {
        let folder = if cells[2] == "object classes" { &old_rule } else { &dir };
        let runs = ablation_cell(folder, "pre-finetune-100", cells[0].split('`').nth(1).unwrap());
        if !check_seeds_and_validation(cells, 1, &runs) {
            continue;
        }
        let metric = |key: &str| runs.iter().map(|r| r.3[key].as_f64().unwrap()).collect::<Vec<_>>();
        assert_eq!(cells[4], mean_sd(&metric("pixel_dice"), 3), "test pixel Dice of {cells:?}");
        assert_eq!(cells[5], mean_sd(&metric("aji"), 3), "AJI of {cells:?}");
        for r in &runs {
            assert_eq!((r.3["dataset"].as_str(), r.3["images"].as_u64()), (Some("monuseg"), Some(14)), "every run is scored on all of MoNuSeg test");
        }
    }
    let current: Vec<&str> = rows.iter().filter(|c| c[2] != "object classes").map(|c| c[0].as_str()).collect();
    assert_eq!(current.len(), 2, "the 2-class head and the instance head, kept by today's rule or not run yet: {current:?}");
}

/// The CPU pretraining that goes on from the 809-step GPU UNet (`scripts/cpu_pretrain.sh`): the
/// README's block is what `scripts/cpu_pretrain.sh status results/cpu-pretrain` prints from the
/// committed copy of the run's logs, and that run started from the committed 809-step file.
#[test]
fn cpu_pretraining_figures_match_its_logs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = root.join("results/cpu-pretrain");
    let csv = |name: &str| -> Vec<Vec<f64>> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        text.lines().skip(1).map(|l| l.split(',').map(|c| c.parse().unwrap()).collect()).collect()
    };
    let log = csv("log.csv");
    let steps: Vec<usize> = log.iter().map(|r| r[0] as usize).collect();
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "one log line per step, from step 1");
    let (last, seconds) = (log.last().unwrap()[0], log.last().unwrap()[3]);
    let before = 809.0;
    let mut expected = vec![
        format!("CPU steps so far: {last} in {:.1} h of training ({:.4} steps/s); {before} + {last} = {} of 50000", seconds / 3600.0, last / seconds, before + last),
        String::new(),
        "| pretraining steps | held-out loss |".to_string(),
        "|---|---|".to_string(),
    ];
    for v in csv("validation.csv") {
        expected.push(format!("| {before} + {} = {} | {:.4} |", v[0], before + v[0], -v[1]));
    }
    let block = readme.split("<!-- cpu-pretrain -->\n").nth(1).expect("README has the cpu-pretrain block").split("<!-- /cpu-pretrain -->").next().unwrap();
    assert_eq!(block.lines().collect::<Vec<_>>(), expected, "README's CPU pretraining block against results/cpu-pretrain");
    // the run started from the committed 809-step UNet, with the GPU run's recipe
    let settings: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("settings.json")).unwrap()).unwrap();
    let start = std::fs::read(root.join("results/ablation/pretrained-uniform-809.histoseg")).unwrap();
    assert_eq!(settings["objective"]["init"]["crc32"].as_u64(), Some(crc32fast::hash(&start) as u64), "started from the committed 809-step file");
    let gpu: Value = serde_json::from_str(&std::fs::read_to_string(root.join("results/gpu-2026-11-24/pre-uniform/settings.json")).unwrap()).unwrap();
    for key in ["batch", "patch", "weighting", "unet", "train_images", "validation_patches", "augment"] {
        assert_eq!(settings["objective"][key], gpu["objective"][key], "{key}: the GPU run's recipe");
    }
    assert_eq!((&settings["lr"], &settings["steps"]), (&gpu["lr"], &gpu["steps"]), "the GPU run's schedule");
    // the committed checkpoint, which the next machine resumes from, is the log's last step
    let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint/state.json")).expect("results/cpu-pretrain/checkpoint/state.json")).unwrap();
    assert_eq!(state["step"].as_f64(), Some(last), "the committed checkpoint is the step the log ends at");
    for f in ["weights.histoseg", "ema.histoseg"] {
        assert!(dir.join("checkpoint").join(f).is_file(), "the committed checkpoint has {f}");
    }
    // session 41's run, whose checkpoint was lost with its machine, and the rerun from the same
    // file: the same loss and learning rate at every step they share, up to the first resume
    // from a slim copy (int8 weights, fresh Adam moments), after which they part
    let exact_until = state["optimizer_restarts"].as_array().and_then(|r| r.first()).and_then(|s| s.as_f64()).unwrap_or(last);
    let lost = csv("lost-run/log.csv");
    let shared: Vec<_> = log.iter().zip(&lost).take_while(|(a, _)| a[0] <= exact_until).collect();
    assert!(shared.len() >= 100, "the rerun and the lost run share {} steps", shared.len());
    for (a, b) in shared {
        assert_eq!((a[0], a[1], a[2]), (b[0], b[1], b[2]), "step, loss and learning rate of the rerun against the lost run");
    }
}

/// The frozen-head curves committed in `results/cpu-pretrain/frozen-check/`: (UNet, seed,
/// validation mean Dice at steps 100 to 400), the UNet "random" or the CPU step count. Seed 0's
/// file is UNET.csv, another seed's UNET-sSEED.csv.
fn cpu_frozen_curves(root: &std::path::Path) -> Vec<(String, u32, Vec<f64>)> {
    let mut curves = Vec::new();
    for entry in std::fs::read_dir(root.join("results/cpu-pretrain/frozen-check")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (unet, seed) = match stem.split_once("-s") {
            Some((unet, seed)) => (unet.to_string(), seed.parse().unwrap_or_else(|_| panic!("{}: a seed after -s", path.display()))),
            None => (stem.clone(), 0),
        };
        let curve: Vec<f64> = std::fs::read_to_string(&path).unwrap().lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
        assert_eq!(curve.len(), 4, "{}: validation at steps 100 to 400", path.display());
        curves.push((unet, seed, curve));
    }
    curves.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    curves
}

fn cpu_frozen_row_name(unet: &str) -> String {
    if unet == "random" { "random init".to_string() } else { format!("pretrained 809 + {unet} steps (CPU), uniform") }
}

/// The frozen-head check of the CPU-pretrained UNet (`scripts/frozen_check.sh`): the
/// README's `cpu-frozen-check` table has one row per validation curve committed in
/// `results/cpu-pretrain/frozen-check/`, STEP.csv for the UNet after STEP CPU steps (0: the
/// 809-step file it started from) and random.csv for random init, and no other rows. Seed 0's
/// curves have no suffix; another seed's are STEP-sSEED.csv and random-sSEED.csv, in rows that
/// end ", seed SEED".
#[test]
fn cpu_pretraining_frozen_checks_match_their_curves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (rows, _) = marked_table(&readme, "cpu-frozen-check");
    let rows: Vec<Vec<String>> = rows.into_iter().skip(1).collect(); // after the header
    let curves = cpu_frozen_curves(root);
    for (unet, seed, curve) in &curves {
        let name = cpu_frozen_row_name(unet) + &if *seed == 0 { String::new() } else { format!(", seed {seed}") };
        let cells = rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("README has no row '{name}'"));
        assert_eq!(cells[1], curve.iter().map(|d| format!("{d:.3}")).collect::<Vec<_>>().join(" / "), "the frozen-head curve of {name}");
    }
    assert_eq!(curves.len(), rows.len(), "every row of the table has its curve in results/cpu-pretrain/frozen-check: {rows:?}");
    assert!(curves.len() >= 3, "the starting UNet, random init and at least one CPU-pretrained UNet");
}

/// The README's `cpu-frozen-seeds` table: for each UNet checked with more than one seed, its
/// seeds, the validation mean Dice at step 400 (mean ± sample sd over the seeds) and, paired by
/// seed, the points it is ahead of random init; no other rows.
#[test]
fn cpu_pretraining_frozen_seeds_match_their_curves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (rows, _) = marked_table(&readme, "cpu-frozen-seeds");
    let curves = cpu_frozen_curves(root);
    let at_400 = |unet: &str| -> Vec<(u32, f64)> { curves.iter().filter(|c| c.0 == unet).map(|c| (c.1, c.2[3])).collect() };
    let random = at_400("random");
    let mut unets: Vec<&str> = curves.iter().map(|c| c.0.as_str()).collect();
    unets.dedup();
    let seeded: Vec<&str> = unets.into_iter().filter(|u| at_400(u).len() > 1).collect();
    for unet in &seeded {
        let runs = at_400(unet);
        let name = cpu_frozen_row_name(unet);
        let cells = rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("README's cpu-frozen-seeds table has no row '{name}'"));
        let seeds: Vec<String> = runs.iter().map(|r| r.0.to_string()).collect();
        assert_eq!(cells[1], seeds.join(", "), "seeds of {name}");
        assert_eq!(cells[2], mean_sd(&runs.iter().map(|r| r.1).collect::<Vec<_>>(), 3), "mean Dice at step 400 of {name}");
        let gain: Vec<f64> = runs.iter().filter_map(|(seed, d)| random.iter().find(|r| r.0 == *seed).map(|r| 100.0 * (d - r.1))).collect();
        assert_eq!(gain.len(), runs.len(), "{name}: random init was checked on the same seeds");
        let expected = if *unet == "random" { String::new() } else { format!("{} points", mean_sd(&gain, 1)) };
        assert_eq!(cells[3], expected, "{name} against random init, paired by seed ({gain:?})");
    }
    assert_eq!(seeded.len(), rows.len(), "every row of the seeds table has its curves: {rows:?}");
}

/// The fine-tuned 10% cells rerun with the UNet of the CPU pretraining (`ablation-cpu-finetune`,
/// printed by `scripts/ablation_seeds.py`): the 809-step row and random init are the main table's
/// cells in results/ablation, a row "diffusion-pretrained (809 + STEP steps, CPU)" is read from
/// results/cpu-pretrain/finetune-STEP, every such folder has its row, and each row that has run
/// has its paired difference against random init under the table.
#[test]
fn cpu_pretrained_finetune_matches_its_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (ablation, cpu) = (root.join("results/ablation"), root.join("results/cpu-pretrain"));
    let folder_of = |unet: &str| match unet.strip_prefix("diffusion-pretrained (809 + ").and_then(|r| r.strip_suffix(" steps, CPU)")) {
        Some(step) => cpu.join(format!("finetune-{step}")),
        None => ablation.clone(),
    };
    let (rows, notes) = marked_table(&readme, "ablation-cpu-finetune");
    for cells in &rows {
        check_seeded_cells(cells, 1, &ablation_cell(&folder_of(&cells[0]), &format!("{}-finetune-10", init_of(&cells[0])), ""));
    }
    let folders = std::fs::read_dir(&cpu).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("finetune-")).count();
    assert!(folders > 0, "results/cpu-pretrain has a fine-tuned run");
    assert_eq!(rows.len(), 2 + folders, "the 809-step UNet, one row per CPU checkpoint, random init");
    let rand = ablation_cell(&ablation, "rand-finetune-10", "");
    let lines: Vec<&String> = notes.iter().filter(|l| l.starts_with("- ")).collect();
    for cells in rows.iter().filter(|c| c[0].ends_with(", CPU)") && c[1] != "0") {
        let line = lines.iter().find(|l| l.starts_with(&format!("- {}: ", cells[0]))).unwrap_or_else(|| panic!("{}: a paired difference", cells[0]));
        let gain = pixel_dice_gain(&ablation_cell(&folder_of(&cells[0]), "pre-finetune-10", ""), &rand, line);
        let by_seed: Vec<String> = gain.iter().map(|g| format!("{g:+.1}")).collect();
        assert!(line.ends_with(&format!(": {} points ({})", mean_sd(&gain, 1), by_seed.join(", "))), "{line}: {gain:?}");
    }
}
