//! The cohort workflow (`workflow/Snakefile`) with Snakemake's local executor on two small real
//! slides: one `histoseg segment` job per slide whose outputs are the CLI's own, the merged
//! tables hold every slide's rows, a second run does nothing, a slide whose output is lost is
//! segmented again alone, and a sample sheet names the slides and gives a resolution.
//!
//! Snakemake is `$HISTOSEG_SNAKEMAKE`, else `target/pyenv/bin/snakemake` (which `cargo xtask test`
//! installs from PyPI, scripts/requirements.txt), else `snakemake` on the PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn snakemake() -> PathBuf {
    if let Some(p) = std::env::var_os("HISTOSEG_SNAKEMAKE") {
        return p.into();
    }
    let venv = root().join("target/pyenv/bin/snakemake");
    if venv.exists() { venv } else { "snakemake".into() }
}

/// Runs the workflow in `dir` with `config` (key=value); returns success and everything it printed.
fn run(dir: &Path, config: &[String]) -> (bool, String) {
    let mut c = Command::new(snakemake());
    c.arg("-s").arg(root().join("workflow/Snakefile")).args(["--cores", "2", "--directory"]).arg(dir).arg("--config").args(config);
    let out = c.output().unwrap_or_else(|e| panic!("cannot run {:?} ({e}): `cargo xtask test` installs it in target/pyenv", snakemake()));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_workflow_segments_a_folder_of_slides_resumes_and_merges_their_tables() {
    let dir = std::env::temp_dir().join(format!("histoseg-workflow-{}", std::process::id()));
    let slides = dir.join("slides");
    std::fs::create_dir_all(&slides).unwrap();
    // a BigTIFF of real H&E in JPEG tiles (its resolution recorded) and a real H&E JPEG (none)
    std::fs::copy(root().join("tests/bad_inputs/bigtiff.tif"), slides.join("bigtiff.tif")).unwrap();
    std::fs::copy(histoseg::data_dir().join("samples/tcia-he-500x300.jpg"), slides.join("tcia.jpg")).unwrap();
    std::fs::write(slides.join("notes.txt"), "not a slide").unwrap();
    let model = root().join("models/glands.histoseg");
    let out = dir.join("out");
    let config = vec![
        format!("slides={}", slides.display()),
        format!("model={}", model.display()),
        format!("out={}", out.display()),
        format!("histoseg={}", env!("CARGO_BIN_EXE_histoseg")),
    ];

    let (ok, log) = run(&dir, &config);
    assert!(ok, "{log}");
    assert_eq!(log.matches("localrule segment:").count(), 2, "one job per slide:\n{log}");

    // each slide's files are what `histoseg segment` writes for it
    let direct = dir.join("direct");
    for stem in ["bigtiff", "tcia"] {
        let input = std::fs::read_dir(&slides).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_stem().unwrap() == stem).unwrap();
        let cli = Command::new(env!("CARGO_BIN_EXE_histoseg"))
            .args(["segment", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&direct)
            .output()
            .unwrap();
        assert!(cli.status.success());
        for kind in ["labels.png", "geojson", "measurements.csv"] {
            let ours = std::fs::read(out.join(format!("slides/{stem}/{stem}.{kind}"))).unwrap();
            assert!(ours == std::fs::read(direct.join(format!("{stem}.{kind}"))).unwrap(), "{stem}.{kind} differs from the CLI's");
        }
        // the merged tables: every row of the slide's two tables, with the slide's name in front
        let own = read(&out.join(format!("slides/{stem}/{stem}.measurements.csv")));
        let (classes, objects) = own.split_once("\n\n").unwrap();
        for (table, rows) in [("classes.csv", classes), ("objects.csv", objects)] {
            let merged = read(&out.join(table));
            let mine: Vec<&str> = merged.lines().filter(|l| l.starts_with(&format!("{stem},"))).collect();
            let want: Vec<String> = rows.lines().skip(1).map(|r| format!("{stem},{r}")).collect();
            assert_eq!(mine, want, "{table} for {stem}");
        }
    }
    let classes = read(&out.join("classes.csv"));
    assert!(classes.starts_with("slide,class,area_px,area_um2,fraction,objects\n"), "{classes}");
    assert_eq!(classes.lines().count(), 1 + 2 * 3, "two slides, three classes each:\n{classes}");
    let objects = read(&out.join("objects.csv"));
    assert!(objects.lines().count() > 1, "the H&E JPEG has glands:\n{objects}");
    println!("two slides: {} class rows, {} object rows merged", classes.lines().count() - 1, objects.lines().count() - 1);

    // run again: nothing to do, nothing rewritten
    let stamp = std::fs::metadata(out.join("slides/tcia/tcia.labels.png")).unwrap().modified().unwrap();
    let (ok, log) = run(&dir, &config);
    assert!(ok && log.contains("Nothing to be done"), "{log}");
    // a slide whose output is lost is segmented again, alone, and the tables are merged again
    std::fs::remove_file(out.join("slides/bigtiff/bigtiff.labels.png")).unwrap();
    let (ok, log) = run(&dir, &config);
    assert!(ok, "{log}");
    assert_eq!(log.matches("localrule segment:").count(), 1, "{log}");
    assert!(log.contains("wildcards: sample=bigtiff") && log.contains("localrule merge:"), "{log}");
    assert_eq!(std::fs::metadata(out.join("slides/tcia/tcia.labels.png")).unwrap().modified().unwrap(), stamp, "the finished slide is not redone");

    // a sample sheet: its own names, paths relative to the sheet, and a resolution for the JPEG
    std::fs::write(dir.join("cohort.tsv"), "sample\tpath\tum_per_px\npatient-1\tslides/tcia.jpg\t0.5\npatient-2\tslides/bigtiff.tif\t\n").unwrap();
    let sheet_out = dir.join("cohort");
    let mut sheet_config = config.clone();
    sheet_config[0] = format!("samples={}", dir.join("cohort.tsv").display());
    sheet_config[2] = format!("out={}", sheet_out.display());
    let (ok, log) = run(&dir, &sheet_config);
    assert!(ok, "{log}");
    let classes = read(&sheet_out.join("classes.csv"));
    let gland = classes.lines().find(|l| l.starts_with("patient-1,gland,")).unwrap_or_else(|| panic!("{classes}"));
    let cols: Vec<&str> = gland.split(',').collect();
    let (px, um2): (f64, f64) = (cols[2].parse().unwrap(), cols[3].parse().unwrap());
    assert!((um2 - px * 0.25).abs() < 0.01, "the sheet's 0.5 µm/px gives the areas: {gland}");
    assert!(sheet_out.join("slides/patient-2/patient-2.geojson").exists());

    // a sheet without its path column is refused with the reason
    std::fs::write(dir.join("bad.tsv"), "sample\tfile\npatient-1\tslides/tcia.jpg\n").unwrap();
    sheet_config[0] = format!("samples={}", dir.join("bad.tsv").display());
    let (ok, log) = run(&dir, &sheet_config);
    assert!(!ok && log.contains("the sample sheet needs the columns sample and path (missing: path)"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
