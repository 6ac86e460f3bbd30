//! Close frame payload (RFC 6455 §5.5.1): an optional 2-byte status code, then a UTF-8
//! reason; and the status code ranges of §7.4.

/// Longest control frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Whether `code` may appear in a Close frame on the wire (§7.4.1, §7.4.2, and the IANA
/// registry of §11.7, which added 1012-1014). 1005, 1006 and 1015 are for reporting only.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Writes `bytes` as UTF-8 text, with every byte of an invalid sequence, and every C0
/// control character and DEL (U+0000 to U+001F, U+007F: a line feed would split a report
/// row), as `\xNN`. Returns false if any byte was invalid UTF-8.
pub fn escape_reason(bytes: &[u8], out: &mut String) -> bool {
    let mut valid = true;
    for chunk in bytes.utf8_chunks() {
        let text = chunk.valid();
        let mut from = 0;
        for (i, b) in text.bytes().enumerate() {
            if b < 0x20 || b == 0x7f {
                out.push_str(&text[from..i]);
                out.push_str(&format!("\\x{b:02X}"));
                from = i + 1;
            }
        }
        out.push_str(&text[from..]);
        for b in chunk.invalid() {
            valid = false;
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    valid
}

/// Unmasks `data`, the payload bytes starting at payload offset `pos` (§5.3).
pub fn unmask(data: &mut [u8], key: [u8; 4], pos: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(pos + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_ranges() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4000, 4999,
        ] {
            assert!(is_valid_close_code(c), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_close_code(c), "{c}");
        }
    }

    #[test]
    fn reasons_escape_invalid_utf8() {
        let mut s = String::new();
        assert!(escape_reason("¡adiós!".as_bytes(), &mut s));
        assert_eq!(s, "¡adiós!");
        s.clear();
        assert!(!escape_reason(b"ok\xff\xc3", &mut s));
        assert_eq!(s, "ok\\xFF\\xC3");
    }

    #[test]
    fn reasons_escape_control_characters() {
        let mut s = String::new();
        // Valid UTF-8 all along: still true, but no control character is written as is.
        assert!(escape_reason(b"line 1\nline 2\r\tend\x7f\x00", &mut s));
        assert_eq!(s, "line 1\\x0Aline 2\\x0D\\x09end\\x7F\\x00");
        assert!(!s.chars().any(char::is_control));
        s.clear();
        assert!(!escape_reason(b"\x1b[31m\xff", &mut s));
        assert_eq!(s, "\\x1B[31m\\xFF");
        s.clear();
        // Other characters (a no-break space, accents) are kept.
        assert!(escape_reason("tab\u{a0}é~".as_bytes(), &mut s));
        assert_eq!(s, "tab\u{a0}é~");
    }

    #[test]
    fn unmask_is_positional() {
        let key = [1, 2, 3, 4];
        let mut a = *b"abcdef";
        unmask(&mut a, key, 0);
        let mut b = *b"abcdef";
        unmask(&mut b[..3], key, 0);
        unmask(&mut b[3..], key, 3);
        assert_eq!(a, b);
    }
}
