//! The `roomhost` binary end to end: serve, signals, the compile cache, build.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use roomhost_e2e::{Client, http_get_json, plugin, plugin_target_dir, workspace_root};
use serde_json::json;

mod common;

use common::{ROOMHOST, serve, serve_with_env, terminate, wait_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_plugin_and_sigterm_closes_clients_with_1001() {
    let cache = tempdir("sigterm");
    let counter = plugin("counter");
    let mut served = serve(
        &[
            "--plugin",
            counter.to_str().unwrap(),
            "--config",
            r#"{"start":7}"#,
        ],
        &cache,
    );
    assert!(
        served.banner.iter().any(|line| line.contains("/ws/{room}")),
        "{:?}",
        served.banner
    );

    let mut client = Client::connect(served.addr, "/ws/demo")
        .await
        .expect("connects");
    assert_eq!(client.recv_json().await, json!({ "count": 7 }));

    terminate(&served.child);
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1001), "{closed:?}");
    assert!(wait_exit(&mut served.child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_compiled_plugin() {
    let cache = tempdir("cache");
    let chat = plugin("chat");
    let spec = format!("talk={}", chat.display());
    for expected in ["compiled", "from cache"] {
        let mut served = serve(&["--plugin", &spec], &cache);
        let line = served
            .banner
            .iter()
            .find(|line| line.contains("service talk"))
            .unwrap_or_else(|| panic!("{:?}", served.banner));
        assert!(line.contains(expected), "expected {expected:?} in {line:?}");
        terminate(&served.child);
        wait_exit(&mut served.child);
    }
}

#[test]
fn serve_reads_roomhost_toml() {
    let dir = tempdir("toml");
    let file = dir.join("roomhost.toml");
    write_tally_toml(
        &file,
        "",
        "config = { start = 3 }\n\n[limits]\nmax_rooms = 10\n",
    );
    let mut served = serve(&["--file", file.to_str().unwrap()], &dir);
    assert!(
        served
            .banner
            .iter()
            .any(|line| line.contains("service tally")),
        "{:?}",
        served.banner
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(served.addr, "/ws/x")
            .await
            .expect("connects");
        assert_eq!(client.recv_json().await, json!({ "count": 3 }));
    });
    terminate(&served.child);
    wait_exit(&mut served.child);
}

#[test]
fn workers_sets_the_runtime_threads_from_the_flag_or_the_file() {
    let dir = tempdir("workers");
    let counter = plugin("counter");
    let file = dir.join("roomhost.toml");
    write_tally_toml(&file, "workers = 3\n", "");
    let file = file.to_str().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let from_env = [("ROOMHOST_WORKERS", "2")];
    for (args, env, expected) in [
        (&["--file", file][..], &[][..], 3),
        (&["--file", file, "--workers", "1"][..], &[][..], 1),
        (&["--file", file][..], &from_env[..], 2),
    ] {
        let mut served = serve_with_env(args, env, &dir);
        let (status, body) = runtime
            .block_on(http_get_json(served.addr, "/status"))
            .expect("GET /status");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["workers"], expected, "{args:?} {env:?}: {body}");
        terminate(&served.child);
        wait_exit(&mut served.child);
    }

    write_tally_toml(&dir.join("zero.toml"), "workers = 0\n", "");
    for (args, expected) in [
        (
            vec!["--workers", "0", "--plugin", counter.to_str().unwrap()],
            "--workers (or ROOMHOST_WORKERS) must be from 1 to 1024, not 0",
        ),
        (
            vec!["--workers", "many", "--plugin", counter.to_str().unwrap()],
            "invalid value 'many' for '--workers <N>'",
        ),
        (
            vec!["--file", dir.join("zero.toml").to_str().unwrap()],
            "workers in the configuration file must be from 1 to 1024, not 0",
        ),
    ] {
        let mut child = Command::new(ROOMHOST)
            .env_remove("ROOMHOST_WORKERS")
            .arg("serve")
            .args(&args)
            // A free port, should the check ever let a bad value through
            // (then `wait_exit` kills the server and fails the test).
            .args(["--no-cache", "--no-storage", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roomhost runs");
        let status = wait_exit(&mut child);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Writes a roomhost.toml at `path` serving the counter plugin as service
/// `tally`: `top` goes before its table, `rest` inside it and after.
fn write_tally_toml(path: &Path, top: &str, rest: &str) {
    let counter = plugin("counter").display().to_string();
    std::fs::write(
        path,
        format!("{top}\n[services.tally]\nplugin = {counter:?}\n{rest}"),
    )
    .unwrap();
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "--plugin", "/nonexistent/x.wasm"],
            "does not exist",
        ),
        (
            &[
                "serve",
                "--plugin",
                "a=/nonexistent.wasm",
                "--plugin",
                "b=/n.wasm",
            ],
            "does not exist",
        ),
        (&["serve"], "nothing to serve"),
        (&["build", "/nonexistent-dir"], "no Cargo.toml"),
    ];
    for (args, expected) in cases {
        let output = Command::new(ROOMHOST)
            .args(*args)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("roomhost runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    let not_a_plugin = tempdir("bad").join("bad.wasm");
    std::fs::write(&not_a_plugin, b"not wasm at all").unwrap();
    let output = Command::new(ROOMHOST)
        .args(["serve", "--no-cache", "--no-storage", "--plugin"])
        .arg(&not_a_plugin)
        .output()
        .expect("roomhost runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot compile plugin"), "{stderr}");
}

#[test]
fn build_compiles_a_plugin_crate_and_prints_the_component_path() {
    let path = roomhost_build(
        &workspace_root().join("plugins").join("counter"),
        &plugin_target_dir(),
    );
    assert!(
        path.ends_with("wasm32-wasip2/release/counter.wasm"),
        "{path}"
    );
    let bytes = std::fs::read(&path).expect("the component exists");
    // A component, not a core module: layer 1 in the preamble.
    assert_eq!(&bytes[..4], b"\0asm");
    assert_ne!(&bytes[4..8], &[1, 0, 0, 0]);
}

#[test]
fn help_explains_every_command() {
    let output = Command::new(ROOMHOST)
        .arg("serve")
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--plugin",
        "--config",
        "--listen",
        "roomhost.toml",
        "--max-frame-bytes",
        "1009",
    ] {
        assert!(
            help.contains(expected),
            "serve --help lacks {expected}:\n{help}"
        );
    }
}

/// Runs `roomhost build DIR --target-dir TARGET` and returns the path it printed.
fn roomhost_build(dir: &Path, target_dir: &Path) -> String {
    let output = Command::new(ROOMHOST)
        .arg("build")
        .arg(dir)
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("roomhost runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = plugin_target_dir()
        .join("cli-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The crate-root example of roomhost-sdk, built as a stand-alone crate the
/// way its rustdoc says, then built with `roomhost build` and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_written_from_the_sdk_docs_builds_and_serves() {
    let dir = tempdir("from-docs");
    let sdk_docs = std::fs::read_to_string(workspace_root().join("guest-sdk/src/lib.rs")).unwrap();
    let example = first_rust_example(&sdk_docs);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), example).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"poll\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
             [dependencies]\nroomhost-sdk = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\n\n[workspace]\n",
            workspace_root().join("guest-sdk").display().to_string()
        ),
    )
    .unwrap();
    let wasm = roomhost_build(&dir, &plugin_target_dir().join("from-docs"));

    let mut served = serve(&["--plugin", &wasm], &dir);
    let mut voter = Client::connect(served.addr, "/ws/vote")
        .await
        .expect("connects");
    voter.send_text("not json").await;
    assert!(voter.recv_json().await["error"].is_string());
    terminate(&served.child);
    wait_exit(&mut served.child);
}

/// The first ```-fenced Rust example in `//!` docs, without its fence.
fn first_rust_example(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    let start = lines
        .iter()
        .position(|line| *line == "```")
        .expect("an example")
        + 1;
    let end = start
        + lines[start..]
            .iter()
            .position(|line| *line == "```")
            .expect("a closed example");
    lines[start..end].join("\n")
}

/// Runs `roomhost serve` (counter) with stderr redirected to a file, as a
/// service manager does, until it is up; stops it and returns its stderr.
fn stderr_of_serve(extra: &[&str], name: &str) -> String {
    let cache = tempdir(name);
    let log = cache.join("serve.log");
    let log_file = std::fs::File::create(&log).expect("create the log file");
    let counter = plugin("counter");
    let mut child = Command::new(ROOMHOST)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(&cache)
        .arg("--plugin")
        .arg(&counter)
        .arg("--data-dir")
        .arg(cache.join("data"))
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("roomhost starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    assert!(lines.next().is_some(), "a banner line");
    terminate(&child);
    assert!(wait_exit(&mut child).success());
    std::fs::read_to_string(&log).expect("read the log")
}

#[test]
fn logs_to_a_file_have_no_colour_codes_and_json_lines_parse() {
    let text = stderr_of_serve(&[], "log-text");
    assert!(text.contains("loaded plugin"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape codes in a redirected log:\n{text}"
    );

    let json = stderr_of_serve(&["--log-format", "json"], "log-json");
    let lines: Vec<&str> = json
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
}
