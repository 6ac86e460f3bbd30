//! Errors that stop reading an input: they always say which file and where, in one style:
//! `FILE: what is wrong (offset N)`.

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
    /// The file could not be opened (there is no offset to name).
    Open(io::Error),
    /// The operating system failed to read the file, or its gzip stream is corrupt.
    Io(io::Error),
}

/// An input error, with the file and the byte offset where it happened.
#[derive(Debug)]
pub struct InputError {
    pub path: String,
    pub offset: u64,
    /// The input is gzip-compressed: `offset` counts decompressed bytes.
    pub decompressed: bool,
    pub kind: Box<InputErrorKind>,
}

impl InputError {
    pub fn new(path: &str, offset: u64, kind: InputErrorKind) -> Self {
        InputError {
            path: path.to_string(),
            offset,
            decompressed: false,
            kind: Box::new(kind),
        }
    }

    /// A read on a live input that would have waited past the hand-on deadline: not an
    /// error, the input simply has nothing more yet.
    pub fn is_would_block(&self) -> bool {
        matches!(&*self.kind, InputErrorKind::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// The file ended inside a header, record or block.
    pub fn is_truncation(&self) -> bool {
        matches!(&*self.kind, InputErrorKind::Truncated { .. })
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &*self.kind {
            InputErrorKind::NotACapture { magic } => write!(
                f,
                "not a pcap or pcapng capture: first bytes {:02x} {:02x} {:02x} {:02x}",
                magic[0], magic[1], magic[2], magic[3]
            )?,
            InputErrorKind::Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "truncated capture: the file ends inside a {what}, {needed} bytes needed, {available} present"
            )?,
            InputErrorKind::BadLength { what, len, max } => write!(
                f,
                "corrupt capture: {what} length {len} is impossible, at most {max}"
            )?,
            InputErrorKind::BadBlock { block_type, reason } => {
                write!(f, "pcapng block type 0x{block_type:08x}: {reason}")?
            }
            InputErrorKind::UnknownInterface { if_id, known } => write!(
                f,
                "packet on interface {if_id}, but the section declares {known} interface{}",
                if *known == 1 { "" } else { "s" }
            )?,
            // Nothing was read: no offset to name.
            InputErrorKind::Open(e) if is_emfile(e) => {
                return write!(
                    f,
                    "cannot open: {e}; inputs whose packets overlap in time are open together: \
                     raise the limit (ulimit -n)"
                )
            }
            InputErrorKind::Open(e) => return write!(f, "cannot open: {e}"),
            InputErrorKind::Io(e) if self.decompressed => {
                write!(f, "reading the gzip stream: {e}")?
            }
            InputErrorKind::Io(e) => write!(f, "read error: {e}")?,
        }
        if self.decompressed {
            write!(f, " (offset {} of the decompressed data)", self.offset)
        } else {
            write!(f, " (offset {})", self.offset)
        }
    }
}

/// Too many open files (EMFILE).
fn is_emfile(e: &io::Error) -> bool {
    e.raw_os_error() == Some(24)
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            InputErrorKind::Io(e) | InputErrorKind::Open(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_style_file_what_offset() {
        let e = InputError::new(
            "a.pcap",
            5999,
            InputErrorKind::Truncated {
                what: "pcap record",
                needed: 76,
                available: 51,
            },
        );
        assert_eq!(
            e.to_string(),
            "a.pcap: truncated capture: the file ends inside a pcap record, 76 bytes needed, 51 present (offset 5999)"
        );
        let mut e = InputError::new(
            "b.pcap.gz",
            24,
            InputErrorKind::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "corrupt deflate stream",
            )),
        );
        e.decompressed = true;
        assert_eq!(
            e.to_string(),
            "b.pcap.gz: reading the gzip stream: corrupt deflate stream (offset 24 of the decompressed data)"
        );
        let e = InputError::new(
            "c.pcap",
            0,
            InputErrorKind::Open(io::Error::from(io::ErrorKind::NotFound)),
        );
        assert!(e.to_string().starts_with("c.pcap: cannot open: "), "{e}");
        assert!(!e.to_string().contains("offset"), "{e}");
        let e = InputError::new(
            "d",
            9,
            InputErrorKind::UnknownInterface { if_id: 2, known: 1 },
        );
        assert_eq!(
            e.to_string(),
            "d: packet on interface 2, but the section declares 1 interface (offset 9)"
        );
    }
}
