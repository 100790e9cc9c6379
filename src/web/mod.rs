//! The browser boundary (wasm32 only): a few wasm-bindgen types over the pure core and the
//! model. JavaScript hands in file bytes ([`Slide`]), asks for display regions, and drives a
//! segmentation job tile batch by tile batch (so it can show progress and cancel); Rust decodes,
//! runs the network, blends, draws the overlay and writes the exports ([`SegResult`]).
//!
//! Every fallible entry point returns a `JsError` with a readable message; nothing panics on bad
//! input.

use std::cell::RefCell;
use std::rc::Rc;

use burn::prelude::*;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

mod blob_reader;
/// "Train your own": a head trained from painted strokes (issue 15).
#[cfg(feature = "few-shot")]
mod teach;

use crate::label_pyramid::LabelPyramid;
use crate::model::Segmenter;
use crate::png_stream::{Bytes, LabelPngStream};
use crate::segment::{Batch, SegmentJob, labels_for_region, read_for_model};
use crate::whole_slide::{SlideRows, StreamRow, WholeSlideJob, tissue_of};
use crate::weights::ModelFile;
use crate::{export, overlay, slide};

/// The coarsest level of a streamed slide's label pyramid has at most this many pixels: the
/// overview the page draws whole (and grows row by row during the run).
const OVERVIEW_PIXELS: usize = 1_500_000;

/// µm per level-0 pixel: the page's value, or the model's when it has none.
fn level0_um(um_per_px: Option<f64>, model_um: f64) -> Result<f64, JsError> {
    match um_per_px {
        Some(v) if v > 0.0 && v.is_finite() => Ok(v),
        Some(v) => Err(JsError::new(&format!("the image resolution must be a positive µm/px value, not {v}"))),
        None => Ok(model_um),
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// burn's wgpu runtime can be initialised once per page; later models reuse the device.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// An opened image or whole-slide file, held in wasm memory; TIFF and SVS tiles are decoded
/// only when a region needs them.
#[wasm_bindgen]
pub struct Slide {
    inner: Rc<RefCell<slide::Slide>>,
    bytes_read: Option<Rc<std::cell::Cell<u64>>>,
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A thrown JavaScript value as text (an `Error`'s message, or its string form).
pub(crate) fn js_text(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}"))
}

#[wasm_bindgen]
impl Slide {
    /// Opens PNG, JPEG, BMP, TIFF (tiled, pyramidal, BigTIFF) or Aperio SVS bytes.
    pub fn open(bytes: Vec<u8>) -> Result<Slide, JsError> {
        let inner = slide::Slide::from_bytes(bytes).map_err(js_err)?;
        Ok(Slide { inner: Rc::new(RefCell::new(inner)), bytes_read: None })
    }
    /// Opens a `File` (or any `Blob`) lazily, in a worker only: a TIFF or SVS of any size reads
    /// its header now and each tile's bytes when a region needs them; other formats are read
    /// whole.
    #[wasm_bindgen(js_name = openBlob)]
    pub fn open_blob(blob: web_sys::Blob) -> Result<Slide, JsError> {
        let reader = blob_reader::BlobReader::new(blob).map_err(js_err)?;
        let bytes_read = reader.bytes_read.clone();
        let inner = slide::Slide::from_reader(Box::new(reader)).map_err(js_err)?;
        Ok(Slide { inner: Rc::new(RefCell::new(inner)), bytes_read: Some(bytes_read) })
    }
    /// Bytes read from the file so far (all of it for a slide opened from bytes).
    #[wasm_bindgen(getter, js_name = bytesRead)]
    pub fn bytes_read(&self) -> Option<f64> {
        self.bytes_read.as_ref().map(|b| b.get() as f64)
    }
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> usize {
        self.inner.borrow().width()
    }
    #[wasm_bindgen(getter)]
    pub fn height(&self) -> usize {
        self.inner.borrow().height()
    }
    /// "PNG", "JPEG", "BMP", "TIFF" or "Aperio SVS".
    #[wasm_bindgen(getter)]
    pub fn format(&self) -> String {
        self.inner.borrow().format.clone()
    }
    /// What was converted to show the file as 8-bit RGB (greyscale, alpha, 16-bit, CMYK), if
    /// anything.
    #[wasm_bindgen(getter)]
    pub fn note(&self) -> Option<String> {
        self.inner.borrow().note.clone()
    }
    /// µm per level-0 pixel from the file's metadata, if it has any.
    #[wasm_bindgen(getter, js_name = umPerPx)]
    pub fn um_per_px(&self) -> Option<f64> {
        self.inner.borrow().um_per_px
    }
    /// `[{width, height, downsample}, ...]`, level 0 first.
    pub fn levels(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&self.inner.borrow().levels).map_err(js_err)
    }
    /// RGBA pixels of a `width` x `height` region at (`x`, `y`) of `level`, in that level's
    /// pixels; white outside the image.
    pub fn region(&self, level: usize, x: usize, y: usize, width: usize, height: usize) -> Result<Vec<u8>, JsError> {
        Ok(self.inner.borrow_mut().read_region(level, x, y, width, height).map_err(js_err)?.to_rgba())
    }
}

/// A loaded model on a device.
#[wasm_bindgen]
pub struct Model {
    file: Rc<ModelFile>,
    segmenter: Rc<Segmenter>,
    backend: String,
}

async fn webgpu_device() -> Result<Device, String> {
    if let Some(d) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(d);
    }
    // wgpu's message embeds the browser's exception as `JsValue(Name: message\n<stack trace>)`:
    // the user gets the first line, without the wrapper
    let device = Device::wgpu_options().init_async().await.map_err(|e| {
        let text = e.to_string();
        text.lines().next().unwrap_or_default().replacen("JsValue(", "", 1)
    })?;
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// Planar tiles in, planar class probabilities out: one upload, the network, one awaited
/// readback (WebGPU cannot read back synchronously in the browser).
async fn run_tiles(segmenter: &Segmenter, planar: Vec<f32>, batch: usize) -> Result<Vec<f32>, JsError> {
    let x = segmenter.input_tensor(planar, batch);
    let data = segmenter
        .probabilities(x)
        .into_data_async()
        .await
        .map_err(|e| JsError::new(&format!("the GPU failed while segmenting: {e:?}")))?;
    data.try_into_vec_as::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))
}

#[wasm_bindgen]
impl Model {
    /// Parses a model file and builds it on `backend`: `"webgpu"` or `"cpu"`. The page decides
    /// whether WebGPU is usable before asking for it; if initialisation still fails the promise
    /// rejects with the reason, and the page retries on the CPU. `tile_size` overrides the
    /// manifest's (the benchmark compares tile sizes with the same weights).
    pub fn load(bytes: Vec<u8>, backend: String, tile_size: Option<usize>) -> Promise {
        future_to_promise(async move {
            let mut file = ModelFile::from_bytes(&bytes).map_err(|e| JsError::new(&e.to_string()))?;
            let device = match backend.as_str() {
                "webgpu" => webgpu_device()
                    .await
                    .map_err(|e| JsError::new(&format!("WebGPU could not be started: {e}")))?,
                "cpu" => Device::flex(),
                other => return Err(JsError::new(&format!("unknown backend '{other}'")).into()),
            };
            let segmenter = file
                .segmenter_with_tile(&device, tile_size.unwrap_or(file.manifest.tile_size))
                .map_err(|e| JsError::new(&e.to_string()))?;
            file.manifest.tile_size = segmenter.tile_size;
            Ok(JsValue::from(Model { file: Rc::new(file), segmenter: Rc::new(segmenter), backend }))
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The manifest as a plain JS object.
    pub fn manifest(&self) -> Result<JsValue, JsError> {
        use serde::Serialize;
        // plain objects, not ES Maps, for the manifest's free-form metrics
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        self.file.manifest.serialize(&serializer).map_err(|e| JsError::new(&e.to_string()))
    }

    #[wasm_bindgen(js_name = parameterCount)]
    pub fn parameter_count(&self) -> usize {
        self.file.parameter_count()
    }

    /// The bare network on `batch` tiles: planar `[batch, 3, tile, tile]` values in [-1, 1] in,
    /// class probabilities `[batch, classes, tile, tile]` out (one upload, one readback). What
    /// the benchmark times against onnxruntime-web's `session.run`.
    pub fn run(&self, planar: Vec<f32>, batch: usize) -> Promise {
        let segmenter = self.segmenter.clone();
        future_to_promise(async move {
            let t = segmenter.tile_size;
            if batch == 0 || planar.len() != batch * 3 * t * t {
                return Err(JsError::new(&format!("expected {batch} tiles of 3x{t}x{t} values, got {} values", planar.len())).into());
            }
            let probs = run_tiles(&segmenter, planar, batch).await?;
            Ok(js_sys::Float32Array::from(probs.as_slice()).into())
        })
    }

    /// Starts a segmentation of a level-0 region of `slide` whose resolution is `um_per_px`
    /// (µm per level-0 pixel; `None` means "at the model's resolution"). The region is read at
    /// the model's working resolution and the labels come back at level-0 resolution.
    pub fn segment(&self, slide: &Slide, x: usize, y: usize, width: usize, height: usize, um_per_px: Option<f64>, tta: Option<bool>) -> Result<Job, JsError> {
        let m = &self.file.manifest;
        let level0_um = level0_um(um_per_px, m.um_per_px)?;
        let wanted = slide::Region { x, y, width, height };
        let (region, work) = read_for_model(&mut slide.inner.borrow_mut(), wanted, level0_um, m.um_per_px).map_err(js_err)?;
        let job = SegmentJob::for_model(&work, self.segmenter.tile_size, m).map_err(js_err)?.with_tta(tta.unwrap_or(false));
        Ok(self.job(Work::Region(job), region, um_per_px))
    }

    fn job(&self, work: Work, region: slide::Region, um_per_px: Option<f64>) -> Job {
        Job {
            inner: Rc::new(RefCell::new(Some(work))),
            segmenter: self.segmenter.clone(),
            file: self.file.clone(),
            region,
            um_per_px,
            generation: Rc::new(std::cell::Cell::new(0)),
        }
    }

    /// Starts a streamed segmentation of the whole of `slide` (a tiled TIFF or SVS):
    /// tissue found on a thumbnail from the pyramid, tiles read and blended a band at a time
    /// ([`crate::whole_slide`]), as the command line's `segment --stream` does. The final labels
    /// are kept as a pyramid of compressed tiles ([`LabelPyramid`]) and the objects are traced as
    /// the rows come, so a slide of any size fits.
    #[wasm_bindgen(js_name = segmentWhole)]
    pub fn segment_whole(&self, slide: &Slide, um_per_px: Option<f64>, tta: Option<bool>) -> Result<Job, JsError> {
        let m = &self.file.manifest;
        let level0_um = level0_um(um_per_px, m.um_per_px)?;
        let mut inner = slide.inner.borrow_mut();
        let region = slide::Region { x: 0, y: 0, width: inner.width(), height: inner.height() };
        let tissue = tissue_of(&mut inner, region, level0_um, m).map_err(js_err)?;
        let rows = SlideRows { region, level0_um, model_um: m.um_per_px };
        let (w, h) = rows.size();
        let job = WholeSlideJob::new(w, h, (region.width, region.height), level0_um, m, self.segmenter.tile_size, tissue).map_err(js_err)?;
        let job = job.with_tta(tta.unwrap_or(false)).keep_raw_rows();
        drop(inner);
        let pyramid = LabelPyramid::new(region.width, region.height, OVERVIEW_PIXELS);
        let whole = Work::Whole { job: Box::new(job), rows, slide: slide.inner.clone(), pyramid, preview: Vec::new(), raw_rows: 0, shown: 0 };
        Ok(self.job(whole, region, um_per_px))
    }

    /// A result made again from its kept labels (`SegResult.keptBytes`) of a level-0 region,
    /// with this model's post-processing, as the run that made them finished.
    pub fn restore(&self, raw: Vec<u8>, x: usize, y: usize, width: usize, height: usize, um_per_px: Option<f64>) -> Result<SegResult, JsError> {
        if width == 0 || height == 0 || raw.len() != width * height {
            return Err(JsError::new(&format!("kept labels of {} pixels do not fill a {width}x{height} region", raw.len())));
        }
        let classes = self.file.manifest.classes.len();
        if let Some(&bad) = raw.iter().find(|&&l| l as usize >= classes) {
            return Err(JsError::new(&format!("kept labels hold class {bad}, but the model has {classes} classes")));
        }
        Ok(SegResult::from_raw(raw, slide::Region { x, y, width, height }, self.file.clone(), um_per_px))
    }

    /// A streamed whole slide's result made again from its kept bytes (`SegResult.keptBytes`):
    /// its label pyramid and its objects, checked against this model's classes.
    #[wasm_bindgen(js_name = restoreTiled)]
    pub fn restore_tiled(&self, kept: &[u8], x: usize, y: usize, um_per_px: Option<f64>) -> Result<SegResult, JsError> {
        let classes = self.file.manifest.classes.len();
        let damaged = || JsError::new("the kept result is damaged (its parts do not fit together)");
        let len = kept.get(..8).ok_or_else(damaged)?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().unwrap())).map_err(|_| damaged())?;
        let pyramid = kept.get(8..8usize.checked_add(len).ok_or_else(damaged)?).ok_or_else(damaged)?;
        let pyramid = LabelPyramid::from_bytes(pyramid, classes).map_err(js_err)?;
        let objects: Vec<export::Object> = serde_json::from_slice(&kept[8 + len..]).map_err(|e| JsError::new(&format!("the kept objects are damaged: {e}")))?;
        if objects.iter().any(|o| o.class as usize >= classes) {
            return Err(JsError::new(&format!("kept objects hold a class the model does not have ({classes} classes)")));
        }
        let region = slide::Region { x, y, width: pyramid.width(), height: pyramid.height() };
        Ok(SegResult::from_pyramid(pyramid, objects, region, self.file.clone(), um_per_px))
    }
}

/// What a [`Job`] runs: a region held in memory, or a whole slide streamed in bands.
enum Work {
    Region(SegmentJob),
    /// `pyramid`: the final labels so far. `preview`: the network's labels before post-processing
    /// at the pyramid's overview (every `downsample`-th row and column) as they come, of
    /// `raw_rows` level-0 rows; `shown`: rows of it already drawn.
    Whole { job: Box<WholeSlideJob>, rows: SlideRows, slide: Rc<RefCell<slide::Slide>>, pyramid: LabelPyramid, preview: Vec<u8>, raw_rows: usize, shown: usize },
}

impl Work {
    fn total_tiles(&self) -> usize {
        match self {
            Work::Region(j) => j.total_tiles(),
            Work::Whole { job, .. } => job.total_tiles(),
        }
    }

    fn glass_tiles(&self) -> usize {
        match self {
            Work::Region(j) => j.glass_tiles(),
            Work::Whole { job, .. } => job.glass_tiles(),
        }
    }

    fn tiles_done(&self) -> usize {
        match self {
            Work::Region(j) => j.tiles_done(),
            Work::Whole { job, .. } => job.tiles_done(),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Work::Region(j) => j.is_done(),
            Work::Whole { job, .. } => job.is_done(),
        }
    }

    /// The next batch after those handed out (a streamed job reads its band from the slide).
    fn take_batch(&mut self, max: usize) -> Result<Option<Batch>, JsError> {
        match self {
            Work::Region(j) => Ok(j.take_batch(max)),
            Work::Whole { job, rows, slide, .. } => job.take_batch(&mut rows.on(&mut slide.borrow_mut()), max).map_err(js_err),
        }
    }

    /// Hands out again the tiles handed out but not accepted (their answers were discarded).
    fn reissue(&mut self) {
        match self {
            Work::Region(j) => j.reissue(),
            Work::Whole { job, .. } => job.reissue(),
        }
    }

    fn accept(&mut self, batch: &Batch, probabilities: &[f32]) {
        match self {
            Work::Region(j) => j.accept(batch, probabilities),
            Work::Whole { job, pyramid, preview, raw_rows, .. } => {
                // a final row waits until every object reaching it is whole (a large one keeps
                // many waiting): the preview shows the rows as the network labels them
                let step = pyramid.levels().last().expect("a pyramid has a level").downsample;
                job.accept_with(batch, probabilities, &mut |row| match row {
                    StreamRow::Final(row) => pyramid.push_row(&row),
                    StreamRow::Raw(row) => {
                        if *raw_rows % step == 0 {
                            preview.extend(row.iter().step_by(step));
                        }
                        *raw_rows += 1;
                    }
                });
            }
        }
    }
}

/// A running segmentation. Call `step` until it resolves to `true`, then `finish`.
#[wasm_bindgen]
pub struct Job {
    inner: Rc<RefCell<Option<Work>>>,
    segmenter: Rc<Segmenter>,
    file: Rc<ModelFile>,
    region: slide::Region,
    /// The resolution the user or the file gave, for µm² measurements.
    um_per_px: Option<f64>,
    /// Bumped when the job moves to another model; a batch started before that is discarded.
    generation: Rc<std::cell::Cell<u64>>,
}

fn finished_error() -> JsError {
    JsError::new("this segmentation has already finished")
}

#[wasm_bindgen]
impl Job {
    #[wasm_bindgen(getter)]
    pub fn total(&self) -> usize {
        self.inner.borrow().as_ref().map_or(0, |j| j.total_tiles())
    }

    /// Tiles not run because they are glass throughout (their pixels are background).
    #[wasm_bindgen(getter, js_name = glassTiles)]
    pub fn glass_tiles(&self) -> usize {
        self.inner.borrow().as_ref().map_or(0, |j| j.glass_tiles())
    }

    #[wasm_bindgen(getter)]
    pub fn done(&self) -> usize {
        self.inner.borrow().as_ref().map_or(0, |j| j.tiles_done())
    }

    /// Continues the job on `model` (the same model file on another backend): after the WebGPU
    /// device is lost, the page moves the job to the CPU. The tiles already done are kept; a batch
    /// still in flight on the old device is discarded when it returns and is run again.
    #[wasm_bindgen(js_name = useModel)]
    pub fn use_model(&mut self, model: &Model) -> Result<(), JsError> {
        let (a, b) = (&self.file.manifest, &model.file.manifest);
        if a != b {
            return Err(JsError::new(&format!("the job was started with model '{}', not '{}'", a.name, b.name)));
        }
        if model.segmenter.tile_size != self.segmenter.tile_size {
            return Err(JsError::new("the new model runs on another tile size"));
        }
        self.segmenter = model.segmenter.clone();
        self.generation.set(self.generation.get() + 1);
        Ok(())
    }

    /// Runs the next batch of up to `batch_size` tiles; resolves to `true` when all are done.
    pub fn step(&self, batch_size: usize) -> Promise {
        let inner = self.inner.clone();
        let segmenter = self.segmenter.clone();
        let generation = self.generation.clone();
        let started = generation.get();
        future_to_promise(async move {
            let mut batch = {
                let mut job = inner.borrow_mut();
                let job = job.as_mut().ok_or_else(finished_error)?;
                match job.take_batch(batch_size)? {
                    Some(b) => b,
                    None => return Ok(JsValue::from_bool(job.is_done())),
                }
            };
            let probs = run_tiles(&segmenter, std::mem::take(&mut batch.planar), batch.count).await;
            let mut job = inner.borrow_mut();
            let job = job.as_mut().ok_or_else(finished_error)?;
            if generation.get() != started || probs.is_err() {
                // run on the old device, or failed there: its tiles are handed out again
                job.reissue();
                probs?;
                return Ok(JsValue::from_bool(job.is_done()));
            }
            let probs = probs?;
            job.accept(&batch, &probs);
            Ok(JsValue::from_bool(job.is_done()))
        })
    }

    /// For a pool of CPU workers: hands out the next `batch_size` network inputs (tiles after
    /// those already handed out) as `{start, tiles, count, planar}`, or `undefined` when all are
    /// out. Run `planar` with [`Model::run`] anywhere and give the answer to `acceptBatch`.
    #[wasm_bindgen(js_name = takeBatch)]
    pub fn take_batch(&self, batch_size: usize) -> Result<JsValue, JsError> {
        let mut job = self.inner.borrow_mut();
        let job = job.as_mut().ok_or_else(finished_error)?;
        let Some(batch) = job.take_batch(batch_size)? else { return Ok(JsValue::UNDEFINED) };
        let out = js_sys::Object::new();
        for (k, v) in [("start", batch.start), ("tiles", batch.tiles), ("count", batch.count)] {
            js_sys::Reflect::set(&out, &k.into(), &JsValue::from(v as u32)).map_err(|e| JsError::new(&js_text(&e)))?;
        }
        js_sys::Reflect::set(&out, &"planar".into(), &js_sys::Float32Array::from(batch.planar.as_slice())).map_err(|e| JsError::new(&js_text(&e)))?;
        Ok(out.into())
    }

    /// Blends the probabilities of a batch from `takeBatch`; batches must come in the order they
    /// were handed out (the page keeps early answers until their turn). Returns whether all
    /// tiles are done.
    #[wasm_bindgen(js_name = acceptBatch)]
    pub fn accept_batch(&self, start: usize, tiles: usize, count: usize, probabilities: Vec<f32>) -> Result<bool, JsError> {
        let mut job = self.inner.borrow_mut();
        let job = job.as_mut().ok_or_else(finished_error)?;
        if start != job.tiles_done() || tiles == 0 || count % tiles != 0 || probabilities.len() % count != 0 {
            return Err(JsError::new(&format!("batch at tile {start} is out of order or malformed (next is {})", job.tiles_done())));
        }
        job.accept(&crate::segment::Batch { start, tiles, count, planar: Vec::new() }, &probabilities);
        Ok(job.is_done())
    }

    /// The rows of a streamed whole slide's overview (the coarsest level of its label pyramid,
    /// about 1.5 MP, every `step`-th row and column of the slide) labelled since the last call,
    /// drawn as an RGBA strip with the page's class colours and visibility: `{step, y, height,
    /// width, rgba}` in overview rows, or `undefined` when there are none (a region held in memory
    /// is labelled at the end). The labels are before post-processing: the finished result's
    /// overview replaces them.
    #[wasm_bindgen(js_name = newRows)]
    pub fn new_rows(&self, colors: &[u8], visible: &[u8]) -> Result<JsValue, JsError> {
        let mut inner = self.inner.borrow_mut();
        let Some(Work::Whole { pyramid, preview, shown, .. }) = inner.as_mut() else { return Ok(JsValue::UNDEFINED) };
        let level = *pyramid.levels().last().expect("a pyramid has a level");
        let (first, end) = (*shown, preview.len() / level.width);
        *shown = end;
        if first == end {
            return Ok(JsValue::UNDEFINED);
        }
        let (colors, visible) = styling(self.file.manifest.classes.len(), colors, visible)?;
        let labels = &preview[first * level.width..end * level.width];
        let rgba = overlay::render(labels, level.width, end - first, &colors, &visible, overlay::Mode::Fill);
        let out = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v).map_err(|e| JsError::new(&js_text(&e)));
        set("step", JsValue::from(level.downsample as u32))?;
        set("y", JsValue::from(first as u32))?;
        set("height", JsValue::from((end - first) as u32))?;
        set("width", JsValue::from(level.width as u32))?;
        set("rgba", js_sys::Uint8Array::from(rgba.as_slice()).into())?;
        Ok(out.into())
    }

    /// Blends the tiles into labels at level-0 resolution. The job is consumed.
    pub fn finish(&self) -> Result<SegResult, JsError> {
        let job = self.inner.borrow_mut().take().ok_or_else(finished_error)?;
        if !job.is_done() {
            let (done, total) = (job.tiles_done(), job.total_tiles());
            *self.inner.borrow_mut() = Some(job);
            return Err(JsError::new(&format!("only {done} of {total} tiles are segmented")));
        }
        Ok(match job {
            Work::Region(job) => SegResult::from_raw(labels_for_region(&job.finish(), self.region), self.region, self.file.clone(), self.um_per_px),
            Work::Whole { mut job, pyramid, .. } => SegResult::from_pyramid(pyramid, job.objects(), self.region, self.file.clone(), self.um_per_px),
        })
    }
}

/// Class colours (flat RGB) and visibility flags from the page, checked against the classes.
fn styling(classes: usize, colors: &[u8], visible: &[u8]) -> Result<(Vec<[u8; 3]>, Vec<bool>), JsError> {
    if colors.len() != classes * 3 || visible.len() != classes {
        return Err(JsError::new(&format!("expected {classes} colours and visibility flags")));
    }
    Ok((colors.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(), visible.iter().map(|&v| v != 0).collect()))
}

/// A result's labels: a region's, held whole at level 0, or a streamed whole slide's, held as a
/// pyramid of compressed tiles.
enum Labels {
    /// `raw`: the network's labels (after the glass rule) before the model's post-processing,
    /// what a result kept in the browser's storage is made again from.
    Full { raw: Vec<u8>, labels: Vec<u8>, instances: crate::postprocess::Instances },
    /// The final labels (post-processed as the rows came) and their per-class areas.
    Tiled { pyramid: LabelPyramid, areas: Vec<u64> },
}

/// A finished segmentation of a region or a whole slide: post-processed labels and objects at
/// level-0 resolution and everything the page draws and exports from them.
#[wasm_bindgen]
pub struct SegResult {
    labels: Labels,
    region: slide::Region,
    file: Rc<ModelFile>,
    um_per_px: Option<f64>,
    objects: RefCell<Option<Rc<Vec<export::Object>>>>,
}

impl SegResult {
    /// The model's post-processing of `raw`, at the region's µm/px (the model's when the file
    /// has none).
    fn from_raw(raw: Vec<u8>, region: slide::Region, file: Rc<ModelFile>, um_per_px: Option<f64>) -> Self {
        let um = um_per_px.unwrap_or(file.manifest.um_per_px);
        let instances = file.manifest.objects_of(&raw, region.width, region.height, um);
        let labels = Labels::Full { raw, labels: instances.labels.clone(), instances };
        Self { labels, region, file, um_per_px, objects: RefCell::new(None) }
    }

    /// A streamed slide's result: its final labels' pyramid and its objects.
    fn from_pyramid(pyramid: LabelPyramid, objects: Vec<export::Object>, region: slide::Region, file: Rc<ModelFile>, um_per_px: Option<f64>) -> Self {
        let areas = pyramid.class_areas(file.manifest.classes.len());
        let labels = Labels::Tiled { pyramid, areas };
        Self { labels, region, file, um_per_px, objects: RefCell::new(Some(Rc::new(objects))) }
    }

    fn objects(&self) -> Rc<Vec<export::Object>> {
        let Labels::Full { instances, .. } = &self.labels else {
            return self.objects.borrow().clone().expect("a tiled result has its objects");
        };
        self.objects
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(export::objects(instances)))
            .clone()
    }

    /// Labels of a rectangle of `level` (in that level's pixels, from the region's origin).
    fn labels_at(&self, level: usize, x: usize, y: usize, width: usize, height: usize) -> Result<Vec<u8>, JsError> {
        match &self.labels {
            Labels::Tiled { pyramid, .. } if level < pyramid.levels().len() => Ok(pyramid.region(level, x, y, width, height)),
            Labels::Full { labels, .. } if level == 0 => {
                let r = self.region;
                Ok((y..y + height).flat_map(|row| (x..x + width).map(move |col| (col, row))).map(|(col, row)| if col < r.width && row < r.height { labels[row * r.width + col] } else { 0 }).collect())
            }
            _ => Err(JsError::new(&format!("the result has no level {level}"))),
        }
    }

    /// The finest level the overlay PNG is written at: level 0 unless
    /// it holds more than [`crate::segment::MAX_LABEL_PIXELS`].
    fn export_level(&self) -> usize {
        match &self.labels {
            Labels::Full { .. } => 0,
            Labels::Tiled { pyramid, .. } => pyramid.finest_within(crate::segment::MAX_LABEL_PIXELS),
        }
    }

    fn level_sizes(&self) -> Vec<crate::label_pyramid::LevelSize> {
        match &self.labels {
            Labels::Full { .. } => vec![crate::label_pyramid::LevelSize { width: self.region.width, height: self.region.height, downsample: 1 }],
            Labels::Tiled { pyramid, .. } => pyramid.levels(),
        }
    }
}

#[wasm_bindgen]
impl SegResult {
    #[wasm_bindgen(getter)]
    pub fn x(&self) -> usize {
        self.region.x
    }
    #[wasm_bindgen(getter)]
    pub fn y(&self) -> usize {
        self.region.y
    }
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> usize {
        self.region.width
    }
    #[wasm_bindgen(getter)]
    pub fn height(&self) -> usize {
        self.region.height
    }
    /// Whether the labels are a streamed slide's pyramid of tiles (kept and restored as such).
    #[wasm_bindgen(getter)]
    pub fn tiled(&self) -> bool {
        matches!(self.labels, Labels::Tiled { .. })
    }
    /// `[{width, height, downsample}, ...]`: the levels the labels can be drawn at, finest
    /// first; one for a region.
    pub fn levels(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&self.level_sizes()).map_err(js_err)
    }
    /// The downsample from level 0 the overlay PNG is written at (1 unless level 0 is larger than
    /// the page writes whole; the label mask is always at level 0).
    #[wasm_bindgen(getter, js_name = overlayDownsample)]
    pub fn overlay_downsample(&self) -> usize {
        self.level_sizes()[self.export_level()].downsample
    }
    /// Per-pixel class indices of the whole region at level 0, row-major (refused for a slide
    /// whose level 0 is larger than the page writes whole).
    pub fn labels(&self) -> Result<Vec<u8>, JsError> {
        let r = self.region;
        if let Labels::Full { labels, .. } = &self.labels {
            return Ok(labels.clone());
        }
        if r.width * r.height > crate::segment::MAX_LABEL_PIXELS {
            return Err(JsError::new(&format!("the {}x{} labels are too large to hand over whole", r.width, r.height)));
        }
        self.labels_at(0, 0, 0, r.width, r.height)
    }
    /// What the browser's storage keeps of the result, for `Model.restore` (a region's labels
    /// before post-processing) or `Model.restoreTiled` (a slide's pyramid and objects).
    #[wasm_bindgen(js_name = keptBytes)]
    pub fn kept_bytes(&self) -> Result<Vec<u8>, JsError> {
        match &self.labels {
            Labels::Full { raw, .. } => Ok(raw.clone()),
            Labels::Tiled { pyramid, .. } => {
                let pyramid = pyramid.to_bytes();
                let mut out = (pyramid.len() as u64).to_le_bytes().to_vec();
                out.extend(pyramid);
                serde_json::to_writer(&mut out, &*self.objects()).map_err(js_err)?;
                Ok(out)
            }
        }
    }
    /// RGBA overlay of the whole result at its coarsest level (a region: at level 0), with the
    /// page's class colours (flat RGB) and visibility flags, filled or as contours.
    pub fn overlay(&self, colors: &[u8], visible: &[u8], contour: bool) -> Result<Vec<u8>, JsError> {
        let levels = self.level_sizes();
        let top = levels.len() - 1;
        self.overlay_region(top, 0, 0, levels[top].width, levels[top].height, colors, visible, contour)
    }
    /// The same for a rectangle of `level` (its pixels, from the region's origin): what the page
    /// draws over the view when it is zoomed in past the overview.
    #[wasm_bindgen(js_name = overlayRegion)]
    #[allow(clippy::too_many_arguments)]
    pub fn overlay_region(&self, level: usize, x: usize, y: usize, width: usize, height: usize, colors: &[u8], visible: &[u8], contour: bool) -> Result<Vec<u8>, JsError> {
        if width * height > crate::segment::MAX_LABEL_PIXELS {
            return Err(JsError::new(&format!("an overlay of {width}x{height} pixels is more than the page draws at once")));
        }
        let (colors, visible) = styling(self.file.manifest.classes.len(), colors, visible)?;
        let mode = if contour { overlay::Mode::Contour } else { overlay::Mode::Fill };
        Ok(overlay::render(&self.labels_at(level, x, y, width, height)?, width, height, &colors, &visible, mode))
    }
    /// Pixels per class.
    #[wasm_bindgen(js_name = classAreas)]
    pub fn class_areas(&self) -> Vec<f64> {
        match &self.labels {
            Labels::Full { labels, .. } => overlay::class_areas(labels, self.file.manifest.classes.len()).iter().map(|&a| a as f64).collect(),
            Labels::Tiled { areas, .. } => areas.iter().map(|&a| a as f64).collect(),
        }
    }
    /// Number of connected objects (the GeoJSON's features).
    #[wasm_bindgen(js_name = objectCount)]
    pub fn object_count(&self) -> usize {
        self.objects().len()
    }
    /// The label mask (class index per pixel) of the region at full resolution, as a PNG made a
    /// band of rows at a time by [`LabelPng::next`], so a slide's mask of any size is written.
    #[wasm_bindgen(js_name = labelPng)]
    pub fn label_png(&self) -> Result<LabelPng, JsError> {
        let (r, bytes) = (self.region, Bytes::default());
        Ok(LabelPng { png: Some(LabelPngStream::new(bytes.clone(), r.width, r.height).map_err(js_err)?), bytes, width: r.width, height: r.height })
    }
    /// The region of `slide` with the overlay blended on, as a PNG (at `overlayDownsample`).
    #[wasm_bindgen(js_name = overlayPng)]
    pub fn overlay_png(&self, slide: &Slide, opacity: f32, colors: &[u8], visible: &[u8], contour: bool) -> Result<Vec<u8>, JsError> {
        let r = self.region;
        let (level, downsample) = (self.export_level(), self.overlay_downsample());
        // every `downsample`-th pixel, as the label pyramid's level holds every such label
        let image = slide.inner.borrow_mut().read_sampled(r, downsample).map_err(js_err)?;
        let rgba = self.overlay_region(level, 0, 0, image.width, image.height, colors, visible, contour)?;
        Ok(export::overlay_png(&image, &rgba, opacity))
    }
    /// A GeoJSON FeatureCollection in image pixel coordinates, for QuPath's "Import objects".
    pub fn geojson(&self) -> String {
        export::geojson(&self.objects(), &self.file.manifest.classes, [self.region.x as f64, self.region.y as f64]).to_string()
    }
    fn measurements(&self) -> export::Measurements {
        let r = self.region;
        let (objects, classes) = (self.objects(), &self.file.manifest.classes);
        match &self.labels {
            Labels::Full { labels, .. } => export::measurements(labels, r.width, r.height, &objects, classes, [r.x, r.y], self.um_per_px),
            Labels::Tiled { areas, .. } => export::measurements_of_areas(areas, r.width, r.height, &objects, classes, [r.x, r.y], self.um_per_px),
        }
    }
    /// Per-class areas and per-object morphology as CSV.
    #[wasm_bindgen(js_name = measurementsCsv)]
    pub fn measurements_csv(&self) -> String {
        self.measurements().to_csv()
    }
    /// The same as JSON.
    #[wasm_bindgen(js_name = measurementsJson)]
    pub fn measurements_json(&self) -> Result<String, JsError> {
        serde_json::to_string_pretty(&self.measurements()).map_err(js_err)
    }
}

/// A result's label mask PNG being written (`SegResult.labelPng`): each [`next`](Self::next)
/// encodes a band of rows and hands over the bytes made, which the worker collects into a Blob.
#[wasm_bindgen]
pub struct LabelPng {
    /// None once the last piece is handed over.
    png: Option<LabelPngStream<Bytes>>,
    bytes: Bytes,
    width: usize,
    height: usize,
}

#[wasm_bindgen]
impl LabelPng {
    /// The next piece of the PNG (about 4 MP of labels encoded; the last piece ends the file).
    pub fn next(&mut self, result: &SegResult) -> Result<Vec<u8>, JsError> {
        let Some(png) = self.png.as_mut() else { return Ok(Vec::new()) };
        if (result.region.width, result.region.height) != (self.width, self.height) {
            return Err(JsError::new("the label PNG was started for another result"));
        }
        let row = self.height - png.rows_left();
        let rows = (4_000_000 / self.width).clamp(1, png.rows_left());
        png.write_rows(&result.labels_at(0, 0, row, self.width, rows)?).map_err(js_err)?;
        if png.rows_left() == 0 {
            self.png.take().map(LabelPngStream::finish).transpose().map_err(js_err)?;
        }
        Ok(self.bytes.take())
    }
    /// Whether the last piece has been handed over.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.png.is_none()
    }
}
