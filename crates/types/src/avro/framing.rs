//! The bytes in front of an Avro datum that say which schema wrote it.

use crate::Error;

/// How a value's writer schema is identified on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaId {
    /// A schema's 64-bit CRC-64-AVRO fingerprint, little-endian as in the header: the spec's
    /// (what we write) or apache-avro's legacy one (still read).
    Fingerprint([u8; 8]),
}

impl std::fmt::Display for SchemaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaId::Fingerprint(bytes) => write!(f, "rabin:{}", hex::encode(bytes)),
        }
    }
}

/// A wire framing: writes the header for a schema and splits a value into schema id and body.
///
/// Confluent Schema Registry framing would be a second implementation whose ids are registry
/// ids, resolved through a registry client into the [`SchemaStore`](super::SchemaStore).
pub trait Framing: Send + Sync + std::fmt::Debug {
    /// Appends the header naming `fingerprint`'s schema to `out`.
    fn write_header(&self, fingerprint: [u8; 8], out: &mut Vec<u8>);

    /// Splits `bytes` into the writer schema's id and the Avro body.
    fn split<'a>(&self, bytes: &'a [u8]) -> Result<(SchemaId, &'a [u8]), Error>;
}

/// Avro single-object encoding: `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of
/// the schema's Parsing Canonical Form, the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleObject;

impl SingleObject {
    /// The two marker bytes of the spec.
    pub const MARKER: [u8; 2] = [0xC3, 0x01];
    /// Marker plus fingerprint.
    pub const HEADER_LEN: usize = 10;
}

impl Framing for SingleObject {
    fn write_header(&self, fingerprint: [u8; 8], out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::MARKER);
        out.extend_from_slice(&fingerprint);
    }

    fn split<'a>(&self, bytes: &'a [u8]) -> Result<(SchemaId, &'a [u8]), Error> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(Error::Framing(format!(
                "{} bytes, shorter than the 10-byte header",
                bytes.len()
            )));
        }
        if bytes[..2] != Self::MARKER {
            return Err(Error::Framing(format!(
                "starts with {:02x} {:02x}, not the marker c3 01",
                bytes[0], bytes[1]
            )));
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[2..10]);
        Ok((SchemaId::Fingerprint(fingerprint), &bytes[10..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut out = Vec::new();
        SingleObject.write_header([1, 2, 3, 4, 5, 6, 7, 8], &mut out);
        out.extend_from_slice(b"body");
        let (id, body) = SingleObject.split(&out).unwrap();
        assert_eq!(id, SchemaId::Fingerprint([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(body, b"body");
    }

    #[test]
    fn short_or_unmarked_input_is_an_error() {
        assert!(matches!(SingleObject.split(b""), Err(Error::Framing(_))));
        assert!(matches!(
            SingleObject.split(&[0xC3, 0x01, 0, 0]),
            Err(Error::Framing(_))
        ));
        assert!(matches!(
            SingleObject.split(b"{\"json\": true}"),
            Err(Error::Framing(_))
        ));
    }
}
