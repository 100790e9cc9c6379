//! The histoseg command line tool: pretrains the diffusion UNet, trains segmentation heads on
//! presets or any folder of images and class masks, evaluates, exports int8 model files for the
//! viewer (or ONNX), segments folders of images and slides, and times the network, all with the
//! same model code, tiling and blending as the browser viewer. One module per command.

mod args;
mod bench;
mod dataset;
mod eval;
mod export;
mod model_file;
mod pretrain;
mod segment;
mod teach;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "histoseg", version, about = "Diffusion-feature segmentation of H&E histology images")]
struct Cli {
    /// Folder holding glas/, monuseg/ and samples/ (default: $HISTOSEG_DATA or ../shared/data).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Self-supervised DDPM pretraining of the UNet on unlabelled images (resumable).
    Pretrain(pretrain::PretrainArgs),
    /// Train a segmentation model on a preset or on folders of images and class masks (resumable).
    Train(train::TrainArgs),
    /// Score a model file on a preset's test split or on folders; prints a table, writes JSON.
    Eval(eval::EvalArgs),
    /// Write the int8 model file the viewer loads (compared with f32 on a test set), or with
    /// `--format onnx` the inference graph as a standard ONNX model.
    Export(export::ExportArgs),
    /// Segment every image and slide of a folder (or one file): label PNG, GeoJSON, CSV.
    Segment(segment::SegmentArgs),
    /// Write a dataset at a working resolution as folders of images and class masks.
    Dataset(dataset::DatasetArgs),
    /// Time inference (tiles/s) or training (steps/s) on real tiles; prints one JSON line.
    Bench(bench::BenchArgs),
    /// Write a model file with freshly initialised (untrained) weights.
    Init(model_file::InitArgs),
    /// Print a model file's manifest and size.
    Info { model: PathBuf },
    /// Copy a training run small enough to commit or carry to another machine: its settings,
    /// logs and checkpoint, with int8 (or f32) weights and EMA and no Adam moments (a run
    /// resumed from it restarts them).
    Slim {
        /// The run folder (`--run` of pretrain or train).
        #[arg(long)]
        run: PathBuf,
        /// The folder to write the copy to; resume it with `--run OUT --resume`.
        #[arg(long)]
        out: PathBuf,
        /// How to store the weights and EMA: int8 rounds them (an eighth of the checkpoint),
        /// f32 keeps them bit for bit (scripts/gpu_train.sh collect).
        #[arg(long, value_enum, default_value = "int8")]
        precision: SlimPrecision,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SlimPrecision {
    Int8,
    F32,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let data_dir = cli.data.clone().unwrap_or_else(histoseg::data_dir);
    match cli.command {
        Command::Pretrain(a) => pretrain::run(a),
        Command::Train(a) => train::run(a, &data_dir),
        Command::Eval(a) => eval::run(a, &data_dir),
        Command::Export(a) => export::run(a, &data_dir),
        Command::Segment(a) => segment::run(a),
        Command::Dataset(a) => dataset::run(a, &data_dir),
        Command::Bench(a) => bench::run(a),
        Command::Init(a) => model_file::init(a),
        Command::Info { model } => model_file::info(model),
        Command::Slim { run, out, precision } => {
            let precision = match precision {
                SlimPrecision::Int8 => histoseg::weights::Precision::Int8,
                SlimPrecision::F32 => histoseg::weights::Precision::F32,
            };
            let bytes = histoseg::train::run::write_slim_copy(&run, &out, precision)?;
            println!("wrote a slim copy of {} to {} ({:.1} MB)", run.display(), out.display(), bytes as f64 / 1e6);
            Ok(())
        }
    }
}
