//! E-mail addresses: `local@domain.tld`, found by anchoring on `@`.
//!
//! Local part: `[A-Za-z0-9._%+-]+` (no leading dot). Domain: dot-separated labels of
//! `[A-Za-z0-9-]`, at least two labels, the last all letters and ≥ 2 long. Each byte is visited
//! a bounded number of times: the backward scan never crosses the previous `@` or match end.

use super::Hit;
use crate::kind::PiiKind;

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut floor = 0;
    let mut i = 0;
    while i < n {
        let Some(off) = s[i..].iter().position(|&b| b == b'@') else {
            return;
        };
        let at = i + off;
        let mut st = at;
        while st > floor && is_local(s[st - 1]) {
            st -= 1;
        }
        while st < at && s[st] == b'.' {
            st += 1;
        }
        let mut en = at + 1;
        while en < n && is_domain(s[en]) {
            en += 1;
        }
        match (st < at, domain_end(s, at + 1, en)) {
            (true, Some(end)) => {
                out.push(Hit::new(st, end, PiiKind::Email));
                i = end;
                floor = end;
            }
            _ => {
                i = at + 1;
                floor = at + 1;
            }
        }
    }
}

/// Longest valid domain in `s[from..to]`: trims trailing junk and non-alphabetic last labels.
fn domain_end(s: &[u8], from: usize, mut to: usize) -> Option<usize> {
    if from >= to || !s[from].is_ascii_alphanumeric() {
        return None;
    }
    loop {
        while to > from && !s[to - 1].is_ascii_alphanumeric() {
            to -= 1;
        }
        let dot = (from..to).rev().find(|&k| s[k] == b'.')?;
        let tld = &s[dot + 1..to];
        if tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) {
            // No empty labels ("a..b").
            if s[from..to].windows(2).any(|w| w == b"..") {
                return None;
            }
            return Some(to);
        }
        to = dot;
    }
}
