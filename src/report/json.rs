//! A small streaming JSON writer: objects and arrays written in order into a `String`,
//! strings escaped by `serde_json`. The JSON Lines report, the summary and the timeline
//! write through it, so that key order is the order of the code.

use std::fmt::Write as _;

use super::columns::Value;
use crate::record::At;
use crate::time::{write_rfc3339_micros, write_seconds_micros};

/// Writes one JSON document (or one line of JSON Lines) into `out`.
#[derive(Debug, Default)]
pub struct Json {
    pub out: String,
    /// Per open container: whether the next element is its first.
    first: Vec<bool>,
    /// A key was just written: the value follows without a comma.
    after_key: bool,
}

impl Json {
    pub fn new() -> Self {
        Json::default()
    }

    /// Empties the buffer for the next document.
    pub fn clear(&mut self) {
        self.out.clear();
        self.first.clear();
        self.after_key = false;
    }

    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
    }

    pub fn obj(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.first.push(true);
        self
    }

    pub fn end_obj(&mut self) -> &mut Self {
        self.first.pop();
        self.out.push('}');
        self
    }

    pub fn arr(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.first.push(true);
        self
    }

    pub fn end_arr(&mut self) -> &mut Self {
        self.first.pop();
        self.out.push(']');
        self
    }

    /// A key of the current object; its value comes next.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        self.escaped(k);
        self.out.push(':');
        self.after_key = true;
        self
    }

    fn escaped(&mut self, s: &str) {
        // serde_json escapes exactly what JSON requires (quotes, backslash, controls).
        self.out
            .push_str(&serde_json::to_string(s).expect("a string serializes"));
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.escaped(s);
        self
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{n}");
        self
    }

    pub fn i64(&mut self, n: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{n}");
        self
    }

    /// A float, written as Rust writes it (always a valid JSON number when finite).
    pub fn f64(&mut self, x: f64) -> &mut Self {
        if !x.is_finite() {
            return self.null();
        }
        self.sep();
        let _ = write!(self.out, "{x}");
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// A duration in nanoseconds as seconds with microseconds (a JSON number).
    pub fn seconds(&mut self, ns: i64) -> &mut Self {
        self.sep();
        write_seconds_micros(&mut self.out, ns);
        self
    }

    /// A capture time (ns since the epoch) as RFC 3339 with microseconds.
    pub fn time(&mut self, ns: i64) -> &mut Self {
        self.sep();
        self.out.push('"');
        write_rfc3339_micros(&mut self.out, ns);
        self.out.push('"');
        self
    }

    /// A packet and its time: `{"packet": N, "ts": "..."}`, or null.
    pub fn at(&mut self, at: Option<At>) -> &mut Self {
        match at {
            Some(a) => self
                .obj()
                .key("packet")
                .u64(a.packet)
                .key("ts")
                .time(a.ts_ns)
                .end_obj(),
            None => self.null(),
        }
    }

    /// A column's value with its type: null for empty, arrays for tokens.
    pub fn value(&mut self, v: Value<'_>) -> &mut Self {
        match v {
            Value::Empty => self.null(),
            Value::Count(n) => self.u64(n),
            Value::Bool(b) => self.bool(b),
            Value::Seconds(ns) => self.seconds(ns),
            Value::Time(ns) => self.time(ns),
            Value::Tokens(a) => {
                self.arr();
                for t in a.iter() {
                    self.str(t.token());
                }
                self.end_arr()
            }
            Value::Text(_) | Value::Endpoint(_) | Value::RedactedQuery(_) => {
                let mut s = String::new();
                v.write_text(&mut s);
                self.str(&s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_containers_and_commas() {
        let mut j = Json::new();
        j.obj()
            .key("a")
            .u64(1)
            .key("b")
            .arr()
            .str("x\"y")
            .null()
            .obj()
            .key("c")
            .bool(true)
            .end_obj()
            .end_arr()
            .key("d")
            .seconds(1_500_000)
            .key("e")
            .at(Some(At {
                packet: 3,
                ts_ns: 0,
            }))
            .end_obj();
        assert_eq!(
            j.out,
            r#"{"a":1,"b":["x\"y",null,{"c":true}],"d":0.001500,"e":{"packet":3,"ts":"1970-01-01T00:00:00.000000Z"}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&j.out).unwrap();
        assert_eq!(v["d"], 0.0015);
    }
}
