//! A label mask as an 8-bit greyscale PNG (class index per pixel), encoded a band of rows at a
//! time into any [`Write`] sink. The CLI streams a whole slide's mask into its file with it, and
//! the page into [`Bytes`] it takes between bands for a download: each holds a band of rows and
//! the compressed bytes not yet written, never the mask. Every label PNG histoseg writes comes
//! from here, so the page's and the CLI's files of the same labels are the same bytes.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

/// An in-memory sink whose bytes can be taken while an encoder still writes into a clone of it.
#[derive(Clone, Default)]
pub struct Bytes(Rc<RefCell<Vec<u8>>>);

impl Bytes {
    /// The bytes written since the last call (an encoder holds back what it has not compressed).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

impl Write for Bytes {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A greyscale PNG of `width` x `height` being written row by row into `W`.
pub struct LabelPngStream<W: Write + 'static> {
    writer: png::StreamWriter<'static, W>,
    width: usize,
    rows_left: usize,
}

impl<W: Write + 'static> LabelPngStream<W> {
    /// Writes the PNG's header into `sink`.
    pub fn new(sink: W, width: usize, height: usize) -> io::Result<Self> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, format!("a {width}x{height} PNG is beyond the format"));
        let (w, h) = (u32::try_from(width).map_err(|_| too_large())?, u32::try_from(height).map_err(|_| too_large())?);
        if w == 0 || h == 0 || w > i32::MAX as u32 || h > i32::MAX as u32 {
            return Err(too_large());
        }
        let mut encoder = png::Encoder::new(sink, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let writer = encoder.write_header()?.into_stream_writer()?;
        Ok(Self { writer, width, rows_left: height })
    }

    /// The rows still to be written.
    pub fn rows_left(&self) -> usize {
        self.rows_left
    }

    /// Writes whole rows (`rows.len()` a multiple of the width, at most the rows left).
    pub fn write_rows(&mut self, rows: &[u8]) -> io::Result<()> {
        let n = rows.len() / self.width;
        if rows.len() % self.width != 0 || n > self.rows_left {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} bytes are not whole rows of {} within the {} rows left", rows.len(), self.width, self.rows_left)));
        }
        self.writer.write_all(rows)?;
        self.rows_left -= n;
        Ok(())
    }

    /// Ends the PNG once every row is written (the sink gets the rest; a buffered sink is not
    /// flushed, so give it an unbuffered one, such as a `File`, to see every write's error).
    pub fn finish(self) -> io::Result<()> {
        if self.rows_left > 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} rows of the PNG were never written", self.rows_left)));
        }
        Ok(self.writer.finish()?)
    }
}

/// A whole label mask as a PNG.
pub fn label_png(labels: &[u8], width: usize, height: usize) -> io::Result<Vec<u8>> {
    let out = Bytes::default();
    let mut png = LabelPngStream::new(out.clone(), width, height)?;
    png.write_rows(labels)?;
    png.finish()?;
    Ok(out.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).expect("a valid PNG").to_luma8();
        (img.width(), img.height(), img.into_raw())
    }

    #[test]
    fn rows_written_in_bands_make_the_same_png_as_the_whole_mask() {
        let (w, h) = (301, 257);
        let labels: Vec<u8> = (0..w * h).map(|i| ((i / w / 17 + i % w / 13) % 4) as u8).collect();
        let whole = label_png(&labels, w, h).unwrap();
        assert_eq!(decode(&whole), (w as u32, h as u32, labels.clone()));
        let out = Bytes::default();
        let mut png = LabelPngStream::new(out.clone(), w, h).unwrap();
        let mut streamed = out.take();
        for band in labels.chunks(w * 10) {
            png.write_rows(band).unwrap();
            streamed.extend(out.take());
        }
        png.finish().unwrap();
        streamed.extend(out.take());
        assert_eq!(streamed, whole);
    }

    #[test]
    fn partial_rows_too_many_rows_and_missing_rows_are_refused() {
        let mut png = LabelPngStream::new(Bytes::default(), 10, 3).unwrap();
        assert!(png.write_rows(&[0; 15]).is_err(), "a row and a half");
        assert!(png.write_rows(&[0; 40]).is_err(), "four rows of three");
        png.write_rows(&[1; 20]).unwrap();
        assert!(png.finish().is_err(), "one row never written");
        assert!(LabelPngStream::new(Bytes::default(), 0, 5).is_err());
        assert!(LabelPngStream::new(Bytes::default(), usize::MAX, 5).is_err());
    }
}
