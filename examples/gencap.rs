//! Synthetic capture generator.
//!
//! ```text
//! gencap [--seed N] [--sessions N] [--mix chat|bulk|mixed|C:B] [--bytes 2G]
//!        [--concurrency N] [--gap-fraction F] [--header-gap-fraction F]
//!        [--reorder-fraction F] [-o FILE|-] [--expected FILE] [--tls [--keylog FILE]]
//! gencap fixtures DIR
//! gencap crowd syn-only|open-sessions|open-sessions-distinct|holding|half-heads N [--v6-every K] [--hold BYTES] [-o FILE|-]
//! ```
//! `crowd` writes N connections open at once (memory measurements): unanswered SYNs,
//! WebSocket sessions that never close, sessions that all hold BYTES (default 64K) of
//! out-of-order data at once before they close, or Upgrade request heads of BYTES
//! (default 12K) that never end.
//! The capture goes to stdout by default; a summary goes to stderr. `--tls` writes the
//! same sessions as `wss://` (TLS 1.3, TLS_AES_128_GCM_SHA256) and their key log to
//! `--keylog FILE` (default: the output file with `.keys` in place of its extension).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use wsclose_synth::{csv_header, fixtures, generate_with_keylog, GenConfig, Mix};

const USAGE: &str =
    "usage: gencap [--seed N] [--sessions N] [--mix chat|bulk|mixed|C:B] [--bytes SIZE[K|M|G]] \
[--concurrency N] [--gap-fraction F] [--header-gap-fraction F] [--reorder-fraction F] \
[-o FILE|-] [--expected FILE] [--tls [--keylog FILE]]\n       gencap fixtures DIR\n       gencap crowd syn-only|open-sessions|open-sessions-distinct|holding|half-heads N [--v6-every K] [--hold BYTES] [-o FILE|-]";

/// `gencap crowd KIND N [--v6-every K] [-o FILE|-]`.
fn crowd(args: &[String]) -> Result<(), String> {
    use wsclose_synth::crowd::{Crowd, CrowdCapture, CrowdKind};
    let kind = match args.first().map(String::as_str) {
        Some("syn-only") => CrowdKind::SynOnly,
        Some("open-sessions") => CrowdKind::OpenSessions,
        Some("open-sessions-distinct") => CrowdKind::OpenSessionsDistinct,
        Some("holding") => CrowdKind::Holding { bytes: 64 << 10 },
        Some("half-heads") => CrowdKind::HalfHeads { bytes: 12 << 10 },
        _ => return Err(USAGE.into()),
    };
    let n = args.get(1).and_then(|v| v.parse().ok()).ok_or(USAGE)?;
    let mut c = Crowd {
        kind,
        connections: n,
        v6_every: 0,
        seed: 1,
    };
    let mut out = "-".to_string();
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(USAGE)?;
        match a.as_str() {
            "--v6-every" => c.v6_every = v.parse().map_err(|_| USAGE)?,
            "--hold" => {
                let b = parse_size(v)
                    .and_then(|b| u32::try_from(b).ok())
                    .ok_or(USAGE)?;
                c.kind = match c.kind {
                    CrowdKind::HalfHeads { .. } => CrowdKind::HalfHeads { bytes: b },
                    _ => CrowdKind::Holding { bytes: b },
                };
            }
            "-o" | "--output" => out = v.clone(),
            _ => return Err(USAGE.into()),
        }
    }
    let mut src = CrowdCapture::new(c);
    let res = if out == "-" {
        io::copy(&mut src, &mut io::stdout().lock())
    } else {
        File::create(&out).and_then(|mut f| io::copy(&mut src, &mut f))
    };
    res.map(|_| ()).map_err(|e| format!("{out}: {e}"))
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

fn run(args: Vec<String>) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("fixtures") {
        let dir = args.get(1).ok_or(USAGE)?;
        let files = fixtures::write_fixtures(Path::new(dir)).map_err(|e| e.to_string())?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("crowd") {
        return crowd(&args[1..]);
    }
    let mut cfg = GenConfig::default();
    let mut out = "-".to_string();
    let mut expected: Option<String> = None;
    let mut keylog: Option<String> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a}: missing value\n{USAGE}"))
        };
        let bad = |v: &str| format!("bad value for {a}: {v}");
        match a.as_str() {
            "--seed" => {
                let v = val()?;
                cfg.seed = v.parse().map_err(|_| bad(&v))?;
            }
            "--sessions" => {
                let v = val()?;
                cfg.sessions = v.parse().map_err(|_| bad(&v))?;
            }
            "--mix" => {
                let v = val()?;
                cfg.mix = Mix::parse(&v).ok_or_else(|| bad(&v))?;
            }
            "--bytes" => {
                let v = val()?;
                cfg.target_bytes = parse_size(&v).ok_or_else(|| bad(&v))?;
            }
            "--concurrency" => {
                let v = val()?;
                cfg.concurrency = v.parse().map_err(|_| bad(&v))?;
            }
            "--gap-fraction" | "--header-gap-fraction" | "--reorder-fraction" => {
                let v = val()?;
                let f: f64 = v.parse().map_err(|_| bad(&v))?;
                match a.as_str() {
                    "--gap-fraction" => cfg.gap_fraction = f,
                    "--header-gap-fraction" => cfg.header_gap_fraction = f,
                    _ => cfg.reorder_fraction = f,
                }
            }
            "-o" | "--output" => out = val()?,
            "--expected" => expected = Some(val()?),
            "--tls" => cfg.tls = true,
            "--keylog" => keylog = Some(val()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    let mut exp_w: Option<BufWriter<File>> = match &expected {
        Some(p) => {
            let mut w = BufWriter::new(File::create(p).map_err(|e| format!("{p}: {e}"))?);
            w.write_all(csv_header().as_bytes())
                .map_err(|e| e.to_string())?;
            Some(w)
        }
        None => None,
    };
    let keylog = match (cfg.tls, keylog) {
        (false, Some(_)) => return Err(format!("--keylog needs --tls\n{USAGE}")),
        (false, None) => None,
        (true, Some(k)) => Some(k),
        (true, None) if out != "-" => {
            Some(Path::new(&out).with_extension("keys").display().to_string())
        }
        (true, None) => return Err(format!("--tls to stdout needs --keylog FILE\n{USAGE}")),
    };
    let mut keys: Box<dyn Write> = match &keylog {
        Some(k) => Box::new(BufWriter::new(
            File::create(k).map_err(|e| format!("{k}: {e}"))?,
        )),
        None => Box::new(io::sink()),
    };
    let start = std::time::Instant::now();
    let mut on_session = |e: wsclose_synth::ExpectedSession| -> io::Result<()> {
        if let Some(w) = exp_w.as_mut() {
            w.write_all(e.csv_row().as_bytes())?;
        }
        Ok(())
    };
    let summary = if out == "-" {
        let stdout = io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        let s = generate_with_keylog(&cfg, &mut w, &mut keys, &mut on_session);
        w.flush().map_err(|e| e.to_string())?;
        s
    } else {
        let mut w = BufWriter::with_capacity(
            1 << 20,
            File::create(&out).map_err(|e| format!("{out}: {e}"))?,
        );
        let s = generate_with_keylog(&cfg, &mut w, &mut keys, &mut on_session);
        w.flush().map_err(|e| e.to_string())?;
        s
    }
    .map_err(|e| e.to_string())?;
    if let Some(mut w) = exp_w {
        w.flush().map_err(|e| e.to_string())?;
    }
    keys.flush().map_err(|e| e.to_string())?;
    if let Some(k) = &keylog {
        eprintln!("gencap: key log in {k}");
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "gencap: {} bytes, {} packets, {} websocket sessions, {} http connections, {} udp packets in {:.2}s ({:.1} MB/s)",
        summary.bytes,
        summary.packets,
        summary.ws_sessions,
        summary.http_connections,
        summary.udp_packets,
        secs,
        summary.bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gencap: {e}");
            ExitCode::from(2)
        }
    }
}
