//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the end-to-end tests of the admin console and the
//! developer portal. Each `Browser` has its own chromedriver process on a free
//! port and a fresh profile directory; both are gone when it is closed or dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

use super::within;

/// Where the chromedriver binary is (`CHROMEDRIVER` overrides).
fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned())
}

/// Where the Chromium binary is (`CHROMIUM` overrides).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// `target/screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// A headless Chromium session.
pub struct Browser {
    /// The WebDriver client: find elements, click, type, run scripts.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A desktop-sized (1280×900) browser.
    pub async fn start() -> Browser {
        Browser::start_sized(1280, 900, false).await
    }

    /// A phone-sized (390×844, touch, mobile) browser.
    pub async fn start_phone() -> Browser {
        Browser::start_sized(390, 844, true).await
    }

    async fn start_sized(width: u32, height: u32, mobile: bool) -> Browser {
        // chromedriver needs a number: take a free one from the OS (the short gap
        // before chromedriver binds it is the usual, harmless race).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts (apt-get install chromium chromium-driver)");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // The machine's network is closed: no background fetches.
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--password-store=basic".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options = json!({ "binary": chromium() });
        if mobile {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "touch": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
            });
        } else {
            args.push(format!("--window-size={width},{height}"));
        }
        options["args"] = json!(args);
        let mut caps = Capabilities::new();
        caps.insert("goog:chromeOptions".to_owned(), options);
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: retry the session for a while.
        let client = within("chromedriver session", async {
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await
                {
                    Ok(client) => break client,
                    Err(e) => {
                        if let Ok(Some(status)) = driver.try_wait() {
                            panic!("chromedriver exited ({status}): {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .await;
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The current URL, as text.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// Waits (up to the hang guard) for an element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(super::WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
    }

    /// Types `text` into the field matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("clicks");
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.expect("body text")
    }

    /// Waits (up to the hang guard) until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) {
        let wait = async {
            loop {
                if let Ok(body) = self.client.find(Locator::Css("body")).await {
                    if body.text().await.is_ok_and(|t| t.contains(needle)) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if tokio::time::timeout(super::WAIT, wait).await.is_err() {
            let text = self.text().await;
            panic!("the page never showed `{needle}`; it shows:\n{text}");
        }
    }

    /// What the page gets wrong of the accessibility basics: a `lang`, one `h1`, a
    /// skip link to `main`, a `<label for>` on every field, unique ids, a name on
    /// every button, `alt` on every image, no inline styles or scripts, and
    /// WCAG AA contrast (4.5:1, 3:1 for large text) of every visible text.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let value = self
            .client
            .execute(ACCESSIBILITY_SCRIPT, vec![])
            .await
            .expect("the accessibility check runs");
        serde_json::from_value(value).expect("a list of problems")
    }

    /// Whether the page is no wider than the window (no horizontal scrolling).
    pub async fn fits_width(&self) -> bool {
        self.client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .expect("the width check runs")
            .as_bool()
            .unwrap_or(false)
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writes screenshot");
        path
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// The checks of [`Browser::accessibility_problems`], run in the page.
const ACCESSIBILITY_SCRIPT: &str = r##"
    const problems = [];
    if (!document.documentElement.lang) problems.push("no lang");
    const h1s = document.querySelectorAll("h1").length;
    if (h1s !== 1) problems.push(h1s + " h1 elements");
    if (!document.querySelector('a[href="#main"]') || !document.getElementById("main")) problems.push("no skip link");
    for (const el of document.querySelectorAll('input:not([type="hidden"]), select, textarea')) {
        const labelled = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))
            || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.closest("label");
        if (!labelled) problems.push("unlabelled field " + (el.name || el.id || el.type));
    }
    for (const b of document.querySelectorAll("button, a[href]")) {
        if (!(b.textContent.trim() || b.getAttribute("aria-label") || b.getAttribute("title"))) problems.push("unnamed " + b.tagName.toLowerCase());
    }
    for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) problems.push("image without alt");
    const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
    const dup = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dup.length) problems.push("duplicate ids " + dup.join(","));
    if (document.querySelector("[style]")) problems.push("inline style attribute");
    for (const s of document.querySelectorAll("script")) if (!s.src) problems.push("inline script");

    // Contrast: each element with its own visible text, against the first opaque
    // background among itself and its ancestors (white if none).
    const rgba = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number).concat([1]).slice(0, 4); };
    const lum = ([r, g, b]) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const c = rgba(getComputedStyle(e).backgroundColor);
            if (c[3] >= 0.99) return c;
        }
        return [255, 255, 255, 1];
    };
    const seen = new Set();
    for (const el of document.querySelectorAll("body *")) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own) continue;
        const style = getComputedStyle(el);
        const box = el.getBoundingClientRect();
        if (style.visibility === "hidden" || style.display === "none" || box.width === 0 || box.height === 0) continue;
        if (el.closest("[aria-hidden=true], .visually-hidden, .sr-only, option, svg")) continue;
        const fg = rgba(style.color), bg = background(el);
        // A translucent text colour is blended over its background.
        const mix = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
        const [hi, lo] = [lum(mix), lum(bg)].sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
        const large = size >= 24 || (bold && size >= 18.66);
        if (ratio < (large ? 3 : 4.5)) {
            const text = el.textContent.trim().slice(0, 30);
            const key = text + ratio.toFixed(2);
            if (!seen.has(key)) { seen.add(key); problems.push("contrast " + ratio.toFixed(2) + ":1 for '" + text + "'"); }
        }
    }
    return problems;
"##;
