//! A real browser for the dashboard tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver) with fantoccini. Chromedriver and the browsers it starts run in
//! their own process group, killed as a whole on drop, so a failed test leaves no orphan.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatgptd_testkit::wait_until;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the page may take to show what a test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(60);

/// A chromedriver process and one browser session.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process group, killed on drop (also when the session never opens).
struct Driver(Child);

impl Browser {
    /// Starts chromedriver on a free port and opens a headless browser with a fresh profile.
    pub async fn start() -> Browser {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: `apt-get install chromium chromium-driver` (.ci/run does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: the browsers it starts are in it, and die with it.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Driver(driver);
        let profile = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--headless=new", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = wait_until(Duration::from_secs(30), "chromedriver to answer", || {
            let capabilities = capabilities.clone();
            let url = url.clone();
            async move {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await;
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// The text of the first element matching `css`, once it holds `wanted`. On timeout, says
    /// what it held and what the page's error line said.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let text = self.text(css).await.unwrap_or_default();
            if text.contains(wanted) {
                return text;
            }
            if started.elapsed() > PAGE_WAIT {
                let error = self.text("#error").await.unwrap_or_default();
                panic!(
                    "{css} never showed {wanted:?}: it shows {text:?}; the page's error: {error:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of the first element matching `css`, if there is one; hidden too (a tab not
    /// shown), which WebDriver's own text would give as empty.
    pub async fn text(&self, css: &str) -> Option<String> {
        let script =
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
        let text = self.client.execute(script, vec![json!(css)]).await.ok()?;
        text.as_str().map(str::to_string)
    }

    /// Types `text` into the element matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let client = &self.client;
        wait_until(PAGE_WAIT, &format!("{css} to fill"), || async move {
            let element = client.find(Locator::Css(css)).await.ok()?;
            let filled = async {
                element.clear().await?;
                element.send_keys(text).await
            };
            again_if_stale(filled.await, css)
        })
        .await;
    }

    /// Clicks the element matching `css`, once it is there.
    pub async fn click(&self, css: &str) {
        let client = &self.client;
        wait_until(PAGE_WAIT, &format!("{css} to click"), || async move {
            let element = client.find(Locator::Css(css)).await.ok()?;
            again_if_stale(element.click().await, css)
        })
        .await;
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }
}

/// `Some` when an action on the element matching `css` succeeded, `None` to find it again
/// when it went stale first: the page re-renders lists as data arrives, so the element found
/// may be replaced before it is acted on. Any other failure is the test's.
fn again_if_stale(done: Result<(), fantoccini::error::CmdError>, css: &str) -> Option<()> {
    match done {
        Ok(()) => Some(()),
        Err(err) if err.is_stale_element_reference() => None,
        Err(err) => panic!("{css}: {err}"),
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}
