//! Whole-slide and TIFF opening: the real Aperio SVS sample (CC0, OpenSlide's
//! CMU-1-Small-Region) gives its levels and resolution, its JPEG tiles decode to H&E colours, and
//! region reads agree across tiles and across the pyramid; multi-page 16-bit TIFFs written here
//! open with their resolution tags; damaged files give errors, not panics. The shipped glands
//! model segments a region of the slide through the CLI.

use histoseg::imageio::RgbImage;
use histoseg::slide::{Region, Slide, SlideError};
use std::process::Command;

fn svs_path() -> std::path::PathBuf {
    histoseg::data_dir().join("samples/cmu-small-region.svs")
}

fn mean_rgb(img: &RgbImage) -> [f64; 3] {
    let n = (img.width * img.height) as f64;
    let mut m = [0.0; 3];
    for p in img.pixels.chunks_exact(3) {
        for c in 0..3 {
            m[c] += p[c] as f64 / n;
        }
    }
    m
}

#[test]
fn svs_levels_resolution_and_colours() {
    let mut s = Slide::open(&svs_path()).unwrap();
    assert_eq!(s.format, "Aperio SVS");
    assert_eq!((s.width(), s.height()), (2220, 2967));
    assert_eq!(s.um_per_px, Some(0.499));
    // level 0 and the 574x768 reduced copy; the label (387x463) and macro (1280x431) are skipped
    assert_eq!(s.levels.iter().map(|l| (l.width, l.height)).collect::<Vec<_>>(), vec![(2220, 2967), (574, 768)]);
    assert_eq!(s.level_for(0.499, 0.5), 0);
    assert_eq!(s.level_for(0.499, 2.0), 1);

    // the top-left corner is glass (near white, not the salmon of undecoded YCbCr); the tissue
    // region is H&E: red and blue above green
    let glass = mean_rgb(&s.read_region(0, 0, 0, 200, 200).unwrap());
    assert!(glass.iter().all(|&c| c > 225.0), "glass {glass:?}");
    let tissue = mean_rgb(&s.read_region(0, 800, 1200, 600, 400).unwrap());
    assert!(tissue[0] > tissue[1] + 20.0 && tissue[2] > tissue[1] + 20.0 && tissue[1] < 200.0, "tissue {tissue:?}");

    // a region across four 240 px tiles equals the same pixels read as four separate parts
    let whole = s.read_region(0, 230, 470, 30, 20).unwrap();
    for (x, y) in [(230, 470), (240, 470), (230, 480), (240, 480)] {
        let part = s.read_region(0, x, y, 10, 10).unwrap();
        for row in 0..10 {
            let w = &whole.pixels[((y - 470 + row) * 30 + (x - 230)) * 3..][..30];
            assert_eq!(w, &part.pixels[row * 30..][..30], "tile seam at ({x}, {y})");
        }
    }
    // the edge tile is partial: pixels beyond the image are white
    let edge = s.read_region(0, 2210, 2960, 20, 20).unwrap();
    assert_eq!(&edge.pixels[(19 * 20 + 19) * 3..][..3], &[255, 255, 255]);

    // the reduced level shows the same tissue as level 0 scaled down
    let region = Region { x: 600, y: 1000, width: 1000, height: 1000 };
    let from_l1 = s.read_at_resolution(region, 0.499, 2.0).unwrap();
    let l0 = s.read_region(0, 600, 1000, 1000, 1000).unwrap();
    let from_l0 = histoseg::imageio::resize(&l0, from_l1.width, from_l1.height);
    let diff: f64 = from_l1.pixels.iter().zip(&from_l0.pixels).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>() / from_l1.pixels.len() as f64;
    assert_eq!((from_l1.width, from_l1.height), (250, 250));
    assert!(diff < 20.0, "level 1 and level 0 disagree by {diff:.1} grey levels on average");
}

fn write_tiff(path: &std::path::Path, pages: &[(u32, u32)], px_per_cm: u32) {
    use tiff::encoder::{Rational, TiffEncoder, colortype::Gray16};
    use tiff::tags::ResolutionUnit;
    let mut enc = TiffEncoder::new(std::fs::File::create(path).unwrap()).unwrap();
    for &(w, h) in pages {
        let data: Vec<u16> = (0..w * h).map(|i| ((i % w) * 65535 / w) as u16).collect();
        let mut img = enc.new_image::<Gray16>(w, h).unwrap();
        img.resolution(ResolutionUnit::Centimeter, Rational { n: px_per_cm, d: 1 });
        img.write_data(&data).unwrap();
    }
}

#[test]
fn multi_page_16_bit_tiff_with_resolution() {
    let dir = std::env::temp_dir().join(format!("histoseg-tiff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pyramid.tif");
    // 40000 px/cm is 0.25 µm/px; the pages halve
    write_tiff(&path, &[(400, 300), (200, 150), (100, 75)], 40_000);
    let mut s = Slide::open(&path).unwrap();
    assert_eq!(s.format, "TIFF");
    assert_eq!(s.levels.len(), 3);
    assert_eq!(s.levels[2].downsample, 4.0);
    assert!((s.um_per_px.unwrap() - 0.25).abs() < 1e-9);
    let r = s.read_region(0, 0, 10, 400, 1).unwrap();
    // a horizontal ramp, grey, 16-bit scaled to 8
    assert_eq!(&r.pixels[..3], &[0, 0, 0]);
    assert_eq!(&r.pixels[200 * 3..][..3], &[127, 127, 127], "32767 of 65535");
    assert!(r.pixels[399 * 3] > 250);

    // a 72 dpi resolution is a screen default, not a microscope's
    let plain = dir.join("plain.tif");
    write_tiff(&plain, &[(50, 40)], 28);
    assert_eq!(Slide::open(&plain).unwrap().um_per_px, None);

    // truncated: an error that says so, never a panic
    let bytes = std::fs::read(&path).unwrap();
    for cut in [8, bytes.len() / 3, bytes.len() - 100] {
        let result = Slide::from_bytes(bytes[..cut].to_vec()).and_then(|mut s| s.read_region(0, 0, 0, 400, 300));
        let err = result.err().unwrap_or_else(|| panic!("a file cut at {cut} bytes opened"));
        assert!(matches!(err, SlideError::CorruptTiff(_) | SlideError::UnsupportedTiff(_)), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_svs_is_an_error_not_a_panic() {
    let bytes = std::fs::read(svs_path()).unwrap();
    let cut = bytes[..bytes.len() / 2].to_vec();
    match Slide::from_bytes(cut) {
        Err(e) => assert!(e.to_string().contains("TIFF"), "{e}"),
        Ok(mut s) => {
            // the directories survived; reading every tile must fail cleanly somewhere
            let (w, h) = (s.width(), s.height());
            let err = (0..h).step_by(240).find_map(|y| s.read_region(0, 0, y, w, 240).err());
            assert!(err.is_some(), "half of the tile data is gone");
        }
    }
}

#[test]
fn cli_segments_a_region_of_the_svs_with_the_shipped_model() {
    let dir = std::env::temp_dir().join(format!("histoseg-svs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/glands.histoseg");
    let segment = |region: &str| {
        Command::new(env!("CARGO_BIN_EXE_histoseg"))
            .args(["segment", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(svs_path())
            .arg("--output")
            .arg(&dir)
            .args(["--region", region])
            .output()
            .unwrap()
    };
    let out = segment("800,1200,300,200");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels = image::open(dir.join("cmu-small-region.labels.png")).unwrap().to_luma8();
    assert_eq!(labels.dimensions(), (300, 200), "labels cover the region at level-0 resolution");
    let gj: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("cmu-small-region.geojson")).unwrap()).unwrap();
    for f in gj["features"].as_array().unwrap() {
        for p in f["geometry"]["coordinates"][0].as_array().unwrap() {
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            assert!((799.5..=1099.5).contains(&x) && (1199.5..=1399.5).contains(&y), "vertex ({x}, {y}) is in image coordinates inside the region");
        }
    }
    let csv = std::fs::read_to_string(dir.join("cmu-small-region.measurements.csv")).unwrap();
    assert!(csv.starts_with("class,area_px,area_um2,fraction,objects\n"), "{csv}");
    // the SVS says 0.499 µm/px, so areas come in µm² too
    let gland = csv.lines().find(|l| l.starts_with("gland,")).expect("a gland row");
    assert!(!gland.split(',').nth(2).unwrap().is_empty(), "{gland}");

    // a region outside the slide is refused clearly
    let out = segment("5000,5000,10,10");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the 2220x2967 pixel image"));
    std::fs::remove_dir_all(&dir).ok();
}
