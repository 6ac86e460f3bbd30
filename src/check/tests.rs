//! Pairing, comparison and update on small hand-written reports.

use super::cell::{parse_scaled, FoundCell};
use super::*;

/// Found sessions from a CSV with the columns `session,client,server,path,outcome,close_code,duration_s`,
/// collected for the columns of `exp`.
fn found(exp: &Expected, csv: &str) -> Vec<FoundRow> {
    let mut r = ::csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let get = |n: &str| {
                let i = header.iter().position(|h| h == n).unwrap();
                rec[i].to_string()
            };
            FoundRow {
                session: get("session").parse().unwrap(),
                cells: exp
                    .columns
                    .iter()
                    .map(|c| {
                        let text = get(c.name);
                        let numeric = matches!(c.name, "session" | "close_code" | "duration_s");
                        FoundCell {
                            num: if numeric { parse_scaled(&text) } else { None },
                            text,
                        }
                    })
                    .collect(),
                client: get("client"),
                server: get("server"),
                path: get("path"),
                outcome: get("outcome"),
            }
        })
        .collect()
}

const FOUND: &str = "\
session,client,server,path,outcome,close_code,duration_s
1,10.0.0.2:5001,10.0.0.1:80,/a,clean,1000,0.500000
2,10.0.0.2:5002,10.0.0.1:80,/b,reset,1006,1.250000
3,10.0.0.3:5003,10.0.0.1:80,/a,clean,1011,2.000000
4,[fd00::2]:5004,[fd00::1]:443,/c,open_at_end,,3.000000
";

fn check(exp: &str, mode: MatchMode) -> (Check, Vec<FoundRow>) {
    let e = Expected::parse(exp).unwrap();
    let f = found(&e, FOUND);
    (Check::new(e, mode).unwrap(), f)
}

fn text(c: &Comparison) -> String {
    let mut out = Vec::new();
    c.write_text(&mut out, None).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn identical_passes() {
    let (c, f) = check(FOUND, MatchMode::Session);
    let r = c.compare(&f);
    assert!(r.passed());
    assert_eq!(r.matching, 4);
    assert_eq!(
        text(&r),
        "check passed: 4 matching (4 expected, 4 found, match by session)\n"
    );
}

#[test]
fn by_session_every_kind_of_difference() {
    let exp = "\
session,client,server,path,outcome,close_code,duration_s
1,10.0.0.2:5001,10.0.0.1:80,/a,clean,1000,*
2,10.0.0.2:5002,10.0.0.1:80,/b,clean,1000..1001,1..2
3,10.0.0.3:5003,10.0.0.1:80,/a,clean,1011,..1.5
5,10.0.0.9:5009,10.0.0.1:80,/z,clean,1000,0.1
";
    let (c, f) = check(exp, MatchMode::Session);
    let r = c.compare(&f);
    assert!(!r.passed());
    assert_eq!(
        text(&r),
        "\
session 2 (expected line 3): 10.0.0.2:5002 -> 10.0.0.1:80 /b
    outcome: expected \"clean\", found \"reset\"
    close_code: expected \"1000..1001\", found \"1006\"
session 3 (expected line 4): 10.0.0.3:5003 -> 10.0.0.1:80 /a
    duration_s: expected \"..1.5\", found \"2.000000\"
missing (expected line 5): session 5, 10.0.0.9:5009 -> 10.0.0.1:80 /z
unexpected session 4: [fd00::2]:5004 -> [fd00::1]:443 /c (open_at_end)
check failed: 2 differing, 1 missing, 1 unexpected, 1 matching (4 expected, 4 found, match by session)
"
    );
    let j = r.to_json("exp.csv", false);
    assert_eq!(j["result"], "fail");
    assert_eq!(j["differing"][0]["cells"][1]["column"], "close_code");
    assert_eq!(j["missing"][0]["session"], "5");
    assert_eq!(j["missing"][0]["expected_line"], 5);
    assert_eq!(j["unexpected"][0]["session"], 4);
}

#[test]
fn by_endpoints_ignores_the_client_port_and_the_session_number() {
    // Sessions 1 and 2 share a key; they pair in order. The file is in another order and
    // numbered differently.
    let exp = "\
session,client,server,outcome
9,10.0.0.3:1,10.0.0.1:80,clean
7,10.0.0.2:1,10.0.0.1:80,clean
8,10.0.0.2:2,10.0.0.1:80,clean
";
    let (c, f) = check(exp, MatchMode::Endpoints);
    let p = c.pair(&f);
    assert_eq!(p.pairs, [(1, 0), (2, 1), (0, 2)]);
    assert_eq!(p.missing, Vec::<usize>::new());
    assert_eq!(p.unexpected, [3]);
    let r = c.compare(&f);
    assert_eq!(r.columns, ["client", "server", "outcome"]);
    assert_eq!(
        text(&r),
        "\
session 2 (expected line 4): 10.0.0.2:5002 -> 10.0.0.1:80 /b
    outcome: expected \"clean\", found \"reset\"
unexpected session 4: [fd00::2]:5004 -> [fd00::1]:443 /c (open_at_end)
check failed: 1 differing, 0 missing, 1 unexpected, 2 matching (3 expected, 4 found, match by endpoints)
"
    );
}

#[test]
fn by_path_pairs_equal_paths_in_order() {
    let exp = "path,close_code\n/a,1000\n/a,1000\n/b,*\n/c,\n/d,1000\n";
    let (c, f) = check(exp, MatchMode::Path);
    let r = c.compare(&f);
    assert_eq!(
        text(&r),
        "\
session 3 (expected line 3): 10.0.0.3:5003 -> 10.0.0.1:80 /a
    close_code: expected \"1000\", found \"1011\"
missing (expected line 6): /d
check failed: 1 differing, 1 missing, 0 unexpected, 3 matching (5 expected, 4 found, match by path)
"
    );
}

#[test]
fn keys_must_be_there_and_plain() {
    let e = |t: &str, m| Check::new(Expected::parse(t).unwrap(), m).unwrap_err();
    assert_eq!(
        e("outcome\nclean\n", MatchMode::Session),
        "--match session needs the column \"session\" in the expected report"
    );
    assert_eq!(
        e("client,outcome\n1.2.3.4:5,clean\n", MatchMode::Endpoints),
        "--match endpoints needs the column \"server\" in the expected report"
    );
    assert_eq!(
        e("session\n1\n*\n", MatchMode::Session),
        "line 3: --match session pairs by session, which cannot be `*` there"
    );
    assert_eq!(
        e("session\n1\nx\n", MatchMode::Session),
        "line 3: session \"x\" is not a session number"
    );
    assert_eq!(
        e("session\n1\n1\n", MatchMode::Session),
        "line 3: session 1 again (first on line 2)"
    );
}

#[test]
fn endpoint_ips() {
    assert_eq!(endpoint_ip("10.0.0.2:5001"), "10.0.0.2");
    assert_eq!(endpoint_ip("[fd00::2]:5004"), "[fd00::2]");
    assert_eq!(endpoint_ip("fd00::2"), "fd00::2");
    assert_eq!(endpoint_ip("host"), "host");
}

#[test]
fn update_keeps_wildcards_and_satisfied_ranges() {
    let exp = "\
session,outcome,close_code,duration_s
1,clean,*,0.4..0.6
2,clean,1000..1001,1..2
3,clean,1011,..1.5
5,clean,1000,0.1
";
    let (c, f) = check(exp, MatchMode::Session);
    let new = String::from_utf8(c.updated(&f).unwrap()).unwrap();
    assert_eq!(
        new,
        "\
session,outcome,close_code,duration_s
1,clean,*,0.4..0.6
2,reset,1006,1..2
3,clean,1011,2.000000
4,open_at_end,,3.000000
"
    );
    // The updated file passes, and updating it again changes nothing.
    let e = Expected::parse(&new).unwrap();
    let c = Check::new(e, MatchMode::Session).unwrap();
    assert!(c.compare(&f).passed());
    assert_eq!(String::from_utf8(c.updated(&f).unwrap()).unwrap(), new);
}

#[test]
fn update_escapes_a_found_star() {
    let exp = "session,path\n1,/a\n";
    let e = Expected::parse(exp).unwrap();
    let mut f = found(&e, FOUND);
    f[0].cells[1].text = "*".into();
    f[1].cells[1].text = "\\*".into();
    let c = Check::new(e, MatchMode::Session).unwrap();
    let new = String::from_utf8(c.updated(&f).unwrap()).unwrap();
    assert_eq!(new, "session,path\n1,\\*\n2,\\\\*\n3,/a\n4,/c\n");
    let c = Check::new(Expected::parse(&new).unwrap(), MatchMode::Session).unwrap();
    assert!(c.compare(&f).passed());
}

#[test]
fn write_atomically_replaces_the_file() {
    let dir = std::env::temp_dir().join(format!("wsclose-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("e.csv");
    std::fs::write(&p, "old").unwrap();
    update::write_atomically(&p, b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left");
    std::fs::remove_dir_all(&dir).unwrap();
}
