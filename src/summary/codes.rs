//! The IANA WebSocket Close Code Number Registry (RFC 6455 §7.4, §11.7): every registered
//! code with its name and meaning, and the ranges for the rest.

/// A close code's registered name and what it usually means in a post-mortem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub name: &'static str,
    pub meaning: &'static str,
}

const fn info(name: &'static str, meaning: &'static str) -> CodeInfo {
    CodeInfo { name, meaning }
}

/// The registered codes, in order (RFC 6455 §7.4.1 and the IANA registry).
pub const REGISTERED: &[(u16, CodeInfo)] = &[
    (
        1000,
        info(
            "Normal Closure",
            "the purpose of the connection was fulfilled",
        ),
    ),
    (
        1001,
        info(
            "Going Away",
            "a server going down, or a browser leaving the page",
        ),
    ),
    (1002, info("Protocol error", "the peer broke RFC 6455")),
    (
        1003,
        info(
            "Unsupported Data",
            "a data type the endpoint cannot accept (text vs binary)",
        ),
    ),
    (1004, info("Reserved", "reserved; never sent")),
    (
        1005,
        info(
            "No Status Rcvd",
            "a Close frame without a status code (never on the wire)",
        ),
    ),
    (
        1006,
        info(
            "Abnormal Closure",
            "no Close frame: the TCP connection just ended (never on the wire)",
        ),
    ),
    (
        1007,
        info("Invalid frame payload data", "e.g. text that is not UTF-8"),
    ),
    (
        1008,
        info(
            "Policy Violation",
            "a policy of the endpoint: authentication, origin, rate",
        ),
    ),
    (
        1009,
        info(
            "Message Too Big",
            "a message over the receiver's size limit",
        ),
    ),
    (
        1010,
        info(
            "Mandatory Ext.",
            "the client needed an extension the server did not accept",
        ),
    ),
    (
        1011,
        info(
            "Internal Error",
            "an unexpected condition in the endpoint (also Python websockets' keepalive timeout)",
        ),
    ),
    (1012, info("Service Restart", "the server is restarting")),
    (
        1013,
        info("Try Again Later", "the server is overloaded or throttling"),
    ),
    (
        1014,
        info(
            "Bad Gateway",
            "a gateway got an invalid answer from upstream",
        ),
    ),
    (
        1015,
        info(
            "TLS handshake",
            "the TLS handshake failed (never on the wire)",
        ),
    ),
    (
        3000,
        info(
            "Unauthorized",
            "the endpoint requires authentication (IANA-registered)",
        ),
    ),
    (
        3003,
        info(
            "Forbidden",
            "authenticated but not allowed (IANA-registered)",
        ),
    ),
    (
        3008,
        info("Timeout", "an application-level timeout (IANA-registered)"),
    ),
];

/// The name and meaning of any close code: registered, or the range it falls in.
pub fn describe(code: u16) -> CodeInfo {
    if let Some((_, i)) = REGISTERED.iter().find(|(c, _)| *c == code) {
        return *i;
    }
    match code {
        0..=999 => info("(not used)", "outside every range (§7.4.2): a broken peer"),
        1016..=2999 => info("(unassigned)", "reserved for RFC 6455 and its extensions"),
        3000..=3999 => info(
            "(library/framework)",
            "for libraries and frameworks, registered first come first served",
        ),
        4000..=4999 => info("(application)", "private use: the application's own code"),
        _ => info("(not used)", "outside every range (§7.4.2): a broken peer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_name() {
        assert_eq!(describe(1000).name, "Normal Closure");
        assert_eq!(describe(1012).name, "Service Restart");
        assert_eq!(describe(3003).name, "Forbidden");
        assert_eq!(describe(4001).name, "(application)");
        assert_eq!(describe(2500).name, "(unassigned)");
        let mut last = 0;
        for (c, _) in REGISTERED {
            assert!(*c > last, "registry in order");
            last = *c;
        }
    }
}
