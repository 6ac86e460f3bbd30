//! Errors that stop reading an input: they always say which file and where.

use std::fmt;
use std::io;

/// What went wrong in a capture file.
#[derive(Debug)]
#[non_exhaustive]
pub enum InputErrorKind {
    /// The file does not start with a pcap or pcapng magic number.
    NotACapture { magic: [u8; 4] },
    /// The file ended inside a header, record or block.
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A record or block length that cannot be right.
    BadLength {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// A pcapng block that does not parse.
    BadBlock {
        block_type: u32,
        reason: &'static str,
    },
    /// A packet names an interface that no Interface Description Block declared.
    UnknownInterface { if_id: u32, known: usize },
    /// The operating system failed to read or open the file.
    Io(io::Error),
}

/// An input error, with the file and the byte offset where it happened.
#[derive(Debug)]
pub struct InputError {
    pub path: String,
    pub offset: u64,
    pub kind: Box<InputErrorKind>,
}

impl InputError {
    pub fn new(path: &str, offset: u64, kind: InputErrorKind) -> Self {
        InputError {
            path: path.to_string(),
            offset,
            kind: Box::new(kind),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: offset {}: ", self.path, self.offset)?;
        match &*self.kind {
            InputErrorKind::NotACapture { magic } => write!(
                f,
                "not a pcap or pcapng capture (first bytes {:02x} {:02x} {:02x} {:02x})",
                magic[0], magic[1], magic[2], magic[3]
            ),
            InputErrorKind::Truncated { what, needed, available } => write!(
                f,
                "file ends inside a {what}: {needed} bytes needed, {available} present (truncated capture)"
            ),
            InputErrorKind::BadLength { what, len, max } => {
                write!(f, "{what} length {len} is impossible (at most {max}): corrupt capture")
            }
            InputErrorKind::BadBlock { block_type, reason } => {
                write!(f, "pcapng block type 0x{block_type:08x}: {reason}")
            }
            InputErrorKind::UnknownInterface { if_id, known } => write!(
                f,
                "packet on interface {if_id}, but the section declares {known} interface(s)"
            ),
            InputErrorKind::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            InputErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
