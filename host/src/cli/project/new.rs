//! `mysimbdp app new`: a ready project in its own folder: manifest, app, sample input,
//! expected rows and a README, in the language asked for.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::{platform_root, Lang, COMPONENTIZE_JS, COMPONENTIZE_PY};
use crate::names::AppName;

/// `app new`'s options.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The app's name: letters, digits, `-` and `_`; also its results table (with `_`).
    name: String,
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// The folder to create (default: ./NAME); it must not exist or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const SAMPLE: &str = include_str!("templates/sample.tsv");
const EXPECTED: &str = include_str!("templates/expected.csv");
const README: &str = include_str!("templates/README.md");

/// Writes the project and says what to run next.
pub fn new(args: NewArgs) -> anyhow::Result<()> {
    AppName::new(&args.name)?;
    if !args.name.starts_with(|c: char| c.is_ascii_lowercase())
        || !args
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        bail!("app name `{}`: use a lowercase letter, then lowercase letters, digits, `-` or `_` (it names a crate, a module and a table)", args.name);
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let root = platform_root()?;
    let table = args.name.replace('-', "_");
    let fill = |text: &str, source: &str, language: &str| {
        text.replace("{{name}}", &args.name)
            .replace("{{table}}", &table)
            .replace("{{sdk}}", &root.join("guest-sdk").display().to_string())
            .replace("{{py_sdk}}", &root.join("sdk/python").display().to_string())
            .replace(
                "{{wit}}",
                &root.join(super::GUEST_WIT).display().to_string(),
            )
            .replace("{{js_sdk}}", &root.join("sdk/js").display().to_string())
            .replace("{{componentize_py}}", COMPONENTIZE_PY)
            .replace("{{componentize_js}}", COMPONENTIZE_JS)
            .replace("{{source}}", source)
            .replace("{{language}}", language)
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        ("sample.tsv".into(), SAMPLE.to_owned()),
        ("expected.csv".into(), EXPECTED.to_owned()),
    ];
    match args.lang {
        Lang::Rust => {
            let toml = include_str!("templates/rust/Cargo.toml");
            files.push(("Cargo.toml".into(), fill(toml, "", "")));
            files.push((
                "src/lib.rs".into(),
                fill(include_str!("templates/rust/lib.rs"), "", ""),
            ));
            files.push((
                ".gitignore".into(),
                include_str!("templates/rust/gitignore").into(),
            ));
            files.push(("README.md".into(), fill(README, "`src/lib.rs`", "Rust")));
            // The versions the platform's own apps are built and tested with.
            if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
                files.push(("Cargo.lock".into(), lock));
            }
        }
        Lang::Python => {
            let toml = include_str!("templates/python/pyproject.toml");
            files.push(("pyproject.toml".into(), fill(toml, "", "")));
            files.push((
                "app.py".into(),
                fill(include_str!("templates/python/app.py"), "", ""),
            ));
            files.push((
                ".gitignore".into(),
                include_str!("templates/python/gitignore").into(),
            ));
            files.push(("README.md".into(), fill(README, "`app.py`", "Python")));
        }
        Lang::Js => {
            let manifest = include_str!("templates/js/package.json");
            files.push(("package.json".into(), fill(manifest, "", "")));
            files.push((
                "app.js".into(),
                fill(include_str!("templates/js/app.js"), "", ""),
            ));
            files.push((
                ".gitignore".into(),
                include_str!("templates/js/gitignore").into(),
            ));
            files.push(("README.md".into(), fill(README, "`app.js`", "JavaScript")));
        }
    }
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {} ({}); next: cd {} && mysimbdp app build && mysimbdp app test --app {}.wasm --input sample.tsv --expect expected.csv",
        dir.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        },
        dir.display(),
        args.name
    );
    Ok(())
}
