//! `--update`: the expected file rewritten from what was found, keeping its column set,
//! its `*` cells and the ranges that the found value satisfies; every other cell takes the
//! found value. Rows follow the report's order; expected rows with no session are dropped
//! and sessions the file did not have are added. The file is replaced atomically.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::cell::{escape, Matcher};
use super::{Check, FoundRow};

impl Check {
    /// The expected file's new text.
    pub fn updated(&self, found: &[FoundRow]) -> io::Result<Vec<u8>> {
        let p = self.pair(found);
        let mut by_found: Vec<Option<usize>> = vec![None; found.len()];
        for &(i, j) in &p.pairs {
            by_found[j] = Some(i);
        }
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        w.write_record(self.expected.columns.iter().map(|c| c.name))
            .map_err(crate::report::csv::io_error)?;
        for (j, f) in found.iter().enumerate() {
            let cells = f.cells.iter().enumerate().map(|(c, fc)| {
                if let Some(i) = by_found[j] {
                    let e = &self.expected.rows[i].cells[c];
                    let keep = match e.matcher {
                        Matcher::Any => true,
                        Matcher::Range { .. } => fc.num.is_some() && e.matches(fc),
                        Matcher::Text(_) => false,
                    };
                    if keep {
                        return e.raw.clone();
                    }
                }
                escape(&fc.text)
            });
            w.write_record(cells)
                .map_err(crate::report::csv::io_error)?;
        }
        w.into_inner().map_err(|e| e.into_error())
    }
}

/// Replaces the file at `path` with `bytes` atomically: a temporary file in the same
/// directory, synced, then renamed over it (a symbolic link is followed, and the file's
/// permissions are kept).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = target
        .file_name()
        .map_or_else(|| "expected".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.wsclose-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if let Ok(meta) = fs::metadata(&target) {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
