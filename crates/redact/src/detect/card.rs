//! Payment card numbers: 13–19 digits, optionally in groups of ≥ 4 (the last ≥ 3) joined by single spaces or
//! dashes, first digit 2–6 (Mastercard 2-series, Amex/Diners/JCB 3, Visa 4, Mastercard 5,
//! Discover/UnionPay 6), and a valid Luhn check digit.
//!
//! When grouped digits run on (`4111 1111 1111 1111 12/27`), the longest prefix ending on a
//! group boundary that is a valid card wins. A single unbroken digit run must be the card as a
//! whole. A grouped run that holds no card is retried from its second group (`order 42 4111 ...`).
//! Candidates are capped at 24 digits and 8 groups, so each start costs O(1): linear overall.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, digit_at, word_at, word_before};

const MAX_SCAN: usize = 24;
const MAX_GROUPS: usize = 8;

/// Luhn checksum over ASCII digit values 0–9.
pub(crate) fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        if !s[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if word_before(s, i) || (i > 0 && matches!(s[i - 1], b'.' | b'-' | b'+' | b'/')) {
            while digit_at(s, i) {
                i += 1;
            }
            continue;
        }
        let (hit_end, first_group_end) = scan(s, i);
        if let Some(end) = hit_end {
            out.push(Hit::new(i, end, PiiKind::CreditCard));
            i = end;
        } else {
            // Retry from the next group: `order 42 4111 1111 1111 1111` still finds the card.
            i = first_group_end.max(i + 1);
        }
    }
}

/// Returns (end of the card if one starts at `start`, end of the first digit group).
fn scan(s: &[u8], start: usize) -> (Option<usize>, usize) {
    let mut digits = [0u8; MAX_SCAN];
    let mut nd = 0usize;
    // (byte end, digit count) at each group end
    let mut ends = [(0usize, 0usize); MAX_GROUPS];
    let mut ng = 0usize;
    let mut j = start;
    'groups: loop {
        while digit_at(s, j) {
            if nd == MAX_SCAN {
                // Far too long to be a card: judge the groups seen so far.
                if ng == 0 {
                    while digit_at(s, j) {
                        j += 1;
                    }
                    return (None, j);
                }
                break 'groups;
            }
            digits[nd] = s[j] - b'0';
            nd += 1;
            j += 1;
        }
        ends[ng] = (j, nd);
        ng += 1;
        if ng < MAX_GROUPS && matches!(byte_at(s, j), b' ' | b'-') && digit_at(s, j + 1) {
            j += 1;
        } else {
            break;
        }
    }
    let scanned = ends[0].0;
    if !(b'2'..=b'6').contains(&s[start]) {
        return (None, scanned);
    }
    if ng == 1 {
        let (end, count) = ends[0];
        let ok = (13..=19).contains(&count) && !word_at(s, end) && luhn_ok(&digits[..count]);
        return (ok.then_some(end), scanned);
    }
    // Grouped: every group up to the chosen end must have ≥ 4 digits.
    for g in (0..ng).rev() {
        let (end, count) = ends[g];
        if !(13..=19).contains(&count) {
            continue;
        }
        // Groups of ≥ 4 digits; the last may have 3 (Amex printed 4-4-4-3, a trailing CVV).
        let groups_ok = (0..=g).all(|k| {
            let before = if k == 0 { 0 } else { ends[k - 1].1 };
            ends[k].1 - before >= if k == g { 3 } else { 4 }
        });
        if groups_ok && !word_at(s, end) && luhn_ok(&digits[..count]) {
            return (Some(end), scanned);
        }
    }
    (None, scanned)
}

#[cfg(test)]
mod tests {
    use super::luhn_ok;

    fn d(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_ok(&d("4111111111111111")));
        assert!(luhn_ok(&d("378282246310005")));
        assert!(!luhn_ok(&d("4111111111111112")));
        assert!(luhn_ok(&d("79927398713")));
        assert!(!luhn_ok(&d("79927398710")));
    }
}
