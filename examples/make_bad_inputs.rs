//! Writes the bad-input corpus (`tests/bad_inputs/`) and the fuzzing seeds
//! (`tests/fuzz/corpus/<target>/`) from the shipped samples and synthetic images:
//!
//! ```text
//! cargo run --release --example make_bad_inputs
//! ```
//!
//! The expected outcome of every bad input is written by hand in `tests/bad_inputs/cases.json`
//! (and the README table), never by this program. The files are small and derived only from the
//! CC0/BSD samples in `www/samples/`, so they may be committed; no GlaS or MoNuSeg pixel is used.

use std::io::Cursor;
use std::path::Path;

use burn::prelude::*;
use histoseg::model::{HeadConfig, HistoSegNet, UNetConfig};
use histoseg::weights::{ClassInfo, ModelFile, new_manifest};
use image::{DynamicImage, ImageFormat};

/// A TIFF field value.
enum V {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Ascii(String),
    Rational(u32, u32),
}

impl V {
    fn type_and_bytes(&self) -> (u16, usize, Vec<u8>) {
        match self {
            V::Short(v) => (3, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            V::Long(v) => (4, v.len(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            V::Ascii(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                (2, b.len(), b)
            }
            V::Rational(n, d) => (5, 1, [n.to_le_bytes(), d.to_le_bytes()].concat()),
        }
    }
}

/// One image of a TIFF: its tags (without the offset/byte-count tags) and its chunks, given as
/// indices into a pool so that many tiles can share one stored tile.
struct TiffImage {
    tags: Vec<(u16, V)>,
    tiled: bool,
    pool: Vec<Vec<u8>>,
    chunks: Vec<usize>,
}

/// Writes a little-endian TIFF (or BigTIFF) with every directory before the pixel data, as
/// Aperio and most slide scanners do not, but as a truncated download would leave it readable.
fn write_tiff(big: bool, images: &[TiffImage]) -> Vec<u8> {
    // two passes: the first learns where the pixel data starts, the second writes it
    let mut data_start = 0usize;
    for pass in 0..2 {
        let header = if big { 16 } else { 8 };
        let mut out = Vec::new();
        out.extend_from_slice(b"II");
        if big {
            out.extend_from_slice(&43u16.to_le_bytes());
            out.extend_from_slice(&8u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&(header as u64).to_le_bytes());
        } else {
            out.extend_from_slice(&42u16.to_le_bytes());
            out.extend_from_slice(&(header as u32).to_le_bytes());
        }
        // pixel data layout
        let mut pool_offsets = Vec::new();
        let mut at = data_start;
        for img in images {
            let mut offs = Vec::new();
            for c in &img.pool {
                offs.push(at);
                at += c.len() + c.len() % 2;
            }
            pool_offsets.push(offs);
        }
        for (i, img) in images.iter().enumerate() {
            let offsets: Vec<u32> = img.chunks.iter().map(|&c| pool_offsets[i][c] as u32).collect();
            let counts: Vec<u32> = img.chunks.iter().map(|&c| img.pool[c].len() as u32).collect();
            let (off_tag, count_tag) = if img.tiled { (324, 325) } else { (273, 279) };
            let mut entries: Vec<(u16, (u16, usize, Vec<u8>))> = img.tags.iter().map(|(t, v)| (*t, v.type_and_bytes())).collect();
            entries.push((off_tag, V::Long(offsets).type_and_bytes()));
            entries.push((count_tag, V::Long(counts).type_and_bytes()));
            entries.sort_by_key(|e| e.0);
            let (entry_size, inline) = if big { (20, 8) } else { (12, 4) };
            let count_size = if big { 8 } else { 2 };
            let next_size = if big { 8 } else { 4 };
            let ifd_start = out.len();
            let mut extra_at = ifd_start + count_size + entries.len() * entry_size + next_size;
            let mut ifd = Vec::new();
            let mut extra = Vec::new();
            if big {
                ifd.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            } else {
                ifd.extend_from_slice(&(entries.len() as u16).to_le_bytes());
            }
            for (tag, (ty, count, bytes)) in &entries {
                ifd.extend_from_slice(&tag.to_le_bytes());
                ifd.extend_from_slice(&ty.to_le_bytes());
                let mut field = vec![0u8; inline];
                if bytes.len() <= inline {
                    field[..bytes.len()].copy_from_slice(bytes);
                } else {
                    if big {
                        field.copy_from_slice(&(extra_at as u64).to_le_bytes());
                    } else {
                        field.copy_from_slice(&(extra_at as u32).to_le_bytes());
                    }
                    extra.extend_from_slice(bytes);
                    extra_at += bytes.len();
                    if bytes.len() % 2 == 1 {
                        extra.push(0);
                        extra_at += 1;
                    }
                }
                if big {
                    ifd.extend_from_slice(&(*count as u64).to_le_bytes());
                } else {
                    ifd.extend_from_slice(&(*count as u32).to_le_bytes());
                }
                ifd.extend_from_slice(&field);
            }
            let next = if i + 1 < images.len() { extra_at } else { 0 };
            if big {
                ifd.extend_from_slice(&(next as u64).to_le_bytes());
            } else {
                ifd.extend_from_slice(&(next as u32).to_le_bytes());
            }
            out.extend_from_slice(&ifd);
            out.extend_from_slice(&extra);
        }
        if pass == 0 {
            data_start = out.len();
            continue;
        }
        assert_eq!(out.len(), data_start);
        for img in images {
            for c in &img.pool {
                out.extend_from_slice(c);
                if c.len() % 2 == 1 {
                    out.push(0);
                }
            }
        }
        return out;
    }
    unreachable!()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// Tags of a `width` x `height` image stored in `tile` x `tile` tiles.
fn tiled_tags(width: u32, height: u32, tile: u32, compression: u16, photometric: u16, samples: u16, bits: u16) -> Vec<(u16, V)> {
    vec![
        (256, V::Long(vec![width])),
        (257, V::Long(vec![height])),
        (258, V::Short(vec![bits; samples as usize])),
        (259, V::Short(vec![compression])),
        (262, V::Short(vec![photometric])),
        (277, V::Short(vec![samples])),
        (284, V::Short(vec![1])),
        (322, V::Long(vec![tile])),
        (323, V::Long(vec![tile])),
    ]
}

/// The `tile` x `tile` tiles of an image in row-major order, padded with white at the right and
/// bottom edges.
fn padded_tiles(img: &image::RgbImage, tile: u32) -> Vec<image::RgbImage> {
    let mut tiles = Vec::new();
    for ty in 0..img.height().div_ceil(tile) {
        for tx in 0..img.width().div_ceil(tile) {
            tiles.push(image::RgbImage::from_fn(tile, tile, |x, y| {
                let (px, py) = (tx * tile + x, ty * tile + y);
                if px < img.width() && py < img.height() { *img.get_pixel(px, py) } else { image::Rgb([255; 3]) }
            }));
        }
    }
    tiles
}

/// Raw (uncompressed) tiles, each pixel's samples written by `map`.
fn raw_tiles(img: &image::RgbImage, tile: u32, map: impl Fn([u8; 3]) -> Vec<u8>) -> Vec<Vec<u8>> {
    padded_tiles(img, tile).iter().map(|t| t.pixels().flat_map(|p| map(p.0)).collect()).collect()
}

fn jpeg_tiles(img: &image::RgbImage, tile: u32) -> Vec<Vec<u8>> {
    padded_tiles(img, tile).into_iter().map(|t| encode(&DynamicImage::ImageRgb8(t), ImageFormat::Jpeg)).collect()
}

fn tiny_model() -> Vec<u8> {
    let unet = UNetConfig { base_channels: 8, channel_mults: vec![1, 2], res_blocks: 1, norm_groups: 8, ..UNetConfig::default() };
    let head = HeadConfig::new(vec![0, 1], 8, 2);
    let classes = vec![ClassInfo { name: "background".into(), color: [0, 0, 0] }, ClassInfo { name: "tissue".into(), color: [0, 200, 83] }];
    let mut manifest = new_manifest("tiny", classes, unet, head);
    manifest.tile_size = 32;
    manifest.overlap = 8;
    let device = Device::flex();
    device.seed(7);
    let net = HistoSegNet::new(&manifest.unet, &manifest.head, &device);
    ModelFile::from_net(manifest, &net).to_bytes()
}

fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write");
    println!("{:>9} bytes  {}", bytes.len(), dir.join(name).display());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = root.join("tests/bad_inputs");
    std::fs::create_dir_all(&bad).unwrap();
    let sample = image::open(root.join("www/samples/he-1000x1000.png")).expect("the H&E sample").to_rgb8();
    let crop = image::imageops::crop_imm(&sample, 400, 400, 96, 96).to_image();
    let he = DynamicImage::ImageRgb8(crop.clone());

    // damaged files
    let png = encode(&he, ImageFormat::Png);
    write(&bad, "truncated.png", &png[..png.len() * 6 / 10]);
    let mut corrupt = png.clone();
    let idat = corrupt.windows(4).position(|w| w == b"IDAT").expect("IDAT");
    for b in &mut corrupt[idat + 100..idat + 140] {
        *b ^= 0x5a;
    }
    write(&bad, "corrupt.png", &corrupt);
    let jpg = encode(&he, ImageFormat::Jpeg);
    write(&bad, "truncated.jpg", &jpg[..jpg.len() / 2]);
    let mut corrupt = jpg.clone();
    let sof = corrupt.windows(2).position(|w| w == [0xff, 0xc0]).expect("SOF0");
    corrupt[sof + 9] = 7; // seven colour components
    write(&bad, "corrupt.jpg", &corrupt);
    let tiled = TiffImage { tags: tiled_tags(96, 96, 32, 1, 2, 3, 8), tiled: true, pool: raw_tiles(&crop, 32, |p| p.to_vec()), chunks: (0..9).collect() };
    let tif = write_tiff(false, &[tiled]);
    write(&bad, "truncated.tif", &tif[..tif.len() * 6 / 10]);
    let svs = std::fs::read(root.join("www/samples/cmu-small-region.svs")).unwrap();
    write(&bad, "truncated.svs", &svs[..64 << 10]);
    write(&bad, "not-an-image.png", b"Patient notes, not an image.\nThis text file was renamed to .png.\n");
    write(&bad, "empty.png", b"");

    // nothing to segment: the glass beside the tissue of the real SVS sample, 500x1767 px
    let mut svs_slide = histoseg::slide::Slide::open(&root.join("www/samples/cmu-small-region.svs")).unwrap();
    let glass = svs_slide.read_region(0, 0, 1200, 500, 1767).unwrap();
    let glass = image::RgbImage::from_raw(glass.width as u32, glass.height as u32, glass.pixels).unwrap();
    write(&bad, "glass.jpg", &encode(&DynamicImage::ImageRgb8(glass), ImageFormat::Jpeg));

    // sizes
    let mut zero = encode(&DynamicImage::ImageRgb8(image::RgbImage::new(1, 1)), ImageFormat::Png);
    zero[16..24].copy_from_slice(&[0; 8]); // IHDR width and height
    let crc = crc32fast::hash(&zero[12..29]);
    zero[29..33].copy_from_slice(&crc.to_be_bytes());
    write(&bad, "zero-size.png", &zero);
    write(&bad, "zero-size.tif", &write_tiff(false, &[TiffImage { tags: tiled_tags(0, 0, 16, 1, 2, 3, 8), tiled: true, pool: vec![], chunks: vec![] }]));
    write(&bad, "one-pixel.png", &encode(&DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([200, 120, 180]))), ImageFormat::Png));
    let mut huge = encode(&DynamicImage::ImageRgb8(image::RgbImage::new(1, 1)), ImageFormat::Png);
    huge[16..20].copy_from_slice(&200_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&200_000u32.to_be_bytes());
    let crc = crc32fast::hash(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    write(&bad, "huge.png", &huge);

    // colour types
    write(&bad, "grey.png", &encode(&DynamicImage::ImageLuma8(he.to_luma8()), ImageFormat::Png));
    let mut rgba = he.to_rgba8();
    for (x, _, p) in rgba.enumerate_pixels_mut() {
        p.0[3] = if x < 48 { 255 } else { 0 };
    }
    write(&bad, "rgba.png", &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png));
    write(&bad, "rgb16.png", &encode(&DynamicImage::ImageRgb16(he.to_rgb16()), ImageFormat::Png));
    let cmyk: Vec<u8> = crop.pixels().flat_map(|p| rgb_to_cmyk(p.0)).collect();
    let mut cmyk_jpg = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk_jpg, 90).encode(&cmyk, 96, 96, jpeg_encoder::ColorType::Cmyk).unwrap();
    write(&bad, "cmyk.jpg", &cmyk_jpg);
    let cmyk_tif = TiffImage { tags: tiled_tags(96, 96, 32, 1, 5, 4, 8), tiled: true, pool: raw_tiles(&crop, 32, |p| rgb_to_cmyk(p).to_vec()), chunks: (0..9).collect() };
    write(&bad, "cmyk.tif", &write_tiff(false, &[cmyk_tif]));

    // TIFF variants
    let aperio = "Aperio Image Library v12.0.15 \r\n96x96 [0,0 96x96] (32x32) J2K/KDU Q=70|AppMag = 20|MPP = 0.4990";
    let mut tags = tiled_tags(96, 96, 32, 33005, 2, 3, 8);
    tags.push((270, V::Ascii(aperio.into())));
    write(&bad, "jpeg2000.svs", &write_tiff(false, &[TiffImage { tags, tiled: true, pool: vec![vec![0xff, 0x4f, 0xff, 0x51]], chunks: vec![0; 9] }]));
    let mut tags = tiled_tags(96, 96, 32, 7, 6, 3, 8);
    tags.push((282, V::Rational(20_000, 1)));
    tags.push((296, V::Short(vec![3])));
    write(&bad, "bigtiff.tif", &write_tiff(true, &[TiffImage { tags, tiled: true, pool: jpeg_tiles(&crop, 32), chunks: (0..9).collect() }]));
    // 60000 x 60000 pixels (10.8 GB as RGB) in 1024 px JPEG tiles that all share one stored tile
    let big_tile = image::imageops::crop_imm(&sample, 0, 0, 1000, 1000).to_image();
    let big_tile = image::imageops::resize(&big_tile, 1024, 1024, image::imageops::FilterType::Triangle);
    let (side, tile) = (60_000u32, 1024u32);
    let n = (side.div_ceil(tile) * side.div_ceil(tile)) as usize;
    let mut tags = tiled_tags(side, side, tile, 7, 6, 3, 8);
    tags.push((282, V::Rational(20_000, 1)));
    tags.push((296, V::Short(vec![3])));
    write(&bad, "huge-bigtiff.tif", &write_tiff(true, &[TiffImage { tags, tiled: true, pool: vec![encode(&DynamicImage::ImageRgb8(big_tile), ImageFormat::Jpeg)], chunks: vec![0; n] }]));

    // model files
    let model = tiny_model();
    write(&bad, "not-a-model.histoseg", &png);
    write(&bad, "truncated.histoseg", &model[..model.len() * 7 / 10]);
    let mut newer = model.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    write(&bad, "newer-version.histoseg", &with_crc(newer));
    let mut file = ModelFile::from_bytes(&model).unwrap();
    file.manifest.unet.base_channels = 16;
    write(&bad, "mismatch.histoseg", &file.to_bytes());
    let mut file = ModelFile::from_bytes(&model).unwrap();
    file.manifest.classes.push(ClassInfo { name: "stroma".into(), color: [200, 0, 200] });
    write(&bad, "bad-manifest.histoseg", &file.to_bytes());

    // fuzzing seeds
    let seeds = root.join("tests/fuzz/corpus");
    for t in ["image", "tiff", "model_file", "export"] {
        std::fs::create_dir_all(seeds.join(t)).unwrap();
    }
    let small = DynamicImage::ImageRgb8(image::imageops::crop_imm(&crop, 0, 0, 24, 24).to_image());
    write(&seeds.join("image"), "seed.png", &encode(&small, ImageFormat::Png));
    write(&seeds.join("image"), "seed.jpg", &encode(&small, ImageFormat::Jpeg));
    write(&seeds.join("image"), "seed.bmp", &encode(&small, ImageFormat::Bmp));
    write(&seeds.join("image"), "seed-grey16.png", &encode(&DynamicImage::ImageLuma16(small.to_luma16()), ImageFormat::Png));
    write(&seeds.join("image"), "seed-rgba.png", &encode(&DynamicImage::ImageRgba8(small.to_rgba8()), ImageFormat::Png));
    let small = small.to_rgb8();
    let strip = TiffImage { tags: tiled_tags(24, 24, 8, 1, 2, 3, 8), tiled: true, pool: raw_tiles(&small, 8, |p| p.to_vec()), chunks: (0..9).collect() };
    write(&seeds.join("tiff"), "seed-tiled.tif", &write_tiff(false, &[strip]));
    let mut tags = tiled_tags(24, 24, 16, 7, 6, 3, 8);
    tags.push((270, V::Ascii("Aperio Image Library v10.0.51\r\n24x24 (16x16) JPEG/RGB Q=30|AppMag = 20|MPP = 0.4990".into())));
    let level0 = TiffImage { tags, tiled: true, pool: jpeg_tiles(&small, 16), chunks: (0..4).collect() };
    let half = image::imageops::resize(&small, 12, 12, image::imageops::FilterType::Triangle);
    let level1 = TiffImage { tags: tiled_tags(12, 12, 16, 8, 1, 1, 16), tiled: true, pool: raw_tiles(&half, 16, |p| { let g = (p[0] as u16) * 257; g.to_le_bytes().to_vec() }), chunks: vec![0] };
    write(&seeds.join("tiff"), "seed-svs.svs", &write_tiff(false, &[level0, level1]));
    let cmyk = TiffImage { tags: tiled_tags(24, 24, 16, 1, 5, 4, 8), tiled: true, pool: raw_tiles(&small, 16, |p| rgb_to_cmyk(p).to_vec()), chunks: (0..4).collect() };
    write(&seeds.join("tiff"), "seed-cmyk-bigtiff.tif", &write_tiff(true, &[cmyk]));
    let mut seed = vec![1u8];
    seed.extend_from_slice(&model);
    write(&seeds.join("model_file"), "seed-tiny.bin", &seed);
    let mut mask = vec![20u8, 20, 1];
    mask.extend((0..400).map(|i: usize| u8::from((i % 20).abs_diff(10) + (i / 20).abs_diff(10) < 7) + u8::from(i % 7 == 0)));
    write(&seeds.join("export"), "seed-blob.bin", &mask);
}

fn rgb_to_cmyk([r, g, b]: [u8; 3]) -> [u8; 4] {
    let k = 255 - r.max(g).max(b);
    if k == 255 {
        return [0, 0, 0, 255];
    }
    let c = |v: u8| ((255 - v - k) as u32 * 255 / (255 - k) as u32) as u8;
    [c(r), c(g), c(b), k]
}
