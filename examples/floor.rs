//! The floor: read and decode every packet of a capture, on all cores, and nothing else.
//! wsclose's own time is measured against this (scripts/compare.sh).
//!
//!     cargo run --release --example floor -- [--threads N] CAPTURE...
//!
//! It uses wsclose's reader (chunks framed in place, on a reader thread) and decoder
//! (etherparse header slices), spreads decoding over a rayon pool, and prints what it saw
//! so that nothing is optimised away.

use std::sync::mpsc;

use rayon::prelude::*;
use wsclose::capture::{Batch, Capture, Fill};
use wsclose::config::Limits;
use wsclose::decode::decode;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        threads = args[i + 1].parse().expect("--threads N");
        args.drain(i..i + 2);
    }
    if args.is_empty() {
        eprintln!("usage: floor [--threads N] CAPTURE...");
        std::process::exit(2);
    }
    let limits = Limits::default();
    let mut capture = Capture::open(&args, &limits);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::sync_channel::<Batch>(2);
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    let reader = std::thread::spawn(move || {
        loop {
            let mut b = back_rx.try_recv().unwrap_or_default();
            b.clear();
            let fill = capture.fill(&mut b);
            tx.send(b).unwrap();
            if let Fill::End = fill {
                break;
            }
        }
        capture
    });
    let (mut packets, mut tcp, mut payload) = (0u64, 0u64, 0u64);
    for b in rx {
        let (t, p) = pool.install(|| {
            b.packets
                .par_chunks(2048)
                .map(|chunk| {
                    let (mut t, mut p) = (0u64, 0u64);
                    for pkt in chunk {
                        if let Ok(seg) = decode(pkt.linktype, b.data(pkt)) {
                            t += 1;
                            p += seg.payload_len as u64 + (seg.key.shard_hash() & 1);
                        }
                    }
                    (t, p)
                })
                .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        packets += b.packets.len() as u64;
        tcp += t;
        payload += p;
        let _ = back_tx.send(b);
    }
    let capture = reader.join().unwrap();
    println!(
        "floor: {packets} packets, {tcp} TCP, {payload} payload bytes (+hash bits), {} bytes read",
        capture.bytes_read()
    );
}
