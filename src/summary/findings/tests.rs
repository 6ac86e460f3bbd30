//! Findings on hand-made rows.
