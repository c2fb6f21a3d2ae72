//! CSV of feature vectors: the header and row format shared by `replay --features-out` and
//! `train --export-features` (missing = empty cell, numbers in shortest round-trip form).

use crate::core::features::{FeatureVector, NAMES};
use std::fmt::Write;

/// Header: the given leading columns, then the features in schema order.
pub fn header(leading: &[&str]) -> String {
    let mut h = leading.join(",");
    for n in NAMES {
        h.push(',');
        h.push_str(n);
    }
    h
}

/// The feature cells of one row (leading comma included).
pub fn cells(fv: &FeatureVector) -> String {
    let mut s = String::with_capacity(NAMES.len() * 6);
    for v in &fv.values {
        s.push(',');
        if let Some(x) = v {
            let _ = write!(s, "{x}");
        }
    }
    s
}
