//! Project automation: the README's two commands.
//!
//! - `cargo xtask serve`: installs what is missing (the wasm32 target, Trunk, wasm-bindgen-cli,
//!   npm's binaryen), builds the viewer offline with Trunk when its sources changed, and serves
//!   dist/ on 127.0.0.1:8080 (scripts/serve.mjs).
//! - `cargo xtask test`: the same tools plus Debian's Chromium and a Python venv with
//!   onnxruntime and snakemake (target/pyenv), then every test: the native
//!   unit and integration tests, a release build of the viewer, and the headless-browser tests.
//!
//! Only the standard library is used, so this builds in seconds on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TRUNK_VERSION: &str = "0.21.14";
/// Must equal the `wasm-bindgen` crate pinned in Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// PATH with the project's npm tools (wasm-opt) and cargo's bin folder first.
fn tool_path() -> String {
    let mut parts = vec![root().join("node_modules/.bin")];
    if let Some(home) = env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"))) {
        parts.push(home.join("bin"));
    }
    let mut path = env::join_paths(parts).unwrap().into_string().unwrap();
    if let Ok(old) = env::var("PATH") {
        path = format!("{path}:{old}");
    }
    path
}

fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root()).env("PATH", tool_path());
    c
}

fn run(c: &mut Command) -> Result {
    eprintln!("xtask: running {c:?}");
    let status = c.status().map_err(|e| format!("cannot start {:?}: {e}", c.get_program()))?;
    if status.success() { Ok(()) } else { Err(format!("{:?} failed with {status}", c.get_program())) }
}

/// The first line a tool prints for `--version`, if it runs at all.
fn version_of(program: &str) -> Option<String> {
    let out = cmd(program).arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn ensure_build_tools() -> Result {
    let targets = cmd("rustup").args(["target", "list", "--installed"]).output().map_err(|e| format!("rustup: {e}"))?;
    if !String::from_utf8_lossy(&targets.stdout).contains("wasm32-unknown-unknown") {
        run(cmd("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    if !version_of("trunk").is_some_and(|v| v.contains(TRUNK_VERSION)) {
        run(cmd("cargo").args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
    }
    if !version_of("wasm-bindgen").is_some_and(|v| v.contains(WASM_BINDGEN_VERSION)) {
        // not --locked: one of its locked dependencies is missing from the registry mirror
        run(cmd("cargo").args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]))?;
    }
    let npm_ready = ["node_modules/.bin/wasm-opt", "node_modules/playwright-core", "node_modules/onnxruntime-web"].iter().all(|p| root().join(p).exists());
    if !npm_ready {
        run(cmd("npm").args(["ci", "--no-audit", "--no-fund"]))?;
    }
    Ok(())
}

fn ensure_chromium() -> Result {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's chromium for the browser tests");
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "chromium"]).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A virtual environment in target/pyenv with onnxruntime, onnx, numpy and snakemake from PyPI,
/// for the ONNX export test, the native benchmark and the cohort workflow's test.
fn ensure_python_tools() -> Result {
    let python = root().join("target/pyenv/bin/python");
    let ready = || cmd(python.to_str().unwrap()).args(["-c", "import onnxruntime, onnx, numpy, snakemake"]).output().is_ok_and(|o| o.status.success());
    if ready() {
        return Ok(());
    }
    if !python.exists() {
        run(cmd("python3").args(["-m", "venv", "target/pyenv"]))
            .map_err(|e| format!("{e}: Python 3 with the venv module is needed (Debian: apt-get install python3-venv)"))?;
    }
    run(cmd(python.to_str().unwrap()).args(["-m", "pip", "install", "--quiet", "-r", "scripts/requirements.txt"]))?;
    if ready() { Ok(()) } else { Err("target/pyenv cannot import onnxruntime or snakemake after installing them".into()) }
}

fn build_viewer() -> Result {
    // Trunk builds offline (Trunk.toml), so the crates only the wasm32 build needs (burn-remote,
    // burn-router, ... and host crates of its build scripts and macros, such as
    // signal-hook-registry) must be in cargo's cache first: a fresh machine's native build does
    // not download them. `cargo fetch` with no --target takes every platform's (a target filter
    // misses the host ones). Without a network and with them already cached, the build goes on.
    if let Err(e) = run(cmd("cargo").arg("fetch")) {
        eprintln!("xtask: {e}; building the viewer with the crates cargo already has");
    }
    run(cmd("trunk").args(["build", "--release"]))
}

/// The newest modification time of the files under `path` (recursively).
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.filter_map(|e| e.ok()).filter_map(|e| newest(&e.path())).max()
}

/// Whether dist/ is older than anything it is built from.
fn viewer_is_stale() -> bool {
    let Some(built) = std::fs::metadata(root().join("dist/index.html")).and_then(|m| m.modified()).ok() else { return true };
    let inputs = ["src", "www", "models", "Cargo.toml", "Cargo.lock", "Trunk.toml", ".cargo", "scripts/stamp_version.mjs"];
    inputs.iter().filter_map(|p| newest(&root().join(p))).any(|t| t > built)
}

/// Builds the viewer only when its sources changed (a release build runs wasm-opt for minutes),
/// then serves dist/ as built: no dev-server script is injected, so the CSP stays clean.
fn serve() -> Result {
    ensure_build_tools()?;
    if viewer_is_stale() {
        build_viewer()?;
    } else {
        eprintln!("xtask: dist/ is up to date with its sources; serving it as built");
    }
    run(cmd("node").arg("scripts/serve.mjs"))
}

fn test() -> Result {
    ensure_build_tools()?;
    ensure_chromium()?;
    ensure_python_tools()?;
    // Native unit + integration tests (real GlaS data, flex CPU backend) and the CLI.
    run(cmd("cargo").args(["test", "--release", "--features", "cli"]))?;
    build_viewer()?;
    // Real-browser tests in headless Debian Chromium (WebGPU via SwiftShader, and the CPU path),
    // one file at a time: two cores do not run two browsers well.
    run(cmd("node").args([
        "--test",
        "--test-concurrency=1",
        "--test-reporter=spec",
        "tests/browser/viewer.test.mjs",
        "tests/browser/slide.test.mjs",
        "tests/browser/big_slide.test.mjs",
        "tests/browser/memory.test.mjs",
        "tests/browser/bad_inputs.test.mjs",
        "tests/browser/faults.test.mjs",
        "tests/browser/privacy.test.mjs",
        "tests/browser/own_model.test.mjs",
        "tests/browser/update.test.mjs",
        "tests/browser/kept.test.mjs",
        "tests/browser/whole_slide.test.mjs",
        "tests/browser/teach.test.mjs",
    ]))
}

fn main() -> ExitCode {
    let task = env::args().nth(1);
    let result = match task.as_deref() {
        Some("serve") => serve(),
        Some("test") => test(),
        Some("build") => ensure_build_tools().and_then(|_| build_viewer()),
        _ => Err("usage: cargo xtask <serve|test|build>".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
