//! W3C trace context (`traceparent`), carried in Kafka headers and HTTP headers so one ticket
//! can be followed across the gateway and every worker it passes through.
//!
//! Only the `traceparent` header is needed to correlate logs; it is small enough that parsing it
//! here is simpler than pulling in an OpenTelemetry SDK.

use rand::Rng;

/// A `traceparent`: version 00, a 16-byte trace id, the 8-byte id of the parent span, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// Shared by every span of one trace.
    pub trace_id: [u8; 16],
    /// The span that caused this one.
    pub span_id: [u8; 8],
    /// Bit 0: sampled.
    pub flags: u8,
}

impl TraceContext {
    /// The header name, in Kafka and HTTP alike.
    pub const HEADER: &'static str = "traceparent";

    /// A new trace, sampled.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        TraceContext {
            trace_id: non_zero(&mut rng),
            span_id: non_zero(&mut rng),
            flags: 1,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: non_zero(&mut rand::rng()),
            ..*self
        }
    }

    /// Parses a `traceparent` value; `None` if it is not a valid version-00 header.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
            return None;
        }
        let mut context = TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        hex::decode_to_slice(trace, &mut context.trace_id).ok()?;
        hex::decode_to_slice(span, &mut context.span_id).ok()?;
        context.flags = u8::from_str_radix(flags, 16).ok()?;
        let all_zero = |bytes: &[u8]| bytes.iter().all(|b| *b == 0);
        if all_zero(&context.trace_id) || all_zero(&context.span_id) {
            return None;
        }
        Some(context)
    }

    /// Parses header bytes; `None` if absent or invalid.
    pub fn from_bytes(value: Option<&[u8]>) -> Option<Self> {
        std::str::from_utf8(value?).ok().and_then(Self::parse)
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            hex::encode(self.span_id),
            self.flags
        )
    }

    /// The trace id as logged.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

fn non_zero<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let bytes: [u8; N] = rng.random();
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example_and_round_trips() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.to_header(), header);
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn refuses_invalid_headers() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        assert!(TraceContext::from_bytes(Some(&[0xFF, 0xFE])).is_none());
    }
}
