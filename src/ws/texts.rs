//! A session's handshake texts as it keeps them for its whole life: host, path, origin,
//! user agent of the request, subprotocol and extensions of the response, and the header
//! fields of both heads (packed, `packed.rs`), for the record.
//!
//! A million open sessions should not pay for eight strings each, nor for the same user
//! agent a million times: most sessions of a capture share their host, origin, user
//! agent, subprotocol and extensions (one client program, one server). Those five are
//! interned: kept once, in one allocation, by every session that has the same five, and
//! freed when the last of them ends. The path (often with a per-session query) and the
//! header fields (with the request's key) stay the session's own, in one allocation.
//! Reading a text back gives exactly what was stored.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

pub const TEXTS: usize = 8;
pub const HOST: usize = 0;
pub const PATH: usize = 1;
pub const ORIGIN: usize = 2;
pub const USER_AGENT: usize = 3;
pub const SUBPROTOCOL: usize = 4;
pub const EXTENSIONS: usize = 5;
/// The request's header fields, packed (`packed.rs`).
pub const REQUEST_HEADERS: usize = 6;
/// The response's header fields, packed likewise.
pub const RESPONSE_HEADERS: usize = 7;

/// Where each text is kept: (shared, index there) or (own, index there).
const PLACE: [(bool, usize); TEXTS] = [
    (true, 0),  // HOST
    (false, 0), // PATH
    (true, 1),  // ORIGIN
    (true, 2),  // USER_AGENT
    (true, 3),  // SUBPROTOCOL
    (true, 4),  // EXTENSIONS
    (false, 1), // REQUEST_HEADERS
    (false, 2), // RESPONSE_HEADERS
];
const SHARED: usize = 5;
const OWN: usize = 3;

/// `N` short texts in one allocation. Where each text ends is a 16-bit offset; texts of
/// more than 64 KiB together (a raised `max_handshake_bytes`) have their ends written
/// after them instead, in hex (8 digits each: the buffer's length tells which).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Packed<const N: usize> {
    buf: Box<str>,
    ends: [u16; N],
}

impl<const N: usize> Default for Packed<N> {
    fn default() -> Self {
        Packed {
            buf: Box::default(),
            ends: [0; N],
        }
    }
}

impl<const N: usize> Packed<N> {
    /// Bytes of the ends written after texts too long for 16-bit offsets.
    const LONG_ENDS: usize = 8 * N;

    fn new(parts: [&str; N]) -> Self {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let long = total > usize::from(u16::MAX);
        let mut buf = String::with_capacity(total + if long { Self::LONG_ENDS } else { 0 });
        let mut ends = [0; N];
        for (i, p) in parts.into_iter().enumerate() {
            buf.push_str(p);
            if !long {
                ends[i] = buf.len() as u16;
            }
        }
        if long {
            use std::fmt::Write as _;
            let mut end = 0usize;
            for p in parts {
                end += p.len();
                let e = u32::try_from(end).expect("handshake texts under 4 GiB");
                write!(buf, "{e:08x}").expect("a String");
            }
        }
        Packed {
            buf: buf.into_boxed_str(),
            ends,
        }
    }

    /// Where text `i` ends.
    #[inline]
    fn end(&self, i: usize) -> usize {
        let len = self.buf.len();
        if len <= usize::from(u16::MAX) {
            usize::from(self.ends[i])
        } else {
            let at = len - Self::LONG_ENDS + 8 * i;
            usize::from_str_radix(&self.buf[at..at + 8], 16).expect("hex written by new")
        }
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.buf[start..self.end(i)]
    }

    /// Bytes of texts `i..N` together.
    #[inline]
    fn len_from(&self, i: usize) -> usize {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        self.end(N - 1) - start
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The shared texts of the sessions alive, each kept once. An entry is removed when the
/// last session holding it lets it go (see [`Shared`]'s `Drop`): the set never holds
/// more entries than there are live sessions, and an entry's count is changed only
/// under this lock (creation, clone by interning, drop), so "the set and one holder
/// left" is exact. (One set for all shards: a session is interned and dropped once, not
/// per packet, so the lock is taken rarely.)
static INTERNED: Mutex<Option<HashSet<Arc<Packed<SHARED>>>>> = Mutex::new(None);

fn interned() -> MutexGuard<'static, Option<HashSet<Arc<Packed<SHARED>>>>> {
    // A panic elsewhere while the lock was held leaves the set consistent (every change
    // is one call).
    INTERNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared texts of a session (`None` when all five are empty).
#[derive(Debug, Default)]
struct Shared(Option<Arc<Packed<SHARED>>>);

impl Shared {
    fn new(parts: [&str; SHARED]) -> Self {
        let p = Packed::new(parts);
        if p.is_empty() {
            return Shared(None);
        }
        let mut set = interned();
        let set = set.get_or_insert_with(HashSet::new);
        if let Some(a) = set.get(&p) {
            return Shared(Some(Arc::clone(a)));
        }
        let a = Arc::new(p);
        set.insert(Arc::clone(&a));
        Shared(Some(a))
    }

    fn get(&self, i: usize) -> &str {
        self.0.as_deref().map_or("", |p| p.get(i))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            let mut set = interned();
            if Arc::strong_count(&a) == 2 {
                if let Some(set) = set.as_mut() {
                    set.remove(&*a);
                }
            }
            // Dropped under the lock: counts change only there.
            drop(a);
        }
    }
}

/// A session's eight texts: five interned, three its own.
#[derive(Debug, Default)]
pub struct Texts {
    shared: Shared,
    own: Packed<OWN>,
}

impl Texts {
    pub fn new(parts: [&str; TEXTS]) -> Self {
        let mut shared = [""; SHARED];
        let mut own = [""; OWN];
        for (i, p) in parts.into_iter().enumerate() {
            match PLACE[i] {
                (true, k) => shared[k] = p,
                (false, k) => own[k] = p,
            }
        }
        Texts {
            shared: Shared::new(shared),
            own: Packed::new(own),
        }
    }

    pub fn get(&self, i: usize) -> &str {
        match PLACE[i] {
            (true, k) => self.shared.get(k),
            (false, k) => self.own.get(k),
        }
    }

    /// Bytes of the request's and the response's header fields together: a memory charge
    /// looked at after every delivery, so two offsets are read, not two texts.
    #[inline]
    pub fn headers_len(&self) -> usize {
        const _: () = assert!(
            PLACE[REQUEST_HEADERS].1 + 1 == PLACE[RESPONSE_HEADERS].1
                && PLACE[RESPONSE_HEADERS].1 == OWN - 1
                && !PLACE[REQUEST_HEADERS].0
                && !PLACE[RESPONSE_HEADERS].0
        );
        self.own.len_from(PLACE[REQUEST_HEADERS].1)
    }

    /// The same texts with the `(index, text)` pairs of `set` set.
    pub fn with(&self, set: &[(usize, &str)]) -> Self {
        let mut parts: [&str; TEXTS] = std::array::from_fn(|k| self.get(k));
        for &(i, v) in set {
            parts[i] = v;
        }
        Texts::new(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_back_short_and_over_64_kib() {
        for n in [0, 5, 65_535 - 40, 65_536, 200_000] {
            let long = "u".repeat(n);
            for parts in [
                ["host", "/p", "", long.as_str(), "chat", "", "h: v", "x"],
                ["host", long.as_str(), "", "ua", "chat", "", "h: v", "x"],
            ] {
                let t = Texts::new(parts);
                for (i, p) in parts.iter().enumerate() {
                    assert_eq!(t.get(i), *p, "text {i} of {n}");
                }
                let headers = parts[REQUEST_HEADERS].len() + parts[RESPONSE_HEADERS].len();
                assert_eq!(t.headers_len(), headers, "{n}");
                let t = t.with(&[(PATH, "/q")]);
                assert_eq!(t.get(PATH), "/q");
                assert_eq!(t.get(USER_AGENT), parts[USER_AGENT]);
                assert_eq!(t.get(RESPONSE_HEADERS), "x");
            }
        }
        let empty = Texts::default();
        assert!((0..TEXTS).all(|i| empty.get(i).is_empty()));
        assert!(Texts::new([""; TEXTS]).shared.0.is_none());
    }

    /// Sessions with the same shared texts hold one copy; it is freed with the last of
    /// them (other tests intern at the same time: only this test's own texts are looked
    /// at).
    #[test]
    fn shared_texts_are_kept_once_and_freed_with_the_last_holder() {
        let ua = "texts-test-agent/1.0 (unique to this test)";
        let count = || {
            interned()
                .as_ref()
                .map_or(0, |s| s.iter().filter(|p| p.get(2) == ua).count())
        };
        let a = Texts::new(["h", "/a", "o", ua, "", "", "k: 1", ""]);
        let b = Texts::new(["h", "/b", "o", ua, "", "", "k: 2", ""]);
        assert!(Arc::ptr_eq(
            a.shared.0.as_ref().unwrap(),
            b.shared.0.as_ref().unwrap()
        ));
        assert_eq!((a.get(PATH), b.get(PATH)), ("/a", "/b"));
        assert_eq!(count(), 1);
        // The response's subprotocol makes another set of shared texts.
        let c = a.with(&[(SUBPROTOCOL, "chat")]);
        assert_eq!((c.get(SUBPROTOCOL), c.get(USER_AGENT)), ("chat", ua));
        assert_eq!(count(), 2);
        drop(a);
        assert_eq!(count(), 2);
        drop(b);
        assert_eq!(count(), 1);
        drop(c);
        assert_eq!(count(), 0);
    }
}
