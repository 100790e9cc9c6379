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

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: make_big_slide OUT.svs"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut sample = Slide::open(&root.join("www/samples/cmu-small-region.svs")).expect("the sample slide");
    let (w, h) = (sample.width() as u64, sample.height() as u64);
    // 48 tiles from a grid over the sample (it is tissue almost everywhere)
    let mut pool = Vec::new();
    'grid: for gy in 0..8 {
        for gx in 0..6 {
            let x = (gx * (w - TILE) / 5) as usize;
            let y = (gy * (h - TILE) / 7) as usize;
            let rgb = sample.read_region(0, x, y, TILE as usize, TILE as usize).expect("a sample region");
            let img = image::RgbImage::from_raw(TILE as u32, TILE as u32, rgb.pixels).expect("RGB");
            let mut jpeg = std::io::Cursor::new(Vec::new());
            DynamicImage::ImageRgb8(img).write_to(&mut jpeg, ImageFormat::Jpeg).expect("JPEG");
            pool.push(jpeg.into_inner());
            if pool.len() == 48 {
                break 'grid;
            }
        }
    }
    let pool_bytes: u64 = pool.iter().map(|t| t.len() as u64).sum();

    // directories first (their size does not depend on where the data goes), then the data
    let description = format!("Aperio Image Library (histoseg test slide)\r\n{SIDE}x{SIDE} [0,0 {SIDE}x{SIDE}] ({TILE}x{TILE}) JPEG Q=75|AppMag = 20|MPP = 0.5");
    let level_sizes: Vec<u64> = DOWNSAMPLES.iter().map(|d| SIDE / d).collect();
    let tiles_across: Vec<u64> = level_sizes.iter().map(|s| s.div_ceil(TILE)).collect();
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
                let k = ((tx * 7 + ty * 13) % pool.len() as u64) as usize;
                let far = l == 0 && ty >= across / 2;
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
    file.seek(SeekFrom::Start(FAR)).unwrap();
    for t in &pool {
        file.write_all(t).unwrap();
    }
    file.flush().unwrap();
    let len = file.get_ref().metadata().unwrap().len();
    println!("{}: {SIDE}x{SIDE} px, {} levels, {} tiles at level 0, {:.2} GB ({} kB of tile data, stored twice)", out.display(), DOWNSAMPLES.len(), tiles_across[0] * tiles_across[0], len as f64 / 1e9, pool_bytes / 1000);
}
