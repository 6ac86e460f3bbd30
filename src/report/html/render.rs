//! Writes a [`PageData`] as one self-contained HTML file: the text people and tests read
//! (totals, counts per outcome, one element per finding, the tables) rendered here and
//! escaped; the data once, as JSON in `<script type="application/json">` with `<`, `>`,
//! `&`, U+2028 and U+2029 escaped; the page's own script and style inline; and a
//! Content-Security-Policy that allows that one script by its SHA-256 hash, inline style
//! and `data:` images, and nothing else — no network at all.

use std::fmt::Write as _;
use std::io::{self, Write};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::page::{PageData, MAX_LISTED};
use crate::record::Side;
use crate::time::write_rfc3339_micros;

/// The page's script and style (compiled into the binary).
pub const SCRIPT: &str = include_str!("page.js");
pub const STYLE: &str = include_str!("page.css");

/// The Content-Security-Policy of the page, allowing `script` by its hash.
pub fn content_security_policy(script: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
         img-src data:; base-uri 'none'; form-action 'none'"
    )
}

/// Text for an HTML text node or a quoted attribute value.
pub fn esc(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// JSON made safe inside `<script type="application/json">`: `<`, `>` and `&` (which can
/// only occur inside JSON strings) and the two line separators JavaScript once treated as
/// line ends, as `\uXXXX` escapes. The JSON means the same.
pub fn script_json(json: &str, out: &mut String) {
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

fn time(us: i64) -> String {
    let mut s = String::new();
    write_rfc3339_micros(&mut s, us * 1000);
    s
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn side_name(s: Side) -> &'static str {
    s.as_str()
}

/// Writes the page.
pub fn render(page: &PageData, out: &mut impl Write) -> io::Result<()> {
    let mut h = String::with_capacity(1 << 16);
    let e = |s: &str| {
        let mut o = String::new();
        esc(s, &mut o);
        o
    };
    let title = if page.inputs.is_empty() {
        "wsclose post-mortem".to_string()
    } else {
        format!("wsclose post-mortem: {}", page.inputs.join(", "))
    };
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        h,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        e(&content_security_policy(SCRIPT))
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<meta name=\"generator\" content=\"{}\">",
        e(&page.generator)
    );
    let _ = writeln!(h, "<title>{}</title>", e(&title));
    let _ = writeln!(h, "<style>{STYLE}</style>\n</head>\n<body>");

    // Header: what was read.
    h.push_str("<header>\n<h1>Why did the WebSocket sessions close?</h1>\n<p class=\"sub\">");
    if !page.inputs.is_empty() {
        let _ = write!(
            h,
            "<span id=\"inputs\">{}</span> · ",
            e(&page.inputs.join(", "))
        );
    }
    if let (Some(a), Some(b)) = (page.capture.first_us, page.capture.last_us) {
        let _ = write!(
            h,
            "<span id=\"span\">{} to {} ({})</span> · ",
            time(a),
            time(b),
            super::adapter::secs((b - a) as f64)
        );
    }
    let _ = writeln!(h, "{}</p>\n</header>\n<main>", e(&page.generator));

    // Totals and outcomes.
    let t = &page.totals;
    h.push_str("<section id=\"overview\">\n<p class=\"big\">");
    let _ = write!(
        h,
        "<span id=\"total-sessions\" data-count=\"{0}\">{0}</span> WebSocket sessions, \
         <span id=\"abnormal\" data-count=\"{1}\">{1}</span> abnormal (reset, unanswered_close \
         or no_close_frame)",
        t.sessions, t.abnormal
    );
    if t.inexact > 0 {
        let _ = write!(h, ", {} with counts that may be lower bounds", t.inexact);
    }
    h.push_str("</p>\n<ul id=\"outcomes\">");
    for (i, (o, n)) in t.by_outcome.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let _ = write!(
            h,
            "<li data-outcome=\"{0}\" data-count=\"{1}\"><span class=\"sw o{i}\"></span>\
             <span class=\"token\">{0}</span> <span class=\"n\">{1}</span></li>",
            o.as_str(),
            n
        );
    }
    h.push_str("</ul>\n");
    let _ = writeln!(
        h,
        "<p class=\"read\">{}</p>\n</section>",
        e(&page.capture.read)
    );

    // Findings.
    h.push_str("<section id=\"findings-section\">\n<h2>Findings</h2>\n");
    if page.findings.is_empty() {
        h.push_str(
            "<p id=\"no-findings\">No finding: nothing in these sessions points to a cause \
             (healthy sessions, or too little evidence).</p>\n",
        );
    } else {
        h.push_str("<ol id=\"findings\">\n");
        for (i, f) in page.findings.iter().enumerate() {
            let _ = write!(
                h,
                "<li class=\"finding sev-{sev}\" data-cause=\"{cause}\" data-index=\"{i}\" \
                 data-sessions=\"{n}\">\n<div class=\"head\"><span class=\"sev\">{sev}</span> \
                 <code class=\"cause\">{cause}</code> <span class=\"title\">{title}</span> \
                 <span class=\"count\"><span class=\"sessions-total\">{n}</span> {word}</span> \
                 <button type=\"button\" class=\"hl\" data-index=\"{i}\">Show on the \
                 timeline</button></div>\n",
                sev = e(&f.severity),
                cause = e(&f.cause),
                title = e(&f.title),
                n = f.sessions_total,
                word = if f.sessions_total == 1 {
                    "session"
                } else {
                    "sessions"
                },
            );
            h.push_str("<details><summary>Evidence and advice</summary>\n<dl class=\"evidence\">");
            for (k, v) in &f.evidence {
                let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", e(k), e(v));
            }
            h.push_str("</dl>\n");
            let _ = writeln!(h, "<p class=\"advice\">{}</p>", e(&f.advice));
            if !f.sessions.is_empty() {
                let listed: Vec<String> = f
                    .sessions
                    .iter()
                    .take(MAX_LISTED)
                    .map(|s| s.to_string())
                    .collect();
                let more = f.sessions_total.saturating_sub(listed.len() as u64);
                let streams: Vec<String> = f
                    .tcp_streams
                    .iter()
                    .take(MAX_LISTED)
                    .map(|s| s.to_string())
                    .collect();
                let filter = match streams.as_slice() {
                    [one] => format!("tcp.stream eq {one}"),
                    _ => format!("tcp.stream in {{{}}}", streams.join(" ")),
                };
                let _ = writeln!(
                    h,
                    "<p class=\"named\">Sessions: {}{} · Wireshark: <code>{}</code></p>",
                    listed.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    e(&filter)
                );
            }
            h.push_str("</details>\n</li>\n");
        }
        h.push_str("</ol>\n");
    }
    h.push_str("</section>\n");

    // Timeline.
    let tl = &page.timeline;
    h.push_str(
        "<section id=\"timeline-section\">\n<h2>Timeline</h2>\n<div class=\"controls\">\
         <span class=\"group\">Lanes by \
         <label><input type=\"radio\" name=\"lanes\" value=\"server\" checked> server</label> \
         <label><input type=\"radio\" name=\"lanes\" value=\"client\"> client</label> \
         <label><input type=\"radio\" name=\"lanes\" value=\"outcome\"> outcome</label></span> \
         <span class=\"group\"><button type=\"button\" id=\"zoom-in\" title=\"Zoom in (+)\">+</button>\
         <button type=\"button\" id=\"zoom-out\" title=\"Zoom out (-)\">−</button>\
         <button type=\"button\" id=\"zoom-reset\" title=\"Whole capture (0)\">Whole capture</button>\
         <button type=\"button\" id=\"zoom-hl\">Zoom to highlighted</button>\
         <button type=\"button\" id=\"clear-hl\">Clear highlight</button></span> \
         <span id=\"hl-note\" role=\"status\"></span></div>\n\
         <div id=\"tl-wrap\"><canvas id=\"tl\" width=\"1200\" height=\"480\" \
         aria-label=\"Sessions as bars over capture time\"></canvas>\
         <div id=\"tip\" hidden></div></div>\n\
         <p class=\"help\">Wheel or +/− zooms time around the pointer, drag pans (time and \
         lanes), a click on a session shows its last frames below.</p>\n<p class=\"legend\">",
    );
    for (i, (o, n)) in t.by_outcome.iter().enumerate() {
        if *n > 0 {
            let _ = write!(
                h,
                "<span class=\"key\"><span class=\"sw o{i}\"></span>{}</span> ",
                o.as_str()
            );
        }
    }
    h.push_str(
        "<span class=\"key\"><span class=\"mk\">▲</span>client's Close frame</span> \
         <span class=\"key\"><span class=\"mk\">▼</span>server's Close frame</span> \
         <span class=\"key\"><span class=\"mk\">|</span>FIN</span> \
         <span class=\"key\"><span class=\"mk\">✕</span>RST</span> \
         <span class=\"key\"><span class=\"mk\">┈</span>gap in the capture</span></p>\n",
    );
    let _ = writeln!(
        h,
        "<p id=\"agg-note\"><span id=\"kept\" data-count=\"{0}\">{0}</span> drawn one by one; \
         <span id=\"aggregated\" data-count=\"{1}\">{1}</span> aggregated into time bins \
         (the strips under each lane: sessions by when they ended).</p>\n</section>",
        tl.columns.len(),
        tl.aggregated
    );

    // Drill-down.
    h.push_str(
        "<section id=\"drill-section\">\n<h2>The last moments of a session</h2>\n\
         <p><label>Session <select id=\"drill-select\"><option value=\"\">(click one on the \
         timeline, or pick one a finding names)</option></select></label></p>\n\
         <p id=\"drill-head\"></p>\n<table id=\"drill-table\"><thead><tr><th>t (s)</th>\
         <th>packet</th><th>from</th><th>event</th><th>opcode</th><th>fin</th><th>len</th><th>code</th>\
         <th>reason / preview</th></tr></thead><tbody></tbody></table>\n</section>\n",
    );

    // Distributions.
    h.push_str("<section id=\"dist-section\">\n<h2>Distributions</h2>\n<div class=\"dists\">\n");
    for (i, d) in page.distributions.iter().enumerate() {
        let fmt = |v: f64| {
            if d.seconds {
                super::adapter::secs(v * 1e6)
            } else {
                format!("{v:.0}")
            }
        };
        let _ = write!(
            h,
            "<figure class=\"dist\" data-dist=\"{name}\" data-index=\"{i}\"><figcaption><code>{name}</code>: \
             {meaning}</figcaption><canvas class=\"hist\" width=\"380\" height=\"150\"></canvas>",
            name = e(&d.name),
            meaning = e(&d.meaning)
        );
        if d.count == 0 {
            h.push_str("<p class=\"q\">no values</p>");
        } else {
            let _ = write!(
                h,
                "<p class=\"q\">{} · min {} · median {} · p90 {} · max {}</p>",
                plural(d.count, "value", "values"),
                fmt(d.min),
                fmt(d.p50),
                fmt(d.p90),
                fmt(d.max)
            );
        }
        for f in page.findings.iter().filter_map(|f| f.mark.as_ref()) {
            if f.dist == d.name {
                let _ = write!(h, "<p class=\"mark-note\">Marked: {}</p>", e(&f.label));
            }
        }
        h.push_str("</figure>\n");
    }
    h.push_str("</div>\n</section>\n");

    // Close codes, reasons, who ended.
    h.push_str(
        "<section id=\"codes-section\">\n<h2>Close codes</h2>\n<table id=\"codes\"><thead><tr>\
         <th>code</th><th>name</th><th>meaning</th><th>from client</th><th>from server</th>\
         </tr></thead><tbody>",
    );
    for c in &page.close_codes {
        let _ = write!(
            h,
            "<tr data-code=\"{0}\"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            c.code,
            e(&c.name),
            e(&c.meaning),
            c.client,
            c.server
        );
    }
    let (n, client, server) = page.close_codes_others;
    if n > 0 {
        let _ = write!(
            h,
            "<tr class=\"others\"><td colspan=\"3\">{n} other codes, less used</td><td>{client}</td>\
             <td>{server}</td></tr>"
        );
    }
    if page.close_codes.is_empty() {
        h.push_str("<tr><td colspan=\"5\">no Close frame in the capture</td></tr>");
    }
    h.push_str("</tbody></table>\n");
    if !page.reasons.is_empty() {
        h.push_str(
            "<h3>Reasons</h3>\n<table id=\"reasons\"><thead><tr><th>from</th><th>code</th>\
             <th>reason</th><th>Close frames</th></tr></thead><tbody>",
        );
        for r in &page.reasons {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"reason\">{}</td><td>{}</td></tr>",
                side_name(r.side),
                r.code,
                e(&r.reason),
                r.count
            );
        }
        h.push_str("</tbody></table>\n");
        if page.reasons_others > 0 {
            let _ = writeln!(h, "<p>and {} more</p>", page.reasons_others);
        }
    }
    let w = &page.who;
    let _ = writeln!(
        h,
        "<h3>Who ended it</h3>\n<table id=\"who\"><thead><tr><th></th><th>client</th>\
         <th>server</th><th>neither</th></tr></thead><tbody>\
         <tr><th>first Close frame</th><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr><th>ending packet (Close, FIN or RST)</th><td>{}</td><td>{}</td><td></td></tr>\
         <tr><th>TCP FIN (first)</th><td>{}</td><td>{}</td><td></td></tr>\
         <tr><th>TCP RST (first)</th><td>{}</td><td>{}</td><td></td></tr>\
         <tr><th>TCP still open</th><td></td><td></td><td>{}</td></tr></tbody></table>",
        w.first_close[0],
        w.first_close[1],
        w.first_close[2],
        w.ended_by[0],
        w.ended_by[1],
        w.fin_by[0],
        w.fin_by[1],
        w.rst_by[0],
        w.rst_by[1],
        w.open
    );
    let r = &page.reconnects;
    let _ = write!(
        h,
        "<h3>Reconnects</h3>\n<p id=\"reconnects\">{} by {}",
        plural(r.count, "reconnect", "reconnects"),
        plural(r.clients, "client", "clients")
    );
    for (from, to, n, clients) in &r.storms {
        let _ = write!(
            h,
            "; a burst of {n} from {clients} clients between {} and {}",
            time(*from),
            time(*to)
        );
    }
    h.push_str("</p>\n</section>\n");

    if !page.notes.is_empty() {
        h.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n<ul>");
        for n in &page.notes {
            let _ = write!(h, "<li>{}</li>", e(n));
        }
        h.push_str("</ul>\n</section>\n");
    }
    h.push_str("</main>\n<script type=\"application/json\" id=\"data\">");
    out.write_all(h.as_bytes())?;
    h.clear();
    script_json(&page.to_json(), &mut h);
    out.write_all(h.as_bytes())?;
    h.clear();
    let _ = write!(
        h,
        "</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    out.write_all(h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_escapes_what_ends_a_script() {
        let json = serde_json::to_string("</script><img src=x onerror=alert(1)>&\u{2028}\u{2029}")
            .unwrap();
        let mut s = String::new();
        script_json(&json, &mut s);
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!s.contains(bad), "{bad:?} in {s}");
        }
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(
            back,
            "</script><img src=x onerror=alert(1)>&\u{2028}\u{2029}"
        );
    }

    #[test]
    fn text_is_escaped() {
        let mut s = String::new();
        esc("<a href='x'>\"&", &mut s);
        assert_eq!(s, "&lt;a href=&#39;x&#39;&gt;&quot;&amp;");
    }

    /// The script can be inlined as it is: nothing in it ends the element, and it never
    /// parses HTML out of strings.
    #[test]
    fn the_script_is_inline_safe() {
        let lower = SCRIPT.to_ascii_lowercase();
        assert!(!lower.contains("</script"));
        assert!(!lower.contains("<!--"));
        for sink in [
            "innerhtml",
            "outerhtml",
            "insertadjacenthtml",
            "document.write",
            "eval(",
            "new function",
            "srcdoc",
            "createcontextualfragment",
        ] {
            assert!(!lower.contains(sink), "the page's script uses {sink}");
        }
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(!STYLE.contains("url("), "the style fetches nothing");
    }

    #[test]
    fn the_policy_names_the_script_s_hash() {
        let p = content_security_policy("a");
        // sha256("a"), base64.
        assert!(
            p.contains("'sha256-ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs='"),
            "{p}"
        );
        assert!(p.starts_with("default-src 'none';"));
        assert!(p.contains("img-src data:"));
    }
}
