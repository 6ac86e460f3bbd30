//! The HTML post-mortem page (issue 12): self-contained, escaped, and — in a real headless
//! Chromium — loading without a console error, running no script from the capture, and
//! stating the session count, the counts per outcome and the findings as DOM text.
//!
//! The browser test needs `chromium` (or `$WSCLOSE_CHROMIUM`) and a Python with
//! `websockets` (`$WSCLOSE_PYTHON`, the fixtures' venv, or `python3`). Without them it says
//! so and passes, unless `WSCLOSE_REQUIRE_BROWSER=1` (CI sets it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use wsclose::capture::Capture;
use wsclose::pipeline::{analyze, Options};
use wsclose::record::SessionRecord;
use wsclose::report::columns::Redact;
use wsclose::report::html::marks::MarkStore;
use wsclose::report::html::{adapter, page_data, render};
use wsclose::summary::dist::LogHist;
use wsclose::summary::findings::{Cause, Ev, Finding, SessionRef, Severity};
use wsclose::summary::{Builder, Source};

use crate::util::{parse_csv, root, run, sessions};

/// The captures the page is proven on: a restart storm, an idle timeout through a real
/// nginx, healthy sessions, and Close reasons full of markup.
const PAGES: [&str; 5] = [
    "fixtures/why/why-restart.pcap",
    "fixtures/why/why-restart-kill.pcap",
    "fixtures/proxy/proxy-nginx-idle.pcap",
    "fixtures/why/why-healthy.pcap",
    "fixtures/html/html-hostile.pcap",
];

const XSS: &str = "</script><img src=x onerror=alert(1)>";

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html-pages");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The page of `capture`, as `wsclose summary --format html -o FILE` writes it.
fn page_of(capture: &str) -> String {
    let stem = Path::new(capture)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let file = out_dir().join(format!("{stem}.cli.html"));
    let f = file.display().to_string();
    let (_, err, code) = run(&["summary", "--format", "html", "-q", "-o", &f, capture]);
    assert_eq!(code, 0, "{capture}: {err}");
    std::fs::read_to_string(&file).unwrap()
}

fn records(capture: &str) -> Vec<SessionRecord> {
    let opts = Options::default();
    let cap = Capture::open(&[root().join(capture).display().to_string()], &opts.limits);
    let mut v = Vec::new();
    analyze(cap, &opts, &mut |r| {
        v.push(r);
        Ok(())
    })
    .unwrap();
    v
}

/// The text between `open` and the next `close` after it.
fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let a = s.find(open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let b = a + s[a..].find(close).unwrap_or_else(|| panic!("no {close}"));
    &s[a..b]
}

/// Tags the page's own markup uses; anything else would have come from the capture.
const TAGS: [&str; 40] = [
    "!DOCTYPE",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "span",
    "main",
    "section",
    "ul",
    "ol",
    "li",
    "div",
    "code",
    "button",
    "details",
    "summary",
    "dl",
    "dt",
    "dd",
    "label",
    "input",
    "canvas",
    "select",
    "option",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
    "script",
];

/// Every tag in `html` outside <style> and <script> elements.
fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let name: String = rest
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        if !rest.starts_with('/') && (name == "script" || name == "style") {
            let end = format!("</{name}>");
            let j = rest.find(&end).expect("element closed");
            rest = &rest[j..];
        }
        out.push(name);
    }
    out
}

/// Checks what can be checked without a browser; returns the page's data.
fn check_static(name: &str, html: &str) -> serde_json::Value {
    assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
    // One inline script, allowed by its hash, and nothing that could fetch.
    let csp = between(
        html,
        "http-equiv=\"Content-Security-Policy\" content=\"",
        "\"",
    )
    .replace("&#39;", "'");
    let script = between(html, "</script>\n<script>", "</script>");
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
    assert!(csp.starts_with("default-src 'none'; "), "{name}: {csp}");
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}';")),
        "{name}: {csp}"
    );
    assert!(csp.contains("style-src 'unsafe-inline'") && csp.contains("img-src data:"));
    assert_eq!(
        html.matches("<script").count(),
        2,
        "{name}: the data and the script"
    );
    for t in tags(html) {
        assert!(
            TAGS.contains(&t.as_str()),
            "{name}: a <{t}> the page does not write"
        );
    }
    // The data: once, escaped for a script element, and meaning what it says.
    let json = between(
        html,
        "<script type=\"application/json\" id=\"data\">",
        "</script>",
    );
    for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
        assert!(!json.contains(bad), "{name}: {bad:?} in the data");
    }
    let data: serde_json::Value = serde_json::from_str(json).expect("the data is JSON");
    // The session count, in plain digits, as the CSV has it.
    let (csv, _, code) = sessions(&[&root().join(name)], 2);
    assert_eq!(code, 0);
    let rows = parse_csv(&csv).len() - 1;
    assert!(
        html.contains(&format!(
            "id=\"total-sessions\" data-count=\"{rows}\">{rows}<"
        )),
        "{name}: {rows} sessions"
    );
    assert_eq!(data["totals"]["sessions"], rows as u64);
    let drawn = data["timeline"]["session"].as_array().unwrap().len() as u64;
    assert_eq!(
        drawn + data["timeline"]["aggregated"].as_u64().unwrap(),
        rows as u64
    );
    data
}

/// The page says what the JSON summary says: totals and findings (cause, severity, title,
/// sessions).
fn same_as_json_summary(name: &str, data: &serde_json::Value) {
    let (json, err, code) = run(&["summary", "--format", "json", "-q", name]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (page, want) = (&data["findings"], &summary["findings"]);
    assert_eq!(
        page.as_array().unwrap().len(),
        want.as_array().unwrap().len(),
        "{name}"
    );
    for (p, w) in page
        .as_array()
        .unwrap()
        .iter()
        .zip(want.as_array().unwrap())
    {
        for k in ["cause", "severity", "title", "sessions", "sessions_total"] {
            assert_eq!(p[k], w[k], "{name}: finding {k}");
        }
    }
    assert_eq!(
        data["totals"]["sessions"], summary["totals"]["sessions"],
        "{name}"
    );
}

#[test]
fn pages_are_self_contained_and_escape_what_the_capture_says() {
    for name in PAGES {
        let html = page_of(name);
        let data = check_static(name, &html);
        same_as_json_summary(name, &data);
    }
    // The restart storm is named on the page.
    let html = page_of("fixtures/why/why-restart.pcap");
    assert!(html.contains("data-cause=\"server_shutdown\""));
    assert!(html.contains("data-cause=\"reconnect_storm\""));
    assert!(!page_of("fixtures/why/why-healthy.pcap").contains("<li class=\"finding "));
    assert!(page_of("fixtures/proxy/proxy-nginx-idle.pcap").contains("data-cause=\"idle_timeout\""));
    let html = page_of("fixtures/html/html-hostile.pcap");
    assert!(!html.contains(XSS), "the reason is never written raw");
    assert!(!html.contains("<img"));
    // As text in the reasons table, and as data.
    assert!(html.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e"));
    assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt; &amp; &quot;q&quot; &#39;q&#39;"));
}

/// The page of `capture` built from its records, drawing at most `max_kept` sessions one by
/// one (the rest go into time bins).
fn page_drawing_few(capture: &str, max_kept: usize) -> String {
    let recs = records(capture);
    let mut b = Builder::default();
    let mut marks = MarkStore::default();
    for (i, r) in recs.iter().enumerate() {
        b.add(0, i as u64 + 1, r).unwrap();
        marks.add(i as u64 + 1, r, Redact::Secrets).unwrap();
    }
    let report = b.finish(vec![Source::default()]).unwrap();
    let page = page_data(
        &report,
        &mut marks,
        &adapter::Inputs {
            names: &[capture.to_string()],
            rings: &|_| Ok(None),
            max_kept,
        },
    )
    .unwrap();
    let mut out = Vec::new();
    render(&page, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// A page whose findings have markup in their texts (the summary's own do not), name
/// sessions, and mark an interval.
fn page_with_findings() -> String {
    let capture = "fixtures/html/html-hostile.pcap";
    let recs = records(capture);
    let mut b = Builder::default();
    let mut marks = MarkStore::default();
    for (i, r) in recs.iter().enumerate() {
        b.add(0, i as u64 + 1, r).unwrap();
        marks.add(i as u64 + 1, r, Redact::Secrets).unwrap();
    }
    let mut report = b.finish(vec![Source::default()]).unwrap();
    let mut spread = LogHist::default();
    for r in &recs {
        spread.add(((r.end_ns - r.start_ns) / 1000) as u64);
    }
    let refs = |v: &[u64]| {
        v.iter()
            .map(|s| SessionRef {
                source: 0,
                session: *s,
                tcp_stream: s - 1,
            })
            .collect::<Vec<_>>()
    };
    report.findings = vec![
        Finding {
            cause: Cause::PolicyViolation,
            severity: Severity::Warning,
            title: format!("2 sessions closed with {XSS}"),
            sessions: refs(&[1, 2]),
            sessions_total: 2,
            evidence: vec![("reasons", Ev::Tally(vec![(XSS.into(), 2)]))],
            advice: "<b>check</b> the token".into(),
        },
        Finding {
            cause: Cause::LifetimeLimit,
            severity: Severity::Warning,
            title: "sessions ended at the same age".into(),
            sessions: refs(&[1, 2, 3]),
            sessions_total: 3,
            evidence: vec![("age_spread_s", Ev::MicrosSpread(spread))],
            advice: "raise the cap".into(),
        },
    ];
    let page = page_data(
        &report,
        &mut marks,
        &adapter::Inputs {
            names: &[capture.to_string()],
            rings: &|_| Ok(None),
            max_kept: adapter::MAX_KEPT,
        },
    )
    .unwrap();
    let mut out = Vec::new();
    render(&page, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn findings_are_elements_with_cause_title_and_count() {
    let html = page_with_findings();
    let data = check_static("fixtures/html/html-hostile.pcap", &html);
    assert_eq!(html.matches("<li class=\"finding ").count(), 2);
    assert!(html.contains("data-cause=\"policy_violation\""));
    assert!(html.contains("<code class=\"cause\">lifetime_limit</code>"));
    assert!(html.contains("<span class=\"sessions-total\">3</span> sessions"));
    assert!(!html.contains("<b>"), "advice is text");
    assert_eq!(data["findings"][1]["mark"]["dist"], "duration_s");
    let flags: Vec<u64> = data["timeline"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_u64().unwrap())
        .collect();
    assert!(
        flags.iter().all(|f| f & 8 != 0),
        "named sessions are flagged"
    );
}

// ---------------------------------------------------------------------------------------
// In a real browser.

fn find_chromium() -> Option<String> {
    if let Some(c) = std::env::var_os("WSCLOSE_CHROMIUM") {
        return Some(c.to_string_lossy().into_owned());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

fn find_python() -> Option<String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("WSCLOSE_PYTHON") {
        candidates.push(p.to_string_lossy().into_owned());
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = Path::new(&home).join(".cache/wsclose-fixtures/venv/bin/python3");
        candidates.push(venv.display().to_string());
    }
    candidates.push("python3".into());
    candidates.push("/usr/bin/python3".into());
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import websockets"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The browser and the Python that drives it, or why the test cannot run.
fn browser() -> Option<(String, String)> {
    let found = (find_chromium(), find_python());
    if let (Some(c), Some(p)) = found {
        return Some((c, p));
    }
    let why = match found {
        (None, _) => "no chromium (apt-get install chromium, or set WSCLOSE_CHROMIUM)",
        _ => "no Python with websockets (set WSCLOSE_PYTHON)",
    };
    if std::env::var_os("WSCLOSE_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
        panic!("the browser test must run here (WSCLOSE_REQUIRE_BROWSER=1): {why}");
    }
    eprintln!("html: SKIPPED the browser test: {why}");
    None
}

/// Opens `pages` in headless Chromium (or in `firefox`); returns one result object per
/// page.
fn open_in_browser(
    python: &str,
    browser: [&str; 2],
    pages: &[PathBuf],
    shots: &Path,
) -> Vec<serde_json::Value> {
    let out = Command::new(python)
        .arg(root().join("tests/browser/check_page.py"))
        .args(browser)
        .args(["--interact", "--screenshot-dir"])
        .arg(shots)
        .args(pages)
        .output()
        .expect("run check_page.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_page.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// What every page must show in the browser.
fn check_in_browser(r: &serde_json::Value, data: &serde_json::Value) {
    let page = r["page"].as_str().unwrap();
    assert_eq!(r["failure"], serde_json::Value::Null, "{page}");
    assert_eq!(
        r["ready"], true,
        "{page}: the script ran under the CSP and drew"
    );
    assert_eq!(r["errors"], serde_json::json!([]), "{page}: console errors");
    assert_eq!(
        r["dialogs"],
        serde_json::json!([]),
        "{page}: a script from the capture ran"
    );
    assert_eq!(r["images"], 0, "{page}");
    assert_eq!(r["elements_with_on_attributes"], 0, "{page}");
    assert_eq!(r["canvas_drawn"], true, "{page}");
    assert_eq!(r.get("interaction_error"), None, "{page}");
    let total = data["totals"]["sessions"].as_u64().unwrap();
    assert_eq!(r["total"], total.to_string(), "{page}");
    let text = r["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("{total} WebSocket sessions")),
        "{page}"
    );
    // Each outcome with its count.
    let outcomes = data["outcomes"].as_array().unwrap();
    let mut want = Vec::new();
    for (i, n) in data["totals"]["by_outcome"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        if n.as_u64().unwrap() > 0 {
            want.push(serde_json::json!([outcomes[i], n.to_string()]));
        }
    }
    assert_eq!(r["outcomes"], serde_json::Value::Array(want), "{page}");
    // One element per finding: its cause, title and session count.
    let findings = data["findings"].as_array().unwrap();
    let shown = r["findings"].as_array().unwrap();
    assert_eq!(shown.len(), findings.len(), "{page}");
    for (s, f) in shown.iter().zip(findings) {
        assert_eq!(s["cause"], f["cause"], "{page}");
        assert_eq!(s["title"], f["title"], "{page}");
        assert_eq!(s["sessions"], f["sessions_total"].to_string(), "{page}");
    }
    assert_eq!(r["no_findings"], findings.is_empty(), "{page}");
    let highlights = r["interaction"]["highlights"].as_array().unwrap();
    assert_eq!(highlights.len(), findings.len(), "{page}");
    for (h, f) in highlights.iter().zip(findings) {
        let note = h.as_str().unwrap();
        assert!(
            note.starts_with(f["cause"].as_str().unwrap()),
            "{page}: {note}"
        );
    }
    assert!(
        r["interaction"]["tips"].as_u64().unwrap() > 0,
        "{page}: hovering shows sessions"
    );
}

/// Writes the pages the browser tests open; returns them with their data.
fn browser_pages(dir: &Path) -> (Vec<PathBuf>, Vec<serde_json::Value>) {
    let mut pages = Vec::new();
    let mut datas = Vec::new();
    for name in PAGES {
        let html = page_of(name);
        datas.push(check_static(name, &html));
        let stem = Path::new(name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let p = dir.join(format!("{stem}.html"));
        std::fs::write(&p, &html).unwrap();
        pages.push(p);
    }
    let html = page_with_findings();
    datas.push(check_static("fixtures/html/html-hostile.pcap", &html));
    let p = dir.join("hostile-findings.html");
    std::fs::write(&p, &html).unwrap();
    pages.push(p);
    // Sessions aggregated into bins: 15 sessions, 5 drawn one by one.
    let name = "fixtures/captures/real-mixed-endings.pcap";
    let html = page_drawing_few(name, 5);
    let data = check_static(name, &html);
    assert_eq!(data["timeline"]["aggregated"], 10);
    assert!(html.contains("<span id=\"aggregated\" data-count=\"10\">10</span>"));
    datas.push(data);
    let p = dir.join("aggregated.html");
    std::fs::write(&p, &html).unwrap();
    pages.push(p);
    (pages, datas)
}

#[test]
fn pages_load_in_headless_chromium_without_errors_and_run_nothing_from_the_capture() {
    let Some((chromium, python)) = browser() else {
        return;
    };
    let dir = out_dir();
    let (pages, datas) = browser_pages(&dir);
    let results = open_in_browser(&python, ["--chromium", &chromium], &pages, &dir);
    check_all(&pages, &datas, &results);
}

/// The same in Firefox (WebDriver BiDi), where one is installed (`$WSCLOSE_FIREFOX` or
/// `firefox`); CI runs Chromium only.
#[test]
fn pages_load_in_headless_firefox_too() {
    let firefox = std::env::var("WSCLOSE_FIREFOX").unwrap_or_else(|_| "firefox".into());
    let found = Command::new(&firefox)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("html: SKIPPED the Firefox test: no firefox (set WSCLOSE_FIREFOX)");
        return;
    }
    let Some(python) = find_python() else {
        eprintln!("html: SKIPPED the Firefox test: no Python with websockets");
        return;
    };
    let dir = out_dir().join("firefox");
    std::fs::create_dir_all(&dir).unwrap();
    let (pages, datas) = browser_pages(&dir);
    let results = open_in_browser(&python, ["--firefox", &firefox], &pages, &dir);
    check_all(&pages, &datas, &results);
}

fn check_all(pages: &[PathBuf], datas: &[serde_json::Value], results: &[serde_json::Value]) {
    assert_eq!(results.len(), pages.len());
    let mut seen = HashSet::new();
    for (r, data) in results.iter().zip(datas) {
        check_in_browser(r, data);
        seen.insert(r["page"].as_str().unwrap().to_string());
        let shot = r["screenshot"].as_str().expect("a screenshot");
        assert!(std::fs::metadata(shot).unwrap().len() > 1000, "{shot}");
    }
    assert_eq!(seen.len(), pages.len());
    // The hostile reasons are on the page as text, and nothing of them ran.
    for r in &results[4..6] {
        let text = r["text"].as_str().unwrap();
        assert!(text.contains(XSS), "the reason reads as text");
        assert!(text.contains("<script>alert(2)</script> & \"q\" 'q'"));
    }
    let last = &results[5];
    assert!(results[6]["text"]
        .as_str()
        .unwrap()
        .contains("10 aggregated into time bins"));
    assert!(last["interaction"]["drill_options"].as_u64().unwrap() >= 2);
    assert!(
        last["interaction"]["drill_rows"].as_u64().unwrap() >= 3,
        "the drill-down shows a named session's moments"
    );
}

/// `--redact` hides query-string values and payload previews on the page as in every
/// other output; by default the previews of the named sessions' last frames are there.
#[test]
fn redact_hides_query_values_and_previews() {
    let data = |args: &[&str]| -> serde_json::Value {
        let file = out_dir().join(format!("redact-{}.html", args.len()));
        let f = file.display().to_string();
        let mut a = vec!["summary", "--format", "html", "-q", "-o", &f];
        a.extend_from_slice(args);
        let (_, err, code) = run(&a);
        assert_eq!(code, 0, "{err}");
        let html = std::fs::read_to_string(&file).unwrap();
        check_static("fixtures/why/why-restart.pcap", &html)
    };
    let previews = |d: &serde_json::Value| -> Vec<String> {
        d["drill"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["events"].as_array().unwrap().clone())
            .filter(|e| e[2] == "frame" && e[3] == "text")
            .map(|e| e[8].as_str().unwrap().to_string())
            .collect()
    };
    let paths = |d: &serde_json::Value| -> Vec<String> {
        let t = &d["timeline"];
        t["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                t["dict"][i.as_u64().unwrap() as usize]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let plain = data(&["fixtures/why/why-restart.pcap"]);
    let p = previews(&plain);
    assert!(
        !p.is_empty() && p.iter().all(|x| !x.starts_with("<redacted")),
        "{p:?}"
    );
    assert!(paths(&plain).iter().all(|p| p.contains("sid=R")));
    let hidden = data(&["--redact", "fixtures/why/why-restart.pcap"]);
    let p = previews(&hidden);
    assert!(
        !p.is_empty() && p.iter().all(|x| x.starts_with("<redacted ")),
        "{p:?}"
    );
    let paths = paths(&hidden);
    assert!(
        paths.iter().all(|p| p.contains("sid=<redacted>")),
        "{paths:?}"
    );
}
