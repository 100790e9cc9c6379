//! A resumable training run, shared by `pretrain` and `train` on every device.
//!
//! - Adam, with its moments saved in every checkpoint; warmup then cosine learning rate, a
//!   function of the step alone, warmed up again after a resume with fresh moments.
//! - Every step draws its batch, augmentation, timesteps and noise from an RNG seeded by
//!   (seed, step), so the data order of a resumed run is that of an uninterrupted one.
//! - An exponential moving average (EMA) of the weights, as DDPM training uses.
//! - Validation every N steps; the best weights by validation score are kept (`best.histoseg`).
//! - A checkpoint every N steps, written beside the old one and swapped in, so a run stopped at
//!   any moment (Ctrl-C, `kill`, a time limit) loses at most the steps since the last one.
//!
//! A run directory holds:
//!
//! ```text
//! settings.json        what the run was started with; a resume must ask for the same
//! checkpoint/          weights.histoseg, ema.histoseg (f32), optimizer.bpk, state.json (a
//!                      checkpoint without optimizer.bpk resumes with fresh Adam moments, and
//!                      says so in state.json)
//! best.histoseg        the weights with the best validation score (the EMA's when it is on)
//! final.histoseg       the weights at the last step (the EMA's when it is on)
//! log.csv              step,loss,lr,seconds
//! validation.csv       step,score
//! progress.txt         one line: step, loss, speed, time left (for runs in the background)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::model::HistoSegNet;
use crate::weights::{Manifest, ModelFile, Precision};

/// How long and how a run trains, and where it keeps its state.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub dir: PathBuf,
    pub steps: usize,
    pub lr: f64,
    /// Linear warmup steps before the cosine decay.
    pub warmup: usize,
    pub seed: u64,
    pub checkpoint_every: usize,
    /// Validate every this many steps (and at the last step).
    pub validate_every: usize,
    /// EMA decay per step (0 turns the EMA off). The decay ramps up as min(decay, (1+s)/(10+s)).
    pub ema_decay: f64,
    /// Stop (with a checkpoint) once this many seconds have passed in this process.
    pub stop_after: Option<f64>,
    /// Stop (with a checkpoint) after this many steps in this process.
    pub stop_after_steps: Option<usize>,
    /// Continue the run in `dir` if it has a checkpoint.
    pub resume: bool,
}

impl RunConfig {
    /// Warmup, then cosine decay from `lr` to `lr / 20`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let warm = self.warmup.max(1);
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let p = (step - warm) as f64 / (self.steps.saturating_sub(warm)).max(1) as f64;
        self.lr / 20.0 + (self.lr - self.lr / 20.0) * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos())
    }

    /// The learning rate at `step` of a run whose Adam moments restarted from zero at the steps
    /// in `restarts` (a resume from a slim copy): the schedule's, warmed up again over `warmup`
    /// steps after the last restart. Fresh moments make Adam's first updates about lr times the
    /// gradient's sign on every weight, which at the full rate undoes much of a pretrained UNet
    /// (without it, the CPU pretraining run's loss on step 312's batch was 0.160 after one such
    /// step, against 0.061 with its moments kept).
    pub fn lr_after_restarts(&self, step: usize, restarts: &[usize]) -> f64 {
        let since = restarts.iter().filter(|&&r| r <= step).map(|&r| step - r).min();
        let rewarm = since.map_or(1.0, |s| ((s + 1) as f64 / self.warmup.max(1) as f64).min(1.0));
        self.lr_at(step) * rewarm
    }

    fn ema_decay_at(&self, step: usize) -> f64 {
        self.ema_decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }

    /// What must not change between a run and its resumption.
    fn settings(&self, objective: &serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "steps": self.steps, "lr": self.lr, "warmup": self.warmup, "seed": self.seed,
            "ema_decay": self.ema_decay, "objective": objective,
        })
    }
}

/// What a run trains: the loss of one step and the validation score.
pub trait Objective {
    /// The loss of step `step` on the network being trained; `rng` is seeded by (seed, step).
    fn loss(&mut self, net: &HistoSegNet, step: usize, rng: &mut ChaCha8Rng) -> Tensor<1>;
    /// The validation score of `net` (higher is better), on held-out data.
    fn validate(&mut self, net: &HistoSegNet) -> Result<f64>;
    /// The name of the score in logs ("validation mean Dice", "minus validation loss").
    fn score_name(&self) -> &'static str;
    /// The objective's settings, which a resumed run must repeat.
    fn settings(&self) -> serde_json::Value;
}

/// Progress of a run, persisted in `checkpoint/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub step: usize,
    /// Training seconds over all the processes of the run.
    pub seconds: f64,
    /// (step, score) of the best validation so far.
    pub best: Option<(usize, f64)>,
    /// Loss of the last step, for progress reports.
    pub recent_loss: f32,
    /// Steps at which the run was resumed without its optimiser state (Adam's moments started
    /// again from zero), e.g. from a slim copy carried to another machine.
    #[serde(default)]
    pub optimizer_restarts: Vec<usize>,
}

/// How a call to [`run`] ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub state: RunState,
    /// False when it stopped early (time limit) with a checkpoint to resume from.
    pub finished: bool,
    pub steps_this_process: usize,
    pub seconds_this_process: f64,
    /// Path of the final weights (EMA when on), once finished.
    pub final_weights: Option<PathBuf>,
}

/// One progress report, after every step.
pub struct Progress<'a> {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub lr: f64,
    pub validation: Option<f64>,
    pub state: &'a RunState,
}

/// Gives every parameter an id derived from its path in the module, so the optimiser's state
/// (keyed by parameter id) finds its parameters again after the weights are reloaded.
pub fn stable_param_ids<M: Module>(module: M) -> M {
    struct Ids(Vec<String>);
    impl ModuleMapper for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // FNV-1a of the dotted path
            let id = self.0.join(".").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            let (_, value, mapper) = param.consume();
            Param::from_mapped_value(ParamId::from(id), value, mapper)
        }
    }
    module.map(&mut Ids(Vec::new()))
}

/// The parameters of a module as flat tensors without autodiff, in visiting order.
fn flat_params<M: Module>(module: &M) -> Vec<Tensor<1>> {
    struct Flat(Vec<Tensor<1>>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val().inner();
            let n = t.shape().num_elements();
            self.0.push(t.reshape([n]));
        }
    }
    let mut f = Flat(Vec::new());
    module.visit(&mut f);
    f.0
}

/// `ema = decay * ema + (1 - decay) * current`, parameter by parameter.
fn ema_update(ema: HistoSegNet, current: &HistoSegNet, decay: f64) -> HistoSegNet {
    struct Blend {
        current: std::vec::IntoIter<Tensor<1>>,
        decay: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let cur = self.current.next().expect("the EMA has the network's parameters");
            let (id, value, mapper) = param.consume();
            let shape = value.shape();
            let blended = value * self.decay + cur.reshape(shape) * (1.0 - self.decay);
            Param::from_mapped_value(id, blended, mapper)
        }
    }
    ema.map(&mut Blend { current: flat_params(current).into_iter(), decay })
}

fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Keeps only the header and the lines whose first field (a step) is at most `step`: the steps
/// after the last checkpoint are run again on resume, and logged again.
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split(',').next().and_then(|s| s.parse::<usize>().ok()).is_some_and(|s| s <= step))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(path, kept.iter().map(|l| format!("{l}\n")).collect::<String>())?;
    Ok(())
}

fn append_log(path: &Path, header: &str) -> Result<std::fs::File> {
    let fresh = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if fresh {
        writeln!(f, "{header}")?;
    }
    Ok(f)
}

/// Everything a checkpoint holds, loaded back.
pub struct Checkpoint {
    pub net: HistoSegNet,
    pub ema: Option<HistoSegNet>,
    pub optim: ModuleOptimizer,
    pub state: RunState,
}

pub fn checkpoint_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint")
}

/// The run's checkpoint: `checkpoint/`, or `checkpoint.old/` when a swap was interrupted.
fn checkpoint_in(run_dir: &Path) -> Option<PathBuf> {
    [checkpoint_dir(run_dir), run_dir.join("checkpoint.old")].into_iter().find(|d| d.join("state.json").is_file())
}

fn model_bytes(manifest: &Manifest, net: &HistoSegNet) -> Vec<u8> {
    ModelFile::from_net(manifest.clone(), net).to_bytes_with(Precision::F32)
}

/// Writes the checkpoint into `checkpoint.new/`, then swaps it in for `checkpoint/`.
fn save_checkpoint(run_dir: &Path, manifest: &Manifest, net: &HistoSegNet, ema: Option<&HistoSegNet>, optim: &ModuleOptimizer, state: &RunState) -> Result<()> {
    let new = run_dir.join("checkpoint.new");
    let old = run_dir.join("checkpoint.old");
    let current = checkpoint_dir(run_dir);
    std::fs::remove_dir_all(&new).ok();
    std::fs::create_dir_all(&new)?;
    std::fs::write(new.join("weights.histoseg"), model_bytes(manifest, net))?;
    if let Some(ema) = ema {
        std::fs::write(new.join("ema.histoseg"), model_bytes(manifest, ema))?;
    }
    let bytes = optim.to_record().into_bytes().map_err(|e| anyhow::anyhow!("cannot save the optimiser state: {e:?}"))?;
    std::fs::write(new.join("optimizer.bpk"), &bytes[..])?;
    std::fs::write(new.join("state.json"), serde_json::to_vec_pretty(state)?)?;
    std::fs::remove_dir_all(&old).ok();
    if current.exists() {
        std::fs::rename(&current, &old)?;
    }
    std::fs::rename(&new, &current)?;
    std::fs::remove_dir_all(&old).ok();
    Ok(())
}

/// Loads `checkpoint/` (or `checkpoint.old/` when a swap was interrupted) into `template`,
/// a freshly built network of the run's architecture on the training device.
pub fn load_checkpoint(run_dir: &Path, template: HistoSegNet, device: &Device, with_ema: bool) -> Result<Option<Checkpoint>> {
    let Some(dir) = checkpoint_in(run_dir) else { return Ok(None) };
    let read_model_on = |name: &str, net: HistoSegNet, device: &Device| -> Result<HistoSegNet> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load {}", path.display()))?;
        Ok(stable_param_ids(file.load_into(net, "", device)?))
    };
    let net = read_model_on("weights.histoseg", template.clone(), device)?;
    let ema = if with_ema { Some(read_model_on("ema.histoseg", template.valid(), &device.clone().inner())?) } else { None };
    let mut state: RunState = serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?;
    let optim = match std::fs::read(dir.join("optimizer.bpk")) {
        Ok(bytes) => AdamConfig::new()
            .init()
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| anyhow::anyhow!("cannot load the optimiser state in {}: {e:?}", dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("warning: {} has no optimizer.bpk: Adam's moments start again from zero at step {}", dir.display(), state.step);
            state.optimizer_restarts.push(state.step);
            AdamConfig::new().init()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.join("optimizer.bpk").display())),
    };
    Ok(Some(Checkpoint { net, ema, optim, state }))
}

/// Writes a small copy of the run in `run_dir` to `out`, to carry to another machine or commit:
/// its settings, logs and checkpoint state, with the weights and their EMA at `precision`, and
/// without Adam's moments. A run resumed from it goes on at the same step with fresh moments
/// (its state.json records the restart), so the resume is not exact. `Precision::Int8` (a scale
/// per output channel, as the shipped models) also rounds the weights; its copy is about a
/// quarter of an f32 one and an eighth of the whole checkpoint. `Precision::F32` keeps the
/// weights bit for bit (the GPU path's carry, where that still fits the 64 MiB it may carry).
/// Returns the bytes written.
pub fn write_slim_copy(run_dir: &Path, out: &Path, precision: Precision) -> Result<u64> {
    let Some(from) = checkpoint_in(run_dir) else { bail!("{} holds no checkpoint to copy", run_dir.display()) };
    let to = checkpoint_dir(out);
    std::fs::create_dir_all(&to).with_context(|| format!("cannot create {}", to.display()))?;
    std::fs::remove_file(to.join("optimizer.bpk")).ok();
    let mut written = 0;
    let mut copy = |from: PathBuf, to: PathBuf, bytes: Vec<u8>| -> Result<()> {
        write_atomic(&to, &bytes).with_context(|| format!("copying {}", from.display()))?;
        written += bytes.len() as u64;
        Ok(())
    };
    for name in ["settings.json", "log.csv", "validation.csv"] {
        let path = run_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => copy(path, out.join(name), bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "validation.csv" => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    copy(from.join("state.json"), to.join("state.json"), std::fs::read(from.join("state.json"))?)?;
    for name in ["weights.histoseg", "ema.histoseg"] {
        let path = from.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file = ModelFile::from_bytes(&bytes).with_context(|| format!("cannot load {}", path.display()))?;
                copy(path, to.join(name), file.to_bytes_with(precision))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "ema.histoseg" => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(written)
}

/// Trains `net` (on an autodiff device) for `cfg.steps` steps of `objective`, or resumes the
/// run in `cfg.dir`. `manifest` describes the network in the model files the run writes.
pub fn run(net: HistoSegNet, objective: &mut impl Objective, manifest: &Manifest, cfg: &RunConfig, mut on_progress: impl FnMut(&Progress)) -> Result<RunOutcome> {
    std::fs::create_dir_all(&cfg.dir).with_context(|| format!("cannot create the run folder {}", cfg.dir.display()))?;
    let settings = cfg.settings(&objective.settings());
    let settings_path = cfg.dir.join("settings.json");
    let device = net.device();
    let has_checkpoint = checkpoint_in(&cfg.dir).is_some();
    if cfg.resume && has_checkpoint {
        let before: serde_json::Value = serde_json::from_slice(&std::fs::read(&settings_path).with_context(|| format!("cannot read {}", settings_path.display()))?)?;
        if before != settings {
            bail!(
                "the run in {} was started with other settings, so it cannot be resumed with these:\n  then: {before}\n  now:  {settings}\nuse a new run folder, or the same settings",
                cfg.dir.display()
            );
        }
    } else {
        if has_checkpoint {
            bail!("{} already holds a run: pass --resume to continue it, or choose a new run folder", cfg.dir.display());
        }
        for f in ["log.csv", "validation.csv", "best.histoseg", "final.histoseg"] {
            std::fs::remove_file(cfg.dir.join(f)).ok();
        }
        std::fs::write(&settings_path, serde_json::to_vec_pretty(&settings)?)?;
    }
    let resumed = if cfg.resume && has_checkpoint { load_checkpoint(&cfg.dir, net.clone(), &device, cfg.ema_decay > 0.0)? } else { None };
    let (mut net, mut ema, mut optim, mut state) = match resumed {
        Some(c) => (c.net, c.ema, c.optim, c.state),
        None => {
            let net = stable_param_ids(net);
            let ema = (cfg.ema_decay > 0.0).then(|| net.valid());
            (net, ema, AdamConfig::new().init(), RunState::default())
        }
    };
    let log_path = cfg.dir.join("log.csv");
    let val_path = cfg.dir.join("validation.csv");
    truncate_log(&log_path, state.step)?;
    truncate_log(&val_path, state.step)?;
    let mut log = append_log(&log_path, "step,loss,lr,seconds")?;
    let mut val_log = append_log(&val_path, &format!("step,{}", objective.score_name().replace(' ', "_")))?;

    let started = Instant::now();
    let base_seconds = state.seconds;
    let first_step = state.step;
    let mut finished = state.step >= cfg.steps;
    while state.step < cfg.steps {
        let step = state.step;
        let mut rng = step_rng(cfg.seed, step);
        let loss = objective.loss(&net, step, &mut rng);
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            bail!("the loss became {value} at step {}; the last checkpoint in {} is intact (lower --lr and resume)", step + 1, cfg.dir.display());
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let lr = cfg.lr_after_restarts(step, &state.optimizer_restarts);
        net = optim.step(lr, net, grads);
        if let Some(e) = ema.take() {
            ema = Some(ema_update(e, &net, cfg.ema_decay_at(step)));
        }
        state.step += 1;
        state.seconds = base_seconds + started.elapsed().as_secs_f64();
        state.recent_loss = value;
        writeln!(log, "{},{value:.6},{lr:.3e},{:.1}", state.step, state.seconds)?;
        let last = state.step == cfg.steps;
        let out_of_time = cfg.stop_after.is_some_and(|s| started.elapsed().as_secs_f64() >= s)
            || cfg.stop_after_steps.is_some_and(|n| state.step - first_step >= n);
        let mut validation = None;
        if last || (cfg.validate_every > 0 && state.step % cfg.validate_every == 0) {
            let eval_net = ema.clone().unwrap_or_else(|| net.valid());
            let score = objective.validate(&eval_net)?;
            writeln!(val_log, "{},{score:.6}", state.step)?;
            val_log.flush()?;
            if state.best.is_none_or(|(_, b)| score > b) {
                state.best = Some((state.step, score));
                write_atomic(&cfg.dir.join("best.histoseg"), &model_bytes(manifest, &eval_net))?;
            }
            validation = Some(score);
        }
        if last || out_of_time || state.step % cfg.checkpoint_every.max(1) == 0 {
            log.flush()?;
            save_checkpoint(&cfg.dir, manifest, &net, ema.as_ref(), &optim, &state)?;
        }
        on_progress(&Progress { step: state.step, steps: cfg.steps, loss: value, lr, validation, state: &state });
        if last {
            finished = true;
        } else if out_of_time {
            break;
        }
    }
    let final_weights = if finished {
        let path = cfg.dir.join("final.histoseg");
        let final_net = ema.clone().unwrap_or_else(|| net.valid());
        write_atomic(&path, &model_bytes(manifest, &final_net))?;
        Some(path)
    } else {
        None
    };
    Ok(RunOutcome {
        steps_this_process: state.step - first_step,
        seconds_this_process: started.elapsed().as_secs_f64(),
        state,
        finished,
        final_weights,
    })
}

/// Where long runs keep their state by default: `$HISTOSEG_RUNS`, else `runs/` beside the
/// checkout (outside it, so a fresh clone does not lose a run).
pub fn runs_dir() -> PathBuf {
    match std::env::var_os("HISTOSEG_RUNS") {
        Some(p) => p.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../runs"),
    }
}

/// Writes `progress.txt` in the run folder: one line for `tail -f` or a glance.
pub fn write_progress_line(run_dir: &Path, p: &Progress, per_second: f64) {
    let left = if per_second > 0.0 { (p.steps - p.step) as f64 / per_second } else { f64::NAN };
    let best = p.state.best.map(|(s, v)| format!(", best validation {v:.4} at step {s}")).unwrap_or_default();
    let line = format!(
        "step {}/{} loss {:.5} lr {:.2e} {:.2} steps/s, about {:.0} min left{best}\n",
        p.step,
        p.steps,
        p.loss,
        p.lr,
        per_second,
        left / 60.0
    );
    std::fs::write(run_dir.join("progress.txt"), line).ok();
}
