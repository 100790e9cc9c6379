//! The worker's side of the "Train your own" mode (issue 15; cargo feature `few-shot`): the
//! strokes painted on the open slide, the frozen features of the painted tiles and of the view,
//! the pixel head trained on them with burn's autodiff on this model's device, the live preview,
//! and the result as an ordinary model file. JavaScript owns the strokes (undo is its list minus
//! one) and hands them over whole after each change, as GeoJSON.

use std::cell::RefCell;
use std::rc::Rc;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{Model, Slide, js_err, level0_um};
use crate::few_shot::{FEATURE_LEVELS, HeadTrainer, PaintedImage, PixelSamples, TrainSettings, ViewBlend, feature_segmenter, few_shot_model};
use crate::model::Segmenter;
use crate::model::head::SegHead;
use crate::slide;
use crate::strokes::StrokeSet;
use crate::weights::ModelFile;

/// The most tiles a preview covers, those nearest the view's centre (their features are kept
/// while the view stays).
const MAX_VIEW_TILES: usize = 16;

struct State {
    painted: PaintedImage,
    strokes: StrokeSet,
    trainer: Option<HeadTrainer>,
    /// Stroke counts at each training update, for the saved strokes (the CLI replays them).
    updates: Vec<usize>,
}

/// Strokes from a GeoJSON file (ours, or QuPath's line annotations) in the form
/// `Teacher::strokesGeojson` writes, with the class list: what the page reads back on import.
#[wasm_bindgen(js_name = strokesFromGeojson)]
pub fn strokes_from_geojson(text: &str) -> Result<String, JsError> {
    Ok(StrokeSet::from_geojson(text).map_err(js_err)?.to_geojson())
}

#[wasm_bindgen]
pub struct Teacher {
    file: Rc<ModelFile>,
    segmenter: Rc<Segmenter>,
    slide: Rc<RefCell<slide::Slide>>,
    level0_um: f64,
    seed: u64,
    state: Rc<RefCell<State>>,
}

#[wasm_bindgen]
impl Model {
    /// Starts teaching on `slide` with this model's frozen UNet (`um_per_px`: µm per level-0
    /// pixel, `None` for the model's own).
    pub fn teach(&self, slide: &Slide, um_per_px: Option<f64>) -> Result<Teacher, JsError> {
        let m = &self.file.manifest;
        let level0_um = level0_um(um_per_px, m.um_per_px)?;
        let painted = PaintedImage::for_slide(&slide.inner.borrow(), level0_um, m.um_per_px, self.segmenter.tile_size, m.overlap).map_err(js_err)?;
        let state = State { painted, strokes: StrokeSet::new(Vec::new(), ""), trainer: None, updates: Vec::new() };
        let segmenter = Rc::new(feature_segmenter(&self.file, FEATURE_LEVELS, self.segmenter.device()).map_err(js_err)?);
        Ok(Teacher { file: self.file.clone(), segmenter, slide: slide.inner.clone(), level0_um, seed: 0, state: Rc::new(RefCell::new(state)) })
    }
}

/// The features of tile `i`, read from the slide and run through the frozen UNet (one awaited
/// readback, as WebGPU needs).
async fn tile_features(segmenter: &Segmenter, slide: &RefCell<slide::Slide>, state: &RefCell<State>, level0_um: f64, model_um: f64, i: usize) -> Result<(), JsError> {
    let input = state.borrow().painted.input_from_slide(&mut slide.borrow_mut(), level0_um, model_um, i).map_err(js_err)?;
    let x = segmenter.input_tensor(input, 1);
    let data = segmenter.features(x).into_data_async().await.map_err(|e| JsError::new(&format!("the GPU failed while computing features: {e:?}")))?;
    let f = data.try_into_vec_as::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))?;
    state.borrow_mut().painted.set_features(i, f);
    Ok(())
}

#[wasm_bindgen]
impl Teacher {
    /// Replaces the strokes (GeoJSON as `strokes_geojson` writes it, classes listed, background
    /// first). A change of classes starts a new head. Returns the painted tiles whose features
    /// are still to compute.
    #[wasm_bindgen(js_name = setStrokes)]
    pub fn set_strokes(&self, geojson: &str) -> Result<usize, JsError> {
        let strokes = StrokeSet::from_geojson(geojson).map_err(js_err)?;
        let mut st = self.state.borrow_mut();
        if st.strokes.classes != strokes.classes {
            st.trainer = None;
            st.updates.clear();
        }
        st.strokes = StrokeSet { updates: Vec::new(), ..strokes };
        Ok(st.painted.tiles_to_compute(&st.strokes).len())
    }

    /// Computes the features of up to `max` painted tiles still missing; resolves to how many
    /// are left.
    #[wasm_bindgen(js_name = computeTiles)]
    pub fn compute_tiles(&self, max: usize) -> Promise {
        let (segmenter, slide, state) = (self.segmenter.clone(), self.slide.clone(), self.state.clone());
        let (level0_um, model_um) = (self.level0_um, self.file.manifest.um_per_px);
        future_to_promise(async move {
            let todo = {
                let st = state.borrow();
                st.painted.tiles_to_compute(&st.strokes)
            };
            for &i in todo.iter().take(max) {
                tile_features(&segmenter, &slide, &state, level0_um, model_um, i).await?;
            }
            Ok(JsValue::from(todo.len().saturating_sub(max) as u32))
        })
    }

    /// One update: the head (new, or the previous one warm) trained on every painted pixel with
    /// features; resolves to the last loss.
    pub fn train(&self) -> Promise {
        let (state, file, seed) = (self.state.clone(), self.file.clone(), self.seed);
        let device = self.segmenter.device().clone();
        future_to_promise(async move {
            let loss = {
                let mut st = state.borrow_mut();
                let st = &mut *st;
                let m = &file.manifest;
                let channels = m.unet.feature_channels(FEATURE_LEVELS);
                let trainer = st.trainer.get_or_insert_with(|| HeadTrainer::new(channels, st.strokes.classes.len(), seed, &device));
                if !trainer.has_norm() {
                    if let Some((mean, std)) = st.painted.channel_stats() {
                        trainer.set_norm(mean, std);
                    }
                }
                let mut samples = PixelSamples::new(channels);
                st.painted.add_samples(&st.strokes, &mut samples);
                trainer.set_samples(&samples);
                let loss = trainer.train(&TrainSettings::default());
                st.updates.push(st.strokes.strokes.len());
                loss
            };
            let Some(loss) = loss else { return Err(JsError::new("nothing painted yet: paint at least one stroke").into()) };
            let data = loss.into_data_async().await.map_err(|e| JsError::new(&format!("the GPU failed while training: {e:?}")))?;
            let v = data.try_into_vec_as::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))?;
            Ok(JsValue::from(v[0]))
        })
    }

    /// The prediction over the level-0 view `[x0, y0, x1, y1]`: resolves to `{x, y, width,
    /// height, scale, labels, uncertainty}`, the labels and uncertainty (0..=255) on the box of
    /// model pixels `(x, y, width, height)` of the slide at the model's resolution (`scale`
    /// level-0 pixels each).
    pub fn preview(&self, x0: f64, y0: f64, x1: f64, y1: f64) -> Promise {
        let (segmenter, slide, state, file) = (self.segmenter.clone(), self.slide.clone(), self.state.clone(), self.file.clone());
        let (level0_um, model_um) = (self.level0_um, self.file.manifest.um_per_px);
        future_to_promise(async move {
            let (view, head) = {
                let st = state.borrow();
                let head = st.trainer.as_ref().filter(|t| t.steps_done > 0).map(|t| t.head()).ok_or_else(|| JsError::new("the model is not trained yet: paint strokes of two classes"))?;
                (st.painted.tiles_nearest([x0, y0, x1, y1], MAX_VIEW_TILES), head)
            };
            if view.is_empty() {
                return Err(JsError::new("the view holds none of the image").into());
            }
            {
                let mut st = state.borrow_mut();
                let st = &mut *st;
                st.painted.forget_unpainted(&st.strokes, &view);
            }
            let grid = state.borrow().painted.grid.clone();
            let mut blend = ViewBlend::new(&grid, &view, state.borrow().strokes.classes.len());
            let channels = file.manifest.unet.feature_channels(FEATURE_LEVELS);
            let t = grid.tile_size;
            for &i in &view {
                if state.borrow().painted.features_of(i).is_none() {
                    tile_features(&segmenter, &slide, &state, level0_um, model_um, i).await?;
                }
                let x = {
                    let st = state.borrow();
                    let f = st.painted.features_of(i).expect("computed above").to_vec();
                    Tensor::<4>::from_data(TensorData::new(f, [1, channels, t, t]), segmenter.device())
                };
                let data = softmax(head.forward(x), 1).into_data_async().await.map_err(|e| JsError::new(&format!("the GPU failed while predicting: {e:?}")))?;
                blend.add(&grid, i, &data.try_into_vec_as::<f32>().map_err(|e| JsError::new(&format!("{e:?}")))?);
            }
            let (labels, uncertainty) = blend.labels_and_uncertainty();
            let out = js_sys::Object::new();
            let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v).map(|_| ());
            set("x", blend.x.into())?;
            set("y", blend.y.into())?;
            set("width", blend.width.into())?;
            set("height", blend.height.into())?;
            set("scale", state.borrow().painted.scale.into())?;
            set("labels", js_sys::Uint8Array::from(labels.as_slice()).into())?;
            set("uncertainty", js_sys::Uint8Array::from(uncertainty.as_slice()).into())?;
            Ok(out.into())
        })
    }

    /// The strokes so far with the updates made, as GeoJSON (what the CLI's `train --strokes`
    /// replays; QuPath opens it).
    #[wasm_bindgen(js_name = strokesGeojson)]
    pub fn strokes_geojson(&self) -> String {
        let st = self.state.borrow();
        StrokeSet { updates: st.updates.clone(), ..st.strokes.clone() }.to_geojson()
    }

    /// The taught model as `.histoseg` bytes (resolves to a `Uint8Array`): this model's UNet,
    /// the trained head, the classes, the strokes' count and the image's name.
    #[wasm_bindgen(js_name = modelBytes)]
    pub fn model_bytes(&self, name: String) -> Promise {
        let (state, file) = (self.state.clone(), self.file.clone());
        future_to_promise(async move {
            let (head, strokes, provenance) = {
                let st = state.borrow();
                let trainer = st.trainer.as_ref().filter(|t| t.steps_done > 0).ok_or_else(|| JsError::new("the model is not trained yet: paint strokes of two classes"))?;
                let provenance = format!("taught in the histoseg viewer: {} strokes, {} updates of {:?}", st.strokes.strokes.len(), st.updates.len(), TrainSettings::default());
                (trainer.head(), StrokeSet { updates: st.updates.clone(), ..st.strokes.clone() }, provenance)
            };
            // the file is written on the CPU: a WebGPU tensor can only be read back asynchronously
            let cpu = Device::flex();
            let head = head_onto(&head, &cpu).await?;
            let file = few_shot_model(&file, head, FEATURE_LEVELS, &strokes, &name, &provenance, &cpu).map_err(js_err)?;
            Ok(js_sys::Uint8Array::from(file.to_bytes().as_slice()).into())
        })
    }
}

/// A tensor's values, read back asynchronously (WebGPU cannot block).
async fn read_back<const D: usize>(t: Tensor<D>) -> Result<TensorData, JsError> {
    t.into_data_async().await.map_err(|e| JsError::new(&format!("the GPU failed while reading the model back: {e:?}")))
}

/// The head with its weights copied onto `device`.
async fn head_onto(head: &SegHead, device: &Device) -> Result<SegHead, JsError> {
    let mut out = head.clone();
    for (to, from) in [(&mut out.hidden, &head.hidden), (&mut out.classify, &head.classify)] {
        to.weight = Param::from_tensor(Tensor::<4>::from_data(read_back(from.weight.val()).await?, device));
        if let Some(b) = &from.bias {
            to.bias = Some(Param::from_tensor(Tensor::<1>::from_data(read_back(b.val()).await?, device)));
        }
    }
    Ok(out)
}
