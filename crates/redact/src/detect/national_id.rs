//! National identifiers: US SSN and UK National Insurance number.
//!
//! SSN: `ddd-dd-dddd` (dashes required; bare 9-digit runs are too ambiguous), excluding ranges
//! never issued: area 000, 666, 900–999; group 00; serial 0000; and the famous Woolworth
//! wallet number 078-05-1120.
//!
//! NINO: `AB123456C` or `AB 12 34 56 C` (uppercase); first letter not D F I Q U V, second not
//! D F I O Q U V, prefixes BG GB KN NK NT TN ZZ excluded, suffix A–D.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, digit_at, word_at, word_before};

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i];
        if b.is_ascii_digit() {
            if word_before(s, i) || (i > 0 && matches!(s[i - 1], b'-' | b'.' | b'+' | b'/')) {
                while digit_at(s, i) {
                    i += 1;
                }
                continue;
            }
            if let Some(end) = ssn_at(s, i) {
                out.push(Hit::new(i, end, PiiKind::NationalId));
                i = end;
                continue;
            }
            while digit_at(s, i) {
                i += 1;
            }
            continue;
        }
        if b.is_ascii_uppercase() && !word_before(s, i) {
            if let Some(end) = nino_at(s, i) {
                out.push(Hit::new(i, end, PiiKind::NationalId));
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

fn digits(s: &[u8], i: usize, n: usize) -> Option<u32> {
    if i + n > s.len() {
        return None;
    }
    let mut v = 0u32;
    for &b in &s[i..i + n] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

fn ssn_at(s: &[u8], i: usize) -> Option<usize> {
    let area = digits(s, i, 3)?;
    if byte_at(s, i + 3) != b'-' {
        return None;
    }
    let group = digits(s, i + 4, 2)?;
    if byte_at(s, i + 6) != b'-' {
        return None;
    }
    let serial = digits(s, i + 7, 4)?;
    let end = i + 11;
    if word_at(s, end) || (byte_at(s, end) == b'-' && digit_at(s, end + 1)) {
        return None;
    }
    let valid = area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !(area == 78 && group == 5 && serial == 1120);
    valid.then_some(end)
}

fn nino_at(s: &[u8], i: usize) -> Option<usize> {
    let (a, b) = (s[i], byte_at(s, i + 1));
    if !b.is_ascii_uppercase()
        || b"DFIQUV".contains(&a)
        || b"DFIOQUV".contains(&b)
        || [b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&[a, b])
    {
        return None;
    }
    let mut j = i + 2;
    let spaced = byte_at(s, j) == b' ';
    for _ in 0..3 {
        if spaced {
            if byte_at(s, j) != b' ' {
                return None;
            }
            j += 1;
        }
        digits(s, j, 2)?;
        j += 2;
    }
    if spaced {
        if byte_at(s, j) != b' ' {
            return None;
        }
        j += 1;
    }
    if !matches!(byte_at(s, j), b'A'..=b'D') {
        return None;
    }
    j += 1;
    (!word_at(s, j)).then_some(j)
}
