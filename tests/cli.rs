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
