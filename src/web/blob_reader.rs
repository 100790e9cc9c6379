//! `Read + Seek` over a browser `Blob` (a dropped `File`), for the worker: bytes are read on
//! demand with `Blob.slice` and `FileReaderSync` (synchronous, so it exists only in workers), in
//! fixed blocks kept in a small least-recently-used cache. A slide of any size opens by reading
//! its header, and each display or model tile reads only the blocks its compressed bytes lie in.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes fetched per read; SVS JPEG tiles are tens of kB, TIFF directories a few kB.
const BLOCK: u64 = 256 << 10;
/// Blocks kept: 64 x 256 kB = 16 MB.
const CACHED_BLOCKS: usize = 64;

pub struct BlobReader {
    blob: web_sys::Blob,
    reader: web_sys::FileReaderSync,
    len: u64,
    pos: u64,
    blocks: HashMap<u64, (Vec<u8>, u64)>,
    clock: u64,
    /// Bytes read from the blob so far (for the page's statistics).
    pub bytes_read: std::rc::Rc<std::cell::Cell<u64>>,
}

fn js_io(e: wasm_bindgen::JsValue) -> io::Error {
    io::Error::other(format!("the browser could not read the file: {}", crate::web::js_text(&e)))
}

impl BlobReader {
    pub fn new(blob: web_sys::Blob) -> io::Result<Self> {
        let reader = web_sys::FileReaderSync::new().map_err(js_io)?;
        let len = blob.size() as u64;
        Ok(BlobReader { blob, reader, len, pos: 0, blocks: HashMap::new(), clock: 0, bytes_read: Default::default() })
    }

    fn block(&mut self, index: u64) -> io::Result<&[u8]> {
        self.clock += 1;
        let clock = self.clock;
        if !self.blocks.contains_key(&index) {
            if self.blocks.len() >= CACHED_BLOCKS {
                let oldest = self.blocks.iter().min_by_key(|(_, (_, used))| *used).map(|(&k, _)| k);
                if let Some(k) = oldest {
                    self.blocks.remove(&k);
                }
            }
            let start = index * BLOCK;
            let end = (start + BLOCK).min(self.len);
            let part = self.blob.slice_with_f64_and_f64(start as f64, end as f64).map_err(js_io)?;
            let buffer = self.reader.read_as_array_buffer(&part).map_err(js_io)?;
            let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
            if bytes.len() as u64 != end - start {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file changed or could not be read while open"));
            }
            self.bytes_read.set(self.bytes_read.get() + bytes.len() as u64);
            self.blocks.insert(index, (bytes, clock));
        }
        let entry = self.blocks.get_mut(&index).expect("inserted above");
        entry.1 = clock;
        Ok(&entry.0)
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() && self.pos < self.len {
            let index = self.pos / BLOCK;
            let offset = (self.pos % BLOCK) as usize;
            let block = self.block(index)?;
            let k = (block.len() - offset).min(out.len() - n);
            out[n..n + k].copy_from_slice(&block[offset..offset + k]);
            n += k;
            self.pos += k as u64;
        }
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file"))?;
        Ok(self.pos)
    }
}
