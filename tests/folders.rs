//! Folder datasets on real MoNuSeg images: a 3-class set (background, nucleus interior, nucleus
//! boundary from the instance masks) written and read back unchanged, and every kind of bad
//! folder refused with a message that names the file.

use std::path::{Path, PathBuf};

use histoseg::train::data::{self, Dataset, Labeled, Split};
use histoseg::train::folders::{FolderSpec, load_folder, with_boundaries, write_folder};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("histoseg-folders-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Three MoNuSeg training images at 1 µm/px, with three classes.
fn three_class_samples() -> Vec<Labeled> {
    let all = data::load(&histoseg::data_dir(), Dataset::Monuseg, Split::Train).unwrap();
    all.iter().take(3).map(|s| with_boundaries(&s.rescaled(1.0), 1)).collect()
}

fn spec(dir: &Path, classes: usize) -> FolderSpec {
    FolderSpec::new(dir.join("images"), dir.join("masks"), Some(dir.join("instances")), 1.0, classes)
}

#[test]
fn boundaries_separate_touching_nuclei_and_a_written_folder_reads_back_unchanged() {
    let samples = three_class_samples();
    let mut touching = 0;
    for s in &samples {
        let (w, h) = (s.image.width, s.image.height);
        let ids = s.instances.as_ref().unwrap();
        for y in 0..h {
            for x in 0..w {
                let (id, class) = (ids[y * w + x], s.mask[y * w + x]);
                let neighbours: Vec<u32> = [(0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]
                    .iter()
                    .map(|(dx, dy)| (x as isize + dx, y as isize + dy))
                    .filter(|&(nx, ny)| nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h)
                    .map(|(nx, ny)| ids[ny as usize * w + nx as usize])
                    .collect();
                match class {
                    0 => assert_eq!(id, 0),
                    1 => assert!(id != 0 && neighbours.iter().all(|&n| n == id), "interior pixel ({x}, {y}) touches another object"),
                    2 => {
                        assert!(id != 0 && neighbours.iter().any(|&n| n != id), "boundary pixel ({x}, {y}) inside its object");
                        touching += neighbours.iter().any(|&n| n != 0 && n != id) as usize;
                    }
                    c => panic!("class {c}"),
                }
            }
        }
    }
    assert!(touching > 100, "touching nuclei are separated by boundary pixels ({touching} found)");
    let dir = temp_dir("roundtrip");
    write_folder(&samples, &dir, None).unwrap();
    let back = load_folder(&spec(&dir, 3)).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in samples.iter().zip(&back) {
        assert_eq!((&a.name, &a.image.pixels, &a.mask, &a.instances), (&b.name, &b.image.pixels, &b.mask, &b.instances));
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A fresh copy of the 3-class folder, for one bad case to be made in.
fn good_folder(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    write_folder(&three_class_samples(), &dir, None).unwrap();
    dir
}

fn error(spec: &FolderSpec) -> String {
    format!("{:#}", load_folder(spec).expect_err("the folder must be refused"))
}

#[test]
fn every_kind_of_bad_folder_is_refused_with_the_file_named() {
    let samples = three_class_samples();
    let first = format!("{}.png", samples[0].name);
    let (w, h) = (samples[0].image.width as u32, samples[0].image.height as u32);

    // an empty image folder
    let dir = temp_dir("empty");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains("holds no images") && e.contains("images"), "{e}");

    // the mask folder missing
    std::fs::remove_dir_all(dir.join("masks")).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains("mask folder") && e.contains("does not exist"), "{e}");

    // an image without a mask
    let dir = good_folder("no-mask");
    std::fs::remove_file(dir.join("masks").join(&first)).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("has no mask"), "{e}");

    // a mask whose size differs from its image
    let dir = good_folder("size");
    image::GrayImage::new(w - 1, h).save(dir.join("masks").join(&first)).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains(&format!("is {}x{h} but its image", w - 1)), "{e}");

    // label values outside the classes: a 3-class mask read as 2 classes, and a 0/255 mask
    let dir = good_folder("labels");
    let e = error(&spec(&dir, 2));
    assert!(e.contains("masks") && e.contains("has label value 2") && e.contains("values must be 0..1"), "{e}");
    let mut bw = image::GrayImage::new(w, h);
    bw.put_pixel(5, 7, image::Luma([255]));
    bw.put_pixel(6, 7, image::Luma([1]));
    bw.put_pixel(7, 7, image::Luma([2]));
    bw.save(dir.join("masks").join(&first)).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("label value 255 at pixel (5, 7)") && e.contains("0/255"), "{e}");

    // a class that appears in no mask
    let dir = good_folder("unused-class");
    let e = error(&spec(&dir, 4));
    assert!(e.contains("class 3 appears in no mask"), "{e}");

    // an unreadable image, and an unreadable mask
    let dir = good_folder("unreadable");
    std::fs::write(dir.join("images").join(&first), "not an image").unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("cannot decode"), "{e}");
    let dir = good_folder("unreadable-mask");
    std::fs::write(dir.join("masks").join(&first), "not a mask").unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("mask"), "{e}");

    // a colour mask: class indices cannot be read from RGB
    let dir = good_folder("rgb-mask");
    image::RgbImage::new(w, h).save(dir.join("masks").join(&first)).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("greyscale"), "{e}");

    // an image without an instance mask, when instances are asked for
    let dir = good_folder("no-instances");
    std::fs::remove_file(dir.join("instances").join(&first)).unwrap();
    let e = error(&spec(&dir, 3));
    assert!(e.contains(&first) && e.contains("no instance mask"), "{e}");
    for name in ["empty", "no-mask", "size", "labels", "unused-class", "unreadable", "unreadable-mask", "rgb-mask", "no-instances"] {
        std::fs::remove_dir_all(temp_dir(name)).ok();
    }
}

/// The README's 3-class example figures are those of the published run in results/: its test
/// report (int8 per-class Dice and IoU, AJI), its validation log, and a model file with the
/// three classes.
#[test]
fn the_readme_reports_the_published_three_class_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = root.join("results/nuclei-3class");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("test.json")).unwrap()).unwrap();
    let rows = [("background", "background"), ("nucleus", "nucleus (interior)"), ("boundary", "boundary")];
    for (class, label) in rows {
        let c = report["int8"]["per_class"].as_array().unwrap().iter().find(|c| c["class"] == class).unwrap();
        let row = format!("| {label} | {:.3} | {:.3} |", c["dice"].as_f64().unwrap(), c["iou"].as_f64().unwrap());
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
    let q = &report["int8"];
    let mean = format!("| mean of the foreground classes | {:.3} | {:.3} |", q["pixel_dice"].as_f64().unwrap(), q["pixel_iou"].as_f64().unwrap());
    assert!(readme.contains(&mean), "README lacks {mean}");
    let aji = format!("AJI {:.3} (f32 {:.3})", q["objects"]["aji"].as_f64().unwrap(), report["f32"]["objects"]["aji"].as_f64().unwrap());
    assert!(readme.contains(&aji), "README lacks {aji}");
    let validation: Vec<String> = std::fs::read_to_string(dir.join("validation.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| format!("{:.3}", l.split(',').nth(1).unwrap().parse::<f64>().unwrap()))
        .collect();
    assert!(readme.contains(&format!("rose {} at steps 100 to 600", validation.join(", "))), "README's validation figures differ from {validation:?}");
    let file = histoseg::weights::ModelFile::from_bytes(&std::fs::read(dir.join("nuclei-3class.histoseg")).unwrap()).unwrap();
    assert_eq!(file.manifest.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["background", "nucleus", "boundary"]);
    assert!(file.manifest.trained);
}
