//! How widely the frozen features spread, channel by channel, for the diffusion-pretrained UNet
//! and a random one (the shipped architecture), on the same real GlaS training patches at the
//! ablation's setting (1 µm/px, 128 px, t = 10, decoder levels 0 and 1). It motivates
//! `train --standardize-features`: a head trained on raw features sees a narrower signal from one
//! UNet than from the other. Then the median spread at t = 10, 50 and 200 for each UNet: the
//! timesteps that DDPM-Seg's features put side by side.
//!
//!   cargo run --release --features cli --example feature_spread [PRETRAINED.histoseg]

use burn::prelude::*;
use histoseg::model::FeatureSpec;
use histoseg::model::head::channel_statistics;
use histoseg::model::unet::UNet;
use histoseg::train::data::{self, Augment, Dataset, Split, sample_patch};
use histoseg::weights::ModelFile;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "results/ablation/pretrained-uniform-809.histoseg".into());
    let device = Device::flex();
    let file = ModelFile::from_bytes(&std::fs::read(&path).expect("the pretrained UNet file")).expect("a model file");
    let pretrained = file.load_into(UNet::new(&file.manifest.unet, &device), "unet", &device).expect("its UNet");
    device.seed(0);
    let random = UNet::new(&file.manifest.unet, &device);
    let images = data::load(&histoseg::data_dir(), Dataset::Glas, Split::Train).expect("GlaS train");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = 16;
    let planar: Vec<f32> = (0..n)
        .flat_map(|i| {
            let s = images[i * images.len() / n].rescaled(1.0);
            sample_patch(&s.image, None, 128, Augment::NONE, &mut rng).0
        })
        .collect();
    let x0 = Tensor::<4>::from_data(TensorData::new(planar, [n, 3, 128, 128]), &device);
    println!("{n} GlaS training patches of 128 px at 1 µm/px, t = 10, decoder levels 0 and 1");
    let mut spreads = Vec::new();
    for (name, unet) in [("diffusion-pretrained", &pretrained), ("random init", &random)] {
        let spec = FeatureSpec::new(unet, &[10], vec![0, 1], file.manifest.noise_seed, 3, 128, &device);
        let features = spec.features(unet, x0.clone());
        let channels = features.dims()[1];
        let (mean, std) = channel_statistics(&features.into_data().try_into_vec_as::<f32>().unwrap(), channels, 128 * 128);
        let spread = median(std.clone());
        println!(
            "{name:>21}: {channels} channels, spread (sd) median {spread:.3} (range {:.3} to {:.3}), |mean| median {:.3}",
            std.iter().copied().fold(f32::MAX, f32::min),
            std.iter().copied().fold(0.0, f32::max),
            median(mean.iter().map(|m| m.abs()).collect())
        );
        spreads.push(spread);
    }
    println!("median spread, pretrained / random: {:.2}", spreads[0] / spreads[1]);
    // several timesteps side by side (DDPM-Seg's features) hand a raw head channels of each
    // timestep's spread
    for (name, unet) in [("diffusion-pretrained", &pretrained), ("random init", &random)] {
        let by_timestep: Vec<String> = [10, 50, 200]
            .iter()
            .map(|&t| {
                let spec = FeatureSpec::new(unet, &[t], vec![0, 1], file.manifest.noise_seed, 3, 128, &device);
                let features = spec.features(unet, x0.clone());
                let channels = features.dims()[1];
                let (_, std) = channel_statistics(&features.into_data().try_into_vec_as::<f32>().unwrap(), channels, 128 * 128);
                format!("t = {t}: {:.3}", median(std))
            })
            .collect();
        println!("{name:>21}: median spread by timestep, {}", by_timestep.join(", "));
    }
}
