//! Headless Chromium driven over WebDriver (chromedriver), for the tests of
//! pages: the API readers and the web console.
//!
//! Host resolution is limited to 127.0.0.1, so nothing could leave even if a
//! page asked; [`Browser::outside_requests`] checks from DevTools' network
//! log that none was even asked for. [`Browser::axe_serious`] runs axe-core
//! (installed by `.ci/axe.sh`). Screenshots go to `target/screenshots/`. At
//! most two browsers run at once across the whole test binary (two cores).

// Not every test uses every method.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

static SLOTS: Semaphore = Semaphore::const_new(2);

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _slot: SemaphorePermit<'static>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where screenshots are kept: `target/screenshots` (or under `CARGO_TARGET_DIR`).
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    target.join("screenshots")
}

/// axe-core's script, installed by `.ci/axe.sh` on first use.
fn axe_source() -> String {
    let path = |home: &str| PathBuf::from(home).join(".cache/lockers-axe/node_modules/axe-core/axe.min.js");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    if !path(&home).exists() {
        let status = std::process::Command::new("bash").arg(".ci/axe.sh").current_dir(repo()).status();
        eprintln!("`bash .ci/axe.sh`: {status:?}");
    }
    std::fs::read_to_string(path(&home)).expect("axe-core is installed (`bash .ci/axe.sh`)")
}

impl Browser {
    pub async fn start() -> Browser {
        let slot = SLOTS.acquire().await.expect("the browser slots are never closed");
        // Chromium, its driver and the Indic fonts: installed once per run when missing.
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let status = std::process::Command::new("bash").arg(".ci/chromium.sh").current_dir(repo()).output();
            if !status.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("`bash .ci/chromium.sh`: {status:?}");
            }
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (Debian package `chromium-driver`; `bash .ci/chromium.sh`)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"performance": "ALL"},
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=en-US",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ]},
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(response) = http.post(format!("{base}/session")).json(&capabilities).send().await {
                let body: Value = response.json().await.unwrap();
                session = Some(body["value"]["sessionId"].as_str().expect("a session").to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let session = session.expect("chromedriver answered within 20 s");
        let browser = Browser { driver, base, session, http, _slot: slot };
        browser.call(reqwest::Method::POST, "/timeouts", json!({"script": 60_000, "pageLoad": 60_000})).await;
        browser
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let request = self.http.request(method, url);
        let request = if body.is_null() { request } else { request.json(&body) };
        let response = request.send().await.unwrap();
        response.json::<Value>().await.unwrap()["value"].take()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` in the page (a function body; `arguments` are `args`).
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": args})).await
    }

    /// The element `css` matches, waiting up to 10 s for it to appear.
    pub async fn find(&self, css: &str) -> String {
        for _ in 0..50 {
            let found =
                self.call(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
            if let Some(id) = found[ELEMENT].as_str() {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no element matches {css:?} on {}:\n{}", self.url().await, self.text().await);
    }

    /// Whether an element matches `css` now.
    pub async fn exists(&self, css: &str) -> bool {
        let found = self.call(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        found[ELEMENT].is_string()
    }

    /// Types `text` into the field `css` (cleared first), as a keyboard would.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), json!({})).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    /// Chooses the option whose value is `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]")).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    /// Sends keys to whatever has the focus (e.g. "\u{E007}" is Enter).
    pub async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call(reqwest::Method::POST, "/actions", body).await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.run("return document.body ? document.body.innerText : ''", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's text (and its components' shadow trees') once it holds
    /// `expected` (or after 60 s).
    pub async fn text_when(&self, expected: &str) -> String {
        let script = "return [document.documentElement, \
            ...[...document.querySelectorAll('*')].filter(e => e.shadowRoot).map(e => e.shadowRoot)] \
            .map(n => n.innerText ?? n.textContent).join('\\n')";
        let mut text = String::new();
        for _ in 0..120 {
            text = self.run(script, json!([])).await.as_str().unwrap_or_default().to_owned();
            if text.contains(expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        text
    }

    pub async fn set_window(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Saves a PNG of the viewport as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("a screenshot")).unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// axe-core's serious and critical violations on the page shown now,
    /// one line each (rule, help, where).
    pub async fn axe_serious(&self) -> Vec<String> {
        let loaded = self.run(&format!("{};\nreturn typeof axe;", axe_source()), json!([])).await;
        assert_eq!(loaded, "object", "axe-core did not load");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(e => done(['axe failed: ' + e]));";
        let found = self.call(reqwest::Method::POST, "/execute/async", json!({"script": script, "args": []})).await;
        found.as_array().expect("axe's answer").iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()
    }

    /// Every URL the page asked for since the last call (DevTools' network log).
    pub async fn requested(&self) -> Vec<String> {
        let log = self.call(reqwest::Method::POST, "/se/log", json!({"type": "performance"})).await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| m["message"]["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// The requests since the last call that went anywhere but `local`
    /// (e.g. `http://127.0.0.1:PORT/`) or a `data:` URL.
    pub async fn outside_requests(&self, local: &str) -> Vec<String> {
        self.requested().await.into_iter().filter(|u| !u.starts_with(local) && !u.starts_with("data:")).collect()
    }

    pub async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", Value::Null).await;
        let _ = self.driver.kill().await;
    }
}
