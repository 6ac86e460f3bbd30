//! Decryption Secrets Blocks in pcapng: read, handed on with the batch they precede, and
//! a batch ends before one that follows its packets — so secrets apply from exactly where
//! they are in the capture, whatever the batch size.

use std::io::Cursor;

use super::*;

fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    let mut b = ty.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    body.extend([1, 0, 0, 0]);
    body.extend((-1i64).to_le_bytes());
    block(0x0A0D_0D0A, &body)
}

fn idb() -> Vec<u8> {
    let mut body = 1u16.to_le_bytes().to_vec();
    body.extend([0, 0]);
    body.extend(0u32.to_le_bytes());
    block(1, &body)
}

fn epb(n: u32) -> Vec<u8> {
    let data = [n as u8; 20];
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend(0u32.to_le_bytes());
    body.extend(n.to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend(data);
    block(6, &body)
}

fn dsb(text: &str) -> Vec<u8> {
    let mut body = 0x544c_534bu32.to_le_bytes().to_vec();
    body.extend((text.len() as u32).to_le_bytes());
    body.extend(text.as_bytes());
    block(0x0A, &body)
}

/// (packets, secrets texts with their after-packets flag) of each batch.
fn batches(files: Vec<Vec<u8>>, batch_packets: usize) -> Vec<(usize, Vec<(String, bool)>)> {
    let limits = Limits {
        batch_packets,
        ..Limits::default()
    };
    let readers = files
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            FileReader::from_reader(format!("f{i}"), Box::new(Cursor::new(f)), &limits).unwrap()
        })
        .collect();
    let mut c = Capture::from_readers(readers, vec![], &limits);
    let mut out = Vec::new();
    loop {
        let mut b = Batch::default();
        let fill = c.fill(&mut b);
        let secrets = b
            .secrets
            .iter()
            .map(|s| {
                assert_eq!(s.secrets_type, 0x544c_534b);
                (String::from_utf8(s.data.clone()).unwrap(), s.after_packets)
            })
            .collect();
        out.push((b.packets.len(), secrets));
        if let Fill::End = fill {
            break;
        }
    }
    assert!(c.take_errors().is_empty());
    out
}

#[test]
fn secrets_go_with_the_batch_they_precede() {
    let first = [shb(), idb(), dsb("A"), epb(1), epb(2), epb(3)].concat();
    assert_eq!(
        batches(vec![first], 100),
        [(3, vec![("A".into(), false)])],
        "a block before every packet serves the first batch"
    );
    let middle = [
        shb(),
        idb(),
        epb(1),
        epb(2),
        dsb("B"),
        epb(3),
        dsb("C"),
        epb(4),
    ]
    .concat();
    for batch in [1, 2, 3, 100] {
        let got = batches(vec![middle.clone()], batch);
        // Wherever batches end by size, the packets before each block are in batches
        // without it, and the packets after it come in a batch that carries it (or later).
        let mut seen = 0;
        let mut before = Vec::new();
        for (n, secrets) in &got {
            for (s, late) in secrets {
                assert!(*late);
                before.push((s.clone(), seen));
            }
            seen += n;
        }
        assert_eq!(
            before,
            [("B".to_string(), 2), ("C".to_string(), 3)],
            "batch {batch}"
        );
        assert_eq!(seen, 4);
    }
    let at_end = [shb(), idb(), epb(1), dsb("D")].concat();
    assert_eq!(
        batches(vec![at_end], 100),
        [(1, vec![]), (0, vec![("D".into(), true)])]
    );
}

#[test]
fn secrets_of_merged_files_keep_their_place_in_time() {
    // File 0: packets at t=1, 3; file 1: packets at t=2, then a block, then t=4.
    let a = [shb(), idb(), epb(1), epb(3)].concat();
    let b = [shb(), idb(), epb(2), dsb("E"), epb(4)].concat();
    let got = batches(vec![a, b], 100);
    assert_eq!(got, [(3, vec![]), (1, vec![("E".into(), true)])]);
}
