//! `--filter`: a BPF expression (tcpdump syntax) compiled by libpcap, one program per link
//! type (the same expression compiles to different code for Ethernet and for Linux SLL),
//! and run on every packet with `pcap_offline_filter`.

use std::collections::HashMap;

use pcap::{BpfProgram, Capture, Linktype};

pub struct BpfFilter {
    expr: String,
    programs: HashMap<u16, Option<BpfProgram>>,
}

impl BpfFilter {
    /// Compiles `expr` once for Ethernet to report a syntax error before reading anything.
    pub fn new(expr: &str) -> Result<BpfFilter, String> {
        let mut f = BpfFilter {
            expr: expr.to_string(),
            programs: HashMap::new(),
        };
        let prog = f.compile(1).map_err(|e| format!("{expr:?}: {e}"))?;
        f.programs.insert(1, Some(prog));
        Ok(f)
    }

    fn compile(&self, linktype: u16) -> Result<BpfProgram, pcap::Error> {
        Capture::dead(Linktype(linktype as i32))?.compile(&self.expr, true)
    }

    /// Whether the packet matches. A link type the expression cannot be compiled for
    /// matches nothing (said once on stderr).
    pub fn matches(&mut self, linktype: u16, data: &[u8], _origlen: u32) -> bool {
        if !self.programs.contains_key(&linktype) {
            let prog = match self.compile(linktype) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!(
                        "wsclose: warning: --filter cannot be compiled for link type {linktype} ({e}); \
                         its packets are skipped"
                    );
                    None
                }
            };
            self.programs.insert(linktype, prog);
        }
        self.programs[&linktype]
            .as_ref()
            .is_some_and(|p| p.filter(data))
    }
}
