//! The browser boundary (wasm32 only): a few wasm-bindgen types over the pure core and the
//! model. JavaScript hands in file bytes and drives a segmentation job tile batch by tile batch
//! (so it can show progress and cancel); Rust decodes, runs the network and blends.
//!
//! Every fallible entry point returns a `JsError` with a readable message; nothing panics on bad
//! input.

use std::cell::RefCell;
use std::rc::Rc;

use burn::prelude::*;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::imageio::{self, RgbImage};
use crate::model::Segmenter;
use crate::overlay;
use crate::segment::SegmentJob;
use crate::weights::ModelFile;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// burn's wgpu runtime can be initialised once per page; later models reuse the device.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// A decoded image, held in wasm memory so it is not copied back and forth.
#[wasm_bindgen]
pub struct DecodedImage {
    image: Rc<RgbImage>,
}

#[wasm_bindgen]
impl DecodedImage {
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> usize {
        self.image.width
    }
    #[wasm_bindgen(getter)]
    pub fn height(&self) -> usize {
        self.image.height
    }
    /// RGBA pixels for a canvas `ImageData`.
    pub fn rgba(&self) -> Vec<u8> {
        self.image.to_rgba()
    }
}

/// Decodes PNG, JPEG or BMP bytes.
#[wasm_bindgen(js_name = decodeImage)]
pub fn decode_image(bytes: &[u8]) -> Result<DecodedImage, JsError> {
    let image = imageio::decode(bytes).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(DecodedImage { image: Rc::new(image) })
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
    let device = Device::wgpu_options().init_async().await.map_err(|e| e.to_string())?;
    WEBGPU.with(|w| *w.borrow_mut() = Some(device.clone()));
    Ok(device)
}

#[wasm_bindgen]
impl Model {
    /// Parses a model file and builds it on `backend`: `"webgpu"` or `"cpu"`. The page decides
    /// whether WebGPU is usable before asking for it; if initialisation still fails the promise
    /// rejects with the reason, and the page retries on the CPU.
    pub fn load(bytes: Vec<u8>, backend: String) -> Promise {
        future_to_promise(async move {
            let file = ModelFile::from_bytes(&bytes).map_err(|e| JsError::new(&e.to_string()))?;
            let device = match backend.as_str() {
                "webgpu" => webgpu_device()
                    .await
                    .map_err(|e| JsError::new(&format!("WebGPU could not be started: {e}")))?,
                "cpu" => Device::flex(),
                other => return Err(JsError::new(&format!("unknown backend '{other}'")).into()),
            };
            let segmenter = file.segmenter(&device).map_err(|e| JsError::new(&e.to_string()))?;
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

    /// Starts a segmentation of `image`, whose resolution is `um_per_px` (µm per pixel; `None`
    /// means "already at the model's resolution"). The image is resampled to the model's working
    /// resolution and the labels are resampled back, so the mask always has the image's size.
    pub fn segment(&self, image: &DecodedImage, um_per_px: Option<f64>) -> Result<Job, JsError> {
        let m = &self.file.manifest;
        let (w, h) = (image.image.width, image.image.height);
        let from = match um_per_px {
            Some(v) if v > 0.0 && v.is_finite() => v,
            Some(v) => return Err(JsError::new(&format!("the image resolution must be a positive µm/px value, not {v}"))),
            None => m.um_per_px,
        };
        let (mw, mh) = imageio::rescaled_size(w, h, from, m.um_per_px);
        let work = if (mw, mh) == (w, h) { None } else { Some(imageio::resize(&image.image, mw, mh)) };
        let job = SegmentJob::new(work.as_ref().unwrap_or(&image.image), m.tile_size, m.overlap, m.head.num_classes)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let colors = m.classes.iter().map(|c| c.color).collect();
        Ok(Job { inner: Rc::new(RefCell::new(Some(job))), segmenter: self.segmenter.clone(), colors, image_size: (w, h) })
    }
}

/// A running segmentation. Call `step` until it resolves to `true`, then `finish`.
#[wasm_bindgen]
pub struct Job {
    inner: Rc<RefCell<Option<SegmentJob>>>,
    segmenter: Rc<Segmenter>,
    colors: Vec<[u8; 3]>,
    /// The original image's size; labels are resampled back to it.
    image_size: (usize, usize),
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

    #[wasm_bindgen(getter)]
    pub fn done(&self) -> usize {
        self.inner.borrow().as_ref().map_or(0, |j| j.tiles_done())
    }

    /// Runs the next batch of up to `batch_size` tiles; resolves to `true` when all are done.
    pub fn step(&self, batch_size: usize) -> Promise {
        let inner = self.inner.clone();
        let segmenter = self.segmenter.clone();
        future_to_promise(async move {
            let batch = {
                let job = inner.borrow();
                let job = job.as_ref().ok_or_else(finished_error)?;
                match job.next_batch(batch_size) {
                    Some(b) => b,
                    None => return Ok(JsValue::TRUE),
                }
            };
            let x = segmenter.input_tensor(batch.planar.clone(), batch.count);
            let data = segmenter
                .probabilities(x)
                .into_data_async()
                .await
                .map_err(|e| JsError::new(&format!("the GPU failed while segmenting: {e:?}")))?;
            let probs = data.try_into_vec_as::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))?;
            let mut job = inner.borrow_mut();
            let job = job.as_mut().ok_or_else(finished_error)?;
            job.accept(&batch, &probs);
            Ok(JsValue::from_bool(job.is_done()))
        })
    }

    /// Blends the tiles into labels. The job is consumed.
    pub fn finish(&self) -> Result<SegResult, JsError> {
        let job = self.inner.borrow_mut().take().ok_or_else(finished_error)?;
        if !job.is_done() {
            let (done, total) = (job.tiles_done(), job.total_tiles());
            *self.inner.borrow_mut() = Some(job);
            return Err(JsError::new(&format!("only {done} of {total} tiles are segmented")));
        }
        let mut seg = job.finish();
        let (w, h) = self.image_size;
        if (seg.width, seg.height) != (w, h) {
            seg.labels = imageio::resize_nearest(&seg.labels, seg.width, seg.height, w, h);
            seg.probabilities = Vec::new();
            (seg.width, seg.height) = (w, h);
        }
        Ok(SegResult { areas: overlay::class_areas(&seg.labels, seg.classes), overlay: overlay::label_overlay(&seg.labels, &self.colors), seg })
    }
}

/// The blended result: labels, a ready-to-draw overlay and per-class areas.
#[wasm_bindgen]
pub struct SegResult {
    seg: crate::segment::Segmentation,
    overlay: Vec<u8>,
    areas: Vec<u64>,
}

#[wasm_bindgen]
impl SegResult {
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> usize {
        self.seg.width
    }
    #[wasm_bindgen(getter)]
    pub fn height(&self) -> usize {
        self.seg.height
    }
    /// Per-pixel class indices, row-major.
    pub fn labels(&self) -> Vec<u8> {
        self.seg.labels.clone()
    }
    /// RGBA overlay: class colours, transparent background.
    #[wasm_bindgen(js_name = overlayRgba)]
    pub fn overlay_rgba(&self) -> Vec<u8> {
        self.overlay.clone()
    }
    /// Pixels per class.
    #[wasm_bindgen(js_name = classAreas)]
    pub fn class_areas(&self) -> Vec<f64> {
        self.areas.iter().map(|&a| a as f64).collect()
    }
}
