//! The result of a check: sessions that differ (which column, expected vs found), sessions
//! missing and unexpected; written as readable text or as JSON.

use std::io::{self, Write};

use super::{Check, FoundRow, MatchMode};

/// One column of one session that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellDiff {
    pub column: &'static str,
    /// The expected cell as written in the file.
    pub expected: String,
    /// The found value (CSV form).
    pub found: String,
}

/// A found session paired with an expected row that it does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Differing {
    pub session: u64,
    pub expected_line: u64,
    pub client: String,
    pub server: String,
    pub path: String,
    pub cells: Vec<CellDiff>,
}

/// An expected row with no session in the capture: the cells that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub expected_line: u64,
    /// `session`, `client`, `server`, `path`, as far as the file has them.
    pub cells: Vec<(&'static str, String)>,
}

/// A session of the capture that the expected report does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpected {
    pub session: u64,
    pub client: String,
    pub server: String,
    pub path: String,
    pub outcome: String,
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    pub mode: MatchMode,
    pub expected: usize,
    pub found: usize,
    /// Paired sessions whose every compared cell matches.
    pub matching: usize,
    pub differing: Vec<Differing>,
    pub missing: Vec<Missing>,
    pub unexpected: Vec<Unexpected>,
    /// The columns compared (the expected file's, less `session` when pairing by
    /// endpoints or path).
    pub columns: Vec<&'static str>,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.differing.is_empty() && self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl Check {
    /// Compares the found sessions with the expected report.
    pub fn compare(&self, found: &[FoundRow]) -> Comparison {
        let p = self.pair(found);
        let cols = &self.expected.columns;
        let mut differing = Vec::new();
        for &(i, j) in &p.pairs {
            let (e, f) = (&self.expected.rows[i], &found[j]);
            let cells: Vec<CellDiff> = (0..cols.len())
                .filter(|&c| self.compares(c) && !self.cell_matches(c, &e.cells[c], &f.cells[c]))
                .map(|c| CellDiff {
                    column: cols[c].name,
                    expected: e.cells[c].raw.clone(),
                    found: f.cells[c].text.clone(),
                })
                .collect();
            if !cells.is_empty() {
                differing.push(Differing {
                    session: f.session,
                    expected_line: e.line,
                    client: f.client.clone(),
                    server: f.server.clone(),
                    path: f.path.clone(),
                    cells,
                });
            }
        }
        let missing = p
            .missing
            .iter()
            .map(|&i| {
                let row = &self.expected.rows[i];
                let cells = ["session", "client", "server", "path"]
                    .into_iter()
                    .filter_map(|n| {
                        self.expected
                            .index(n)
                            .map(|c| (cols[c].name, row.cells[c].raw.clone()))
                    })
                    .collect();
                Missing {
                    expected_line: row.line,
                    cells,
                }
            })
            .collect();
        let unexpected = p
            .unexpected
            .iter()
            .map(|&j| {
                let f = &found[j];
                Unexpected {
                    session: f.session,
                    client: f.client.clone(),
                    server: f.server.clone(),
                    path: f.path.clone(),
                    outcome: f.outcome.clone(),
                }
            })
            .collect();
        Comparison {
            mode: self.mode,
            expected: self.expected.rows.len(),
            found: found.len(),
            matching: p.pairs.len() - differing.len(),
            differing,
            missing,
            unexpected,
            columns: (0..cols.len())
                .filter(|&c| self.compares(c))
                .map(|c| cols[c].name)
                .collect(),
        }
    }
}

impl Comparison {
    /// The counts, as the last line says them.
    fn counts(&self) -> String {
        format!(
            "{} expected, {} found, match by {}",
            self.expected,
            self.found,
            self.mode.as_str()
        )
    }

    /// The readable diff: one block per differing session, one line per missing and
    /// unexpected session, and a last line with the verdict (or, after `--update`, what
    /// was rewritten).
    pub fn write_text(&self, w: &mut dyn Write, updated: Option<&str>) -> io::Result<()> {
        for d in &self.differing {
            writeln!(
                w,
                "session {} (expected line {}): {} -> {} {}",
                d.session, d.expected_line, d.client, d.server, d.path
            )?;
            for c in &d.cells {
                writeln!(
                    w,
                    "    {}: expected {:?}, found {:?}",
                    c.column, c.expected, c.found
                )?;
            }
        }
        for m in &self.missing {
            let mut name = String::new();
            let get = |n: &str| m.cells.iter().find(|c| c.0 == n).map(|c| c.1.as_str());
            if let Some(s) = get("session") {
                name += &format!(" session {s},");
            }
            if let (Some(c), Some(s)) = (get("client"), get("server")) {
                name += &format!(" {c} -> {s}");
            }
            if let Some(p) = get("path") {
                name += &format!(" {p}");
            }
            writeln!(
                w,
                "missing (expected line {}):{}",
                m.expected_line,
                name.trim_end_matches(',')
            )?;
        }
        for u in &self.unexpected {
            writeln!(
                w,
                "unexpected session {}: {} -> {} {} ({})",
                u.session, u.client, u.server, u.path, u.outcome
            )?;
        }
        let problems = format!(
            "{} differing, {} missing, {} unexpected, {} matching",
            self.differing.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.matching
        );
        match updated {
            Some(file) if self.passed() => {
                writeln!(
                    w,
                    "{file}: unchanged, every session matches ({})",
                    self.counts()
                )
            }
            Some(file) => writeln!(w, "{file}: updated: {problems} ({})", self.counts()),
            None if self.passed() => writeln!(
                w,
                "check passed: {} matching ({})",
                self.matching,
                self.counts()
            ),
            None => writeln!(w, "check failed: {problems} ({})", self.counts()),
        }
    }

    /// The comparison as one JSON object (schema 1).
    pub fn to_json(&self, expect: &str, updated: bool) -> serde_json::Value {
        use serde_json::json;
        json!({
            "schema": 1,
            "result": if self.passed() { "pass" } else { "fail" },
            "updated": updated,
            "expect": expect,
            "match": self.mode.as_str(),
            "columns": self.columns,
            "expected_sessions": self.expected,
            "found_sessions": self.found,
            "matching": self.matching,
            "differing": self.differing.iter().map(|d| json!({
                "session": d.session,
                "expected_line": d.expected_line,
                "client": d.client,
                "server": d.server,
                "path": d.path,
                "cells": d.cells.iter().map(|c| json!({
                    "column": c.column,
                    "expected": c.expected,
                    "found": c.found,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "missing": self.missing.iter().map(|m| {
                let mut o = serde_json::Map::new();
                o.insert("expected_line".into(), json!(m.expected_line));
                for (k, v) in &m.cells {
                    o.insert((*k).into(), json!(v));
                }
                serde_json::Value::Object(o)
            }).collect::<Vec<_>>(),
            "unexpected": self.unexpected.iter().map(|u| json!({
                "session": u.session,
                "client": u.client,
                "server": u.server,
                "path": u.path,
                "outcome": u.outcome,
            })).collect::<Vec<_>>(),
        })
    }
}
