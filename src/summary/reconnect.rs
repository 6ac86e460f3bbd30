//! Reconnects: a client (by IP address) that opens a new session soon after one of its
//! sessions ended, and storms: many clients doing so within seconds. Rows arrive in the
//! order of their first packet, so "soon after" is decided as they come, with a small
//! bounded memory per client.

use std::collections::{BTreeMap, HashMap};

use super::dist::LogHist;
use super::row::{Row, NONE};
use crate::net::Addr;

/// A new session within this long after an earlier one of the same client ended is a
/// reconnect (µs).
pub const RECONNECT_WINDOW_US: i64 = 10_000_000;
/// A storm: at least this many distinct clients reconnecting within...
pub const STORM_MIN_CLIENTS: usize = 5;
/// ...this window (µs)...
pub const STORM_WINDOW_US: i64 = 5_000_000;
/// ...at least this many times the capture's usual reconnects per window (the others'
/// average): a burst, not the steady churn of a busy service.
pub const STORM_FACTOR: f64 = 5.0;
/// Clients whose recent ends are remembered (beyond it, new clients are not tracked).
pub const MAX_TRACKED_CLIENTS: usize = 1 << 18;
/// Recent session ends remembered per client (inline: no allocation per client).
const ENDS_PER_CLIENT: usize = 4;
/// Distinct clients remembered per second of reconnects: enough to tell a storm (the
/// storm's own count of clients is taken exactly when its sessions are named).
const CLIENTS_PER_SECOND: usize = 8;
/// Seconds with reconnects remembered.
const MAX_SECONDS: usize = 1 << 16;

/// Follows sessions in first-packet order and says which are reconnects.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per client: its latest session ends ([`NONE`] where unused).
    ends: HashMap<Addr, [i64; ENDS_PER_CLIENT]>,
    /// New clients could not be tracked (the map is full).
    pub saturated: bool,
}

impl Tracker {
    /// The next session: if it is a reconnect, the delay (µs) since the end of the same
    /// client's latest session that ended before it started.
    pub fn next(&mut self, r: &Row) -> Option<i64> {
        let ip = r.client.addr;
        let full = self.ends.len() >= MAX_TRACKED_CLIENTS;
        let ends = match self.ends.get_mut(&ip) {
            Some(e) => Some(e),
            None if full => {
                self.saturated = true;
                None
            }
            None => Some(self.ends.entry(ip).or_insert([NONE; ENDS_PER_CLIENT])),
        }?;
        let delay = ends
            .iter()
            .filter(|&&e| e != NONE && e <= r.start)
            .map(|&e| r.start - e)
            .min()
            .filter(|&d| d <= RECONNECT_WINDOW_US);
        if r.ended != NONE {
            // Replace the earliest end (or an unused slot, which is the smallest).
            let (i, _) = ends
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| **e)
                .expect("not empty");
            ends[i] = r.ended;
        }
        delay
    }
}

/// Reconnects over the whole capture: counts, delays, and the seconds they happened in.
#[derive(Debug, Default)]
pub struct Reconnects {
    tracker: Tracker,
    pub count: u64,
    pub delays: LogHist,
    /// Distinct reconnecting clients (counted up to [`MAX_TRACKED_CLIENTS`]).
    clients: HashMap<Addr, ()>,
    /// Second of the capture → (reconnects, distinct clients seen in it).
    seconds: BTreeMap<i64, (u64, Vec<Addr>)>,
}

/// A burst of reconnects from many clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storm {
    /// Window of reconnect times (µs, inclusive).
    pub from: i64,
    pub to: i64,
    pub reconnects: u64,
    /// Distinct clients seen in the window (at least; at most a few are kept per second:
    /// the storm finding counts them all).
    pub clients: usize,
}

impl Reconnects {
    pub fn add(&mut self, r: &Row) {
        let Some(delay) = self.tracker.next(r) else {
            return;
        };
        self.count += 1;
        self.delays.add(delay.max(0) as u64);
        if self.clients.len() < MAX_TRACKED_CLIENTS {
            self.clients.insert(r.client.addr, ());
        }
        let sec = r.start.div_euclid(1_000_000);
        if self.seconds.len() < MAX_SECONDS || self.seconds.contains_key(&sec) {
            let (n, ips) = self.seconds.entry(sec).or_default();
            *n += 1;
            if ips.len() < CLIENTS_PER_SECOND && !ips.contains(&r.client.addr) {
                ips.push(r.client.addr);
            }
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    pub fn saturated(&self) -> bool {
        self.tracker.saturated
    }

    /// Windows of [`STORM_WINDOW_US`] in which at least [`STORM_MIN_CLIENTS`] distinct
    /// clients reconnected, [`STORM_FACTOR`] times the usual rate or more; overlapping
    /// windows are merged.
    pub fn storms(&self) -> Vec<Storm> {
        let secs: Vec<(&i64, &(u64, Vec<Addr>))> = self.seconds.iter().collect();
        let span = STORM_WINDOW_US / 1_000_000;
        let (first, last) = match (secs.first(), secs.last()) {
            (Some(f), Some(l)) => (*f.0, *l.0),
            _ => return Vec::new(),
        };
        let windows = ((last - first) / span + 1) as f64;
        let mut storms: Vec<Storm> = Vec::new();
        for (i, (&s0, _)) in secs.iter().enumerate() {
            let mut ips: Vec<Addr> = Vec::new();
            let mut n = 0;
            let mut last = s0;
            for (&s, (k, v)) in secs[i..].iter().take_while(|(&s, _)| s < s0 + span) {
                n += k;
                last = s;
                for ip in v {
                    if !ips.contains(ip) {
                        ips.push(*ip);
                    }
                }
            }
            // The usual rate: the other reconnects spread over the other windows.
            let usual = (self.count - n) as f64 / (windows - 1.0).max(1.0);
            if ips.len() >= STORM_MIN_CLIENTS && n as f64 >= STORM_FACTOR * usual {
                let (from, to) = (s0 * 1_000_000, last * 1_000_000 + 999_999);
                match storms.last_mut() {
                    Some(st) if from <= st.to => {
                        st.to = st.to.max(to);
                        st.reconnects = st.reconnects.max(n);
                        st.clients = st.clients.max(ips.len());
                    }
                    _ => storms.push(Storm {
                        from,
                        to,
                        reconnects: n,
                        clients: ips.len(),
                    }),
                }
            }
        }
        storms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Endpoint;
    use crate::record::SessionRecord;

    fn row(ip: u8, start_s: f64, end_s: f64) -> Row {
        let mut r = Row::from_record(0, 1, &SessionRecord::example());
        r.client = Endpoint::v4([10, 0, 0, ip], 40000);
        r.start = (start_s * 1e6) as i64;
        r.ended = (end_s * 1e6) as i64;
        r
    }

    #[test]
    fn a_client_back_soon_after_its_end_is_a_reconnect() {
        let mut t = Tracker::default();
        assert_eq!(t.next(&row(1, 0.0, 5.0)), None);
        assert_eq!(t.next(&row(2, 1.0, 2.0)), None, "another client");
        assert_eq!(t.next(&row(1, 6.5, 9.0)), Some(1_500_000));
        assert_eq!(t.next(&row(1, 30.0, 31.0)), None, "too late");
    }

    #[test]
    fn many_clients_within_seconds_are_a_storm() {
        let mut r = Reconnects::default();
        for ip in 1..=8 {
            r.add(&row(ip, 0.0, 10.0));
        }
        for ip in 1..=8 {
            r.add(&row(ip, 10.5 + ip as f64 * 0.2, 20.0));
        }
        assert_eq!(r.count, 8);
        let s = r.storms();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].clients, 8);
        // Steady churn: many clients reconnecting all the time is not a burst.
        let mut churn = Reconnects::default();
        for i in 0..600u32 {
            let ip = (i % 50) as u8 + 1;
            let t = i as f64 * 0.5;
            churn.add(&row(ip, t, t + 24.0));
        }
        assert!(churn.count > 500);
        assert!(churn.storms().is_empty(), "{:?}", churn.storms());
        // One client reconnecting again and again is not a storm.
        let mut one = Reconnects::default();
        for i in 0..20 {
            one.add(&row(1, i as f64, i as f64 + 0.5));
        }
        assert_eq!(one.count, 19);
        assert!(one.storms().is_empty());
    }
}
