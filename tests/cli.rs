//! The command line tool on real files: it writes a loadable model, segments a real GlaS image
//! into a label PNG of the image's size, and reports bad input clearly.

use std::process::Command;

fn histoseg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_histoseg"))
}

#[test]
fn init_then_segment_a_real_image() {
    let dir = std::env::temp_dir().join(format!("histoseg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny.histoseg");
    let out = histoseg()
        .args(["init", "--out"])
        .arg(&model)
        .args(["--base-channels", "16", "--channel-mults", "1,2", "--tile", "64", "--overlap", "16"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = histoseg::weights::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    assert!(!file.manifest.trained);
    assert_eq!(file.manifest.tile_size, 64);

    let input = histoseg::data_dir().join("glas/images/testA_5.png");
    let out = histoseg().args(["segment", "--model"]).arg(&model).arg("--input").arg(&input).arg("--output").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels = image::open(dir.join("testA_5.labels.png")).unwrap().to_luma8();
    let original = image::open(&input).unwrap();
    assert_eq!(labels.dimensions(), (original.width(), original.height()));
    assert!(labels.pixels().all(|p| p[0] < 2));

    // a text file named .png: a clear error naming the file, and a failing exit status
    let fake = dir.join("fake.png");
    std::fs::write(&fake, "this is not an image").unwrap();
    let out = histoseg().args(["segment", "--model"]).arg(&model).arg("--input").arg(&fake).arg("--output").arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fake.png") && err.contains("unsupported image format"), "{err}");

    // a missing model file
    let out = histoseg().args(["info"]).arg(dir.join("nope.histoseg")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read model file"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The CLI on "your own data": `dataset` writes MoNuSeg as a 3-class folder pair (background,
/// nucleus, boundary), `train` learns from the folders in a run stopped after 10 steps and
/// resumed, the model file has the three classes, `eval` scores each class and the AJI, and a
/// folder with a 0/255 mask is refused before training with the file named.
#[test]
fn three_classes_from_folders_train_resume_and_evaluate() {
    let dir = std::env::temp_dir().join(format!("histoseg-cli-3class-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let data = dir.join("monuseg3");
    let out = histoseg()
        .args(["dataset", "--dataset", "monuseg", "--split", "train", "--um-per-px", "1.0", "--boundaries", "1", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote 30 images"), "{}", String::from_utf8_lossy(&out.stdout));
    let model = dir.join("three.histoseg");
    let run = dir.join("run");
    let train = |extra: &[&str]| {
        histoseg()
            .args(["train", "--images"])
            .arg(data.join("images"))
            .arg("--masks")
            .arg(data.join("masks"))
            .arg("--instances")
            .arg(data.join("instances"))
            .args(["--image-um-per-px", "1.0", "--classes", "background:000000,nucleus:ff3d7f,boundary:ffd600", "--pretrained", "none"])
            .args(["--um-per-px", "1.0", "--base-channels", "8", "--channel-mults", "1,2", "--tile", "32", "--overlap", "8"])
            .args(["--steps", "20", "--batch", "4", "--cache", "16", "--validate-every", "10", "--checkpoint-every", "5", "--name", "three"])
            .arg("--out")
            .arg(&model)
            .arg("--run")
            .arg(&run)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = train(&["--stop-after-steps", "10"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("3 classes") && stdout.contains("continue with --resume"), "{stdout}");
    assert!(!model.exists(), "no model before the run has finished");
    let second = train(&["--resume"]);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stdout).contains("10 steps in this process"), "{}", String::from_utf8_lossy(&second.stdout));
    let log = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 21, "one log line per step across the two processes");
    let file = histoseg::weights::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    let names: Vec<&str> = file.manifest.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["background", "nucleus", "boundary"]);
    assert_eq!(file.manifest.classes[2].color, [0xff, 0xd6, 0x00]);
    assert!(file.manifest.metrics["validation_mean_dice"].as_f64().is_some(), "{}", file.manifest.metrics);

    let report = dir.join("eval.json");
    let out = histoseg()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(data.join("images"))
        .arg("--masks")
        .arg(data.join("masks"))
        .arg("--instances")
        .arg(data.join("instances"))
        .args(["--image-um-per-px", "1.0", "--limit", "2", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("boundary") && table.contains("AJI"), "{table}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["per_class"].as_array().unwrap().len(), 3);

    // --boundary-class: the file records it (export keeps it), the run says so, and a class that
    // cannot be a boundary is refused before training
    std::fs::remove_dir_all(&run).ok();
    let instance = train(&["--boundary-class", "2"]);
    assert!(instance.status.success(), "{}", String::from_utf8_lossy(&instance.stderr));
    let file = histoseg::weights::ModelFile::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(file.manifest.postprocess.boundary_class, Some(2));
    assert!(file.manifest.provenance.contains("--boundary-class 2"), "{}", file.manifest.provenance);
    let settings = std::fs::read_to_string(run.join("settings.json")).unwrap();
    assert!(settings.contains("\"boundary_class\": 2"), "{settings}");
    std::fs::remove_dir_all(&run).ok();
    let refused = train(&["--boundary-class", "3"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("boundary class 3 must be a class other than the background"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!run.join("log.csv").exists(), "no training step ran");

    // a black-and-white mask among class-index masks stops training before it starts
    let first_mask = std::fs::read_dir(data.join("masks")).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let mut bw = image::open(&first_mask).unwrap().to_luma8();
    bw.pixels_mut().for_each(|p| p[0] = if p[0] > 0 { 255 } else { 0 });
    bw.save(&first_mask).unwrap();
    std::fs::remove_dir_all(&run).ok();
    let bad = train(&[]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains(&first_mask.file_name().unwrap().to_string_lossy().to_string()) && err.contains("label value 255"), "{err}");
    assert!(!run.join("log.csv").exists(), "no training step ran");
    std::fs::remove_dir_all(&dir).ok();
}
