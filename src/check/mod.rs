//! Check mode: compare the sessions report of a capture with an expected report, by column
//! name (see `cell.rs` for `*`, `\*` and ranges), pairing sessions by number, by endpoints
//! or by handshake path; print the differences; or rewrite the expected file (`--update`).
//!
//! The found report is collected through the writer seam ([`Collector`]), then
//! [`Check::compare`] pairs and compares, and [`Check::updated`] gives the rewritten file.
//! Nothing here reads captures.

pub mod cell;
pub mod diff;
pub mod expected;
pub mod found;
pub mod update;

use std::collections::{HashMap, VecDeque};

pub use cell::{Cell, FoundCell, Matcher};
pub use diff::{CellDiff, Comparison, Differing, Missing, Unexpected};
pub use expected::{Expected, ExpectedRow};
pub use found::{Collector, FoundRow};

/// How expected and found sessions are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchMode {
    /// By the `session` number.
    Session,
    /// By client IP and server ip:port (the client's port is ignored); equal keys pair in
    /// first-packet order.
    Endpoints,
    /// By the handshake's path; equal paths pair in first-packet order.
    Path,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Session => "session",
            MatchMode::Endpoints => "endpoints",
            MatchMode::Path => "path",
        }
    }

    /// The columns the expected file needs for this pairing.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            MatchMode::Session => &["session"],
            MatchMode::Endpoints => &["client", "server"],
            MatchMode::Path => &["path"],
        }
    }
}

/// What pairs an expected session with a found one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Session(u64),
    Endpoints(String, String),
    Path(String),
}

/// The address part of `ip:port` or `[v6]:port` (the client's port is ephemeral).
pub fn endpoint_ip(endpoint: &str) -> &str {
    match endpoint.rsplit_once(':') {
        Some((ip, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if ip.starts_with('[') || !ip.contains(':') {
                ip
            } else {
                endpoint
            }
        }
        _ => endpoint,
    }
}

/// Expected and found sessions, paired (indexes into the expected rows and found rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    /// (expected row, found row), in report order.
    pub pairs: Vec<(usize, usize)>,
    /// Expected rows with no found session, in file order.
    pub missing: Vec<usize>,
    /// Found rows with no expected session, in report order.
    pub unexpected: Vec<usize>,
}

/// An expected report ready to be checked.
#[derive(Debug)]
pub struct Check {
    pub expected: Expected,
    pub mode: MatchMode,
    keys: Vec<Key>,
}

impl Check {
    /// Checks that `expected` has what `mode` pairs by: the key columns, with a plain value
    /// in every row (no `*`), and (by session) each number once.
    pub fn new(expected: Expected, mode: MatchMode) -> Result<Check, String> {
        let idx: Vec<usize> = mode
            .key_columns()
            .iter()
            .map(|name| {
                expected.index(name).ok_or_else(|| {
                    format!(
                        "--match {} needs the column {name:?} in the expected report",
                        mode.as_str()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let mut keys = Vec::with_capacity(expected.rows.len());
        let mut numbers: HashMap<u64, u64> = HashMap::new();
        for row in &expected.rows {
            let lit = |i: usize| {
                row.cells[i].literal().ok_or_else(|| {
                    format!(
                        "line {}: --match {} pairs by {}, which cannot be `*` there",
                        row.line,
                        mode.as_str(),
                        expected.columns[i].name
                    )
                })
            };
            let key = match mode {
                MatchMode::Session => {
                    let s = lit(idx[0])?;
                    let n: u64 = s.parse().map_err(|_| {
                        format!("line {}: session {s:?} is not a session number", row.line)
                    })?;
                    if let Some(first) = numbers.insert(n, row.line) {
                        return Err(format!(
                            "line {}: session {n} again (first on line {first})",
                            row.line
                        ));
                    }
                    Key::Session(n)
                }
                MatchMode::Endpoints => Key::Endpoints(
                    endpoint_ip(lit(idx[0])?).to_string(),
                    lit(idx[1])?.to_string(),
                ),
                MatchMode::Path => Key::Path(lit(idx[0])?.to_string()),
            };
            keys.push(key);
        }
        Ok(Check {
            expected,
            mode,
            keys,
        })
    }

    /// A report writer that collects what this check compares.
    pub fn collector(&self) -> Collector {
        Collector::new(&self.expected.columns)
    }

    fn found_key(&self, f: &FoundRow) -> Key {
        match self.mode {
            MatchMode::Session => Key::Session(f.session),
            MatchMode::Endpoints => {
                Key::Endpoints(endpoint_ip(&f.client).to_string(), f.server.clone())
            }
            MatchMode::Path => Key::Path(f.path.clone()),
        }
    }

    /// Pairs the expected rows with the found sessions.
    pub fn pair(&self, found: &[FoundRow]) -> Pairing {
        let mut queues: HashMap<&Key, VecDeque<usize>> = HashMap::new();
        for (i, k) in self.keys.iter().enumerate() {
            queues.entry(k).or_default().push_back(i);
        }
        let mut p = Pairing::default();
        let mut paired = vec![false; self.keys.len()];
        for (j, f) in found.iter().enumerate() {
            let k = self.found_key(f);
            match queues.get_mut(&k).and_then(VecDeque::pop_front) {
                Some(i) => {
                    paired[i] = true;
                    p.pairs.push((i, j));
                }
                None => p.unexpected.push(j),
            }
        }
        p.missing = (0..self.keys.len()).filter(|&i| !paired[i]).collect();
        p
    }

    /// Whether column `col` of the expected file is compared under this pairing: the
    /// session number is not when sessions pair by endpoints or path (numbers shift when a
    /// session is added or missing).
    pub fn compares(&self, col: usize) -> bool {
        self.mode == MatchMode::Session || self.expected.columns[col].name != "session"
    }

    /// Whether the expected cell accepts the found one (by endpoints, the client's port
    /// is not compared).
    pub fn cell_matches(&self, col: usize, e: &Cell, f: &FoundCell) -> bool {
        if self.mode == MatchMode::Endpoints && self.expected.columns[col].name == "client" {
            if let Matcher::Text(t) = &e.matcher {
                return endpoint_ip(t) == endpoint_ip(&f.text);
            }
        }
        e.matches(f)
    }
}

#[cfg(test)]
mod tests;
