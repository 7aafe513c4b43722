//! The detectors: one hand-rolled byte scanner per family, each linear in the input length.
//!
//! A detector appends `Hit`s (byte ranges + kind) to a shared vector; it never allocates
//! otherwise. Overlaps between detectors are resolved afterwards in `crate::matcher`.

pub(crate) mod card;
pub(crate) mod email;
pub(crate) mod entropy;
pub(crate) mod iban;
pub(crate) mod ip;
pub(crate) mod national_id;
pub(crate) mod phone;
pub(crate) mod secrets;

use crate::kind::PiiKind;

/// A match: `s[start..end]` is of `kind`. Offsets are on ASCII bytes, hence char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
}

impl Hit {
    pub(crate) fn new(start: usize, end: usize, kind: PiiKind) -> Hit {
        Hit { start, end, kind }
    }
}
