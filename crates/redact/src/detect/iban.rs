//! IBANs: two uppercase letters (country), two check digits, then uppercase letters/digits,
//! contiguous or in space-separated groups (`DE89 3704 0044 0532 0130 00`), validated with
//! ISO 7064 mod-97 (remainder must be 1).
//!
//! For countries in the table below the length must equal the registered length; other country
//! codes accept 15–34 characters. The longest group-boundary prefix that validates wins.
//! Only uppercase is recognised (the printed and electronic forms). Each candidate scans at most
//! 34 significant characters, so the scan is linear.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, word_at, word_before};

const MAX_LEN: usize = 34;
const MAX_GROUPS: usize = 12;

/// Registered IBAN lengths (SWIFT IBAN registry).
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

fn registered_len(cc: &[u8]) -> Option<usize> {
    LENGTHS.iter().find(|(c, _)| c[..] == *cc).map(|(_, l)| *l)
}

fn is_body(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// ISO 7064 mod 97-10 over the IBAN characters in `s[start..end]`, spaces skipped.
pub(crate) fn mod97_ok(s: &[u8], start: usize, end: usize) -> bool {
    let mut r: u32 = 0;
    let mut feed = |b: u8| {
        if b.is_ascii_digit() {
            r = (r * 10 + u32::from(b - b'0')) % 97;
        } else if b.is_ascii_uppercase() {
            r = (r * 100 + u32::from(b - b'A' + 10)) % 97;
        }
    };
    s[start + 4..end]
        .iter()
        .copied()
        .filter(|b| *b != b' ')
        .for_each(&mut feed);
    s[start..start + 4].iter().copied().for_each(&mut feed);
    r == 1
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i + 4 <= n {
        let head = s[i].is_ascii_uppercase()
            && s[i + 1].is_ascii_uppercase()
            && s[i + 2].is_ascii_digit()
            && s[i + 3].is_ascii_digit();
        if !head || word_before(s, i) {
            i += 1;
            continue;
        }
        match scan(s, i) {
            Some(end) => {
                out.push(Hit::new(i, end, PiiKind::Iban));
                i = end;
            }
            None => i += 2,
        }
    }
}

fn scan(s: &[u8], start: usize) -> Option<usize> {
    let want = registered_len(&s[start..start + 2]);
    // (byte end, significant length) at each group end
    let mut ends = [(0usize, 0usize); MAX_GROUPS];
    let mut ng = 0;
    let mut len = 4;
    let mut j = start + 4;
    if byte_at(s, j) == b' ' && is_body(byte_at(s, j + 1)) {
        ends[0] = (j, len);
        ng = 1;
        j += 1;
    }
    loop {
        while j < s.len() && is_body(s[j]) && len < MAX_LEN + 1 {
            j += 1;
            len += 1;
        }
        if len > MAX_LEN || ng == MAX_GROUPS {
            break;
        }
        ends[ng] = (j, len);
        ng += 1;
        if byte_at(s, j) == b' ' && is_body(byte_at(s, j + 1)) {
            j += 1;
        } else {
            break;
        }
    }
    for &(end, l) in ends[..ng].iter().rev() {
        let len_ok = match want {
            Some(w) => l == w,
            None => (15..=MAX_LEN).contains(&l),
        };
        if len_ok && !word_at(s, end) && mod97_ok(s, start, end) {
            return Some(end);
        }
    }
    None
}
