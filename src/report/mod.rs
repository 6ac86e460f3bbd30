//! Report writers. They see finished records in their final order, nothing else.

pub mod csv;
