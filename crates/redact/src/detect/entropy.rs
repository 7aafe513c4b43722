//! High-entropy tokens: long runs from the base64/base64url/hex alphabets that look random.
//!
//! A token is a maximal run of `[A-Za-z0-9+/_-]` plus up to two trailing `=`, at least 24 long.
//! - Hex-only tokens need a digit and a letter and Shannon entropy ≥ 3.0 bits/char (random hex
//!   of 24 chars is above 3.04 in 99% of cases).
//! - Other tokens need upper, lower and digit, entropy ≥ min(log2(len) − 1.25, 4.5), and must
//!   not be "wordy": letters in runs that look like words (`Word`, `word`, `WORD`, ≥ 4 letters
//!   with a vowel per four letters) cover at most half the token. Measured on random
//!   alphanumerics, that misses ~1% of 24-char, 0.5% of 32-char and 0.3% of 40-char tokens,
//!   while identifiers and paths (`AbstractSingletonProxyFactoryBean2`, `UTF8StringEncoderV2Builder`
//!   ≥ 0.54) are kept.
//!
//! Exempt shapes (our own identifiers and common digests): hex after `sha256:` / `sha1:` /
//! `sha512:` / `md5:`, bare hex of length 16 (span id), 32 (trace/run/event id) or 40 (git
//! object id), UUIDs, and base64 payloads of `data:` URIs (after `base64,`).
//! Cost: one pass to split tokens and one over each token: linear.

use super::Hit;
use crate::kind::PiiKind;

pub(crate) const MIN_LEN: usize = 24;
const HEX_THRESHOLD: f64 = 3.0;
const B64_CAP: f64 = 4.5;
const B64_SLACK: f64 = 1.25;
const MAX_WORDINESS: f64 = 0.5;

fn is_tok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-')
}

/// Finds high-entropy tokens inside `s[from..to]` (tokens are cut at both ends of the window;
/// `s` before `from` is still read for exemption prefixes like `sha256:`).
pub(crate) fn find_in(s: &[u8], from: usize, to: usize, out: &mut Vec<Hit>) {
    let n = to;
    let mut i = from;
    while i < n {
        if !is_tok(s[i]) {
            i += 1;
            continue;
        }
        let st = i;
        while i < n && is_tok(s[i]) {
            i += 1;
        }
        let mut en = i;
        while en < n && en - i < 2 && s[en] == b'=' {
            en += 1;
        }
        i = en;
        // Keep a leading `-`/`_` etc. out of the match: tokens start at an alphanumeric.
        let mut ts = st;
        while ts < en && !s[ts].is_ascii_alphanumeric() {
            ts += 1;
        }
        if en - ts >= MIN_LEN && !exempt(s, ts, en) && is_random(&s[ts..en]) {
            out.push(Hit::new(ts, en, PiiKind::HighEntropy));
        }
    }
}

fn exempt(s: &[u8], st: usize, en: usize) -> bool {
    let t = &s[st..en];
    let before = &s[..st];
    let all_hex = t.iter().all(u8::is_ascii_hexdigit);
    if all_hex {
        if matches!(t.len(), 16 | 32 | 40) {
            return true;
        }
        if [&b"sha256:"[..], b"sha1:", b"sha512:", b"md5:"]
            .iter()
            .any(|p| {
                before.len() >= p.len() && before[before.len() - p.len()..].eq_ignore_ascii_case(p)
            })
        {
            return true;
        }
    }
    if before.ends_with(b"base64,") {
        return true;
    }
    is_uuid(t)
}

fn is_uuid(t: &[u8]) -> bool {
    t.len() == 36
        && t.iter().enumerate().all(|(k, &b)| {
            if matches!(k, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon(t: &[u8]) -> f64 {
    let mut counts = [0u32; 128];
    for &b in t {
        counts[usize::from(b & 0x7f)] += 1;
    }
    let n = t.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Fraction of the token covered by word-like letter runs: `Word`/`word` (≥ 4 letters) or
/// `WORD` (≥ 4), each with at least one vowel (`aeiouy`) per four letters.
fn wordiness(t: &[u8]) -> f64 {
    let mut covered = 0usize;
    let mut k = 0;
    while k < t.len() {
        let b = t[k];
        let st = k;
        if b.is_ascii_lowercase() {
            k += run_while(t, k, |c| c.is_ascii_lowercase());
        } else if b.is_ascii_uppercase() {
            k += 1;
            let lower = run_while(t, k, |c| c.is_ascii_lowercase());
            k += if lower >= 3 {
                lower
            } else {
                run_while(t, k, |c| c.is_ascii_uppercase())
            };
        } else {
            k += 1;
            continue;
        }
        let run = &t[st..k];
        let vowels = run.iter().filter(|c| b"aeiouyAEIOUY".contains(c)).count();
        if run.len() >= 4 && vowels * 4 >= run.len() {
            covered += run.len();
        }
    }
    covered as f64 / t.len() as f64
}

fn run_while(t: &[u8], k: usize, f: impl Fn(u8) -> bool) -> usize {
    t[k..].iter().take_while(|c| f(**c)).count()
}

fn is_random(t: &[u8]) -> bool {
    let digit = t.iter().any(u8::is_ascii_digit);
    if t.iter().all(u8::is_ascii_hexdigit) {
        let alpha = t.iter().any(u8::is_ascii_alphabetic);
        return digit && alpha && shannon(t) >= HEX_THRESHOLD;
    }
    let upper = t.iter().any(u8::is_ascii_uppercase);
    let lower = t.iter().any(u8::is_ascii_lowercase);
    if !(digit && upper && lower) {
        return false;
    }
    let n = t.len() as f64;
    let threshold = (n.log2() - B64_SLACK).min(B64_CAP);
    shannon(t) >= threshold && wordiness(t) <= MAX_WORDINESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_random_and_identifiers_are_not() {
        assert!(is_random(b"xR7kP2mQ9vL4nW8jT3hF6sD1aZ5cY0bG"));
        assert!(is_random(b"ghp_16C7e42F292c6912E7710c838347Ae178B4a"));
        assert!(!is_random(b"AbstractSingletonProxyFactoryBean2"));
        assert!(!is_random(b"getUserAccountSettingsById2"));
        assert!(!is_random(b"test_parse_config_with_Defaults_v2"));
        assert!(!is_random(b"000000000000000000000000000001"));
    }

    #[test]
    fn entropy_of_uniform_alphabet() {
        assert!((shannon(b"abcdabcdabcdabcd") - 2.0).abs() < 1e-9);
        assert_eq!(shannon(b"aaaa"), 0.0);
    }
}
