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

use crate::model::Segmenter;
use crate::segment::{Batch, SegmentJob, labels_for_region, read_for_model};
use crate::whole_slide::{SlideRows, WholeSlideJob, tissue_of};
use crate::weights::ModelFile;
use crate::{export, overlay, slide};

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
        let level0_um = match um_per_px {
            Some(v) if v > 0.0 && v.is_finite() => v,
            Some(v) => return Err(JsError::new(&format!("the image resolution must be a positive µm/px value, not {v}"))),
            None => m.um_per_px,
        };
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
    /// ([`crate::whole_slide`]), as the command line's `segment --stream` does. The labels are
    /// held at level-0 resolution, so the slide's level 0 is limited as for a region.
    #[wasm_bindgen(js_name = segmentWhole)]
    pub fn segment_whole(&self, slide: &Slide, um_per_px: Option<f64>, tta: Option<bool>) -> Result<Job, JsError> {
        let m = &self.file.manifest;
        let level0_um = match um_per_px {
            Some(v) if v > 0.0 && v.is_finite() => v,
            Some(v) => return Err(JsError::new(&format!("the image resolution must be a positive µm/px value, not {v}"))),
            None => m.um_per_px,
        };
        let mut inner = slide.inner.borrow_mut();
        let region = slide::Region { x: 0, y: 0, width: inner.width(), height: inner.height() };
        if region.width * region.height > crate::segment::MAX_LABEL_PIXELS {
            return Err(js_err(slide::SlideError::TooLargeToSegment(region.width, region.height)));
        }
        let tissue = tissue_of(&mut inner, region, level0_um, m).map_err(js_err)?;
        let rows = SlideRows { region, level0_um, model_um: m.um_per_px };
        let (w, h) = rows.size();
        let job = WholeSlideJob::new(w, h, (region.width, region.height), level0_um, m, self.segmenter.tile_size, tissue).map_err(js_err)?;
        let job = job.with_tta(tta.unwrap_or(false)).keep_raw_rows();
        drop(inner);
        Ok(self.job(Work::Whole { job: Box::new(job), rows, slide: slide.inner.clone(), raw: Vec::new(), shown: 0 }, region, um_per_px))
    }

    /// A result made again from its kept labels (`SegResult.rawLabels`) of a level-0 region,
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
}

/// What a [`Job`] runs: a region held in memory, or a whole slide streamed in bands.
enum Work {
    Region(SegmentJob),
    /// `raw`: the region's labels so far (whole rows), of which `shown` rows were drawn.
    Whole { job: Box<WholeSlideJob>, rows: SlideRows, slide: Rc<RefCell<slide::Slide>>, raw: Vec<u8>, shown: usize },
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
            Work::Whole { job, raw, .. } => {
                job.accept(batch, probabilities);
                raw.extend(job.take_raw_rows().concat());
                // the streamed post-processing's rows are not needed: the page post-processes
                // the whole region's labels, which gives the same
                job.take_label_rows();
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

    /// The rows of the region labelled since the last call (a streamed whole slide labels its
    /// rows as its bands finish), drawn as an RGBA overlay strip with the page's class colours
    /// and visibility, every `step`-th row and column (a preview the page can draw at once):
    /// `{y, height, width, rgba}` in preview rows, or `undefined` when there are none (a region
    /// held in memory is labelled at the end). The labels are before post-processing: the
    /// finished result's overlay replaces them.
    #[wasm_bindgen(js_name = newRows)]
    pub fn new_rows(&self, colors: &[u8], visible: &[u8], step: usize) -> Result<JsValue, JsError> {
        let mut inner = self.inner.borrow_mut();
        let Some(Work::Whole { raw, shown, .. }) = inner.as_mut() else { return Ok(JsValue::UNDEFINED) };
        let (width, step) = (self.region.width, step.max(1));
        let rows = raw.len() / width;
        // preview rows whose image row is labelled and not yet drawn
        let (first, end) = (shown.div_ceil(step), rows.div_ceil(step));
        *shown = rows;
        if first == end {
            return Ok(JsValue::UNDEFINED);
        }
        let (colors, visible) = styling(self.file.manifest.classes.len(), colors, visible)?;
        let sampled: Vec<u8> = (first..end).flat_map(|r| raw[r * step * width..(r * step + 1) * width].iter().step_by(step).copied()).collect();
        let preview_width = width.div_ceil(step);
        let rgba = overlay::render(&sampled, preview_width, end - first, &colors, &visible, overlay::Mode::Fill);
        let out = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v).map_err(|e| JsError::new(&js_text(&e)));
        set("y", JsValue::from(first as u32))?;
        set("height", JsValue::from((end - first) as u32))?;
        set("width", JsValue::from(preview_width as u32))?;
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
        let raw = match job {
            Work::Region(job) => labels_for_region(&job.finish(), self.region),
            Work::Whole { raw, .. } => raw,
        };
        Ok(SegResult::from_raw(raw, self.region, self.file.clone(), self.um_per_px))
    }
}

/// Class colours (flat RGB) and visibility flags from the page, checked against the classes.
fn styling(classes: usize, colors: &[u8], visible: &[u8]) -> Result<(Vec<[u8; 3]>, Vec<bool>), JsError> {
    if colors.len() != classes * 3 || visible.len() != classes {
        return Err(JsError::new(&format!("expected {classes} colours and visibility flags")));
    }
    Ok((colors.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(), visible.iter().map(|&v| v != 0).collect()))
}

/// A finished segmentation of a region: post-processed labels and objects at level-0 resolution
/// and everything the page draws and exports from them.
#[wasm_bindgen]
pub struct SegResult {
    /// The network's labels (after the glass rule), before the model's post-processing: what a
    /// result kept in the browser's storage is made again from.
    raw: Vec<u8>,
    labels: Vec<u8>,
    instances: crate::postprocess::Instances,
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
        Self { raw, labels: instances.labels.clone(), instances, region, file, um_per_px, objects: RefCell::new(None) }
    }

    fn objects(&self) -> Rc<Vec<export::Object>> {
        self.objects
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(export::objects(&self.instances)))
            .clone()
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
    /// Per-pixel class indices, row-major.
    pub fn labels(&self) -> Vec<u8> {
        self.labels.clone()
    }
    /// The labels before the model's post-processing, to keep and restore with `Model.restore`.
    #[wasm_bindgen(js_name = rawLabels)]
    pub fn raw_labels(&self) -> Vec<u8> {
        self.raw.clone()
    }
    /// RGBA overlay with the page's class colours (flat RGB) and visibility flags, filled or as
    /// contours.
    pub fn overlay(&self, colors: &[u8], visible: &[u8], contour: bool) -> Result<Vec<u8>, JsError> {
        let (colors, visible) = styling(self.file.manifest.classes.len(), colors, visible)?;
        let mode = if contour { overlay::Mode::Contour } else { overlay::Mode::Fill };
        Ok(overlay::render(&self.labels, self.region.width, self.region.height, &colors, &visible, mode))
    }
    /// Pixels per class.
    #[wasm_bindgen(js_name = classAreas)]
    pub fn class_areas(&self) -> Vec<f64> {
        overlay::class_areas(&self.labels, self.file.manifest.classes.len()).iter().map(|&a| a as f64).collect()
    }
    /// Number of connected objects (the GeoJSON's features).
    #[wasm_bindgen(js_name = objectCount)]
    pub fn object_count(&self) -> usize {
        self.objects().len()
    }
    /// The label mask as a PNG (class index per pixel) of the region at image resolution.
    #[wasm_bindgen(js_name = labelPng)]
    pub fn label_png(&self) -> Vec<u8> {
        export::label_png(&self.labels, self.region.width, self.region.height)
    }
    /// The region of `slide` with the overlay blended on, as a PNG.
    #[wasm_bindgen(js_name = overlayPng)]
    pub fn overlay_png(&self, slide: &Slide, opacity: f32, colors: &[u8], visible: &[u8], contour: bool) -> Result<Vec<u8>, JsError> {
        let r = self.region;
        let image = slide.inner.borrow_mut().read_region(0, r.x, r.y, r.width, r.height).map_err(js_err)?;
        Ok(export::overlay_png(&image, &self.overlay(colors, visible, contour)?, opacity))
    }
    /// A GeoJSON FeatureCollection in image pixel coordinates, for QuPath's "Import objects".
    pub fn geojson(&self) -> String {
        export::geojson(&self.objects(), &self.file.manifest.classes, [self.region.x as f64, self.region.y as f64]).to_string()
    }
    fn measurements(&self) -> export::Measurements {
        let r = self.region;
        export::measurements(&self.labels, r.width, r.height, &self.objects(), &self.file.manifest.classes, [r.x, r.y], self.um_per_px)
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
