//! Message payloads: permessage-deflate inflation (RFC 7692) and the UTF-8 check of text
//! messages (RFC 6455 §5.6, §8.1), as one consumer of a session's frame events.
//!
//! - A message is compressed iff its first frame has RSV1 (§6.1). Its frames' payloads
//!   are concatenated, `00 00 ff ff` is appended, and the result is inflated as raw
//!   DEFLATE (§7.2.2).
//! - Each direction has its own parameters (§7.1): the window from `*_max_window_bits`,
//!   and whether the LZ77 window is kept across messages (context takeover) or reset.
//! - An inflater is allocated at a direction's first compressed message, sized from the
//!   negotiated window, and freed after each message in a direction without context
//!   takeover (it would be reset anyway).
//! - Sizes are application bytes: inflated size for compressed messages, wire size for
//!   the others (Node `ws` sends small messages uncompressed inside a deflate session).
//! - What cannot be known is said: a gap inside a compressed message (and, with context
//!   takeover, everything after it in that direction), a cap reached, an inflate error
//!   make sizes lower bounds (`exact=false`).
//!
//! Payload arrives as the capture holds it (client frames masked); it is unmasked and
//! inflated through per-thread scratch buffers, never kept.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

use super::events::{FrameConsumer, GapEffect, StreamEvent};
use super::extensions::Deflate;
use super::frame::{opcode, FrameHeader};
use crate::config::{MAX_INFLATED_DIRECTION, MAX_INFLATED_MESSAGE};
use crate::record::{Anomalies, Anomaly, At, Side};

/// The empty stored block that ends each compressed message on the wire, removed by the
/// sender and appended by the receiver (RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Per-thread scratch: buffers for unmasking and inflating, and one inflater that every
/// compressed message arriving whole in one delivery uses in turn (the usual case for
/// chat-sized messages), so that idle directions keep only their window, not zlib's state.
struct Scratch {
    input: Vec<u8>,
    output: Vec<u8>,
    inflater: Decompress,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        input: vec![0; 16 * 1024],
        output: vec![0; 32 * 1024],
        inflater: Decompress::new_with_window_bits(false, 15),
    });
}

/// Unmasks `data` (payload bytes starting at payload offset `pos`, §5.3) into `out`.
fn unmask_into(data: &[u8], key: [u8; 4], pos: u64, out: &mut [u8]) {
    let r = (pos % 4) as usize;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let k8 = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = data.chunks_exact(8);
    let mut outs = out.chunks_exact_mut(8);
    for (c, o) in (&mut chunks).zip(&mut outs) {
        let w = u64::from_ne_bytes(c.try_into().unwrap()) ^ k8;
        o.copy_from_slice(&w.to_ne_bytes());
    }
    let done = data.len() - chunks.remainder().len();
    for (i, b) in chunks.remainder().iter().enumerate() {
        out[done + i] = b ^ k[i % 4];
    }
}

/// A UTF-8 check over a message that arrives in pieces: a sequence cut by a piece's end
/// is carried to the next. (`carry_len` [`INVALID`]: the message is not UTF-8; one byte
/// less per direction than a flag of its own.)
#[derive(Clone, Copy, Debug, Default)]
struct Utf8 {
    carry: [u8; 4],
    carry_len: u8,
}

/// `Utf8::carry_len` of a message found not to be UTF-8.
const INVALID: u8 = u8::MAX;

impl Utf8 {
    fn feed(&mut self, mut d: &[u8]) {
        if self.carry_len == INVALID || d.is_empty() {
            return;
        }
        if self.carry_len > 0 {
            // Complete the carried sequence first (at most 4 bytes in all).
            let have = self.carry_len as usize;
            let take = (4 - have).min(d.len());
            let mut buf = [0u8; 4];
            buf[..have].copy_from_slice(&self.carry[..have]);
            buf[have..have + take].copy_from_slice(&d[..take]);
            match std::str::from_utf8(&buf[..have + take]) {
                Ok(_) => {
                    self.carry_len = 0;
                    d = &d[take..];
                }
                Err(e) if e.valid_up_to() > 0 => {
                    // The carried sequence ended inside `buf`.
                    let used = e.valid_up_to() - have;
                    self.carry_len = 0;
                    d = &d[used..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still cut short: `d` was too short to finish it.
                    self.carry[..have + take].copy_from_slice(&buf[..have + take]);
                    self.carry_len = (have + take) as u8;
                    return;
                }
                Err(_) => {
                    self.carry_len = INVALID;
                    return;
                }
            }
        }
        match std::str::from_utf8(d) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                let tail = &d[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
            }
            Err(_) => self.carry_len = INVALID,
        }
    }

    /// Whether the whole message was UTF-8.
    fn finish(&self) -> bool {
        self.carry_len == 0
    }
}

/// The data message being received in one direction.
#[derive(Debug, Default)]
struct Message {
    active: bool,
    text: bool,
    compressed: bool,
    /// Some of it is unknown (a gap, a cap, an inflate error, a lost window): its size is a
    /// lower bound and its text is not checked.
    partial: bool,
    /// The inflater reached the end of a DEFLATE stream (BFINAL): bytes after it in this
    /// message are not data.
    stream_end: bool,
    /// Inflated to its end already (it arrived whole, with the per-thread inflater).
    inflated: bool,
    utf8: Utf8,
}

impl Message {
    /// Its payload is still followed: compressed (to inflate) or text (to check), and
    /// nothing has made its size or text unknown yet.
    #[inline]
    fn followed(&self) -> bool {
        self.active && !self.partial && !self.stream_end && (self.compressed || self.text)
    }
}

/// Only data frames carry a message (§5.6); control frames and reserved opcodes
/// (`reserved_opcode`) are no part of one.
#[inline]
fn carries_message(op: u8) -> bool {
    matches!(op, opcode::CONTINUATION | opcode::TEXT | opcode::BINARY)
}

/// The last uncompressed bytes of a direction's compressed messages, kept contiguous for
/// `inflateSetDictionary`: appended at the end, and the last window moved to the front
/// when the slack is used up (a memmove per slack's worth of output, not per message).
/// Boxed, and allocated at the first compressed message: a session without
/// permessage-deflate carries 8 bytes for it.
#[derive(Debug, Default)]
struct History(Option<Box<HistoryBytes>>);

#[derive(Debug, Default)]
struct HistoryBytes {
    bytes: Vec<u8>,
    window: usize,
}

impl History {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|h| h.bytes.is_empty())
    }

    /// The bytes held (capacity), for the memory budget.
    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |h| h.bytes.capacity())
    }

    /// The last `window` bytes.
    fn window(&self) -> &[u8] {
        match &self.0 {
            Some(h) => &h.bytes[h.bytes.len().saturating_sub(h.window)..],
            None => &[],
        }
    }

    fn push(&mut self, out: &[u8], window: usize) {
        let h = self.0.get_or_insert_with(Box::default);
        h.window = window;
        let slack = (window / 4).max(4096);
        if h.bytes.capacity() == 0 {
            h.bytes.reserve_exact(window + slack);
        }
        let out = &out[out.len().saturating_sub(window)..];
        if h.bytes.len() + out.len() > window + slack {
            let keep = window.saturating_sub(out.len()).min(h.bytes.len());
            let from = h.bytes.len() - keep;
            h.bytes.copy_within(from.., 0);
            h.bytes.truncate(keep);
        }
        h.bytes.extend_from_slice(out);
    }
}

/// One direction's state: what every session keeps (the message being received, for
/// the UTF-8 check and the largest message; the anomalies), and the inflation state,
/// boxed and present only when permessage-deflate was negotiated: a session without the
/// extension carries 24 bytes a direction.
#[derive(Debug, Default)]
struct Direction {
    /// Inflation (with permessage-deflate only; allocated with the payload consumer,
    /// never per message).
    z: Option<Box<Inflation>>,
    msg: Message,
    /// A payload call already started the current frame.
    frame_open: bool,
    /// A compressed message whose parameters are unknown (mid-stream): sizes unknown.
    unknown_compression: bool,
    /// A size is a lower bound.
    inexact: bool,
    /// The anomalies this consumer reports (`inflate_error`, `inflate_limit`,
    /// `invalid_utf8_text`), as bits of [`RAISABLE`], not a set, to keep a session small:
    /// every one seen, and those raised since the session last took them
    /// ([`Payloads::take_raised`]: it marks where they were seen, `anomaly_packets`).
    seen: u8,
    raised: u8,
}

/// One direction's inflation state and totals (permessage-deflate negotiated).
#[derive(Debug, Default)]
struct Inflation {
    /// Negotiated: window bits, and whether the window is reset after each message.
    window_bits: u8,
    no_context_takeover: bool,
    /// The window a later message may refer to is gone (context takeover after a gap,
    /// an error or a cap): compressed messages cannot be inflated any more.
    window_lost: bool,
    /// The direction's inflated bytes passed [`MAX_INFLATED_DIRECTION`].
    capped: bool,
    /// Inflated bytes so far (counting stops past the cap: a u32 is enough).
    inflated: u32,
    /// With context takeover: the last 2^window_bits uncompressed bytes of the compressed
    /// messages so far, the dictionary of the next one (RFC 7692 §7.2.1). Allocated at the
    /// first compressed message.
    history: History,
    /// An inflater of its own, only while a compressed message spans deliveries (boxed:
    /// zlib's state is allocated anyway, and an open session should not carry room for
    /// the handle).
    inflater: Option<Box<Decompress>>,
    /// Application bytes of the current message so far (inflated bytes when compressed).
    size: u64,
    /// Application bytes of complete messages.
    total: u64,
}

impl Inflation {
    /// The window is gone: with context takeover, later compressed messages cannot be
    /// inflated.
    fn lose_window(&mut self) {
        if !self.no_context_takeover {
            self.window_lost = true;
            self.history = History::default();
        }
    }
}

/// The anomalies a direction can raise, in the order of its bits.
const RAISABLE: [Anomaly; 3] = [
    Anomaly::InflateError,
    Anomaly::InflateLimit,
    Anomaly::InvalidUtf8Text,
];

// `Inflation::inflated` stops counting at the cap plus one output chunk.
const _: () = assert!(MAX_INFLATED_DIRECTION < (u32::MAX as u64) / 2);

impl Direction {
    /// The anomalies this direction reports.
    fn anomalies(&self) -> Anomalies {
        let mut a = Anomalies::default();
        for (i, &x) in RAISABLE.iter().enumerate() {
            if self.seen & 1 << i != 0 {
                a.insert(x);
            }
        }
        a
    }

    /// `a` (one of [`RAISABLE`]) happened once more.
    fn raise(&mut self, a: Anomaly) {
        let bit = 1
            << RAISABLE
                .iter()
                .position(|&x| x == a)
                .expect("a raisable anomaly");
        self.seen |= bit;
        self.raised |= bit;
    }

    fn new(deflate: Option<(u8, bool)>) -> Self {
        Direction {
            z: deflate.map(|(window_bits, no_context_takeover)| {
                Box::new(Inflation {
                    window_bits,
                    no_context_takeover,
                    ..Inflation::default()
                })
            }),
            ..Direction::default()
        }
    }

    /// The inflation state; only called for compressed messages, which exist only with
    /// permessage-deflate.
    #[inline]
    fn zs(&mut self) -> &mut Inflation {
        self.z
            .as_deref_mut()
            .expect("compressed messages only with permessage-deflate")
    }

    /// The first frame of a message, or a continuation (from its header).
    fn start_frame(&mut self, h: &FrameHeader) {
        if let opcode::TEXT | opcode::BINARY = h.opcode {
            let deflate = self.z.is_some();
            let rsv1 = h.rsv & 0b100 != 0;
            if rsv1 && !deflate {
                // RSV1 under an unknown context (mid-stream, or an extension other than
                // permessage-deflate): the size cannot be known.
                self.unknown_compression = true;
            }
            let compressed = rsv1 && deflate;
            let mut window_gone = false;
            if let Some(z) = &mut self.z {
                z.inflater = None;
                z.size = 0;
                window_gone = z.window_lost || z.capped;
            }
            self.msg = Message {
                active: true,
                text: h.opcode == opcode::TEXT,
                compressed,
                partial: rsv1 && !deflate || compressed && window_gone,
                ..Message::default()
            };
        }
    }

    /// Prepares `z` to inflate a new message: empty window, or the history as dictionary.
    fn prime(&mut self, z: &mut Decompress) -> bool {
        let h = &self.zs().history;
        h.is_empty() || z.set_dictionary(h.window()).is_ok()
    }

    /// Inflates `input` into the message with `z`, in `output`-sized steps.
    fn inflate(
        &mut self,
        z: &mut Decompress,
        mut input: &[u8],
        output: &mut [u8],
        flush: FlushDecompress,
    ) {
        loop {
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z.decompress(input, output, flush);
            let used = (z.total_in() - in0) as usize;
            let made = (z.total_out() - out0) as usize;
            input = &input[used..];
            if made > 0 {
                let out = &output[..made];
                if self.msg.text {
                    self.msg.utf8.feed(out);
                }
                let inf = self.zs();
                inf.size += made as u64;
                inf.inflated = inf.inflated.saturating_add(made as u32);
                if !inf.no_context_takeover {
                    // Keep the last window's worth of uncompressed bytes.
                    inf.history.push(out, 1 << inf.window_bits);
                }
                let past_cap = inf.inflated as u64 > MAX_INFLATED_DIRECTION;
                if inf.size > MAX_INFLATED_MESSAGE || past_cap {
                    inf.capped |= past_cap;
                    self.raise(Anomaly::InflateLimit);
                    self.lose_message();
                    return;
                }
            }
            match status {
                Ok(Status::StreamEnd) => {
                    self.msg.stream_end = true;
                    return;
                }
                Ok(_) => {}
                Err(_) => {
                    self.raise(Anomaly::InflateError);
                    self.lose_message();
                    return;
                }
            }
            if made < output.len() && (input.is_empty() || used == 0 && made == 0) {
                return;
            }
        }
    }

    /// Payload bytes of a compressed message that spans deliveries, unmasked: inflated
    /// with the direction's own inflater (made at the message's first bytes).
    fn compressed_bytes(&mut self, d: &[u8], output: &mut [u8]) {
        if self.msg.partial || self.msg.stream_end {
            return;
        }
        let mut z = match self.zs().inflater.take() {
            Some(z) => z,
            None => {
                let mut z = Box::new(Decompress::new_with_window_bits(
                    false,
                    self.zs().window_bits.max(9),
                ));
                if !self.prime(&mut z) {
                    self.raise(Anomaly::InflateError);
                    self.lose_message();
                    return;
                }
                z
            }
        };
        self.inflate(&mut z, d, output, FlushDecompress::None);
        if !self.msg.partial {
            self.zs().inflater = Some(z);
        }
    }

    /// The current compressed message cannot be inflated to its end: its size is a lower
    /// bound, and with context takeover so are the later ones' in this direction.
    fn lose_message(&mut self) {
        self.msg.partial = true;
        if self.msg.compressed {
            let z = self.zs();
            z.inflater = None;
            z.lose_window();
        }
    }

    /// No more messages are expected (a Close frame, or the end of the stream): the
    /// window is freed; should a compressed message still come, its size is unknown.
    fn release(&mut self) {
        if self.msg.active {
            return;
        }
        if let Some(z) = &mut self.z {
            z.inflater = None;
            if !z.history.is_empty() {
                z.history = History::default();
                z.window_lost = true;
            }
        }
    }

    /// The message ended (its last frame did). `wire` is its payload bytes on the wire;
    /// `scratch` the thread's inflater and output buffer (borrowed once, by the caller).
    /// Returns its size in application bytes for the largest message (0: not known).
    fn finish_message(&mut self, wire: u64, scratch: &mut Scratch) -> u64 {
        if !self.msg.active {
            // Its start was lost (a resync, or mid-stream): its size is not known.
            self.inexact = true;
            return 0;
        }
        let m = &self.msg;
        if m.compressed && !m.partial && !m.stream_end && !m.inflated {
            // RFC 7692 §7.2.2: append 00 00 ff ff, inflate to the end.
            match self.zs().inflater.take() {
                Some(mut z) => {
                    self.inflate(&mut z, &TAIL, &mut scratch.output, FlushDecompress::Sync)
                }
                None => {
                    // An empty compressed message: only the tail.
                    let s = scratch;
                    s.inflater.reset(false);
                    if self.prime(&mut s.inflater) {
                        self.inflate(
                            &mut s.inflater,
                            &TAIL,
                            &mut s.output[..],
                            FlushDecompress::Sync,
                        );
                    }
                }
            }
        }
        let m = std::mem::take(&mut self.msg);
        let mut size = wire;
        if let Some(z) = &mut self.z {
            z.inflater = None;
            if m.compressed {
                // An uncompressed message's size is its wire size, known from its headers
                // even when bytes of it are missing; a compressed one's is what was
                // inflated.
                size = z.size;
                // A final block (BFINAL, RFC 7692 §7.2.3.5) ends this message's DEFLATE
                // stream; with context takeover the next message starts a new one primed
                // with the history kept here, so nothing is lost.
            }
            z.size = 0;
            z.total += size;
        }
        if m.partial {
            // Not fully inflated: a lower bound. (Uncompressed: only the text check is
            // skipped.)
            self.inexact |= m.compressed;
        } else if m.text && !m.utf8.finish() {
            self.raise(Anomaly::InvalidUtf8Text);
        }
        size
    }

    /// Missing bytes: what they did to the message being received.
    fn gap(&mut self, effect: GapEffect) {
        match effect {
            GapEffect::InsidePayload | GapEffect::InsideClosePayload => {
                if self.msg.active {
                    self.lose_message();
                }
            }
            GapEffect::FramingLost => {
                if self.msg.active {
                    self.lose_message();
                    self.msg.active = false;
                }
                // Any compressed message may have been in the gap.
                if let Some(z) = &mut self.z {
                    z.inflater = None;
                    z.lose_window();
                }
                self.inexact = true;
            }
            GapEffect::NotFramed => {}
        }
    }
}

/// What the payload consumer adds to one side of the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadTotals {
    /// Application bytes of complete data messages (`None` without permessage-deflate).
    pub bytes_inflated: Option<u64>,
    /// The largest complete data message in application bytes (`None`: not knowable).
    pub largest_message: Option<u64>,
    pub anomalies: Anomalies,
    /// A size is a lower bound.
    pub inexact: bool,
}

/// The payload consumer of one session: inflation (when permessage-deflate was
/// negotiated) and the UTF-8 check of text messages. 48 bytes, kept inline in the
/// session; the inflation state is allocated with it when the extension was negotiated.
#[derive(Debug)]
pub struct Payloads {
    dirs: [Direction; 2],
}

impl Payloads {
    /// For a session with `deflate` parameters (`None`: the extension was not negotiated,
    /// or the handshake was not seen).
    pub fn new(deflate: Option<Deflate>) -> Self {
        Payloads {
            dirs: [
                Direction::new(
                    deflate.map(|d| (d.client_max_window_bits, d.client_no_context_takeover)),
                ),
                Direction::new(
                    deflate.map(|d| (d.server_max_window_bits, d.server_no_context_takeover)),
                ),
            ],
        }
    }

    fn dir(&mut self, side: Side) -> &mut Direction {
        &mut self.dirs[side as usize]
    }

    /// The anomalies `side` raised since the last call, once per time each was raised
    /// (a message raises each at most once, and the session takes them after every event
    /// of that side).
    #[inline]
    pub fn take_raised(&mut self, side: Side, mut f: impl FnMut(Anomaly)) {
        let d = self.dir(side);
        if d.raised != 0 {
            for (i, &a) in RAISABLE.iter().enumerate() {
                if d.raised & 1 << i != 0 {
                    f(a);
                }
            }
            d.raised = 0;
        }
    }

    /// An event of `side`, as [`FrameConsumer::event`]; for the end of a data message, its
    /// size in application bytes (inflated when compressed; 0 otherwise or when unknown).
    #[inline]
    pub fn sized_event(&mut self, side: Side, _at: At, ev: StreamEvent<'_>) -> u64 {
        let d = self.dir(side);
        match ev {
            StreamEvent::Frame(f) => {
                if !d.frame_open {
                    d.start_frame(&f.header);
                }
                d.frame_open = false;
            }
            StreamEvent::Message { bytes, .. } => {
                return SCRATCH.with(|s| d.finish_message(bytes, &mut s.borrow_mut()));
            }
            StreamEvent::Gap { effect, .. } => d.gap(effect),
            // §5.5.1: no data message follows this side's Close frame; its window is not
            // needed any more (a session's record waits for the connection to be retired).
            StreamEvent::Close(_) => d.release(),
            StreamEvent::Anomaly(_) => {}
        }
        0
    }

    /// What this consumer says of `side`, whose largest message (sized by
    /// [`sized_event`](Self::sized_event)) was `largest`.
    pub fn totals(&self, side: Side, largest: u64) -> PayloadTotals {
        let d = &self.dirs[side as usize];
        PayloadTotals {
            bytes_inflated: d.z.as_ref().map(|z| z.total),
            largest_message: (!d.unknown_compression).then_some(largest),
            anomalies: d.anomalies(),
            inexact: d.inexact,
        }
    }

    /// `side`'s stream ended (FIN or RST): its inflater is freed.
    pub fn release(&mut self, side: Side) {
        self.dir(side).release();
    }

    /// The memory budget is spent (`flow::memory`): each direction lets go of its window
    /// and of the inflater of a message in flight, as when the window is lost in a gap
    /// (that message's size, and with context takeover the later compressed messages'
    /// sizes, become lower bounds).
    pub fn release_windows(&mut self) {
        for d in &mut self.dirs {
            let Some(z) = &d.z else { continue };
            if z.inflater.is_some() || z.history.capacity() > 0 {
                if d.msg.active && d.msg.compressed {
                    d.lose_message();
                }
                let z = d.zs();
                z.inflater = None;
                if z.history.capacity() > 0 {
                    z.history = History::default();
                    z.window_lost = true;
                }
            }
        }
    }

    /// Bytes held now (for memory accounting): each direction's window, and zlib's state
    /// while a message spans deliveries (about 20 KiB plus the window).
    pub fn inflater_bytes(&self) -> usize {
        self.dirs
            .iter()
            .filter_map(|d| d.z.as_deref())
            .map(|z| {
                z.history.capacity()
                    + z.inflater
                        .as_ref()
                        .map_or(0, |_| (1usize << z.window_bits.max(9)) + 20 * 1024)
            })
            .sum()
    }
}

impl FrameConsumer for Payloads {
    #[inline]
    fn memory_charge(&self) -> usize {
        self.inflater_bytes()
    }

    fn release_memory(&mut self, _at: At) {
        self.release_windows();
    }

    #[inline]
    fn event(&mut self, side: Side, at: At, ev: StreamEvent<'_>) {
        self.sized_event(side, at, ev);
    }

    #[inline]
    fn payload(&mut self, side: Side, header: &FrameHeader, offset: u64, bytes: &[u8]) {
        if !carries_message(header.opcode) {
            return;
        }
        let d = self.dir(side);
        if !d.frame_open {
            d.frame_open = true;
            d.start_frame(header);
            if offset > 0 {
                // The frame's start fell into a gap.
                d.lose_message();
            }
        }
        if !d.msg.followed() {
            return;
        }
        let m = &d.msg;
        // A whole single-frame message in this delivery: inflated here and now with the
        // per-thread inflater.
        let whole = m.compressed
            && offset == 0
            && header.fin
            && bytes.len() as u64 == header.payload_len
            && header.opcode != opcode::CONTINUATION;
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let Scratch {
                input,
                output,
                inflater,
            } = s;
            if whole {
                inflater.reset(false);
                if !d.prime(inflater) {
                    d.raise(Anomaly::InflateError);
                    d.lose_message();
                    return;
                }
            }
            let mut feed = |d: &mut Direction, chunk: &[u8]| {
                if !d.msg.compressed {
                    d.msg.utf8.feed(chunk);
                } else if whole {
                    if !d.msg.partial && !d.msg.stream_end {
                        d.inflate(inflater, chunk, output, FlushDecompress::None);
                    }
                } else {
                    d.compressed_bytes(chunk, output);
                }
            };
            match header.masking_key {
                None => feed(d, bytes),
                Some(key) => {
                    let mut pos = offset;
                    for chunk in bytes.chunks(input.len()) {
                        let buf = &mut input[..chunk.len()];
                        unmask_into(chunk, key, pos, buf);
                        feed(d, buf);
                        pos += chunk.len() as u64;
                    }
                }
            }
            if whole {
                if !d.msg.partial && !d.msg.stream_end {
                    d.inflate(inflater, &TAIL, output, FlushDecompress::Sync);
                }
                d.msg.inflated = true;
            }
        });
    }

    #[inline]
    fn wants_payload(&self) -> bool {
        true
    }

    /// Exactly when `payload` would change something: a data frame's first bytes (the frame
    /// is opened), or the bytes of a compressed or text message still being followed.
    #[inline]
    fn payload_wanted(&self, side: Side, header: &FrameHeader) -> bool {
        if !carries_message(header.opcode) {
            return false;
        }
        let d = &self.dirs[side as usize];
        !d.frame_open || d.msg.followed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::close::unmask;
    use crate::ws::stream::FrameStream;
    use flate2::{Compress, Compression, FlushCompress};

    /// A sender's compressor (raw DEFLATE, `bits` window): each message ends with a sync
    /// flush whose `00 00 ff ff` is removed (RFC 7692 §7.2.1).
    struct Sender(Compress);

    impl Sender {
        fn new(bits: u8) -> Self {
            Sender(Compress::new_with_window_bits(
                Compression::default(),
                false,
                bits,
            ))
        }
        fn message(&mut self, m: &[u8]) -> Vec<u8> {
            let mut out = vec![0; m.len() + 1024];
            let before = self.0.total_out();
            self.0.compress(m, &mut out, FlushCompress::Sync).unwrap();
            out.truncate((self.0.total_out() - before) as usize);
            assert!(out.ends_with(&TAIL));
            out.truncate(out.len() - 4);
            out
        }
    }

    /// A message compressed with a final block (BFINAL, RFC 7692 §7.2.3.5) by a new
    /// stream primed with `dictionary` (the sender's window under context takeover).
    fn final_block_message(m: &[u8], dictionary: &[u8]) -> Vec<u8> {
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        if !dictionary.is_empty() {
            c.set_dictionary(dictionary).unwrap();
        }
        let mut out = vec![0; m.len() + 1024];
        c.compress(m, &mut out, FlushCompress::Finish).unwrap();
        out.truncate(c.total_out() as usize);
        out
    }

    /// A frame on the wire: `rsv1` for a compressed message's first frame.
    fn frame(fin: bool, rsv1: bool, op: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        crate::ws::frame::wire_frame(fin, if rsv1 { 0b100 } else { 0 }, op, payload, key)
    }

    fn at() -> At {
        At::default()
    }

    /// Feeds `wire` as one direction (`side`) of a session with `deflate`, in segments of
    /// `seg` bytes, with a gap over `gap` (a byte range) if given.
    fn run(
        deflate: Deflate,
        side: Side,
        wire: &[u8],
        seg: usize,
        gap: Option<std::ops::Range<usize>>,
    ) -> PayloadTotals {
        let mut fs = FrameStream::new(side);
        fs.allow_rsv1();
        // With the counters, which keep the largest message.
        let mut c = crate::ws::session::Consumers {
            payloads: Some(Payloads::new(Some(deflate))),
            ..crate::ws::session::Consumers::default()
        };
        let mut pos = 0;
        while pos < wire.len() {
            if let Some(g) = gap.clone().filter(|g| g.start == pos) {
                fs.gap(g.len() as u64, at(), &mut c);
                pos = g.end;
                continue;
            }
            let mut end = (pos + seg).min(wire.len());
            if let Some(g) = gap.clone().filter(|g| g.start > pos) {
                end = end.min(g.start);
            }
            fs.data(&wire[pos..end], at(), &mut c);
            pos = end;
        }
        let largest = c.counts.side(side).largest_message;
        c.payloads.as_ref().unwrap().totals(side, largest)
    }

    fn json(i: usize, n: usize) -> Vec<u8> {
        let mut s = format!("{{\"seq\":{i},\"text\":\"");
        while s.len() < n - 2 {
            s.push_str("lorem ipsum é ");
        }
        s.truncate(n - 2);
        while !s.is_char_boundary(s.len()) {
            s.pop();
        }
        s.push_str("\"}");
        s.into_bytes()
    }

    /// Passing over the payload bytes nobody wants (`FrameStream::unread`, what a wss://
    /// record wholly inside them gets) leaves every consumer as reading them does: with and
    /// without inflation, in any segmentation, both sides.
    #[test]
    fn passing_over_unread_payload_is_reading_it() {
        let mut bad_text = json(1, 300);
        bad_text[100] = 0xff;
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (side, key) in [(Side::Client, Some([7, 1, 8, 2])), (Side::Server, None)] {
            let mut tx = Sender::new(10);
            let mut wire = Vec::new();
            wire.extend(frame(
                true,
                true,
                opcode::TEXT,
                &tx.message(&json(0, 500)),
                key,
            ));
            wire.extend(frame(true, false, opcode::BINARY, &big, key));
            wire.extend(frame(false, false, opcode::BINARY, &big[..3000], key));
            wire.extend(frame(true, false, opcode::PING, b"p", key));
            wire.extend(frame(
                true,
                false,
                opcode::CONTINUATION,
                &big[3000..9000],
                key,
            ));
            wire.extend(frame(true, false, opcode::TEXT, &json(2, 2000), key));
            wire.extend(frame(true, false, opcode::TEXT, &bad_text, key));
            let (a, b) = big.split_at(40_000);
            wire.extend(frame(false, true, opcode::BINARY, &tx.message(a), key));
            wire.extend(frame(
                true,
                false,
                opcode::CONTINUATION,
                &tx.message(b),
                key,
            ));
            wire.extend(frame(true, false, opcode::BINARY, &[], key));
            wire.extend(frame(true, false, opcode::CLOSE, b"\x03\xe8bye", key));
            let d = Deflate {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 10,
                client_max_window_bits: 10,
            };
            for inflate in [true, false] {
                for seg in [1, 7, 100, 1448, 16_384, wire.len()] {
                    let what = format!("{side:?} inflate {inflate} seg {seg}");
                    let mut states = Vec::new();
                    let mut passed = 0;
                    for pass in [false, true] {
                        let mut fs = FrameStream::new(side);
                        fs.allow_rsv1();
                        let mut c = crate::ws::session::Consumers {
                            payloads: inflate.then(|| Payloads::new(Some(d))),
                            ..crate::ws::session::Consumers::default()
                        };
                        // Each piece is two deliveries (packets), split where its unread
                        // bytes end: a frame must complete in the same one either way.
                        let mut packet = 0;
                        let mut at = || {
                            packet += 1;
                            At {
                                packet,
                                ts_ns: packet as i64 * 1000,
                            }
                        };
                        for piece in wire.chunks(seg) {
                            let n = fs.unread(&c).min(piece.len() as u64) as usize;
                            let first = at();
                            if pass && n > 0 {
                                fs.pass_over(n as u64, first, &mut c);
                                passed += n;
                            } else {
                                fs.data(&piece[..n], first, &mut c);
                            }
                            fs.data(&piece[n..], at(), &mut c);
                        }
                        states.push(format!("{fs:?} {c:?}"));
                    }
                    assert_eq!(states[0], states[1], "{what}");
                    // Most of the big binary message's bytes (a piece with a header in
                    // it is read whole, as a record is).
                    if (100..=16_384).contains(&seg) {
                        assert!(passed > 40_000, "{what}: {passed} passed over");
                    }
                }
            }
        }
    }

    #[test]
    fn inflates_with_and_without_context_takeover_in_any_segmentation() {
        let msgs: Vec<Vec<u8>> = (0..6).map(|i| json(i, 200 + 1500 * i)).collect();
        let total: u64 = msgs.iter().map(|m| m.len() as u64).sum();
        let largest = msgs.iter().map(|m| m.len() as u64).max();
        for takeover in [true, false] {
            for (side, key) in [(Side::Client, Some([7, 1, 8, 2])), (Side::Server, None)] {
                let mut tx = Sender::new(10);
                let mut wire = Vec::new();
                for (i, m) in msgs.iter().enumerate() {
                    if !takeover {
                        tx = Sender::new(10);
                    }
                    let c = tx.message(m);
                    if i == 2 {
                        // A fragmented compressed message: RSV1 on the first frame only.
                        let (a, b) = c.split_at(c.len() / 2);
                        wire.extend(frame(false, true, opcode::TEXT, a, key));
                        wire.extend(frame(true, false, opcode::PING, b"p", key));
                        wire.extend(frame(true, false, opcode::CONTINUATION, b, key));
                    } else if i == 4 {
                        // Sent uncompressed inside the deflate session (Node `ws`).
                        wire.extend(frame(true, false, opcode::TEXT, m, key));
                    } else {
                        wire.extend(frame(true, true, opcode::TEXT, &c, key));
                    }
                }
                let d = Deflate {
                    server_no_context_takeover: !takeover,
                    client_no_context_takeover: !takeover,
                    server_max_window_bits: 10,
                    client_max_window_bits: 10,
                };
                for seg in [1, 7, 100, 1448, wire.len()] {
                    let t = run(d, side, &wire, seg, None);
                    let what = format!("takeover {takeover} {side:?} seg {seg}");
                    assert_eq!(t.bytes_inflated, Some(total), "{what}");
                    assert_eq!(t.largest_message, largest, "{what}");
                    assert!(t.anomalies.is_empty() && !t.inexact, "{what}: {t:?}");
                }
            }
        }
    }

    /// The memory budget (`flow::memory`): with context takeover the window is charged;
    /// given up, it is gone, and the sizes of later compressed messages become lower
    /// bounds, as after a gap. Without context takeover nothing stays held.
    #[test]
    fn the_window_is_charged_and_given_up_under_the_memory_budget() {
        let msgs: Vec<Vec<u8>> = (0..3).map(|i| json(i, 3000)).collect();
        for takeover in [true, false] {
            let mut tx = Sender::new(12);
            let d = Deflate {
                server_no_context_takeover: !takeover,
                server_max_window_bits: 12,
                ..Deflate::default()
            };
            let mut fs = FrameStream::new(Side::Server);
            fs.allow_rsv1();
            let mut p = Payloads::new(Some(d));
            assert_eq!(p.memory_charge(), 0);
            for (i, m) in msgs.iter().enumerate() {
                if !takeover {
                    tx = Sender::new(12);
                }
                fs.data(
                    &frame(true, true, opcode::TEXT, &tx.message(m), None),
                    at(),
                    &mut p,
                );
                if i == 0 {
                    assert_eq!(p.memory_charge() > 0, takeover, "takeover {takeover}");
                    p.release_memory(at());
                    assert_eq!(p.memory_charge(), 0);
                }
            }
            let t = p.totals(Side::Server, 0);
            let all: u64 = msgs.iter().map(|m| m.len() as u64).sum();
            // Without takeover the next messages need no window: all inflated, exactly.
            assert_eq!(t.inexact, takeover, "takeover {takeover}: {t:?}");
            assert_eq!(t.bytes_inflated == Some(all), !takeover, "{t:?}");
        }
    }

    #[test]
    fn a_gap_in_a_compressed_message_makes_sizes_lower_bounds() {
        let mut tx = Sender::new(15);
        let msgs: Vec<Vec<u8>> = (0..3).map(|i| json(i, 5000)).collect();
        let mut wire = Vec::new();
        let mut starts = Vec::new();
        for m in &msgs {
            starts.push(wire.len());
            wire.extend(frame(true, true, opcode::TEXT, &tx.message(m), None));
        }
        // A gap inside the second message's payload: counts stay exact, its size and
        // (context takeover) the third's are not known.
        let g = starts[1] + 10..starts[1] + 20;
        let t = run(Deflate::default(), Side::Server, &wire, 1448, Some(g));
        assert!(t.inexact);
        assert!(t.bytes_inflated.unwrap() < 15000);
        assert!(t.bytes_inflated.unwrap() >= 5000);
    }

    #[test]
    fn corrupt_data_and_bad_text_are_named() {
        let mut wire = frame(true, true, opcode::BINARY, &[0xff; 40], None);
        // Invalid UTF-8 in an uncompressed text message, split over segments.
        wire.extend(frame(true, false, opcode::TEXT, b"ok \xc3\x28 no", None));
        let t = run(Deflate::default(), Side::Server, &wire, 5, None);
        assert!(t.anomalies.contains(Anomaly::InflateError), "{t:?}");
        assert!(t.anomalies.contains(Anomaly::InvalidUtf8Text), "{t:?}");
        assert!(t.inexact);
    }

    /// RFC 7692 §7.2.3.6 allows an empty compressed message (an RSV1 frame with no payload):
    /// inflated from the tail alone, 0 bytes (it once borrowed the thread's scratch twice
    /// and panicked; found by the `inflate` fuzz check).
    #[test]
    fn an_empty_compressed_message_is_zero_bytes() {
        let mut tx = Sender::new(15);
        let mut wire = frame(true, true, opcode::TEXT, &[], None);
        wire.extend(frame(true, true, opcode::TEXT, &tx.message(b"after"), None));
        let t = run(Deflate::default(), Side::Server, &wire, 3, None);
        assert_eq!(t.bytes_inflated, Some(5), "{t:?}");
        assert!(!t.inexact, "{t:?}");
    }

    /// Messages that end their DEFLATE stream with a final block, the next one referring
    /// back into the previous (context takeover): every size exact, the window kept across
    /// the stream's end (it once made every later size a lower bound).
    #[test]
    fn messages_ending_with_a_final_block_keep_the_window() {
        let first = json(0, 3000);
        let second = json(1, 3000);
        let mut wire = frame(
            true,
            true,
            opcode::TEXT,
            &final_block_message(&first, &[]),
            None,
        );
        let m2 = final_block_message(&second, &first);
        wire.extend(frame(true, true, opcode::TEXT, &m2, None));
        // The second message is small only because it refers to the first.
        assert!(m2.len() < 200, "{}", m2.len());
        for seg in [1, 7, 1 << 16] {
            let t = run(Deflate::default(), Side::Server, &wire, seg, None);
            assert_eq!(t.bytes_inflated, Some(6000), "seg {seg}: {t:?}");
            assert!(!t.inexact && t.anomalies.is_empty(), "seg {seg}: {t:?}");
        }
    }

    /// The session's consumers mark where inflation found each anomaly (`anomaly_packets`):
    /// the packet that completed the message, once per message.
    #[test]
    fn inflation_anomalies_are_marked_at_their_packet() {
        use crate::ws::session::Consumers;
        let mut frames = vec![
            frame(true, false, opcode::TEXT, b"fine", None),
            frame(true, true, opcode::BINARY, &[0xff; 40], None),
            frame(true, false, opcode::TEXT, b"bad \xc3\x28", None),
            frame(true, false, opcode::TEXT, b"also bad \xff", None),
        ];
        // The corrupt message in two packets: its error shows in the payload of the
        // first, and is marked when the frame completes, in the second.
        let corrupt = frames.remove(1);
        let (a, b) = corrupt.split_at(20);
        frames.insert(1, a.to_vec());
        frames.insert(2, b.to_vec());
        let mut fs = FrameStream::new(Side::Server);
        fs.allow_rsv1();
        let mut c = Consumers {
            payloads: Some(Payloads::new(Some(Deflate::default()))),
            ..Consumers::default()
        };
        for (i, f) in frames.iter().enumerate() {
            let at = At {
                packet: i as u64 + 10,
                ts_ns: 0,
            };
            fs.data(f, at, &mut c);
        }
        let mark = |a| c.facts.marks.get(a).map(|m| (m.first_packet, m.count));
        assert_eq!(mark(Anomaly::InflateError), Some((12, 1)));
        assert_eq!(mark(Anomaly::InvalidUtf8Text), Some((13, 2)));
        assert_eq!(mark(Anomaly::InflateLimit), None);
        let t = c.payloads.as_ref().unwrap().totals(Side::Server, 0);
        assert!(t.anomalies.contains(Anomaly::InflateError));
        assert!(t.anomalies.contains(Anomaly::InvalidUtf8Text));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_message_cap() {
        let zeros = vec![0u8; (MAX_INFLATED_MESSAGE + (1 << 20)) as usize];
        let mut tx = Sender::new(15);
        let bomb = tx.message(&zeros);
        assert!(bomb.len() < 200_000);
        let mut wire = frame(true, true, opcode::BINARY, &bomb, None);
        wire.extend(frame(true, false, opcode::BINARY, b"after", None));
        let t = run(Deflate::default(), Side::Server, &wire, 1 << 16, None);
        assert!(t.anomalies.contains(Anomaly::InflateLimit), "{t:?}");
        assert!(t.inexact);
        let n = t.bytes_inflated.unwrap();
        assert!(
            n > MAX_INFLATED_MESSAGE && n < MAX_INFLATED_MESSAGE + (1 << 20),
            "{n}"
        );
    }

    #[test]
    fn unmask_into_matches_the_byte_rule_at_every_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..40u8).collect();
        for pos in 0..8u64 {
            for len in [0usize, 1, 3, 7, 8, 9, 17, 40] {
                let mut want = data[..len].to_vec();
                unmask(&mut want, key, pos as usize);
                let mut got = vec![0; len];
                unmask_into(&data[..len], key, pos, &mut got);
                assert_eq!(got, want, "pos {pos} len {len}");
            }
        }
    }

    #[test]
    fn utf8_split_anywhere() {
        let s = "aé€😀z".as_bytes();
        for cut in 0..=s.len() {
            for cut2 in cut..=s.len() {
                let mut u = Utf8::default();
                u.feed(&s[..cut]);
                u.feed(&s[cut..cut2]);
                u.feed(&s[cut2..]);
                assert!(u.finish(), "{cut} {cut2}");
            }
        }
        let mut u = Utf8::default();
        u.feed(b"ok\xe2\x82");
        assert!(!u.finish(), "cut at the end");
        let mut u = Utf8::default();
        u.feed(b"\xe2");
        u.feed(b"\x28\xa1");
        assert!(!u.finish(), "bad continuation across pieces");
    }
}
