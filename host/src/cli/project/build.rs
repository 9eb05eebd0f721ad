//! `mysimbdp app build`: builds a project's component with the pinned tools of its language,
//! then loads it exactly as a deploy does, so what the platform would refuse is refused here
//! with the same words.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::{
    componentize_js, componentize_py, platform_root, Lang, COMPONENTIZE_JS, COMPONENTIZE_PY,
    GUEST_WIT,
};
use crate::config::LimitsConfig;
use crate::plugin::Limits;

/// `app build`'s options.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project folder (default: the current one).
    dir: Option<PathBuf>,
    /// Where to write the component (default: `<dir>/<name>.wasm`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The project's language and app name, from its manifest.
fn detect(dir: &Path) -> anyhow::Result<(Lang, String)> {
    let read = |file: &str| -> anyhow::Result<toml::Table> {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
    };
    let name_in = |table: &toml::Table, section: &str, file: &str| {
        table
            .get(section)
            .and_then(|s| s.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .with_context(|| format!("{file} has no [{section}] name"))
    };
    if dir.join("Cargo.toml").is_file() {
        let manifest = read("Cargo.toml")?;
        return Ok((Lang::Rust, name_in(&manifest, "package", "Cargo.toml")?));
    }
    if dir.join("pyproject.toml").is_file() {
        let manifest = read("pyproject.toml")?;
        return Ok((
            Lang::Python,
            name_in(&manifest, "project", "pyproject.toml")?,
        ));
    }
    if dir.join("package.json").is_file() {
        let path = dir.join("package.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let name = manifest["name"]
            .as_str()
            .map(str::to_owned)
            .context("package.json has no name")?;
        return Ok((Lang::Js, name));
    }
    bail!(
        "{} has no Cargo.toml, pyproject.toml or package.json: run `mysimbdp app new NAME` to start a project",
        dir.display()
    )
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); its output is above");
    }
    Ok(())
}

/// Builds the component into `<dir>/<name>.wasm` and checks it against the contract.
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let dir = dir
        .canonicalize()
        .with_context(|| format!("reading {}", dir.display()))?;
    let (lang, name) = detect(&dir)?;
    let out = match args.out {
        Some(out) => std::env::current_dir()?.join(out),
        None => dir.join(format!("{name}.wasm")),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let started = Instant::now();
    match lang {
        Lang::Rust => {
            let target = dir.join("target");
            run(
                Command::new("cargo")
                    .current_dir(&dir)
                    .args(["build", "--release", "--target", "wasm32-wasip2"])
                    .arg("--target-dir")
                    .arg(&target),
                "cargo build",
            )?;
            let built = target
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::copy(&built, &out)
                .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
        }
        Lang::Python => {
            let root = platform_root()?;
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(dir.join("pyproject.toml"))?)?;
            let setting = |key: &str, default: PathBuf| {
                manifest
                    .get("tool")
                    .and_then(|t| t.get("mysimbdp"))
                    .and_then(|m| m.get(key))
                    .and_then(|v| v.as_str())
                    // Relative to the project, as the manifest reads.
                    .map_or(default, |v| dir.join(v))
            };
            let sdk = setting("sdk", root.join("sdk/python"));
            let wit = setting("wit", root.join(GUEST_WIT));
            same_contract(&wit, &root, "pyproject.toml's [tool.mysimbdp] wit")?;
            let tool = componentize_py(&root);
            let version = Command::new(&tool).arg("--version").output().ok();
            let version = version
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            if version != format!("componentize-py {COMPONENTIZE_PY}") {
                bail!(
                    "{} is not componentize-py {COMPONENTIZE_PY} (found `{version}`): run {}/scripts/guest-tools.sh, or set MYSIMBDP_COMPONENTIZE_PY",
                    tool.display(),
                    root.display()
                );
            }
            run(
                Command::new(&tool)
                    .current_dir(&dir)
                    .arg("-d")
                    .arg(&wit)
                    .args(["-w", "tenant-app", "componentize", "mysimbdp_app", "-p"])
                    .arg(&dir)
                    .arg("-p")
                    .arg(&sdk)
                    .arg("--stub-wasi")
                    .arg("-o")
                    .arg(&out),
                "componentize-py",
            )?;
        }
        Lang::Js => build_js(&dir, &out)?,
    }
    let built_in = started.elapsed();
    let checked = Instant::now();
    let engine = crate::cli::plugin_engine()?;
    let config = LimitsConfig::default();
    let limits = Limits {
        memory_bytes: config.memory_mb << 20,
        spec: config.spec(),
        ..Limits::default()
    };
    // The same load, contract check and description check as `app deploy`, with its words.
    let app = engine.load(&out, limits)?;
    let spec = &app.spec;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let fields = |list: &[crate::plugin::FieldSpec]| {
        list.iter()
            .map(|f| format!("{} {}", f.name, f.kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{}: {} {} ({:.1} MB), built in {:.1} s, checked in {:.1} s: implements {}",
        out.display(),
        spec.name,
        spec.version,
        size as f64 / 1e6,
        built_in.as_secs_f64(),
        checked.elapsed().as_secs_f64(),
        app.contract()
    );
    println!(
        "  key {}, window {}, reads {}; writes table {} with {}; state version {}",
        spec.key_field,
        spec.assigner,
        fields(&spec.inputs),
        spec.table,
        fields(&spec.outputs),
        spec.state_version
    );
    Ok(())
}

/// The contract package a WIT folder declares (`mysimbdp:tenant@0.2.0`).
fn contract_of(wit: &Path) -> anyhow::Result<String> {
    let path = wit.join("tenant.wit");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .map(|package| package.trim_end_matches(';').trim().to_owned())
        .with_context(|| format!("{} declares no package", path.display()))
}

/// Refuses a project pinned to another contract than the one the SDKs write: the SDK's calls
/// would not match it. Components built before still load; only building again needs the fix.
fn same_contract(wit: &Path, root: &Path, setting: &str) -> anyhow::Result<()> {
    let (found, wanted) = (contract_of(wit)?, contract_of(&root.join(GUEST_WIT))?);
    if found != wanted {
        bail!(
            "{setting} is {} ({found}), but the SDK builds {wanted}: set it to the platform's {} \
             (components built before keep loading)",
            wit.display(),
            root.join(GUEST_WIT).display()
        );
    }
    Ok(())
}

/// The output of a tool's `--version`, trimmed; empty when it does not run.
fn version_of(command: &mut Command) -> String {
    command
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// One module of the SDK and the tenant's `app.js` (its `import ... from "mysimbdp"` line
/// dropped), componentized in `<dir>/.build/` with the WASI features the sandbox refuses left out.
fn build_js(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let root = platform_root()?;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json"))?)?;
    let setting = |key: &str, default: PathBuf| {
        manifest["mysimbdp"][key]
            .as_str()
            .map_or(default, |v| dir.join(v))
    };
    let sdk = setting("sdk", root.join("sdk/js"));
    let wit = setting("wit", root.join(GUEST_WIT));
    same_contract(&wit, &root, "package.json's mysimbdp.wit")?;
    let tool = componentize_js(&root);
    let version = version_of(Command::new("node").arg(&tool));
    if version != COMPONENTIZE_JS {
        bail!(
            "{} is not componentize-js {COMPONENTIZE_JS} (found `{version}`): run {}/scripts/guest-tools.sh, or set MYSIMBDP_COMPONENTIZE_JS",
            tool.display(),
            root.display()
        );
    }
    let source = std::fs::read_to_string(dir.join("app.js"))
        .with_context(|| format!("reading {}", dir.join("app.js").display()))?;
    let sdk_text = std::fs::read_to_string(sdk.join("mysimbdp.js"))
        .with_context(|| format!("reading {}", sdk.join("mysimbdp.js").display()))?;
    let app: String = source
        .lines()
        .map(|line| {
            let t = line.trim();
            if t.starts_with("import ") && (t.contains("\"mysimbdp\"") || t.contains("'mysimbdp'"))
            {
                // Kept as a comment, so that line numbers in the app stay as written.
                format!("// {line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let build = dir.join(".build");
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(build.join("wit"))
        .with_context(|| format!("creating {}", build.display()))?;
    // The app's first line in the module, so that the SDK reports the app's own line numbers.
    let sdk_text = sdk_text.trim_end();
    let offset = sdk_text.lines().count() + 1;
    std::fs::write(
        build.join("entry.js"),
        format!("{sdk_text}\nglobalThis.__mysimbdpAppLine = {offset};\n{app}\n"),
    )?;
    // componentize-js reads only below its working folder: the contract is copied there.
    for entry in std::fs::read_dir(&wit).with_context(|| format!("reading {}", wit.display()))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "wit") {
            std::fs::copy(entry.path(), build.join("wit").join(entry.file_name()))?;
        }
    }
    run(
        Command::new("node")
            .current_dir(&build)
            .arg(&tool)
            .args([
                "entry.js",
                "-w",
                "wit",
                "-n",
                "tenant-app",
                "-o",
                "app.wasm",
            ])
            .args(["-d", "stdio", "random", "clocks", "http", "fetch-event"]),
        "componentize-js",
    )?;
    std::fs::copy(build.join("app.wasm"), out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
