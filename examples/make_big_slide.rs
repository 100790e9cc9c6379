//! Writes a whole-slide file larger than 4 GB for the browser tests (`tests/browser/big_slide.test.mjs`):
//!
//! ```text
//! cargo run --release --example make_big_slide -- OUT.svs
//! ```
//!
//! An SVS-like pyramidal BigTIFF of 100,000 x 100,000 pixels at 0.5 µm/px (four levels, 512 px
//! JPEG tiles) whose tiles are real H&E: 48 crops of the CC0 sample slide
//! (`www/samples/cmu-small-region.svs`), repeated in a pattern. The bottom half of level 0 is stored
//! past byte 4.5 GB, so reading it needs 64-bit offsets and a reader that never holds the file;
//! the gap before it is left sparse, so the file takes a few MB of disk however large it is.
//!
//! ```text
//! cargo run --release --example make_big_slide -- OUT.svs --glass SIDE
//! ```
//!
//! writes instead a SIDE x SIDE slide of glass (white) with the whole sample slide at (1024, 1024),
//! every level a true downsample of level 0 (tissue is found on the coarse levels): a slide larger
//! than the page holds at level 0 whose run takes as long as the sample's
//! (`tests/browser/whole_slide.test.mjs`).

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use histoseg::slide::Slide;
use image::{DynamicImage, ImageFormat};

const SIDE: u64 = 100_000;
const TILE: u64 = 512;
const DOWNSAMPLES: [u64; 4] = [1, 4, 16, 64];
/// Where the second copy of the tile data starts (the bottom half of level 0 points there).
const FAR: u64 = 4_500_000_000;

/// One BigTIFF directory entry: tag, type, count and the value's bytes.
struct Entry(u16, u16, u64, Vec<u8>);

fn shorts(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn long8s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn jpeg(rgb: Vec<u8>, w: usize, h: usize) -> Vec<u8> {
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb).expect("RGB");
    let mut jpeg = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img).write_to(&mut jpeg, ImageFormat::Jpeg).expect("JPEG");
    jpeg.into_inner()
}

/// The sample's level 0 averaged over `d` x `d` blocks (a partial block at the edge averages what
/// it has).
fn box_down(img: &histoseg::imageio::RgbImage, d: usize) -> histoseg::imageio::RgbImage {
    let (w, h) = (img.width.div_ceil(d), img.height.div_ceil(d));
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0u64; 3];
            let mut n = 0;
            for yy in y * d..((y + 1) * d).min(img.height) {
                for xx in x * d..((x + 1) * d).min(img.width) {
                    for c in 0..3 {
                        sum[c] += img.pixels[(yy * img.width + xx) * 3 + c] as u64;
                    }
                    n += 1;
                }
            }
            for c in 0..3 {
                out[(y * w + x) * 3 + c] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
    histoseg::imageio::RgbImage::new(w, h, out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().expect("usage: make_big_slide OUT.svs [--glass SIDE]"));
    let glass: Option<u64> = match args.get(1).map(String::as_str) {
        Some("--glass") => Some(args.get(2).and_then(|v| v.parse().ok()).expect("--glass SIDE")),
        None => None,
        Some(other) => panic!("unknown argument {other}"),
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sample = Slide::open(&root.join("www/samples/cmu-small-region.svs")).expect("the sample slide");
    let (w, h) = (sample.width() as u64, sample.height() as u64);
    let side = glass.unwrap_or(SIDE);
    let level_sizes: Vec<u64> = DOWNSAMPLES.iter().map(|d| side / d).collect();
    let tiles_across: Vec<u64> = level_sizes.iter().map(|s| s.div_ceil(TILE)).collect();
    // pool: distinct JPEG tiles; index[level][ty * across + tx]: the pool tile each tile shows
    let mut pool = Vec::new();
    let mut index: Vec<Vec<usize>> = Vec::new();
    if glass.is_some() {
        // white glass everywhere but where the sample lies; each level a downsample of level 0
        let whole = sample.read_region(0, 0, 0, w as usize, h as usize).expect("the sample");
        pool.push(jpeg(vec![255; (TILE * TILE * 3) as usize], TILE as usize, TILE as usize));
        const AT: usize = 1024;
        for (l, &d) in DOWNSAMPLES.iter().enumerate() {
            let small = box_down(&whole, d as usize);
            let (ox, oy) = (AT / d as usize, AT / d as usize);
            let across = tiles_across[l] as usize;
            let mut idx = vec![0; across * across];
            for ty in 0..across {
                for tx in 0..across {
                    let (x0, y0, t) = (tx * TILE as usize, ty * TILE as usize, TILE as usize);
                    if x0 + t <= ox || y0 + t <= oy || x0 >= ox + small.width || y0 >= oy + small.height {
                        continue;
                    }
                    let mut rgb = vec![255u8; t * t * 3];
                    for r in 0..t {
                        for c in 0..t {
                            let (x, y) = (x0 + c, y0 + r);
                            if x >= ox && y >= oy && x < ox + small.width && y < oy + small.height {
                                let s = ((y - oy) * small.width + x - ox) * 3;
                                rgb[(r * t + c) * 3..][..3].copy_from_slice(&small.pixels[s..s + 3]);
                            }
                        }
                    }
                    idx[ty * across + tx] = pool.len();
                    pool.push(jpeg(rgb, t, t));
                }
            }
            index.push(idx);
        }
    } else {
        // 48 tiles from a grid over the sample (it is tissue almost everywhere), in a pattern
        'grid: for gy in 0..8 {
            for gx in 0..6 {
                let x = (gx * (w - TILE) / 5) as usize;
                let y = (gy * (h - TILE) / 7) as usize;
                let rgb = sample.read_region(0, x, y, TILE as usize, TILE as usize).expect("a sample region");
                pool.push(jpeg(rgb.pixels, TILE as usize, TILE as usize));
                if pool.len() == 48 {
                    break 'grid;
                }
            }
        }
        for &across in &tiles_across {
            index.push((0..across * across).map(|i| ((i % across * 7 + i / across * 13) % pool.len() as u64) as usize).collect());
        }
    }
    let pool_bytes: u64 = pool.iter().map(|t| t.len() as u64).sum();

    // directories first (their size does not depend on where the data goes), then the data
    let description = format!("Aperio Image Library (histoseg test slide)\r\n{side}x{side} [0,0 {side}x{side}] ({TILE}x{TILE}) JPEG Q=75|AppMag = 20|MPP = 0.5");
    let ifd_sizes: Vec<u64> = (0..DOWNSAMPLES.len())
        .map(|l| {
            let n = tiles_across[l] * tiles_across[l];
            let entries = if l == 0 { 12 } else { 11 };
            let desc = if l == 0 { description.len() as u64 + 1 } else { 0 };
            8 + entries * 20 + 8 + 2 * 8 * n + desc + 16
        })
        .collect();
    let near = 16 + ifd_sizes.iter().sum::<u64>();
    let mut offsets_near = Vec::new();
    let mut offsets_far = Vec::new();
    let (mut a, mut b) = (near, FAR);
    for t in &pool {
        offsets_near.push(a);
        offsets_far.push(b);
        a += t.len() as u64;
        b += t.len() as u64;
    }

    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create the output"));
    file.write_all(b"II").unwrap();
    file.write_all(&43u16.to_le_bytes()).unwrap();
    file.write_all(&8u16.to_le_bytes()).unwrap();
    file.write_all(&0u16.to_le_bytes()).unwrap();
    file.write_all(&16u64.to_le_bytes()).unwrap();
    let mut at = 16u64;
    for l in 0..DOWNSAMPLES.len() {
        let across = tiles_across[l];
        let mut offsets = Vec::new();
        let mut counts = Vec::new();
        for ty in 0..across {
            for tx in 0..across {
                let k = index[l][(ty * across + tx) as usize];
                let far = glass.is_none() && l == 0 && ty >= across / 2;
                offsets.push(if far { offsets_far[k] } else { offsets_near[k] });
                counts.push(pool[k].len() as u64);
            }
        }
        let size = level_sizes[l];
        let mut entries = vec![
            Entry(256, 16, 1, long8s(&[size])),
            Entry(257, 16, 1, long8s(&[size])),
            Entry(258, 3, 3, shorts(&[8, 8, 8])),
            Entry(259, 3, 1, shorts(&[7])),
            Entry(262, 3, 1, shorts(&[6])),
            Entry(277, 3, 1, shorts(&[3])),
            Entry(284, 3, 1, shorts(&[1])),
            Entry(322, 16, 1, long8s(&[TILE])),
            Entry(323, 16, 1, long8s(&[TILE])),
            Entry(324, 16, offsets.len() as u64, long8s(&offsets)),
            Entry(325, 16, counts.len() as u64, long8s(&counts)),
        ];
        if l == 0 {
            let mut d = description.clone().into_bytes();
            d.push(0);
            entries.push(Entry(270, 2, d.len() as u64, d));
        }
        entries.sort_by_key(|e| e.0);
        let ifd_end = at + 8 + entries.len() as u64 * 20 + 8;
        let mut extra_at = ifd_end;
        let mut ifd = Vec::new();
        let mut extra = Vec::new();
        ifd.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for Entry(tag, ty, count, bytes) in &entries {
            ifd.extend_from_slice(&tag.to_le_bytes());
            ifd.extend_from_slice(&ty.to_le_bytes());
            ifd.extend_from_slice(&count.to_le_bytes());
            if bytes.len() <= 8 {
                let mut field = [0u8; 8];
                field[..bytes.len()].copy_from_slice(bytes);
                ifd.extend_from_slice(&field);
            } else {
                ifd.extend_from_slice(&extra_at.to_le_bytes());
                extra.extend_from_slice(bytes);
                extra_at += bytes.len() as u64;
            }
        }
        let next = if l + 1 < DOWNSAMPLES.len() { at + ifd_sizes[l] } else { 0 };
        ifd.extend_from_slice(&next.to_le_bytes());
        file.write_all(&ifd).unwrap();
        file.write_all(&extra).unwrap();
        let written = ifd.len() as u64 + extra.len() as u64;
        assert!(written <= ifd_sizes[l], "directory size estimate");
        file.write_all(&vec![0u8; (ifd_sizes[l] - written) as usize]).unwrap();
        at += ifd_sizes[l];
    }
    assert_eq!(at, near);
    for t in &pool {
        file.write_all(t).unwrap();
    }
    // the gap up to FAR stays a hole in the file
    if glass.is_none() {
        file.seek(SeekFrom::Start(FAR)).unwrap();
        for t in &pool {
            file.write_all(t).unwrap();
        }
    }
    file.flush().unwrap();
    let len = file.get_ref().metadata().unwrap().len();
    println!("{}: {side}x{side} px, {} levels, {} tiles at level 0, {:.2} GB ({} kB of tile data{})", out.display(), DOWNSAMPLES.len(), tiles_across[0] * tiles_across[0], len as f64 / 1e9, pool_bytes / 1000, if glass.is_none() { ", stored twice" } else { "" });
}
