//! The one column table against everything that names columns: the generator's truth
//! columns and README's column list.

use wsclose::report::columns::{column, COLUMNS, PER_FILE_COLUMNS};

use crate::util::root;

#[test]
fn the_generators_truth_columns_are_report_columns() {
    for c in wsclose_synth::COLUMNS {
        assert!(
            column(c).is_some(),
            "the generator's truth has {c:?}, the report has not"
        );
    }
}

#[test]
fn readme_explains_every_column() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for c in COLUMNS.iter().chain(PER_FILE_COLUMNS) {
        let line = format!("| `{}` |", c.name);
        assert!(
            readme.lines().any(|l| l.starts_with(&line)),
            "README.md has no row {line:?} in its column table"
        );
    }
}

#[test]
fn readme_explains_every_outcome_anomaly_json_key_and_cause() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let row = |t: &str| format!("| `{t}` |");
    for o in wsclose::verdict::Outcome::ALL {
        assert!(
            readme.contains(&row(o.as_str())),
            "README: outcome {}",
            o.as_str()
        );
    }
    for a in wsclose::record::Anomaly::ALL {
        assert!(
            readme.contains(&row(a.token())),
            "README: anomaly {}",
            a.token()
        );
    }
    for e in wsclose::report::columns::EXTRAS {
        assert!(readme.contains(&row(e.name)), "README: JSON key {}", e.name);
    }
    for c in wsclose::summary::findings::Cause::ALL {
        assert!(
            readme.contains(&row(c.token())),
            "README: cause {}",
            c.token()
        );
    }
}
