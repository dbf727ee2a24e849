//! Trace and span ids: fixed-size byte arrays, written as lowercase hex everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected} bytes ({hex} hex characters), got {got} bytes")]
    WrongLength { what: &'static str, expected: usize, hex: usize, got: usize },
    #[error("{what} is all zeros, which OTLP and W3C trace context define as invalid")]
    AllZero { what: &'static str },
    #[error("{what} is not valid hex: {input:?}")]
    NotHex { what: &'static str, input: String },
}

macro_rules! define_id {
    ($name:ident, $n:literal, $what:literal) => {
        #[doc = concat!("A ", $what, ": ", stringify!($n), " bytes, never all zero.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $n]);

        impl $name {
            pub const LEN: usize = $n;

            /// Checks length and the all-zero rule.
            pub fn from_bytes(bytes: &[u8]) -> Result<$name, IdError> {
                let arr: [u8; $n] = bytes.try_into().map_err(|_| IdError::WrongLength {
                    what: $what,
                    expected: $n,
                    hex: $n * 2,
                    got: bytes.len(),
                })?;
                if arr == [0u8; $n] {
                    return Err(IdError::AllZero { what: $what });
                }
                Ok($name(arr))
            }

            /// Parses hex, case-insensitively.
            pub fn from_hex(input: &str) -> Result<$name, IdError> {
                if input.len() != $n * 2 {
                    return Err(IdError::WrongLength {
                        what: $what,
                        expected: $n,
                        hex: $n * 2,
                        got: input.len() / 2,
                    });
                }
                let bytes = hex::decode(input)
                    .map_err(|_| IdError::NotHex { what: $what, input: input.to_owned() })?;
                $name::from_bytes(&bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $n] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<$name, IdError> {
                $name::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(TraceId, 16, "trace id");
define_id!(SpanId, 8, "span id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_validation() {
        let id = TraceId::from_hex("48F9C3E1B7A64F2C9D2E0A1B3C4D5E6F").unwrap();
        assert_eq!(id.to_hex(), "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f");
        assert!(matches!(
            TraceId::from_hex("00000000000000000000000000000000"),
            Err(IdError::AllZero { .. })
        ));
        assert!(matches!(SpanId::from_hex("abc"), Err(IdError::WrongLength { .. })));
        assert!(matches!(SpanId::from_hex("zzzzzzzzzzzzzzzz"), Err(IdError::NotHex { .. })));
    }
}
