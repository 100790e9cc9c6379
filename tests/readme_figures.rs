//! The README's results tables say what the shipped model files say: every figure in the rows of
//! "Results" and "int8 against f32" is checked against the test-set metrics that `histoseg
//! export` recorded in the model's manifest. A stale or garbled row fails here.

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
    let mean = dice.iter().sum::<f64>() / dice.len() as f64;
    let sd = (dice.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (dice.len().max(2) - 1) as f64).sqrt();
    format!("{mean:.3} ± {sd:.3} ({} seeds)", dice.len())
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
