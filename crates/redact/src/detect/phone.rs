//! Phone numbers: international (`+CC ...`) and national formats with separators.
//!
//! A candidate is a run of digit groups joined by single separators (space, `-`, `.`, or
//! parentheses around a group), optionally led by `+`. It is a phone number when it has 9–15
//! digits and:
//! - without `+`: at least two groups (a plain long integer is never a phone), every group ≥ 2
//!   digits except a leading trunk/country digit when there are ≥ 3 groups;
//! - dots only in the three-group `555.123.4567` form unless led by `+` (so versions
//!   `10.0.19041.1234` and IPv4 addresses are not phones);
//! - not date-shaped: the first three groups `yyyy-mm-dd` / `dd.mm.yyyy` (with `-`, `.`, `/`)
//!   reject the candidate and scanning restarts after the date (`2024-01-15 555 123 4567` still
//!   finds the phone), and a space never joins a following date or `hh:mm` time onto a number
//!   (`876-684-2811 2024-06-28` finds the phone);
//! - not the SSN shape `ddd-dd-dddd` (the national-id detector owns it);
//! - not thousands-grouped (`1 234 567 890`: ≥ 4 space-separated groups, all but the first of 3);
//! - not followed by `:digit` (a time or a port).
//! - a rejected candidate that is not thousands-grouped yields its shortest prefix ending at a
//!   space that is a phone and does not cut through a card-like run of 4-digit groups
//!   (`(415) 555-2671 (415) 555-2671`, `call 297-846-8240 5 times`); failing that, when digits
//!   ran past 15, scanning retries after the first space (`order 42 415 555 2671`).
//! - `+` and `(` may follow a letter (`tel:+1…`, `a@b.io+1…`); digits need a word boundary.
//!
//! Candidates stop after 8 groups or 15 digits, so each start costs O(1) and the scan is linear.

use super::Hit;
use crate::kind::PiiKind;
use crate::text::{byte_at, digit_at, word_at, word_before};

const MAX_GROUPS: usize = 8;
const MAX_DIGITS: usize = 15;

#[derive(Default, Clone, Copy)]
struct Cand {
    plus: bool,
    groups: [u8; MAX_GROUPS],
    group_end: [usize; MAX_GROUPS],
    seps: [u8; MAX_GROUPS],
    ngroups: usize,
    digits: usize,
    too_long: bool,
    end: usize,
}

pub(crate) fn find(s: &[u8], out: &mut Vec<Hit>) {
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i];
        let starts = match b {
            b'+' | b'(' => digit_at(s, i + 1),
            b'0'..=b'9' => true,
            _ => false,
        };
        if !starts {
            i += 1;
            continue;
        }
        // `+`/`(` may follow a letter (`tel:+1…`, `call(415) …`, `a@b.io+1…`); digits need a
        // boundary. Nothing starts inside a number.
        let blocked = if b == b'+' || b == b'(' {
            i > 0 && (s[i - 1].is_ascii_digit() || matches!(s[i - 1], b'.' | b'-' | b'+' | b'/'))
        } else {
            word_before(s, i) || (i > 0 && matches!(s[i - 1], b'.' | b'-' | b'+' | b'/'))
        };
        if blocked {
            i += 1;
            while digit_at(s, i) {
                i += 1;
            }
            continue;
        }
        let c = scan(s, i);
        let verdict = match judge(s, &c) {
            Verdict::No => match best_prefix(s, &c) {
                Some(end) => Verdict::PhoneTo(end),
                None => retry(&c),
            },
            v => v,
        };
        match verdict {
            Verdict::Phone => {
                out.push(Hit::new(i, c.end, PiiKind::Phone));
                i = c.end;
            }
            Verdict::PhoneTo(end) => {
                out.push(Hit::new(i, end, PiiKind::Phone));
                i = end;
            }
            Verdict::RestartAt(k) => i = k.max(i + 1),
            Verdict::No => i = c.end.max(i + 1),
        }
    }
}

/// ≥ 3 groups of exactly 4 digits: a card number's shape, never cut into a phone.
fn card_like(c: &Cand) -> bool {
    c.groups[..c.ngroups].iter().filter(|&&l| l == 4).count() >= 3
}

/// `1 234 567 890`: ≥ 4 space-separated groups, all but the first of 3 digits.
fn thousands_like(c: &Cand) -> bool {
    c.ngroups >= 4
        && c.seps[1..c.ngroups].iter().all(|&b| b == b' ')
        && c.groups[1..c.ngroups].iter().all(|&l| l == 3)
}

/// True when cutting before group `k` splits a run of ≥ 3 four-digit groups (a card's shape)
/// and keeps ≥ 2 of them: `42 4111 1111 | 1111 1111` is not a phone.
fn cuts_card_run(c: &Cand, k: usize) -> bool {
    if c.groups[k - 1] != 4 || c.groups[k] != 4 {
        return false;
    }
    let mut a = k - 1;
    while a > 0 && c.groups[a - 1] == 4 {
        a -= 1;
    }
    let mut b = k;
    while b + 1 < c.ngroups && c.groups[b + 1] == 4 {
        b += 1;
    }
    b - a + 1 >= 3 && k - a >= 2
}

/// A rejected candidate may still start with a phone that ends at a space: the shortest such
/// prefix (`(415) 555-2671 (415) 555-2671`, `call 297-846-8240 5 times`).
fn best_prefix(s: &[u8], c: &Cand) -> Option<usize> {
    if thousands_like(c) {
        return None;
    }
    (1..c.ngroups)
        .filter(|&k| c.seps[k] == b' ' && !cuts_card_run(c, k))
        .find_map(|k| {
            let mut t = *c;
            t.ngroups = k;
            t.digits = c.groups[..k].iter().map(|&g| usize::from(g)).sum();
            t.end = c.group_end[k - 1];
            t.too_long = false;
            matches!(judge(s, &t), Verdict::Phone).then_some(t.end)
        })
}

/// Digits ran on: retry after the first space (`order 42 415 555 2671 …`) unless card-like.
fn retry(c: &Cand) -> Verdict {
    if !c.too_long || card_like(c) {
        return Verdict::No;
    }
    match (1..c.ngroups).find(|&k| c.seps[k] == b' ') {
        Some(k) => Verdict::RestartAt(c.group_end[k - 1]),
        None => Verdict::No,
    }
}

fn scan(s: &[u8], start: usize) -> Cand {
    let mut c = Cand::default();
    let mut j = start;
    if s[j] == b'+' {
        c.plus = true;
        j += 1;
    }
    let mut sep = 0u8;
    loop {
        let open = byte_at(s, j) == b'(' && digit_at(s, j + 1);
        if open {
            j += 1;
        }
        let gs = j;
        while digit_at(s, j) {
            j += 1;
        }
        let glen = j - gs;
        c.digits += glen;
        if c.digits > MAX_DIGITS || c.ngroups == MAX_GROUPS {
            if c.ngroups < MAX_GROUPS {
                // Kept only so `judge` can see the run's shape (card-like or not).
                c.groups[c.ngroups] = glen.min(255) as u8;
                c.group_end[c.ngroups] = j;
                c.seps[c.ngroups] = sep;
                c.ngroups += 1;
            }
            c.too_long = true;
            c.end = j;
            return c;
        }
        let mut sep_here = sep;
        if open {
            if byte_at(s, j) != b')' {
                c.end = gs - 1;
                c.ngroups = 0; // unbalanced: reject
                return c;
            }
            j += 1;
            sep_here = if sep == 0 { b'(' } else { sep };
        }
        c.groups[c.ngroups] = glen as u8;
        c.seps[c.ngroups] = sep_here;
        c.group_end[c.ngroups] = j;
        c.ngroups += 1;
        c.end = j;
        // Next separator (a `)` may be followed directly by digits or by one separator).
        let mut k = j;
        let mut next_sep = if open { b')' } else { 0 };
        if matches!(byte_at(s, k), b' ' | b'-' | b'.') {
            next_sep = s[k];
            k += 1;
        }
        if next_sep == 0 {
            return c;
        }
        // A space never joins a following date or time onto the number
        // (`876-684-2811 2024-06-28`, `... 12:30`).
        if next_sep == b' ' && (date_at(s, k) || time_at(s, k)) {
            return c;
        }
        if digit_at(s, k) || (byte_at(s, k) == b'(' && digit_at(s, k + 1)) {
            sep = next_sep;
            j = k;
        } else {
            return c;
        }
    }
}

/// `yyyy-mm-dd` / `dd.mm.yyyy` / `dd/mm/yyyy` (any of `-./`, same separator twice) at `k`.
fn date_at(s: &[u8], k: usize) -> bool {
    let a = run_digits(s, k);
    let sep = byte_at(s, k + a);
    if !matches!(sep, b'-' | b'.' | b'/') {
        return false;
    }
    let b = run_digits(s, k + a + 1);
    if byte_at(s, k + a + 1 + b) != sep {
        return false;
    }
    let c = run_digits(s, k + a + b + 2);
    (a == 4 && (1..=2).contains(&b) && (1..=2).contains(&c))
        || ((1..=2).contains(&a) && (1..=2).contains(&b) && c == 4)
}

/// `h:mm` / `hh:mm` at `k`.
fn time_at(s: &[u8], k: usize) -> bool {
    let a = run_digits(s, k);
    (1..=2).contains(&a) && byte_at(s, k + a) == b':' && digit_at(s, k + a + 1)
}

fn run_digits(s: &[u8], k: usize) -> usize {
    s[k.min(s.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

enum Verdict {
    Phone,
    PhoneTo(usize),
    RestartAt(usize),
    No,
}

fn judge(s: &[u8], c: &Cand) -> Verdict {
    if c.ngroups == 0 {
        return Verdict::No;
    }
    let g = &c.groups[..c.ngroups];
    let seps = &c.seps[1..c.ngroups];
    // Date-shaped prefix: reject, restart after the date.
    if c.ngroups >= 3
        && !c.plus
        && seps[..2].iter().all(|b| matches!(b, b'-' | b'.' | b'/'))
        && ((g[0] == 4 && g[1] <= 2 && g[2] <= 2) || (g[0] <= 2 && g[1] <= 2 && g[2] == 4))
    {
        return Verdict::RestartAt(c.group_end[2]);
    }
    if c.too_long {
        return Verdict::No;
    }
    if !(9..=MAX_DIGITS).contains(&c.digits) {
        return Verdict::No;
    }
    if word_at(s, c.end) || (byte_at(s, c.end) == b':' && digit_at(s, c.end + 1)) {
        return Verdict::No;
    }
    if c.plus {
        return Verdict::Phone;
    }
    if c.ngroups < 2 {
        return Verdict::No;
    }
    let first_ok = g[0] >= 2 || c.ngroups >= 3;
    if !first_ok || g[1..].iter().any(|&l| l < 2) {
        return Verdict::No;
    }
    if seps.contains(&b'.') && c.ngroups != 3 {
        return Verdict::No;
    }
    if c.ngroups == 3 && g == [3, 2, 4] && seps.iter().all(|&b| b == b'-') {
        return Verdict::No;
    }
    if thousands_like(c) {
        return Verdict::No;
    }
    Verdict::Phone
}
