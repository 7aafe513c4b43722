//! IPv4 (`a.b.c.d`, octets 0–255 without leading zeros) and IPv6 (RFC 4291 text forms:
//! eight groups, `::` compression, embedded IPv4 tail) addresses.
//!
//! IPv6 candidates must contain at least one digit, so hex-letter words like `dead::beef` or
//! `ab::cd` are left alone; times `12:30:45` and MAC addresses (6 groups) do not validate.
//! A dotted quad that is also a version number (`1.2.3.4`) is treated as an address.
//! Each candidate is at most 45 bytes, so both scans are linear.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, digit_at, word_at, word_before};

pub(crate) fn find_v4(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        if !s[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if word_before(s, i) || (i > 0 && matches!(s[i - 1], b'.' | b':')) {
            while digit_at(s, i) {
                i += 1;
            }
            continue;
        }
        match v4_at(s, i) {
            Some(end) if !word_at(s, end) && !dotted_digit(s, end) => {
                out.push(Hit::new(i, end, PiiKind::Ipv4));
                i = end;
            }
            _ => {
                // Skip the whole dotted-number run so a version like 1.2.3.4.5 is not re-scanned.
                while digit_at(s, i) || (byte_at(s, i) == b'.' && digit_at(s, i + 1)) {
                    i += 1;
                }
            }
        }
    }
}

/// True when `.digit` follows at `i` (the dotted number goes on: not an address).
fn dotted_digit(s: &[u8], i: usize) -> bool {
    byte_at(s, i) == b'.' && digit_at(s, i + 1)
}

/// Parses exactly four octets at `i`; returns the end offset.
fn v4_at(s: &[u8], mut i: usize) -> Option<usize> {
    for k in 0..4 {
        if k > 0 {
            if byte_at(s, i) != b'.' {
                return None;
            }
            i += 1;
        }
        let st = i;
        let mut v = 0u32;
        while digit_at(s, i) && i - st < 3 {
            v = v * 10 + u32::from(s[i] - b'0');
            i += 1;
        }
        let len = i - st;
        if len == 0 || v > 255 || (len > 1 && s[st] == b'0') || digit_at(s, i) {
            return None;
        }
    }
    Some(i)
}

fn is_v6_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

pub(crate) fn find_v6(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i];
        if !(b.is_ascii_hexdigit() || (b == b':' && byte_at(s, i + 1) == b':')) {
            i += 1;
            continue;
        }
        if word_before(s, i) || (i > 0 && matches!(s[i - 1], b':' | b'.')) {
            while i < n && (s[i].is_ascii_alphanumeric() || s[i] == b':') {
                i += 1;
            }
            continue;
        }
        let mut end = i;
        while end < n && end - i <= 45 && is_v6_char(s[end]) {
            end += 1;
        }
        let scanned = end;
        // A sentence may end right after the address.
        while end > i && s[end - 1] == b'.' {
            end -= 1;
        }
        if end - i <= 45 && !word_at(s, scanned) && v6_ok(&s[i..end]) {
            out.push(Hit::new(i, end, PiiKind::Ipv6));
        }
        i = scanned.max(i + 1);
    }
}

fn v6_ok(c: &[u8]) -> bool {
    if c.len() < 3
        || !c.iter().any(u8::is_ascii_digit)
        || c.iter().filter(|&&b| b == b':').count() < 2
    {
        return false;
    }
    let (head, tail, compressed) = match find_double_colon(c) {
        Some(k) => {
            if find_double_colon(&c[k + 2..]).is_some() {
                return false;
            }
            (&c[..k], &c[k + 2..], true)
        }
        None => (c, &c[..0], false),
    };
    // An embedded IPv4 may only end the address.
    let Some(h) = count_groups(head, !compressed) else {
        return false;
    };
    let Some(t) = count_groups(tail, true) else {
        return false;
    };
    if compressed {
        h + t <= 7
    } else {
        h == 8
    }
}

fn find_double_colon(c: &[u8]) -> Option<usize> {
    c.windows(2).position(|w| w == b"::")
}

/// Counts 16-bit groups in a `:`-separated list (an IPv4 tail counts as 2), or None if
/// malformed. An empty list is 0 groups.
fn count_groups(part: &[u8], v4_allowed_last: bool) -> Option<usize> {
    if part.is_empty() {
        return Some(0);
    }
    let mut groups = 0;
    let mut it = part.split(|&b| b == b':').peekable();
    while let Some(g) = it.next() {
        let last = it.peek().is_none();
        if g.contains(&b'.') {
            if !last || !v4_allowed_last || v4_at(g, 0) != Some(g.len()) {
                return None;
            }
            groups += 2;
        } else if g.is_empty() || g.len() > 4 || !g.iter().all(u8::is_ascii_hexdigit) {
            return None;
        } else {
            groups += 1;
        }
    }
    Some(groups)
}
