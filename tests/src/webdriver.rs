//! A tiny W3C WebDriver client for the browser tests: starts chromedriver on
//! a free port, drives one headless Chromium session over plain HTTP/1.1
//! (JSON bodies on a tokio `TcpStream`, no HTTP client crate), and kills
//! chromedriver and the browser it started when dropped.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{WAIT, dechunk};

/// Where the Debian `chromium-driver` package puts chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where the Debian `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Set to `1` to skip browser tests on a machine without Chromium.
pub const SKIP_ENV: &str = "ROOMHOST_SKIP_BROWSER_TESTS";

/// The key W3C WebDriver wraps element references in.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether browser tests can run: `true` when chromedriver is installed,
/// `false` (after saying so) when it is missing and [`SKIP_ENV`] is `1`.
///
/// # Panics
///
/// When chromedriver is missing and skipping was not asked for: a browser
/// test must not pass silently on a machine that cannot run it.
pub fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var(SKIP_ENV).is_ok_and(|value| value == "1") {
        eprintln!("skipped: {CHROMEDRIVER} is missing and {SKIP_ENV}=1");
        return false;
    }
    panic!(
        "{CHROMEDRIVER} is missing: run `.ci/run` (it installs it) or \
         `apt-get install chromium chromium-driver`; set {SKIP_ENV}=1 to skip browser tests"
    );
}

/// A headless Chromium session driven through chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port()?;
        let profile =
            std::env::temp_dir().join(format!("roomhost-chromium-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&profile)
            .with_context(|| format!("cannot create {}", profile.display()))?;
        let log = profile.join("chromedriver.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // Its own process group, so dropping the browser can kill
            // chromedriver and the Chromium it started in one go.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {CHROMEDRIVER}"))?;
        let mut browser = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            profile,
        };
        browser.wait_ready().await?;
        browser.session = browser.new_session().await?;
        Ok(browser)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.driver.try_wait()? {
                bail!(
                    "chromedriver exited ({status}) before it was ready: {}",
                    self.driver_log()
                );
            }
            if let Ok(status) = self.request("GET", "/status", None).await
                && status["ready"] == true
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver was not ready in time: {}", self.driver_log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn new_session(&self) -> anyhow::Result<String> {
        let profile = format!("--user-data-dir={}", self.profile.join("profile").display());
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--no-first-run",
                            "--window-size=1400,1000",
                            profile,
                        ],
                    },
                },
            },
        });
        let session = self
            .request("POST", "/session", Some(capabilities))
            .await
            .with_context(|| format!("cannot start Chromium: {}", self.driver_log()))?;
        session["sessionId"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no session id in {session}"))
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session_request("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The element `css` selects (the first, if several).
    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .session_request(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("no element matches {css:?}"))?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element reference in {found}"))
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.session_request(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .with_context(|| format!("cannot click {css:?}"))
        .map(drop)
    }

    /// Replaces the value of the input `css` selects by typing `text`.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.session_request(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await
        .with_context(|| format!("cannot clear {css:?}"))?;
        self.session_request(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .with_context(|| format!("cannot type into {css:?}"))
        .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.session_request(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
        .with_context(|| format!("script failed: {script}"))
    }

    /// The `textContent` of the element `css` selects (`None`: no element).
    pub async fn text(&self, css: &str) -> anyhow::Result<Option<String>> {
        let text = self
            .execute(
                "const node = document.querySelector(arguments[0]);\
                 return node === null ? null : node.textContent;",
                json!([css]),
            )
            .await?;
        Ok(text.as_str().map(str::to_owned))
    }

    /// Polls the text of `css` until it contains every one of `needles`,
    /// failing after [`WAIT`] with the last text seen.
    pub async fn wait_text(&self, css: &str, needles: &[&str]) -> anyhow::Result<String> {
        self.wait_for(
            &format!("{css} to contain {needles:?}"),
            move || async move {
                let text = self.text(css).await?;
                Ok(match text {
                    Some(text) if needles.iter().all(|needle| text.contains(needle)) => Ok(text),
                    other => Err(format!("{other:?}")),
                })
            },
        )
        .await
    }

    /// Polls `check` every 50 ms until it returns `Ok(Ok(value))`, failing
    /// after [`WAIT`] with `what` and the last `Ok(Err(seen))`. Errors from
    /// the driver end the wait at once.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Result<T, String>>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = match check().await? {
                Ok(value) => return Ok(value),
                Err(seen) => seen,
            };
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}; last seen: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG screenshot of the window, base64-encoded.
    pub async fn screenshot_base64(&self) -> anyhow::Result<String> {
        let shot = self.session_request("GET", "/screenshot", None).await?;
        shot.as_str()
            .map(str::to_owned)
            .context("the screenshot is not a string")
    }

    /// Ends the session (closing Chromium) and stops chromedriver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let path = format!("/session/{}", self.session);
        let result = self.request("DELETE", &path, None).await.map(drop);
        self.session.clear();
        self.kill();
        result
    }

    async fn session_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let path = format!("/session/{}{path}", self.session);
        self.request(method, &path, body).await
    }

    /// One WebDriver command: the response's `value`, or its error.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let (status, response) = tokio::time::timeout(
            // Creating a session starts a browser: allow it more than a wait.
            WAIT * 3,
            // Boxed: keeps every caller's future (and debug-build stack
            // frame) small.
            Box::pin(http(self.addr, method, path, &body)),
        )
        .await
        .with_context(|| format!("{method} {path} timed out"))??;
        let response: Value = serde_json::from_slice(&response).with_context(|| {
            format!(
                "{method} {path}: the response is not JSON: {:?}",
                String::from_utf8_lossy(&response)
            )
        })?;
        let value = response.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "{method} {path}: HTTP {status}: {} {}",
                value["error"].as_str().unwrap_or("unknown error"),
                value["message"].as_str().unwrap_or_default()
            );
        }
        Ok(value)
    }

    fn driver_log(&self) -> String {
        std::fs::read_to_string(self.profile.join("chromedriver.log"))
            .map(|log| format!("chromedriver log:\n{log}"))
            .unwrap_or_else(|error| format!("(no chromedriver log: {error})"))
    }

    fn kill(&mut self) {
        if matches!(self.driver.try_wait(), Ok(Some(_))) {
            return;
        }
        // The whole group: chromedriver and any Chromium still running.
        let group = format!("-{}", self.driver.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !killed {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One HTTP/1.1 request with a JSON body on a fresh connection: the status
/// and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    // chromedriver keeps the connection open despite `Connection: close`:
    // read the head, then exactly the body it announces.
    let mut response = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    let split = loop {
        if let Some(split) = response.windows(4).position(|window| window == b"\r\n\r\n") {
            break split;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the connection closed before the response head ended");
        }
        response.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()?;
    let mut body = response.split_off(split + 4);
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match content_length(&head) {
            Some(length) => body.len() >= length,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let body = match content_length(&head) {
        Some(length) => body.get(..length).context("short body")?.to_vec(),
        None if chunked => dechunk(&body)?,
        None => body,
    };
    Ok((status, body))
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
}
