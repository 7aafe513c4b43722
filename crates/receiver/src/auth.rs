//! Optional bearer-token authentication of both transports: the token is loaded from a file and
//! compared in constant time against `Authorization: Bearer <token>` (HTTP header or gRPC
//! metadata) before any request body is read.

use crate::config::ConfigError;
use std::path::Path;
use std::sync::Arc;

/// The shared secret clients must present.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token: printable ASCII without spaces (what fits in a header), at least 16 bytes.
    pub fn new(token: &str) -> Result<BearerToken, ConfigError> {
        let t = token.trim();
        if t.len() < 16 {
            return Err(ConfigError::Invalid(format!(
                "auth token has {} bytes: at least 16 are required",
                t.len()
            )));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid(
                "auth token must be printable ASCII without spaces".into(),
            ));
        }
        Ok(BearerToken(Arc::from(t.as_bytes())))
    }

    /// Reads the token from a file (surrounding whitespace, e.g. a final newline, is ignored).
    pub fn load(path: &Path) -> Result<BearerToken, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        BearerToken::new(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Whether an `Authorization` header value carries this token (scheme case-insensitive).
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(v) = authorization else {
            return false;
        };
        let Some(given) = v
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case(b"bearer "))
            .map(|_| v[7..].trim_ascii())
        else {
            return false;
        };
        constant_time_eq(given, &self.0)
    }
}

/// Compares without an early exit: the time depends only on the length of `expected`.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let t = BearerToken::new("s3cret-token-0123456789\n").unwrap();
        assert!(t.accepts(Some(b"Bearer s3cret-token-0123456789")));
        assert!(t.accepts(Some(b"bearer s3cret-token-0123456789")));
        assert!(!t.accepts(None));
        assert!(!t.accepts(Some(b"Bearer s3cret-token-012345678")));
        assert!(!t.accepts(Some(b"Bearer s3cret-token-01234567890")));
        assert!(!t.accepts(Some(b"Bearer s3cret-token-0123456780")));
        assert!(!t.accepts(Some(b"Basic s3cret-token-0123456789")));
        assert!(!t.accepts(Some(b"Bearer")));
        assert!(!t.accepts(Some(b"")));
    }

    #[test]
    fn weak_or_unprintable_tokens_are_refused() {
        assert!(BearerToken::new("short").is_err());
        assert!(BearerToken::new("has a space in the middle").is_err());
        assert!(
            BearerToken::new("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}").is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        assert!(BearerToken::load(&p).is_err(), "missing file");
        std::fs::write(&p, "  0123456789abcdef0123\n").unwrap();
        assert!(BearerToken::load(&p)
            .unwrap()
            .accepts(Some(b"Bearer 0123456789abcdef0123")));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = BearerToken::new("0123456789abcdef0123").unwrap();
        assert!(!format!("{t:?}").contains("0123"));
    }
}
