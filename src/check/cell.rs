//! One cell of an expected report, and whether a found value matches it.
//!
//! - `*` accepts any value; a literal star is written `\*` (and `\\*` stands for `\*`: a
//!   cell of backslashes then a star loses one backslash; no other cell is unescaped, so
//!   close reasons with `\xNN` escapes read as written).
//! - `A..B`, `..B`, `A..` on a numeric column: a number from A to B, both ends included
//!   (decimals allowed: `duration_s` is in seconds). On a column that is not numeric, or
//!   when the found cell is empty, the cell is compared as text.
//! - Anything else is compared as text with the value's CSV form.

/// A number as the check compares it: the value times 10^9, exactly (counts up to
/// `u64::MAX`, seconds to the nanosecond).
pub type Scaled = i128;

const SCALE: i128 = 1_000_000_000;

/// What a found cell is: its CSV text and, on numeric columns, its number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCell {
    pub text: String,
    pub num: Option<Scaled>,
}

/// What an expected cell accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// `*`
    Any,
    /// This text exactly (escapes removed).
    Text(String),
    /// A number in this range (ends included); as text when the found cell has no number.
    Range {
        lo: Option<Scaled>,
        hi: Option<Scaled>,
    },
}

/// An expected cell: as written in the file, and what it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub raw: String,
    pub matcher: Matcher,
}

impl Cell {
    /// Reads a cell as written in an expected file. Errors name what is wrong with a range.
    pub fn parse(raw: &str) -> Result<Cell, String> {
        let matcher = if raw == "*" {
            Matcher::Any
        } else if is_escaped_star(raw) {
            Matcher::Text(raw[1..].to_string())
        } else if let Some((lo, hi)) = parse_range(raw)? {
            Matcher::Range { lo, hi }
        } else {
            Matcher::Text(raw.to_string())
        };
        Ok(Cell {
            raw: raw.to_string(),
            matcher,
        })
    }

    /// Whether `found` is accepted.
    pub fn matches(&self, found: &FoundCell) -> bool {
        match &self.matcher {
            Matcher::Any => true,
            Matcher::Text(t) => *t == found.text,
            Matcher::Range { lo, hi } => match found.num {
                Some(n) => lo.is_none_or(|lo| lo <= n) && hi.is_none_or(|hi| n <= hi),
                None => self.raw == found.text,
            },
        }
    }

    /// The one text this cell accepts where the value is text (a key cell); `None` for `*`.
    pub fn literal(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Any => None,
            Matcher::Text(t) => Some(t),
            Matcher::Range { .. } => Some(&self.raw),
        }
    }
}

/// `\*`, `\\*`, …: backslashes then one star.
fn is_escaped_star(s: &str) -> bool {
    s.len() >= 2 && s.ends_with('*') && s[..s.len() - 1].bytes().all(|b| b == b'\\')
}

/// How a found value is written in an expected file so that it reads back as itself.
pub fn escape(text: &str) -> String {
    if text == "*" || is_escaped_star(text) {
        format!("\\{text}")
    } else {
        text.to_string()
    }
}

/// The ends of a range; `None` is open.
type Bounds = (Option<Scaled>, Option<Scaled>);

/// `A..B`, `..B`, `A..` → the bounds; `None` when `s` is not a range (so it is text).
fn parse_range(s: &str) -> Result<Option<Bounds>, String> {
    let Some((a, b)) = s.split_once("..") else {
        return Ok(None);
    };
    if (a.is_empty() && b.is_empty()) || !(a.is_empty() || looks_numeric(a)) {
        return Ok(None);
    }
    if !(b.is_empty() || looks_numeric(b)) {
        return Ok(None);
    }
    let bound = |x: &str| -> Result<Option<Scaled>, String> {
        if x.is_empty() {
            Ok(None)
        } else {
            parse_scaled(x)
                .map(Some)
                .ok_or_else(|| format!("range {s:?}: {x:?} is not a number (at most 9 decimals)"))
        }
    };
    let (lo, hi) = (bound(a)?, bound(b)?);
    if let (Some(l), Some(h)) = (lo, hi) {
        if l > h {
            return Err(format!("range {s:?} is empty (its start is above its end)"));
        }
    }
    Ok(Some((lo, hi)))
}

/// Digits with an optional sign and decimal point: a number, maybe malformed.
fn looks_numeric(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A decimal number, exactly, times 10^9.
pub fn parse_scaled(s: &str) -> Option<Scaled> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) || s.ends_with('.') {
        return None;
    }
    let int: i128 = int.parse().ok().filter(|n| *n <= u64::MAX as i128)?;
    let mut f: i128 = 0;
    for i in 0..9 {
        f = f * 10 + frac.as_bytes().get(i).map_or(0, |d| (d - b'0') as i128);
    }
    let v = int * SCALE + f;
    Some(if neg { -v } else { v })
}

/// A count, scaled.
pub fn scaled_count(n: u64) -> Scaled {
    n as i128 * SCALE
}

/// A duration in nanoseconds, scaled (seconds × 10^9 is nanoseconds).
pub fn scaled_nanos(ns: i64) -> Scaled {
    ns as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str, n: Option<Scaled>) -> FoundCell {
        FoundCell {
            text: text.into(),
            num: n,
        }
    }

    fn count(n: u64) -> FoundCell {
        num(&n.to_string(), Some(scaled_count(n)))
    }

    fn text(t: &str) -> FoundCell {
        num(t, None)
    }

    #[test]
    fn numbers_are_exact() {
        assert_eq!(parse_scaled("0"), Some(0));
        assert_eq!(parse_scaled("12"), Some(12 * SCALE));
        assert_eq!(parse_scaled("0.008795"), Some(8_795_000));
        assert_eq!(parse_scaled("1.000000001"), Some(SCALE + 1));
        assert_eq!(parse_scaled("-2.5"), Some(-2_500_000_000));
        assert_eq!(
            parse_scaled("18446744073709551615"),
            Some(scaled_count(u64::MAX))
        );
        for bad in [
            "",
            ".5",
            "1.",
            "1.0000000001",
            "1e3",
            "--1",
            "1.2.3",
            "18446744073709551616",
        ] {
            assert_eq!(parse_scaled(bad), None, "{bad:?}");
        }
    }

    /// (expected cell, found cell, matches)
    #[test]
    fn cells_against_found_values() {
        let table: Vec<(&str, FoundCell, bool)> = vec![
            ("1000", count(1000), true),
            ("1000", count(1011), false),
            ("*", count(1011), true),
            ("*", text(""), true),
            ("*", text("anything"), true),
            ("\\*", text("*"), true),
            ("\\*", text("x"), false),
            ("\\\\*", text("\\*"), true),
            ("\\\\*", text("*"), false),
            ("\\x80bye", text("\\x80bye"), true),
            ("1000..1011", count(1000), true),
            ("1000..1011", count(1011), true),
            ("1000..1011", count(1012), false),
            ("1000..1011", count(999), false),
            ("..3", count(0), true),
            ("..3", count(4), false),
            ("3..", count(3), true),
            ("3..", count(u64::MAX), true),
            ("3..", count(2), false),
            // a range never matches an empty numeric cell…
            ("1000..1011", text(""), false),
            // …and is text where the column is not numeric
            ("1..5", text("1..5"), true),
            ("1..5", text("2"), false),
            ("0.001..0.01", num("0.008795", Some(8_795_000)), true),
            ("0.001..0.008", num("0.008795", Some(8_795_000)), false),
            ("", text(""), true),
            ("", count(0), false),
            ("gap", text("gap;framing_lost"), false),
            // not ranges: text
            ("..", text(".."), true),
            ("a..b", text("a..b"), true),
            ("/x/..", text("/x/.."), true),
        ];
        for (raw, found, want) in table {
            let c = Cell::parse(raw).unwrap();
            assert_eq!(c.matches(&found), want, "{raw:?} vs {found:?} ({c:?})");
        }
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert!(Cell::parse("5..1").unwrap_err().contains("empty"));
        assert!(Cell::parse("1.2.3..4").is_err());
        assert!(Cell::parse("1..1.0000000001").is_err());
        assert!(Cell::parse("5..5").is_ok());
    }

    #[test]
    fn escape_round_trips() {
        for t in ["*", "\\*", "\\\\*", "x", "", "\\x80", "**", "a*"] {
            let c = Cell::parse(&escape(t)).unwrap();
            assert!(c.matches(&text(t)), "{t:?} → {:?}", escape(t));
            assert_eq!(c.literal(), Some(t), "{t:?}");
        }
    }
}
