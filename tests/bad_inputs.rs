//! Every class of bad input in `tests/bad_inputs/cases.json` through the command line tool: the
//! exact message for what is refused, the right pixels for what is converted, streaming for a
//! slide far larger than memory, and the README table listing the same messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use histoseg::slide::Slide;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Value {
    serde_json::from_slice(&std::fs::read(root().join("tests/bad_inputs/cases.json")).unwrap()).unwrap()
}

fn input(file: &str) -> PathBuf {
    root().join("tests/bad_inputs").join(file)
}

fn histoseg(args: &[&str], model: &Path, image: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_histoseg"))
        .arg("segment")
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(image)
        .arg("--output")
        .arg(out)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("histoseg-bad-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_bad_image_gets_its_message_or_is_converted() {
    let model = root().join("models/glands.histoseg");
    let out = out_dir("images");
    let all = cases();
    for case in all["images"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let path = input(file);
        if case["streams"] == true {
            // far larger than memory: the page and the command line stream it whole (hours on a
            // CPU; tests/whole_slide.rs streams a large region of it); a region of it works
            let r: Vec<String> = case["region"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
            let run = histoseg(&["--region", &r.join(",")], &model, &path, &out);
            assert!(run.status.success(), "{file} region: {}", text(&run.stderr));
            let stem = file.trim_end_matches(".tif");
            let labels = image::open(out.join(format!("{stem}.labels.png"))).unwrap();
            assert_eq!((labels.width().to_string(), labels.height().to_string()), (r[2].clone(), r[3].clone()));
            continue;
        }
        let run = histoseg(&[], &model, &path, &out);
        let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
        if let Some(message) = case["message"].as_str() {
            assert!(!run.status.success(), "{file} was accepted");
            let expected = format!("error: {}: {message}\n", path.display());
            assert!(stderr.contains(&expected), "{file}:\n expected {expected}\n got {stderr}");
            assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        } else if let Some(nothing) = case["nothing"].as_str() {
            // opens, but there is nothing to segment in it
            assert!(Slide::open(&path).is_ok(), "{file} opens");
            assert!(!run.status.success(), "{file} was segmented");
            assert!(stderr.contains(&format!("error: {}: {nothing}\n", path.display())), "{file}: {stderr}");
        } else {
            assert!(run.status.success(), "{file}: {stderr}");
            let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
            let labels = image::open(out.join(format!("{stem}.labels.png"))).unwrap();
            let slide = Slide::open(&path).unwrap();
            assert_eq!((labels.width() as usize, labels.height() as usize), (slide.width(), slide.height()), "{file}");
            match case["note"].as_str() {
                Some(note) => assert!(stdout.contains(&format!("note: {}: {note}\n", path.display())), "{file}: {stdout}"),
                None => assert!(!stdout.contains("note:"), "{file}: {stdout}"),
            }
        }
    }
    std::fs::remove_dir_all(&out).ok();
}

/// The converted images hold the pixels of the H&E crop they were made from.
#[test]
fn converted_images_keep_their_pixels() {
    let sample = image::open(root().join("www/samples/he-1000x1000.png")).unwrap().to_rgb8();
    let crop = image::imageops::crop_imm(&sample, 400, 400, 96, 96).to_image();
    let read = |file: &str| {
        let mut s = Slide::open(&input(file)).unwrap();
        s.read_region(0, 0, 0, 96, 96).unwrap().pixels
    };
    let mean_diff = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64;

    assert_eq!(read("rgb16.png"), crop.as_raw().as_slice(), "16-bit reduces to the same 8-bit values");
    let grey = image::DynamicImage::ImageRgb8(crop.clone()).to_luma8();
    assert_eq!(read("grey.png"), grey.pixels().flat_map(|p| [p[0]; 3]).collect::<Vec<_>>());
    let rgba = read("rgba.png");
    for (i, px) in rgba.chunks(3).enumerate() {
        let (x, y) = ((i % 96) as u32, (i / 96) as u32);
        let want = if x < 48 { crop.get_pixel(x, y).0 } else { [255; 3] };
        assert_eq!(px, want, "pixel {x},{y}: opaque kept, transparent over white");
    }
    let cmyk_tif = read("cmyk.tif");
    assert!(mean_diff(&cmyk_tif, crop.as_raw()) < 1.0, "CMYK TIFF: mean difference {}", mean_diff(&cmyk_tif, crop.as_raw()));
    let cmyk_jpg = read("cmyk.jpg");
    assert!(mean_diff(&cmyk_jpg, crop.as_raw()) < 6.0, "CMYK JPEG: mean difference {}", mean_diff(&cmyk_jpg, crop.as_raw()));
    let big = read("bigtiff.tif");
    assert!(mean_diff(&big, crop.as_raw()) < 6.0, "BigTIFF JPEG tiles: mean difference {}", mean_diff(&big, crop.as_raw()));
}

#[test]
fn every_bad_model_file_gets_its_message() {
    let image = input("one-pixel.png");
    let out = out_dir("models");
    for case in cases()["models"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let message = case["message"].as_str().unwrap();
        let run = histoseg(&[], &input(file), &image, &out);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{file} was accepted");
        assert!(stderr.contains(message), "{file}:\n expected {message}\n got {stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// The README's table states the same messages the tests check.
#[test]
fn readme_lists_every_message() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let all = cases();
    for case in all["images"].as_array().unwrap().iter().chain(all["models"].as_array().unwrap()) {
        let file = case["file"].as_str().unwrap();
        assert!(readme.contains(&format!("`{file}`")), "README does not list {file}");
        for key in ["message", "nothing", "note"] {
            if let Some(m) = case[key].as_str() {
                let escaped = m.replace('|', "\\|");
                assert!(readme.contains(&escaped), "README does not give the {key} for {file}: {escaped}");
            }
        }
    }
}

/// A folder with every bad input: the good files are still segmented, each bad one is reported,
/// and the exit status says how many failed.
#[test]
fn a_folder_with_bad_files_segments_the_good_ones() {
    let out = out_dir("folder");
    // every bad input but the slide far larger than memory, which the command line segments
    // whole (streamed, for hours on a CPU)
    let images: Vec<Value> = cases()["images"].as_array().unwrap().iter().filter(|c| c["streams"] != true).cloned().collect();
    let folder = out_dir("folder-in");
    for c in &images {
        let file = c["file"].as_str().unwrap();
        std::os::unix::fs::symlink(input(file), folder.join(file)).unwrap();
    }
    let run = histoseg(&[], &root().join("models/glands.histoseg"), &folder, &out);
    let stderr = text(&run.stderr);
    // the folder scan takes images by extension, so the .histoseg files are not among them
    let refused: Vec<&str> = images.iter().filter(|c| c.get("opens").is_none() || c.get("nothing").is_some()).map(|c| c["file"].as_str().unwrap()).collect();
    assert!(!run.status.success());
    assert!(stderr.contains(&format!("{} of {} images could not be segmented", refused.len(), images.len())), "{stderr}");
    for c in &images {
        let file = c["file"].as_str().unwrap();
        let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let written = out.join(format!("{stem}.labels.png")).exists();
        assert_eq!(written, !refused.contains(&file), "{file}");
    }
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&folder).ok();
}
