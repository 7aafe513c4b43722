//! Turns an OTLP/HTTP request body into an `ExportTraceServiceRequest` or an
//! `ExportLogsServiceRequest`: content-type dispatch, bounded gzip inflation (a gzip bomb never
//! allocates past the limit), protobuf or OTLP/JSON.

use crate::otlp_json;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::Read;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// Picks the encoding from a `Content-Type` header value (parameters such as `charset` are
    /// ignored). `None` for anything OTLP does not define.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of a response in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// More than `limit` bytes (after decompression).
    #[error("request body exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("unsupported Content-Encoding {0:?} (supported: gzip, identity)")]
    UnsupportedEncoding(String),
    #[error("invalid gzip stream: {0}")]
    Gzip(std::io::Error),
    #[error("invalid protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP/JSON ExportTraceServiceRequest: {0}")]
    Json(#[from] otlp_json::JsonError),
    #[error("invalid protobuf ExportLogsServiceRequest: {0}")]
    LogsProtobuf(prost::DecodeError),
    #[error("invalid OTLP/JSON ExportLogsServiceRequest: {0}")]
    LogsJson(otlp_json::JsonError),
}

/// Inflates `body` according to `content_encoding` (`None`, `identity` or `gzip`), refusing to
/// produce more than `limit` bytes. Inflation stops as soon as the limit is crossed.
pub fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let enc = content_encoding.map(str::trim).unwrap_or("");
    if enc.is_empty() || enc.eq_ignore_ascii_case("identity") {
        if body.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        return Ok(body.to_vec());
    }
    if !enc.eq_ignore_ascii_case("gzip") {
        return Err(DecodeError::UnsupportedEncoding(enc.to_string()));
    }
    let decoder = flate2::read::MultiGzDecoder::new(body);
    // Read at most limit + 1 bytes: one more than allowed proves the body is too large.
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut taken = decoder.take(limit as u64 + 1);
    taken.read_to_end(&mut out).map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// Decodes an (already decompressed) body in the given encoding.
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => Ok(ExportTraceServiceRequest::decode(body)?),
        Encoding::Json => Ok(otlp_json::decode_request(body)?),
    }
}

/// Decodes an (already decompressed) logs body in the given encoding.
pub fn decode_logs_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportLogsServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => {
            ExportLogsServiceRequest::decode(body).map_err(DecodeError::LogsProtobuf)
        }
        Encoding::Json => otlp_json::decode_logs_request(body).map_err(DecodeError::LogsJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn content_types_are_recognised_with_parameters() {
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("Application/X-Protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn gzip_round_trips_under_the_limit() {
        let data = vec![7u8; 10_000];
        let out = decompress(&gzip(&data), Some("gzip"), 10_000).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compresses to ~64 KiB; the limit is 1 MiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let err = decompress(&bomb, Some("gzip"), 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn identity_over_the_limit_is_too_large() {
        let err = decompress(&[1, 2, 3], None, 2).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
    }

    #[test]
    fn bad_gzip_and_unknown_encodings_are_errors() {
        assert!(matches!(
            decompress(b"not gzip", Some("gzip"), 100),
            Err(DecodeError::Gzip(_))
        ));
        assert!(matches!(
            decompress(b"x", Some("br"), 100),
            Err(DecodeError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn garbage_logs_are_errors_that_name_the_logs_message() {
        let e = decode_logs_request(&[0xff, 0xff, 0xff], Encoding::Protobuf).unwrap_err();
        assert!(matches!(e, DecodeError::LogsProtobuf(_)));
        assert!(e
            .to_string()
            .starts_with("invalid protobuf ExportLogsServiceRequest"));
        let e = decode_logs_request(b"[1]", Encoding::Json).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("invalid OTLP/JSON ExportLogsServiceRequest"));
    }

    #[test]
    fn garbage_protobuf_is_an_error() {
        assert!(matches!(
            decode_request(&[0xff, 0xff, 0xff], Encoding::Protobuf),
            Err(DecodeError::Protobuf(_))
        ));
    }
}
