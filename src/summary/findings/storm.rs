//! `reconnect_storm`: many clients reconnecting within seconds, after a shutdown or a
//! mass drop. The first pass found the windows ([`Reconnects::storms`]); the second pass
//! follows the same reconnects again and names those in a window.

use super::{secs, sessions, Cause, Context, Ev, Finding, Named, Probe};
use crate::summary::dist::LogHist;
use crate::summary::reconnect::{Reconnects, Storm, Tracker, STORM_MIN_CLIENTS, STORM_WINDOW_US};
use crate::summary::row::Row;

pub fn probes(r: &Reconnects) -> Vec<Box<dyn Probe>> {
    let storms = r.storms();
    if storms.is_empty() {
        return Vec::new();
    }
    vec![Box::new(StormProbe {
        storms,
        tracker: Tracker::default(),
        delays: LogHist::default(),
        clients: Default::default(),
    })]
}

struct StormProbe {
    storms: Vec<Storm>,
    tracker: Tracker,
    delays: LogHist,
    /// The distinct clients of the named sessions (bounded like the sessions named).
    clients: std::collections::HashSet<crate::net::Addr>,
}

impl Probe for StormProbe {
    fn pick(&mut self, r: &Row, _cx: &Context<'_>) -> bool {
        let Some(delay) = self.tracker.next(r) else {
            return false;
        };
        if !self
            .storms
            .iter()
            .any(|s| r.start >= s.from && r.start <= s.to)
        {
            return false;
        }
        self.delays.add(delay.max(0) as u64);
        if self.clients.len() < super::MAX_NAMED {
            self.clients.insert(r.client.addr);
        }
        true
    }

    fn finish(self: Box<Self>, named: Named, _cx: &Context<'_>) -> Option<Finding> {
        if named.total == 0 {
            return None;
        }
        let clients = self.clients.len();
        let when: Vec<String> = self
            .storms
            .iter()
            .map(|s| {
                let (mut a, mut b) = (String::new(), String::new());
                crate::time::write_rfc3339_micros(&mut a, s.from * 1000);
                crate::time::write_rfc3339_micros(&mut b, s.to * 1000);
                format!("{a} to {b}: {} reconnects", s.reconnects)
            })
            .collect();
        Some(Finding {
            cause: Cause::ReconnectStorm,
            severity: Cause::ReconnectStorm.severity(),
            title: format!(
                "{} were reconnects of {clients} clients within {}",
                sessions(named.total),
                secs(STORM_WINDOW_US)
            ),
            sessions: named.refs,
            sessions_total: named.total,
            evidence: vec![
                ("storms", Ev::Text(when.join("; "))),
                ("clients", Ev::Count(clients as u64)),
                ("delay_after_previous_end_s", Ev::MicrosSpread(self.delays)),
            ],
            advice: format!(
                "At least {STORM_MIN_CLIENTS} clients came back within seconds of losing \
                 their sessions: a restart or a mass drop (see the findings around it). \
                 Reconnecting at once loads the server when it is weakest: use exponential \
                 backoff with random jitter in the clients."
            ),
        })
    }
}
