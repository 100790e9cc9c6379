//! Where the CPU time of one inference goes (burn flex, native): times each kind of operation at
//! the shapes the shipped UNet runs (tile 128, batch 4), next to the whole network. A profiling
//! aid for BENCHMARKS.md, not a test.
//!
//!     cargo run --release --features cli --example op_profile

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> Tensor<4>) -> f64 {
    let _ = f().into_data(); // warm-up
    let t0 = Instant::now();
    for _ in 0..reps {
        let _ = f().into_data();
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("{label:<44} {ms:8.2} ms");
    ms
}

fn main() {
    let device = Device::flex();
    let file = histoseg::weights::ModelFile::from_bytes(&std::fs::read("models/glands.histoseg").unwrap()).unwrap();
    let seg = file.segmenter(&device).unwrap();
    let b = 4;
    let x = Tensor::<4>::random([b, 3, 128, 128], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
    time::<()>("whole network (probabilities), batch 4", 5, || seg.probabilities(x.clone()));
    time::<()>("UNet features only", 5, || seg.features(x.clone()));
    for (c, s) in [(32usize, 128usize), (64, 64), (128, 32)] {
        let t = Tensor::<4>::random([b, c, s, s], burn::tensor::Distribution::Default, &device);
        let conv = Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        let gn = GroupNormConfig::new(8, c).init(&device);
        let flops = 2.0 * (b * c * s * s * c * 9) as f64;
        let ms = time::<()>(&format!("conv3x3 {c}->{c} at {s}x{s}"), 5, || conv.forward(t.clone()));
        println!("{:<44} {:8.1} GFLOP/s", "", flops / ms / 1e6);
        time::<()>(&format!("GroupNorm(8, {c}) at {s}x{s}"), 5, || gn.forward(t.clone()));
        time::<()>(&format!("SiLU at {c}x{s}x{s}"), 5, || silu(t.clone()));
        time::<()>(&format!("x/(1+exp(-x)) at {c}x{s}x{s}"), 5, || t.clone() / (t.clone().neg().exp() + 1.0));
        time::<()>(&format!("x*(tanh(x/2)+1)/2 at {c}x{s}x{s}"), 5, || t.clone() * ((t.clone() * 0.5).tanh() * 0.5 + 0.5));
        time::<()>(&format!("exp at {c}x{s}x{s}"), 5, || t.clone().exp());
        time::<()>(&format!("add at {c}x{s}x{s}"), 5, || t.clone() + t.clone());
    }
    // each residual block of the shipped UNet at its real shapes (cin -> cout at size)
    let temb = Tensor::<2>::random([b, 128], burn::tensor::Distribution::Default, &device);
    let mut blocks_ms = 0.0;
    for (cin, cout, s) in [(32, 32, 128), (32, 64, 64), (64, 128, 32), (128, 128, 32), (128, 128, 32), (256, 128, 32), (192, 64, 64), (96, 32, 128)] {
        let block = histoseg::model::unet::ResBlock::new(cin, cout, 128, 8, &device);
        let t = Tensor::<4>::random([b, cin, s, s], burn::tensor::Distribution::Default, &device);
        blocks_ms += time::<()>(&format!("ResBlock {cin}->{cout} at {s}x{s}"), 3, || block.forward(t.clone(), temb.clone()));
    }
    println!("{:<44} {blocks_ms:8.2} ms", "sum of residual blocks");
    for (c, s) in [(32usize, 128usize), (64, 64)] {
        let t = Tensor::<4>::random([b, c, s, s], burn::tensor::Distribution::Default, &device);
        let conv = Conv2dConfig::new([c, c], [3, 3]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        time::<()>(&format!("stride-2 conv {c} at {s}x{s}"), 3, || conv.forward(t.clone()));
    }
    for (c, s) in [(128usize, 32usize), (64, 64)] {
        let t = Tensor::<4>::random([b, c, s, s], burn::tensor::Distribution::Default, &device);
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        time::<()>(&format!("nearest 2x of {c} at {s}x{s}"), 3, || interpolate(t.clone(), InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * s, 2 * s])));
        time::<()>(&format!("bilinear 2x of {c} at {s}x{s}"), 3, || interpolate(t.clone(), InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([2 * s, 2 * s])));
        time::<()>(&format!("cat {c}+{c} at {s}x{s}"), 3, || Tensor::cat(vec![t.clone(), t.clone()], 1));
    }
    let t = Tensor::<4>::random([b, 2, 128, 128], burn::tensor::Distribution::Default, &device);
    time::<()>("softmax 2 classes at 128x128", 5, || softmax(t.clone(), 1));
}
