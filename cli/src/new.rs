//! `roomhost new NAME`: scaffold a plugin (a Rust crate, or with `--lang ts`
//! a TypeScript project) that builds, tests and runs under `roomhost dev`
//! without edits.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::js::JsProject;

/// Arguments of `roomhost new`.
#[derive(Args)]
pub struct NewArgs {
    /// The crate name (also its directory): letters, digits, '-' and '_',
    /// starting with a letter.
    name: String,
    /// Where to create it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The roomhost-sdk checkout to depend on (default: the one this roomhost
    /// was built from, or the git repository when that is not on disk). With
    /// `--lang ts`: the guest-sdk-js directory.
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
    /// The language of the service.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// With `--lang ts`: do not run `npm install` in the new project.
    #[arg(long)]
    no_install: bool,
}

/// The languages a service is scaffolded in.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    /// A Rust crate on roomhost-sdk.
    Rust,
    /// A TypeScript project on @roomhost/sdk (guest-sdk-js), built by
    /// esbuild and componentize-qjs from npm.
    Ts,
}

/// The SDK next to the CLI's own sources, when roomhost runs from a checkout.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// The JavaScript/TypeScript SDK next to the CLI's own sources.
const BUILT_FROM_JS_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk-js");

/// Where the SDK comes from when no checkout is on disk.
const SDK_GIT: &str = "https://github.com/roomhost/roomhost";

/// The service's source; its `{{type_name}}` is the service type.
const LIB_RS: &str = include_str!("../templates/plugin/lib.rs.tmpl");

/// The TypeScript service's source; its `{{type_name}}` is the service class.
const INDEX_TS: &str = include_str!("../templates/plugin-ts/index.ts.tmpl");

const TS_TEMPLATES: [(&str, &str); 6] = [
    (
        "package.json",
        include_str!("../templates/plugin-ts/package.json.tmpl"),
    ),
    ("src/index.ts", INDEX_TS),
    (
        "test/index.test.ts",
        include_str!("../templates/plugin-ts/index.test.ts.tmpl"),
    ),
    (
        "tsconfig.json",
        include_str!("../templates/plugin-ts/tsconfig.json.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/plugin-ts/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/plugin-ts/gitignore.tmpl"),
    ),
];

const TEMPLATES: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", LIB_RS),
    (
        "README.md",
        include_str!("../templates/plugin/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/plugin/gitignore.tmpl"),
    ),
];

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let source = match args.lang {
        Lang::Rust => LIB_RS,
        Lang::Ts => INDEX_TS,
    };
    check_name(&args.name, source)?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && fs::read_dir(&dir).map_or(true, |mut entries| entries.next().is_some()) {
        bail!(
            "{} already exists and is not empty: pick another name or --path",
            dir.display()
        );
    }
    let (templates, sdk_dependency): (&[(&str, &str)], String) = match args.lang {
        Lang::Rust => (&TEMPLATES, sdk_dependency(args.sdk.as_deref())?),
        Lang::Ts => (&TS_TEMPLATES, js_sdk_dependency(args.sdk.as_deref())?),
    };
    let type_name = type_name(&args.name);
    for (file, template) in templates {
        let text = template
            .replace("{{name}}", &args.name)
            .replace("{{type_name}}", &type_name)
            .replace("{{sdk_dependency}}", &sdk_dependency);
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.lang == Lang::Ts && !args.no_install {
        JsProject::prepare(&dir)?;
    }
    let kind = match args.lang {
        Lang::Rust => "plugin crate",
        Lang::Ts => "TypeScript service",
    };
    println!("created {kind} {} in {}", args.name, dir.display());
    println!();
    println!("  cd {}", dir.display());
    println!("  roomhost dev        # serve on http://127.0.0.1:8080 and hot-reload on edits");
    match args.lang {
        Lang::Rust => println!("  cargo test          # unit tests through the SDK harness"),
        Lang::Ts => println!("  npm test            # tests under Node through the SDK's TestRoom"),
    }
    Ok(())
}

/// Crate names cargo accepts and that make a readable type name that the
/// scaffold's code (`source`) does not already use.
fn check_name(name: &str, source: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!(
            "invalid crate name {name:?}: use up to 64 letters, digits, '-' and '_', starting with a letter"
        );
    }
    if matches!(
        name,
        "test"
            | "core"
            | "std"
            | "alloc"
            | "proc_macro"
            | "roomhost-sdk"
            | "roomhost_sdk"
            | "serde"
            | "serde_json"
    ) {
        bail!("{name:?} would clash with a crate it depends on: pick another name");
    }
    let type_name = type_name(name);
    if taken_type_names(source).contains(type_name.as_str()) {
        bail!(
            "{name:?} would name the service type `{type_name}`, which the scaffold's \
             source already uses (from its SDK, serde or the standard library): pick another \
             name, e.g. \"my-{name}\""
        );
    }
    Ok(())
}

/// The type names the scaffold's code refers to (its imports such as `Room`
/// and `Message`, `Serialize`, `TestRoom`, `String`, ...), read from the
/// template itself so the list follows it: a service type of the same name
/// would clash with them and the crate would not compile.
fn taken_type_names(source: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::from(["Self"]);
    for line in source.lines() {
        // Comments are prose, not names in scope (`//`, and the lines of a
        // `/** ... */` block).
        let trimmed = line.trim_start();
        if trimmed.starts_with('*') || trimmed.starts_with("/*") {
            continue;
        }
        let code = line.split("//").next().unwrap_or_default();
        names.extend(
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with(|c: char| c.is_ascii_uppercase())),
        );
    }
    names
}

/// `my-room` → `MyRoom`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The `roomhost-sdk = ...` line of the new crate's Cargo.toml.
fn sdk_dependency(sdk: Option<&Path>) -> anyhow::Result<String> {
    let local = match sdk {
        Some(path) => Some(
            path.canonicalize()
                .with_context(|| format!("--sdk {} does not exist", path.display()))?,
        ),
        None => Path::new(BUILT_FROM_SDK).canonicalize().ok(),
    };
    Ok(match local {
        Some(path) if path.join("Cargo.toml").is_file() => {
            let path = path.to_str().context("the SDK path is not UTF-8")?;
            format!("roomhost-sdk = {{ path = {} }}", toml_string(path))
        }
        Some(path) => bail!(
            "{} is not the roomhost-sdk crate: it has no Cargo.toml",
            path.display()
        ),
        None => format!("roomhost-sdk = {{ git = {} }}", toml_string(SDK_GIT)),
    })
}

/// The `"@roomhost/sdk"` value of the new project's package.json: a
/// `file:` link to guest-sdk-js, as a JSON string.
fn js_sdk_dependency(sdk: Option<&Path>) -> anyhow::Result<String> {
    let path = match sdk {
        Some(path) => path
            .canonicalize()
            .with_context(|| format!("--sdk {} does not exist", path.display()))?,
        None => Path::new(BUILT_FROM_JS_SDK)
            .canonicalize()
            .with_context(|| {
                format!(
                    "the TypeScript SDK is not on disk at {BUILT_FROM_JS_SDK}: pass --sdk \
                 PATH/TO/guest-sdk-js"
                )
            })?,
    };
    if !path.join("package.json").is_file() {
        bail!(
            "{} is not the TypeScript SDK: it has no package.json",
            path.display()
        );
    }
    let path = path.to_str().context("the SDK path is not UTF-8")?;
    Ok(serde_json::Value::String(format!("file:{path}")).to_string())
}

/// `text` as a TOML string literal, quoted and escaped.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_type_names() {
        assert_eq!(type_name("demo"), "Demo");
        assert_eq!(type_name("my-room_2"), "MyRoom2");
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "1abc", "a b", "a/b", "test", &"x".repeat(65)] {
            assert!(check_name(name, LIB_RS).is_err(), "{name:?}");
        }
        assert!(check_name("chat-2", LIB_RS).is_ok());
    }

    #[test]
    fn names_whose_type_the_scaffold_already_uses_are_refused() {
        let taken = taken_type_names(LIB_RS);
        for imported in [
            "Room",
            "Message",
            "ClientId",
            "ClientInfo",
            "RoomService",
            "Serialize",
            "Deserialize",
            "TestRoom",
            "String",
            "Result",
        ] {
            assert!(
                taken.contains(imported),
                "{imported} missing from {taken:?}"
            );
        }
        // Words of the template's comments are not names in scope.
        assert!(!taken.contains("Every"), "{taken:?}");
        for name in [
            "room",
            "message",
            "client-id",
            "client_info",
            "room-service",
            "serialize",
            "deserialize",
            "test-room",
            "string",
            "result",
            "serde",
        ] {
            let error = check_name(name, LIB_RS).expect_err(name).to_string();
            assert!(error.contains("pick another name"), "{error}");
        }
        let error = check_name("room", LIB_RS).unwrap_err().to_string();
        assert!(
            error.contains("`Room`") && error.contains("\"my-room\""),
            "{error}"
        );
        for suggested in ["my-room", "my-test-room", "my-message", "rooms", "demo"] {
            assert!(check_name(suggested, LIB_RS).is_ok(), "{suggested}");
        }
        // The TypeScript scaffold imports its own names.
        for imported in ["room", "message", "rejection", "snapshot", "init-info"] {
            assert!(check_name(imported, INDEX_TS).is_err(), "{imported}");
        }
        assert!(check_name("demo", INDEX_TS).is_ok());
        // Words of its doc comments are not names in scope.
        assert!(check_name("run", INDEX_TS).is_ok());
    }

    #[test]
    fn the_js_sdk_of_this_checkout_is_linked() {
        let value = js_sdk_dependency(None).unwrap();
        let parsed: String = serde_json::from_str(&value).unwrap();
        assert!(
            parsed.starts_with("file:/") && parsed.ends_with("guest-sdk-js"),
            "{parsed}"
        );
        assert!(js_sdk_dependency(Some(Path::new("/nonexistent"))).is_err());
    }

    #[test]
    fn the_sdk_of_this_checkout_is_found() {
        let line = sdk_dependency(None).unwrap();
        assert!(line.starts_with("roomhost-sdk = { path = "), "{line}");
        assert!(sdk_dependency(Some(Path::new("/nonexistent"))).is_err());
    }

    #[test]
    fn the_sdk_path_is_written_as_toml() {
        // Quotes, a backslash and a combining accent: Rust's `{:?}` escapes
        // the accent as `\u{301}`, which is not TOML.
        let dir = std::env::temp_dir()
            .join(format!("roomhost-new-{}", std::process::id()))
            .join("sdk \"q\" back\\slash e\u{301}");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("Cargo.toml"), "").unwrap();
        let line = sdk_dependency(Some(&dir)).unwrap();
        let parsed: toml::Table = toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let expected = dir.canonicalize().unwrap();
        assert_eq!(
            parsed["roomhost-sdk"]["path"].as_str(),
            expected.to_str(),
            "{line}"
        );
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
