//! The model file: a JSON manifest plus int8 weights, readable from bytes (the browser fetches
//! it) and self-describing (the manifest rebuilds the network).
//!
//! Layout, little-endian:
//!
//! ```text
//! "HISTOSEG"                      8-byte magic
//! u32 format_version
//! u32 manifest_len, manifest      UTF-8 JSON, see [`Manifest`]
//! u32 tensor_count, then for each tensor:
//!   u16 name_len, name            the parameter path, e.g. "unet.down.0.blocks.0.conv1.weight"
//!   u8 rank, u32 dims[rank]
//!   u8 encoding                   0 = f32, 1 = int8 with one f32 scale per output channel
//!   f32 data | (f32 scales[dims[0]], i8 data)
//! u32 crc32                       of every byte before it
//! ```
//!
//! Weights of rank >= 2 are stored as symmetric int8 with a scale per output channel
//! (`w = q * scale`) and dequantized to f32 when loaded; a pixel-MLP head's stay f32. That route works on every backend;
//! burn 0.22.1's packed int8 convolutions are wrong on wgpu (see ../shared/TOOLCHAIN.md).
//! Biases and normalisation parameters are small and stay f32.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{HeadConfig, HistoSegNet, Segmenter, UNetConfig};

pub const MAGIC: &[u8; 8] = b"HISTOSEG";
/// The newest format this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;

const ENC_F32: u8 = 0;
const ENC_INT8: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub name: String,
    /// Overlay colour, sRGB.
    pub color: [u8; 3],
}

impl ClassInfo {
    /// Classes from `name:RRGGBB,name:RRGGBB,...`, background (class 0) first.
    pub fn parse_list(s: &str) -> Result<Vec<ClassInfo>, String> {
        let classes: Vec<ClassInfo> = s
            .split(',')
            .map(|item| {
                let (name, hex) = item.trim().split_once(':').ok_or_else(|| format!("class '{item}' must be NAME:RRGGBB"))?;
                let v = (hex.len() == 6).then(|| u32::from_str_radix(hex, 16).ok()).flatten();
                let v = v.ok_or_else(|| format!("colour '{hex}' of class '{name}' is not hex RRGGBB"))?;
                if name.is_empty() {
                    return Err(format!("class '{item}' has no name"));
                }
                Ok(ClassInfo { name: name.to_string(), color: [(v >> 16) as u8, (v >> 8) as u8, v as u8] })
            })
            .collect::<Result<_, _>>()?;
        if classes.len() < 2 {
            return Err(format!("'{s}' names {} class; a model needs at least two, background first", classes.len()));
        }
        if let Some(dup) = classes.iter().enumerate().find(|(i, c)| classes[..*i].iter().any(|d| d.name == c.name)) {
            return Err(format!("class '{}' is named twice", dup.1.name));
        }
        Ok(classes)
    }
}

/// What a model is, how it was made, and how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub description: String,
    /// False for a model whose weights are random; the viewer says so in plain words.
    pub trained: bool,
    /// How the weights were produced (the CLI command and data).
    pub provenance: String,
    pub unet: UNetConfig,
    pub head: HeadConfig,
    pub classes: Vec<ClassInfo>,
    /// The resolution the model works at, micrometres per pixel.
    pub um_per_px: f64,
    pub tile_size: usize,
    pub overlap: usize,
    /// Diffusion timestep at which features are taken (the first, if the head reads
    /// `head.extra_timesteps` too: see [`Manifest::timesteps`]).
    pub timestep: usize,
    /// Seed of the fixed noise field added at `timestep`.
    pub noise_seed: u64,
    /// Test-set metrics recorded at export time, if any.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// How labels become objects (boundary class, hole filling, minimum size); the same in
    /// `eval`, the CLI's exports and the page.
    #[serde(default)]
    pub postprocess: crate::postprocess::PostprocessConfig,
}

impl Manifest {
    /// The classes objects can have: every class but the background and the boundary class.
    pub fn object_classes(&self) -> Vec<u8> {
        (1..self.classes.len() as u8).filter(|&c| Some(c) != self.postprocess.boundary_class).collect()
    }

    /// How many classes a ground-truth mask for this model has: all but the boundary class
    /// (instance-aware models are scored against ordinary masks).
    pub fn mask_classes(&self) -> usize {
        self.classes.len() - self.postprocess.boundary_class.is_some() as usize
    }

    /// Labels at `um_per_px` to objects, by the model's own post-processing.
    pub fn objects_of(&self, labels: &[u8], width: usize, height: usize, um_per_px: f64) -> crate::postprocess::Instances {
        crate::postprocess::apply(labels, width, height, &self.postprocess, um_per_px)
    }

    /// Every timestep features are read at, `timestep` first.
    pub fn timesteps(&self) -> Vec<usize> {
        std::iter::once(self.timestep).chain(self.head.extra_timesteps.iter().copied()).collect()
    }

    /// A validated manifest for a segmentation model: architecture, classes, and how it runs
    /// (working µm/px, tile, overlap, feature timestep). Not yet trained; no provenance.
    #[allow(clippy::too_many_arguments)]
    pub fn for_segmentation(
        name: &str,
        classes: Vec<ClassInfo>,
        unet: UNetConfig,
        head: HeadConfig,
        um_per_px: f64,
        tile_size: usize,
        overlap: usize,
        timestep: usize,
    ) -> Result<Manifest, WeightsError> {
        let mut m = new_manifest(name, classes, unet, head);
        (m.um_per_px, m.tile_size, m.overlap, m.timestep) = (um_per_px, tile_size, overlap, timestep);
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<(), WeightsError> {
        let bad = |m: String| Err(WeightsError::BadManifest(m));
        if let Err(m) = self.unet.validate() {
            return bad(m);
        }
        if let Err(m) = self.head.validate(&self.unet) {
            return bad(m);
        }
        if self.classes.len() != self.head.num_classes {
            return bad(format!("{} classes are named but the head has {} outputs", self.classes.len(), self.head.num_classes));
        }
        let m = self.unet.size_multiple();
        if self.tile_size == 0 || self.tile_size % m != 0 {
            return bad(format!("tile size {} is not a positive multiple of {m}", self.tile_size));
        }
        if self.overlap >= self.tile_size {
            return bad(format!("overlap {} must be smaller than the tile size {}", self.overlap, self.tile_size));
        }
        if self.timestep >= crate::model::schedule::T {
            return bad(format!("timestep {} is outside 0..{}", self.timestep, crate::model::schedule::T));
        }
        let timesteps = self.timesteps();
        if (1..timesteps.len()).any(|i| timesteps[..i].contains(&timesteps[i])) {
            return bad(format!("timesteps {timesteps:?} repeat one"));
        }
        if !(self.um_per_px > 0.0 && self.um_per_px.is_finite()) {
            return bad(format!("µm/px must be positive, got {}", self.um_per_px));
        }
        let pp = &self.postprocess;
        if let Some(b) = pp.boundary_class
            && (b == 0 || b as usize >= self.classes.len() || self.classes.len() < 3)
        {
            return bad(format!("boundary class {b} must be a class other than the background, beside at least one object class"));
        }
        if !(pp.min_object_um2 >= 0.0 && pp.min_object_um2.is_finite()) {
            return bad(format!("the minimum object size must be 0 or more µm², got {}", pp.min_object_um2));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("not a histoseg model file (it does not start with the HISTOSEG signature)")]
    NotAModel,
    #[error("the model file is truncated or damaged: {0}")]
    Corrupt(String),
    #[error("the model file is damaged or incomplete: its checksum does not match (expected {expected:08x}, found {found:08x}); download or export it again")]
    Checksum { expected: u32, found: u32 },
    #[error("the model file has format version {0}, but this histoseg reads up to version {FORMAT_VERSION}; update histoseg")]
    TooNew(u32),
    #[error("the model manifest is invalid: {0}")]
    BadManifest(String),
    #[error("the weights do not match the manifest's architecture: {0}")]
    Mismatch(String),
}

/// How weight matrices and kernels are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Symmetric int8 with a scale per output channel (shipped models).
    Int8,
    /// Full precision (training checkpoints, and the f32 side of int8-vs-f32 comparisons).
    F32,
}

/// One stored tensor, already dequantized.
#[derive(Debug, Clone)]
struct StoredTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// A parsed model file: the manifest and named f32 tensors.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub manifest: Manifest,
    tensors: Vec<(String, StoredTensor)>,
}

/// Symmetric per-output-channel int8: returns `(scales, quantized)`.
pub fn quantize_per_channel(values: &[f32], channels: usize) -> (Vec<f32>, Vec<i8>) {
    let per = values.len() / channels;
    let mut scales = Vec::with_capacity(channels);
    let mut q = Vec::with_capacity(values.len());
    for chunk in values.chunks_exact(per) {
        let max = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(chunk.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
    }
    (scales, q)
}

pub fn dequantize_per_channel(scales: &[f32], q: &[i8]) -> Vec<f32> {
    if scales.is_empty() || q.is_empty() {
        return Vec::new();
    }
    let per = q.len() / scales.len();
    q.chunks_exact(per).zip(scales).flat_map(|(c, &s)| c.iter().map(move |&v| v as f32 * s)).collect()
}

/// Collects `(path, shape, values)` of every float parameter, in visiting order.
struct Collector {
    path: Vec<String>,
    out: Vec<(String, StoredTensor)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = tensor.into_data().try_into_vec_as::<f32>().expect("float parameter");
        self.out.push((self.path.join("."), StoredTensor { shape, values }));
    }
}

/// Replaces every float parameter with the stored tensor of the same path, recording problems.
struct Loader<'a> {
    path: Vec<String>,
    stored: HashMap<&'a str, &'a StoredTensor>,
    visited: std::collections::HashSet<String>,
    errors: Vec<String>,
    device: Device,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let expected: Vec<usize> = param.lazy_shape().to_vec();
        self.visited.insert(path.clone());
        match self.stored.get(path.as_str()) {
            None => {
                self.errors.push(format!("tensor '{path}' is missing from the file"));
                param
            }
            Some(t) if t.shape != expected => {
                self.errors.push(format!("tensor '{path}' has shape {:?} in the file but the architecture needs {expected:?}", t.shape));
                param
            }
            Some(t) => {
                let data = TensorData::new(t.values.clone(), t.shape.clone());
                // keep the parameter's id, mapper and trainability; replace only its value
                let (id, old, mapper) = param.consume();
                let tensor = Tensor::from_data(data, &self.device);
                let tensor = if old.is_require_grad() { tensor.require_grad() } else { tensor };
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WeightsError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| WeightsError::Corrupt(format!("it ends inside {what}")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, WeightsError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, WeightsError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32, WeightsError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, WeightsError> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| WeightsError::Corrupt(format!("{what} is too large")))?, what)?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    }
}

impl ModelFile {
    /// Captures a network's weights under a manifest.
    pub fn from_net(manifest: Manifest, net: &HistoSegNet) -> Self {
        let mut c = Collector { path: Vec::new(), out: Vec::new() };
        net.visit(&mut c);
        Self { manifest, tensors: c.out }
    }

    /// Every stored tensor's name and values (dequantized when stored as int8), in file order.
    pub fn tensor_values(&self) -> impl Iterator<Item = (&str, &[f32])> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t.values.as_slice()))
    }

    /// Calls `f` with every stored tensor's name, shape and values, which it may change.
    pub fn for_each_tensor_mut(&mut self, mut f: impl FnMut(&str, &[usize], &mut [f32])) {
        for (name, t) in &mut self.tensors {
            f(name, &t.shape, &mut t.values);
        }
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.values.len()).sum()
    }

    /// Serialises with int8 weights (rank >= 2) and f32 vectors: the shipped format.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with(Precision::Int8)
    }

    /// Serialises with the given weight precision (`F32` for training checkpoints).
    pub fn to_bytes_with(&self, precision: Precision) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let manifest = serde_json::to_vec_pretty(&self.manifest).expect("manifest serialises");
        out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
        out.extend_from_slice(&manifest);
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for (name, t) in &self.tensors {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(t.shape.len() as u8);
            for &d in &t.shape {
                out.extend_from_slice(&(d as u32).to_le_bytes());
            }
            // a pixel-MLP head (strokes, src/few_shot.rs) has its input standardisation folded
            // into its first layer, whose weights then span a range int8 would crush; it is tiny
            let f32_head = self.manifest.head.kernel == 1 && name.starts_with("head.");
            if t.shape.len() >= 2 && precision == Precision::Int8 && !f32_head {
                out.push(ENC_INT8);
                let (scales, q) = quantize_per_channel(&t.values, t.shape[0]);
                scales.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
                out.extend(q.iter().map(|&v| v as u8));
            } else {
                out.push(ENC_F32);
                t.values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks a model file. Every failure is a [`WeightsError`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightsError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(WeightsError::NotAModel);
        }
        let mut r = Reader { bytes, pos: MAGIC.len() };
        let version = r.u32("the header")?;
        if version > FORMAT_VERSION {
            return Err(WeightsError::TooNew(version));
        }
        if version == 0 {
            return Err(WeightsError::Corrupt("format version 0 does not exist".into()));
        }
        if bytes.len() < 16 {
            return Err(WeightsError::Corrupt("it is too short".into()));
        }
        let body = &bytes[..bytes.len() - 4];
        let expected = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        let found = crc32fast::hash(body);
        if expected != found {
            return Err(WeightsError::Checksum { expected, found });
        }
        let mut r = Reader { bytes: body, pos: r.pos };
        let len = r.u32("the manifest length")? as usize;
        let manifest: Manifest = serde_json::from_slice(r.take(len, "the manifest")?)
            .map_err(|e| WeightsError::BadManifest(e.to_string()))?;
        if manifest.format_version != version {
            return Err(WeightsError::BadManifest(format!(
                "the manifest says format version {} but the header says {version}",
                manifest.format_version
            )));
        }
        manifest.validate()?;
        let count = r.u32("the tensor count")? as usize;
        let mut tensors = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let name_len = r.u16("a tensor name")? as usize;
            let name = std::str::from_utf8(r.take(name_len, "a tensor name")?)
                .map_err(|_| WeightsError::Corrupt("a tensor name is not UTF-8".into()))?
                .to_string();
            let rank = r.u8("a tensor rank")? as usize;
            let shape = (0..rank).map(|_| r.u32("a tensor shape").map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            // found by fuzzing: a zero-sized dimension made the int8 reader divide by zero
            let n = n.filter(|&n| n > 0 && n <= body.len()).ok_or_else(|| WeightsError::Corrupt(format!("tensor '{name}' claims an impossible shape {shape:?}")))?;
            let values = match r.u8("a tensor encoding")? {
                ENC_F32 => r.f32s(n, &name)?,
                ENC_INT8 if rank >= 1 && shape[0] > 0 => {
                    let scales = r.f32s(shape[0], &name)?;
                    let q: Vec<i8> = r.take(n, &name)?.iter().map(|&b| b as i8).collect();
                    dequantize_per_channel(&scales, &q)
                }
                other => return Err(WeightsError::Corrupt(format!("tensor '{name}' has unknown encoding {other}"))),
            };
            tensors.push((name, StoredTensor { shape, values }));
        }
        if r.pos != body.len() {
            return Err(WeightsError::Corrupt(format!("{} unexpected bytes after the last tensor", body.len() - r.pos)));
        }
        Ok(Self { manifest, tensors })
    }

    /// Fills `module` with the stored tensors whose paths start with `prefix` (`""` for the whole
    /// network, `"unet"` for the UNet alone), checking that every parameter exists with the right
    /// shape and that no stored tensor under the prefix is left over.
    pub fn load_into<M: Module>(&self, module: M, prefix: &str, device: &Device) -> Result<M, WeightsError> {
        let stored: HashMap<&str, &StoredTensor> = self.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let path = if prefix.is_empty() { Vec::new() } else { vec![prefix.to_string()] };
        let mut loader = Loader { path, stored, visited: Default::default(), errors: Vec::new(), device: device.clone() };
        let module = module.map(&mut loader);
        let under = |n: &str| prefix.is_empty() || n.starts_with(&format!("{prefix}."));
        let extra: Vec<&str> =
            self.tensors.iter().map(|(n, _)| n.as_str()).filter(|n| under(n) && !loader.visited.contains(*n)).take(3).collect();
        if !extra.is_empty() {
            loader.errors.push(format!("the file has tensors the architecture does not use: {}", extra.join(", ")));
        }
        if !loader.errors.is_empty() {
            let n = loader.errors.len();
            let mut msg = loader.errors.into_iter().take(3).collect::<Vec<_>>().join("; ");
            if n > 3 {
                msg.push_str(&format!(" (and {} more)", n - 3));
            }
            return Err(WeightsError::Mismatch(msg));
        }
        Ok(module)
    }

    /// Builds the manifest's network on `device` and fills it with these weights.
    pub fn build_net(&self, device: &Device) -> Result<HistoSegNet, WeightsError> {
        let net = HistoSegNet::new(&self.manifest.unet, &self.manifest.head, device);
        self.load_into(net, "", device)
    }

    /// The ready-to-run inference pipeline for this model.
    pub fn segmenter(&self, device: &Device) -> Result<Segmenter, WeightsError> {
        self.segmenter_with_tile(device, self.manifest.tile_size)
    }

    /// The network is fully convolutional, so it runs on any tile size the UNet's levels divide
    /// (benchmarks compare 128 and 256 px tiles of the same weights). The noise field is drawn
    /// for that size, so labels differ slightly from the manifest's tile size.
    pub fn segmenter_with_tile(&self, device: &Device, tile_size: usize) -> Result<Segmenter, WeightsError> {
        let m = &self.manifest;
        let multiple = m.unet.size_multiple();
        if tile_size == 0 || tile_size % multiple != 0 {
            return Err(WeightsError::BadManifest(format!("tile size {tile_size} is not a positive multiple of {multiple}")));
        }
        let net = self.build_net(device)?;
        Ok(Segmenter::new(net, m.head.feature_levels.clone(), tile_size, &m.timesteps(), m.noise_seed, m.unet.in_channels, device))
    }
}

/// Default manifest fields for a new two-class model, used by the CLI.
pub fn new_manifest(name: &str, classes: Vec<ClassInfo>, unet: UNetConfig, head: HeadConfig) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.to_string(),
        description: String::new(),
        trained: false,
        provenance: String::new(),
        unet,
        head,
        classes,
        um_per_px: 0.5,
        tile_size: 128,
        overlap: 32,
        timestep: 50,
        noise_seed: 0x4853_4547, // "HSEG"
        metrics: serde_json::Value::Null,
        postprocess: crate::postprocess::PostprocessConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_timesteps_are_kept_only_when_there_are_some_and_checked() {
        let mut m = Manifest::for_segmentation("t", ClassInfo::parse_list("background:000000,gland:00c853").unwrap(), UNetConfig::default(), HeadConfig::new(vec![0, 1], 8, 2), 1.0, 64, 16, 50).unwrap();
        let one = serde_json::to_value(&m).unwrap();
        assert!(one["head"].get("extra_timesteps").is_none(), "a one-timestep manifest reads as before: {}", one["head"]);
        assert_eq!(serde_json::from_value::<Manifest>(one).unwrap().timesteps(), [50]);
        m.head.extra_timesteps = vec![10, 200];
        let three: Manifest = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(three.timesteps(), [50, 10, 200]);
        assert_eq!(three.head.input_channels(&three.unet), 3 * three.unet.feature_channels(&[0, 1]));
        m.head.extra_timesteps = vec![10, 50];
        assert!(m.validate().unwrap_err().to_string().contains("repeat"));
        m.head.extra_timesteps = vec![1000];
        assert!(m.validate().unwrap_err().to_string().contains("timestep 1000 is outside 0..1000"));
    }

    #[test]
    fn class_lists_parse_and_bad_ones_say_why() {
        let c = ClassInfo::parse_list("background:000000,nucleus:ff3d7f,boundary:FFD600").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], ClassInfo { name: "boundary".into(), color: [0xff, 0xd6, 0x00] });
        assert!(ClassInfo::parse_list("background:000000").unwrap_err().contains("at least two"));
        assert!(ClassInfo::parse_list("a:000000,b:12345").unwrap_err().contains("not hex"));
        assert!(ClassInfo::parse_list("a:000000,b").unwrap_err().contains("NAME:RRGGBB"));
        assert!(ClassInfo::parse_list("a:000000,a:ffffff").unwrap_err().contains("named twice"));
    }

    #[test]
    fn int8_roundtrip_error_is_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.1).collect();
        let (scales, q) = quantize_per_channel(&values, 4);
        let back = dequantize_per_channel(&scales, &q);
        for (c, (a, b)) in values.chunks(16).zip(back.chunks(16)).enumerate() {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= scales[c] * 0.5 + 1e-7);
            }
        }
        // an all-zero channel survives
        let (s, q) = quantize_per_channel(&[0.0; 8], 2);
        assert_eq!(dequantize_per_channel(&s, &q), vec![0.0; 8]);
    }
}
