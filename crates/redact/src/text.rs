//! Byte-level helpers shared by the detectors: character classes, word boundaries that
//! understand JSON escapes (`\n` before a match is a boundary, not the letter `n`).
//!
//! Every detector matches ASCII only, so match offsets always fall on UTF-8 char boundaries;
//! non-ASCII bytes count as non-word (CJK text without spaces still delimits matches).

/// `[A-Za-z0-9_]`.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when byte `k` is the letter of a JSON/C escape (`\n`, `\t`, `\uXXXX` ...), i.e. it is
/// preceded by an odd number of backslashes.
#[inline]
pub(crate) fn is_escape_letter(s: &[u8], k: usize) -> bool {
    if k == 0 || s[k - 1] != b'\\' {
        return false;
    }
    let mut n = 0;
    let mut j = k;
    while j > 0 && s[j - 1] == b'\\' {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

/// True when a word character (that is not an escape letter) or a placeholder directly
/// precedes offset `i`.
///
/// Placeholders count as words so a second pass over redacted text sees no new boundaries: in
/// `a@b.io+14155552671` the phone is glued to the e-mail's `o`, and stays glued to
/// `[REDACTED:EMAIL]` — which keeps redaction idempotent.
#[inline]
pub(crate) fn word_before(s: &[u8], i: usize) -> bool {
    i > 0 && ((is_word(s[i - 1]) && !is_escape_letter(s, i - 1)) || placeholder_ends_at(s, i))
}

/// True when a word character or a placeholder starts at offset `i`.
#[inline]
pub(crate) fn word_at(s: &[u8], i: usize) -> bool {
    i < s.len() && (is_word(s[i]) || placeholder_starts_at(s, i))
}

const PLACEHOLDER_OPEN: &[u8] = b"[REDACTED";

/// `s[i..]` starts with `[REDACTED` (a placeholder of either style).
#[inline]
pub(crate) fn placeholder_starts_at(s: &[u8], i: usize) -> bool {
    s[i] == b'[' && starts_with(s, i, PLACEHOLDER_OPEN)
}

/// `s[..i]` ends with `[REDACTED]` or `[REDACTED:KIND]`.
pub(crate) fn placeholder_ends_at(s: &[u8], i: usize) -> bool {
    if i == 0 || s[i - 1] != b']' {
        return false;
    }
    let lo = i.saturating_sub(32);
    let Some(open) = s[lo..i].iter().rposition(|&b| b == b'[').map(|k| lo + k) else {
        return false;
    };
    let inner = &s[open + 1..i - 1];
    match inner.strip_prefix(&PLACEHOLDER_OPEN[1..]) {
        Some([]) => true,
        Some([b':', kind @ ..]) => {
            !kind.is_empty()
                && kind
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        }
        _ => false,
    }
}

#[inline]
pub(crate) fn digit_at(s: &[u8], i: usize) -> bool {
    i < s.len() && s[i].is_ascii_digit()
}

#[inline]
pub(crate) fn byte_at(s: &[u8], i: usize) -> u8 {
    if i < s.len() {
        s[i]
    } else {
        0
    }
}

/// Case-insensitive ASCII prefix test at offset `i`.
#[inline]
pub(crate) fn starts_with_ci(s: &[u8], i: usize, pat: &[u8]) -> bool {
    s.len() >= i + pat.len() && s[i..i + pat.len()].eq_ignore_ascii_case(pat)
}

/// Case-sensitive prefix test at offset `i`.
#[inline]
pub(crate) fn starts_with(s: &[u8], i: usize, pat: &[u8]) -> bool {
    s.len() >= i + pat.len() && &s[i..i + pat.len()] == pat
}

/// Moves a match start past a JSON escape it would otherwise cut in half: `\nfoo@x.io` starts
/// at `f`, `\u00e9abc@x.io` at `a`. Replacing from the middle of an escape would corrupt JSON text.
pub(crate) fn skip_escape(s: &[u8], mut start: usize, end: usize) -> usize {
    while start < end && is_escape_letter(s, start) {
        if s[start] == b'u' {
            start = (start + 5).min(end);
        } else {
            start += 1;
        }
    }
    start
}

/// Length of the run of bytes from `i` satisfying `f`.
#[inline]
pub(crate) fn run_len(s: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    s[i.min(s.len())..].iter().take_while(|b| f(**b)).count()
}
