//! ONNX export of the inference network: the frozen diffusion UNet's feature taps plus the FCN
//! head, exactly as [`crate::model::Segmenter::probabilities`] runs them, as a standard ONNX graph
//! (opset 17) that onnxruntime, onnxruntime-web, QuPath extensions or Python pipelines can load.
//!
//! What is fixed at inference is folded in as constants: the timestep, its embedding (each
//! residual block's time projection becomes a per-channel bias), the seeded noise field and the
//! q(x_t | x_0) coefficients. The graph's one input is `image`, `[batch, 3, tile, tile]` in
//! [-1, 1] (RGB / 127.5 - 1); its output is `probabilities`, `[batch, classes, tile, tile]`.
//!
//! GroupNorm is written the way PyTorch exports it (reshape to groups, InstanceNormalization,
//! reshape back, per-channel affine), because that form runs on every onnxruntime backend.
//! Protobuf encoding is prost's; only the subset of `onnx.proto` the graph needs is declared.

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use prost::Message;

use crate::model::Segmenter;
use crate::model::unet::{ResBlock, SelfAttention};

/// The subset of `onnx.proto` (IR version 8) that the exported graph uses, with its field tags.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(string, tag = "6")]
        pub doc_string: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        /// AttributeType: 1 FLOAT, 2 INT, 3 STRING, 7 INTS.
        #[prost(int32, tag = "20")]
        pub r#type: i32,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        /// DataType: 1 FLOAT, 7 INT64.
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(string, tag = "8")]
        pub name: String,
        /// Little-endian values.
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

const FLOAT: i32 = 1;
const INT64: i32 = 7;
pub const OPSET: i64 = 17;

/// An attribute value of a node.
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

/// Appends nodes and constants to a graph, naming every intermediate value.
struct GraphBuilder {
    graph: proto::GraphProto,
    next: usize,
}

impl GraphBuilder {
    fn new(name: &str) -> Self {
        Self { graph: proto::GraphProto { name: name.into(), ..Default::default() }, next: 0 }
    }

    fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "{name}: shape does not match data");
        self.graph.initializer.push(proto::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    fn constant_i64(&mut self, name: &str, values: &[i64]) -> String {
        self.graph.initializer.push(proto::TensorProto {
            dims: vec![values.len() as i64],
            data_type: INT64,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    /// Adds `op` on `inputs` and returns the name of its (single) output.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.next += 1;
        let output = format!("{}_{}", op.to_ascii_lowercase(), self.next);
        let attribute = attrs
            .into_iter()
            .map(|(name, value)| {
                let mut a = proto::AttributeProto { name: name.into(), ..Default::default() };
                match value {
                    Attr::Float(f) => (a.r#type, a.f) = (1, f),
                    Attr::Int(i) => (a.r#type, a.i) = (2, i),
                    Attr::Str(s) => (a.r#type, a.s) = (3, s.as_bytes().to_vec()),
                    Attr::Ints(v) => (a.r#type, a.ints) = (7, v),
                }
                a
            })
            .collect();
        self.graph.node.push(proto::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: format!("n{}", self.next),
            op_type: op.into(),
            attribute,
        });
        output
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 tensor data")
}

/// Builds the graph of one segmenter; constants are named after their module path
/// (`unet.down.0.blocks.0.conv1.weight`), so the graph reads like the burn model.
struct Exporter<'a> {
    g: GraphBuilder,
    segmenter: &'a Segmenter,
}

impl Exporter<'_> {
    fn conv(&mut self, conv: &Conv2d, x: &str, name: &str) -> String {
        let w = conv.weight.val();
        let dims = w.dims();
        let weight = self.g.constant(&format!("{name}.weight"), &dims, &values(w));
        let mut inputs = vec![x.to_string(), weight];
        if let Some(bias) = &conv.bias {
            let b = bias.val();
            inputs.push(self.g.constant(&format!("{name}.bias"), &[dims[0]], &values(b)));
        }
        let pads = match conv.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Same => panic!("{name}: 'same' padding is not used by this network"),
        };
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.g.node(
            "Conv",
            &inputs,
            vec![
                ("kernel_shape", Attr::Ints(conv.kernel_size.iter().map(|&k| k as i64).collect())),
                ("strides", Attr::Ints(conv.stride.iter().map(|&s| s as i64).collect())),
                ("dilations", Attr::Ints(conv.dilation.iter().map(|&d| d as i64).collect())),
                ("group", Attr::Int(conv.groups as i64)),
                ("pads", Attr::Ints(pads.iter().map(|&p| p as i64).collect())),
            ],
        )
    }

    /// GroupNorm as reshape -> InstanceNormalization -> reshape -> per-channel affine.
    fn group_norm(&mut self, gn: &GroupNorm, x: &str, name: &str) -> String {
        let (groups, channels) = (gn.num_groups, gn.num_channels);
        let grouped_shape = self.g.constant_i64(&format!("{name}.grouped_shape"), &[0, groups as i64, -1]);
        let grouped = self.g.node("Reshape", &[x, &grouped_shape], vec![]);
        let ones = self.g.constant(&format!("{name}.group_scale"), &[groups], &vec![1.0; groups]);
        let zeros = self.g.constant(&format!("{name}.group_bias"), &[groups], &vec![0.0; groups]);
        let normed = self.g.node("InstanceNormalization", &[&grouped, &ones, &zeros], vec![("epsilon", Attr::Float(gn.epsilon as f32))]);
        let shape = self.g.node("Shape", &[x], vec![]);
        let mut h = self.g.node("Reshape", &[&normed, &shape], vec![]);
        if let Some(gamma) = &gn.gamma {
            let gamma = self.g.constant(&format!("{name}.gamma"), &[channels, 1, 1], &values(gamma.val()));
            h = self.g.node("Mul", &[&h, &gamma], vec![]);
        }
        if let Some(beta) = &gn.beta {
            let beta = self.g.constant(&format!("{name}.beta"), &[channels, 1, 1], &values(beta.val()));
            h = self.g.node("Add", &[&h, &beta], vec![]);
        }
        h
    }

    fn silu(&mut self, x: &str) -> String {
        let s = self.g.node("Sigmoid", &[x], vec![]);
        self.g.node("Mul", &[x, &s], vec![])
    }

    /// A residual block with its time projection folded into a constant per-channel bias.
    fn res_block(&mut self, block: &ResBlock, x: &str, name: &str) -> String {
        let h = self.group_norm(&block.norm1, x, &format!("{name}.norm1"));
        let h = self.silu(&h);
        let h = self.conv(&block.conv1, &h, &format!("{name}.conv1"));
        let t = block.time_proj.forward(self.segmenter.spec.timesteps[0].1.clone());
        let channels = t.dims()[1];
        let t = self.g.constant(&format!("{name}.time_bias"), &[1, channels, 1, 1], &values(t));
        let h = self.g.node("Add", &[&h, &t], vec![]);
        let h = self.group_norm(&block.norm2, &h, &format!("{name}.norm2"));
        let h = self.silu(&h);
        let h = self.conv(&block.conv2, &h, &format!("{name}.conv2"));
        let x = match &block.skip {
            Some(proj) => self.conv(proj, x, &format!("{name}.skip")),
            None => x.to_string(),
        };
        self.g.node("Add", &[&x, &h], vec![])
    }

    /// `x @ W + b` over the last axis (burn stores `W` as `[in, out]`).
    fn linear(&mut self, linear: &Linear, x: &str, name: &str) -> String {
        let w = linear.weight.val();
        let dims = w.dims();
        let weight = self.g.constant(&format!("{name}.weight"), &dims, &values(w));
        let mut h = self.g.node("MatMul", &[x, &weight], vec![]);
        if let Some(bias) = &linear.bias {
            let b = self.g.constant(&format!("{name}.bias"), &[dims[1]], &values(bias.val()));
            h = self.g.node("Add", &[&h, &b], vec![]);
        }
        h
    }

    /// The same multi-head self-attention as [`SelfAttention::forward`].
    fn attention(&mut self, att: &SelfAttention, x: &str, name: &str) -> String {
        let c = att.proj.weight.dims()[1] as i64;
        let (heads, d) = (att.heads as i64, c / att.heads as i64);
        let h = self.group_norm(&att.norm, x, &format!("{name}.norm"));
        let flat = self.g.constant_i64(&format!("{name}.flat_shape"), &[0, c, -1]);
        let h = self.g.node("Reshape", &[&h, &flat], vec![]);
        let tokens = self.g.node("Transpose", &[&h], vec![("perm", Attr::Ints(vec![0, 2, 1]))]);
        let qkv = self.linear(&att.qkv, &tokens, &format!("{name}.qkv"));
        let head_shape = self.g.constant_i64(&format!("{name}.head_shape"), &[0, -1, heads, d]);
        let axes = self.g.constant_i64(&format!("{name}.slice_axes"), &[2]);
        let mut parts = Vec::new();
        for (i, part) in ["q", "k", "v"].iter().enumerate() {
            let start = self.g.constant_i64(&format!("{name}.{part}_start"), &[i as i64 * c]);
            let end = self.g.constant_i64(&format!("{name}.{part}_end"), &[(i as i64 + 1) * c]);
            let p = self.g.node("Slice", &[&qkv, &start, &end, &axes], vec![]);
            let p = self.g.node("Reshape", &[&p, &head_shape], vec![]);
            parts.push(self.g.node("Transpose", &[&p], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]));
        }
        let kt = self.g.node("Transpose", &[&parts[1]], vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
        let scores = self.g.node("MatMul", &[&parts[0], &kt], vec![]);
        let scale = self.g.constant(&format!("{name}.scale"), &[1], &[1.0 / (d as f32).sqrt()]);
        let scores = self.g.node("Mul", &[&scores, &scale], vec![]);
        let weights = self.g.node("Softmax", &[&scores], vec![("axis", Attr::Int(3))]);
        let out = self.g.node("MatMul", &[&weights, &parts[2]], vec![]);
        let out = self.g.node("Transpose", &[&out], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let token_shape = self.g.constant_i64(&format!("{name}.token_shape"), &[0, -1, c]);
        let out = self.g.node("Reshape", &[&out, &token_shape], vec![]);
        let out = self.linear(&att.proj, &out, &format!("{name}.proj"));
        let out = self.g.node("Transpose", &[&out], vec![("perm", Attr::Ints(vec![0, 2, 1]))]);
        let shape = self.g.node("Shape", &[x], vec![]);
        let out = self.g.node("Reshape", &[&out, &shape], vec![]);
        self.g.node("Add", &[x, &out], vec![])
    }

    fn resize(&mut self, x: &str, factor: usize, bilinear: bool, name: &str) -> String {
        let scales = self.g.constant(&format!("{name}.scales"), &[4], &[1.0, 1.0, factor as f32, factor as f32]);
        let attrs = if bilinear {
            // burn's bilinear with align_corners = false is ONNX's half_pixel
            vec![("mode", Attr::Str("linear")), ("coordinate_transformation_mode", Attr::Str("half_pixel"))]
        } else {
            // burn's nearest takes floor(out * in / out_size)
            vec![
                ("mode", Attr::Str("nearest")),
                ("coordinate_transformation_mode", Attr::Str("asymmetric")),
                ("nearest_mode", Attr::Str("floor")),
            ]
        };
        self.g.node("Resize", &[x, "", &scales], attrs)
    }

    fn network(&mut self, input: &str) -> String {
        let seg = self.segmenter;
        let unet = &seg.net.unet;
        let spec = &seg.spec;
        // q(x_t | x_0) with the fixed noise: x_t = a x_0 + (b eps)
        let (a, b) = spec.schedule.q_sample_coefficients(spec.timesteps[0].0);
        let noise = values(spec.noise.clone() * b);
        let a = self.g.constant("q_sample.signal_scale", &[1], &[a as f32]);
        let noise = self.g.constant("q_sample.scaled_noise", &spec.noise.dims(), &noise);
        let x = self.g.node("Mul", &[input, &a], vec![]);
        let x_t = self.g.node("Add", &[&x, &noise], vec![]);

        let mut h = self.conv(&unet.conv_in, &x_t, "unet.conv_in");
        let mut skips = Vec::new();
        for (l, level) in unet.down.iter().enumerate() {
            for (i, block) in level.blocks.iter().enumerate() {
                h = self.res_block(block, &h, &format!("unet.down.{l}.blocks.{i}"));
            }
            skips.push(h.clone());
            if let Some(ds) = &level.downsample {
                h = self.conv(ds, &h, &format!("unet.down.{l}.downsample"));
            }
        }
        for (i, block) in unet.mid.iter().enumerate() {
            h = self.res_block(block, &h, &format!("unet.mid.{i}"));
            if let (0, Some(att)) = (i, &unet.mid_attention) {
                h = self.attention(att, &h, "unet.mid_attention");
            }
        }
        let mut taps = Vec::new();
        for (l, level) in unet.up.iter().enumerate() {
            if let Some(conv) = &level.upsample_conv {
                let up = self.resize(&h, 2, false, &format!("unet.up.{l}.upsample"));
                h = self.conv(conv, &up, &format!("unet.up.{l}.upsample_conv"));
            }
            let skip = skips.pop().expect("one skip per level");
            h = self.g.node("Concat", &[&h, &skip], vec![("axis", Attr::Int(1))]);
            for (i, block) in level.blocks.iter().enumerate() {
                h = self.res_block(block, &h, &format!("unet.up.{l}.blocks.{i}"));
            }
            taps.push(h.clone());
        }
        taps.reverse();
        // the decoder levels the head reads, upsampled to tile size (level l is 1/2^l)
        let picked: Vec<String> = spec
            .levels
            .iter()
            .map(|&l| if l == 0 { taps[0].clone() } else { self.resize(&taps[l], 1 << l, true, &format!("features.level{l}")) })
            .collect();
        let picked: Vec<&str> = picked.iter().map(String::as_str).collect();
        let features = if picked.len() == 1 { picked[0].to_string() } else { self.g.node("Concat", &picked, vec![("axis", Attr::Int(1))]) };

        let head = &seg.net.head;
        let features = match &head.standardize {
            Some(s) => {
                let c = s.scale.dims()[0];
                let scale = self.g.constant("head.standardize.scale", &[1, c, 1, 1], &values(s.scale.val()));
                let shift = self.g.constant("head.standardize.shift", &[1, c, 1, 1], &values(s.shift.val()));
                let x = self.g.node("Mul", &[&features, &scale], vec![]);
                self.g.node("Add", &[&x, &shift], vec![])
            }
            None => features,
        };
        let h = self.conv(&head.hidden, &features, "head.hidden");
        let h = self.g.node("Relu", &[&h], vec![]);
        let logits = self.conv(&head.classify, &h, "head.classify");
        self.g.node("Softmax", &[&logits], vec![("axis", Attr::Int(1))])
    }
}

fn value_info(name: &str, dims: &[Result<usize, &str>]) -> proto::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Ok(v) => proto::Dimension { dim_value: Some(*v as i64), dim_param: None },
            Err(p) => proto::Dimension { dim_value: None, dim_param: Some(p.to_string()) },
        })
        .collect();
    proto::ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            tensor_type: Some(proto::TensorTypeProto { elem_type: FLOAT, shape: Some(proto::TensorShapeProto { dim }) }),
        }),
    }
}

/// What an export wrote.
pub struct OnnxModel {
    pub bytes: Vec<u8>,
    pub nodes: usize,
    pub parameters: usize,
}

/// Exports the segmenter's inference graph. `metadata` (model name, classes, µm/px, ...) is
/// stored as ONNX metadata properties so other tools can read how to feed the model.
pub fn export(segmenter: &Segmenter, classes: usize, metadata: &[(&str, String)]) -> OnnxModel {
    assert_eq!(segmenter.spec.timesteps.len(), 1, "the graph has one UNet pass: one timestep");
    let tile = segmenter.tile_size;
    let channels = segmenter.spec.noise.dims()[1];
    let mut ex = Exporter { g: GraphBuilder::new("histoseg"), segmenter };
    let out = ex.network("image");
    let mut graph = ex.g.graph;
    // the final Softmax's output becomes the public name (no node reads it)
    debug_assert!(graph.node.iter().all(|n| !n.input.contains(&out)));
    let last = graph.node.last_mut().expect("the graph has nodes");
    last.output = vec!["probabilities".into()];
    graph.input.push(value_info("image", &[Err("batch"), Ok(channels), Ok(tile), Ok(tile)]));
    graph.output.push(value_info("probabilities", &[Err("batch"), Ok(classes), Ok(tile), Ok(tile)]));
    let nodes = graph.node.len();
    let parameters = graph.initializer.iter().filter(|t| t.data_type == FLOAT).map(|t| t.raw_data.len() / 4).sum();
    let model = proto::ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "histoseg".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "histoseg: diffusion UNet decoder features at a fixed timestep and noise, plus the FCN head. \
                     Input: RGB / 127.5 - 1, planar. Output: per-pixel class probabilities."
            .into(),
        graph: Some(graph),
        metadata_props: metadata.iter().map(|(k, v)| proto::StringStringEntryProto { key: k.to_string(), value: v.clone() }).collect(),
    };
    OnnxModel { bytes: model.encode_to_vec(), nodes, parameters }
}
