//! Runs the enabled detectors over one string and merges their hits into disjoint regions.
//!
//! Overlapping hits are unioned (so no fragment of either survives) and the region takes the
//! highest-priority kind (`PiiKind` declaration order). Hits never start inside a JSON escape.
//! Cost: one linear pass per enabled detector family, plus a sort of the hits (usually none).

use crate::detect::{self, Hit};
use crate::kind::PiiKind;
use crate::text::skip_escape;

/// A set of kinds as a bitmask over `PiiKind::index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KindSet(pub u32);

impl KindSet {
    pub(crate) fn from_kinds(kinds: &[PiiKind]) -> KindSet {
        KindSet(kinds.iter().fold(0, |m, k| m | k.bit()))
    }
    pub(crate) fn has(self, k: PiiKind) -> bool {
        self.0 & k.bit() != 0
    }
    fn any(self, ks: &[PiiKind]) -> bool {
        ks.iter().any(|k| self.has(*k))
    }
}

/// Disjoint hits of enabled kinds, sorted by start. Allocates only when something matches.
pub(crate) fn find_all(set: KindSet, text: &str) -> Vec<Hit> {
    let s = text.as_bytes();
    let mut hits = Vec::new();
    use PiiKind::*;
    // One cheap pass decides which scanners can possibly match: everything numeric needs a
    // digit, e-mail an `@`, IPv6 a `:`.
    let (digit, at, colon) = s.iter().fold((false, false, false), |(d, a, c), &b| {
        (d || b.is_ascii_digit(), a || b == b'@', c || b == b':')
    });
    if set.any(&[PrivateKey, Jwt, ApiKey, AuthToken]) {
        detect::secrets::find(s, &mut hits);
    }
    if digit && set.has(CreditCard) {
        detect::card::find(s, &mut hits);
    }
    if digit && set.has(Iban) {
        detect::iban::find(s, &mut hits);
    }
    if digit && set.has(NationalId) {
        detect::national_id::find(s, &mut hits);
    }
    if at && set.has(Email) {
        detect::email::find(s, &mut hits);
    }
    if digit && set.has(Phone) {
        detect::phone::find(s, &mut hits);
    }
    if digit && colon && set.has(Ipv6) {
        detect::ip::find_v6(s, &mut hits);
    }
    if digit && set.has(Ipv4) {
        detect::ip::find_v4(s, &mut hits);
    }
    hits.retain_mut(|h| {
        h.start = skip_escape(s, h.start, h.end);
        set.has(h.kind) && h.start < h.end
    });
    let mut hits = merge(hits);
    // Entropy runs last, on the gaps between the other hits: its tokens are then exactly the
    // ones a second pass over the redacted text would see (placeholders cut tokens).
    if set.has(HighEntropy) && s.len() >= detect::entropy::MIN_LEN {
        let before = hits.len();
        let mut from = 0;
        for k in 0..before {
            let (start, end) = (hits[k].start, hits[k].end);
            detect::entropy::find_in(s, from, start, &mut hits);
            from = end;
        }
        detect::entropy::find_in(s, from, s.len(), &mut hits);
        if hits.len() > before {
            hits = merge(hits);
        }
    }
    hits
}

fn merge(mut hits: Vec<Hit>) -> Vec<Hit> {
    if hits.len() < 2 {
        return hits;
    }
    hits.sort_unstable_by_key(|h| (h.start, h.kind));
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits {
        match out.last_mut() {
            Some(cur) if h.start < cur.end => {
                cur.end = cur.end.max(h.end);
                cur.kind = cur.kind.min(h.kind);
            }
            _ => out.push(h),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_union_and_take_priority() {
        let hits = vec![
            Hit::new(5, 20, PiiKind::Phone),
            Hit::new(0, 10, PiiKind::HighEntropy),
            Hit::new(3, 8, PiiKind::CreditCard),
            Hit::new(20, 25, PiiKind::Email),
        ];
        let m = merge(hits);
        assert_eq!(
            m,
            vec![
                Hit::new(0, 20, PiiKind::CreditCard),
                Hit::new(20, 25, PiiKind::Email)
            ]
        );
    }
}
