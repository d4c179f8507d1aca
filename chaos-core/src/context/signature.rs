//! Signed directives: `x-chaos-signature: t=UNIX_EXPIRY,v1=HEX(HMAC-SHA256(key, "T.VALUE"))`.
//!
//! A signature lets per-request directives take effect on an engine that does not allow
//! them otherwise, for as long as it has not expired. Keys come from code or from the
//! environment (`CHAOS_SIGNING_KEY`, and `CHAOS_SIGNING_KEY_PREVIOUS` during a rotation).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use chaos_core::context::signature::SigningKeys;
//!
//! let keys = SigningKeys::new(b"a long random secret");
//! let value = "abort=503;target=orders";
//! let sig = keys.sign(value, SystemTime::now() + Duration::from_secs(600));
//! assert!(keys.verify(value.as_bytes(), sig.as_bytes(), SystemTime::now()).is_ok());
//! assert!(keys.verify(b"abort=500", sig.as_bytes(), SystemTime::now()).is_err());
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The longest validity a signature may claim (its expiry at most this far ahead).
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// The keys an engine accepts signatures from: the current key and, during a rotation,
/// the previous one. New signatures are made with the current key.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not of the form `t=...,v1=...`.
    Malformed(&'static str),
    /// Its expiry has passed.
    Expired,
    /// Its expiry is further ahead than [`MAX_VALIDITY`].
    TooLong,
    /// No key produces this MAC for this value (wrong key, or a changed value).
    BadMac,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Malformed(why) => write!(f, "malformed signature: {why}"),
            SignatureError::Expired => f.pad("signature expired"),
            SignatureError::TooLong => f.pad("signature expiry is more than 24h ahead"),
            SignatureError::BadMac => f.pad("signature does not match"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// A signature that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Which key matched: 0 the current, 1 the previous.
    pub key_index: usize,
    /// Hops the signed context has taken (`h=` in the header; 0 at the first service).
    pub hop: u32,
}

impl SigningKeys {
    /// Accepts signatures made with `current`.
    pub fn new(current: impl AsRef<[u8]>) -> SigningKeys {
        SigningKeys {
            keys: vec![current.as_ref().to_vec()],
        }
    }

    /// Also accepts signatures made with `previous` (key rotation).
    #[must_use]
    pub fn with_previous(mut self, previous: impl AsRef<[u8]>) -> SigningKeys {
        self.keys.truncate(1);
        self.keys.push(previous.as_ref().to_vec());
        self
    }

    /// Reads `CHAOS_SIGNING_KEY` and `CHAOS_SIGNING_KEY_PREVIOUS`; `None` when the first is
    /// unset or empty.
    pub fn from_env() -> Option<SigningKeys> {
        let current = std::env::var("CHAOS_SIGNING_KEY")
            .ok()
            .filter(|k| !k.is_empty())?;
        let keys = SigningKeys::new(current);
        Some(match std::env::var("CHAOS_SIGNING_KEY_PREVIOUS") {
            Ok(p) if !p.is_empty() => keys.with_previous(p),
            _ => keys,
        })
    }

    fn mac(key: &[u8], expiry: u64, value: &[u8]) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(expiry.to_string().as_bytes());
        mac.update(b".");
        mac.update(value);
        mac
    }

    /// Signs an `x-chaos` value until `expires`; returns the `x-chaos-signature` value.
    pub fn sign(&self, value: &str, expires: SystemTime) -> String {
        let t = expires
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tag = Self::mac(&self.keys[0], t, value.as_bytes())
            .finalize()
            .into_bytes();
        format!("t={t},v1={}", hex::encode(tag))
    }

    /// Checks a signature over an `x-chaos` value, in constant time per key.
    ///
    /// # Errors
    ///
    /// Why it was refused.
    pub fn verify(
        &self,
        value: &[u8],
        signature: &[u8],
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let sig =
            std::str::from_utf8(signature).map_err(|_| SignatureError::Malformed("not ASCII"))?;
        let mut t: Option<u64> = None;
        let mut hop = 0u32;
        let mut macs: Vec<Vec<u8>> = Vec::new();
        for part in sig.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed("expected `name=value` parts"))?;
            match k.trim() {
                "t" => {
                    t = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| SignatureError::Malformed("`t` is not a number"))?,
                    )
                }
                "v1" => macs.push(
                    hex::decode(v.trim())
                        .map_err(|_| SignatureError::Malformed("`v1` is not hex"))?,
                ),
                "h" => {
                    hop = v
                        .trim()
                        .parse()
                        .map_err(|_| SignatureError::Malformed("`h` is not a number"))?
                }
                _ => {} // unknown schemes are skipped, for forward compatibility
            }
        }
        let t = t.ok_or(SignatureError::Malformed("no `t`"))?;
        if macs.is_empty() {
            return Err(SignatureError::Malformed("no `v1`"));
        }
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if t <= now_s {
            return Err(SignatureError::Expired);
        }
        if t - now_s > MAX_VALIDITY.as_secs() {
            return Err(SignatureError::TooLong);
        }
        for (key_index, key) in self.keys.iter().enumerate() {
            for m in &macs {
                if Self::mac(key, t, value).verify_slice(m).is_ok() {
                    return Ok(Verified { key_index, hop });
                }
            }
        }
        Err(SignatureError::BadMac)
    }

    /// The signature header without its hop counter, as it is forwarded.
    pub(crate) fn strip_hop(signature: &str) -> String {
        signature
            .split(',')
            .filter(|p| !p.trim_start().starts_with("h="))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_reject() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let keys = SigningKeys::new("k1");
        let sig = keys.sign("delay=1s", now + Duration::from_secs(60));
        assert_eq!(
            keys.verify(b"delay=1s", sig.as_bytes(), now),
            Ok(Verified {
                key_index: 0,
                hop: 0
            })
        );
        assert_eq!(
            keys.verify(b"delay=2s", sig.as_bytes(), now),
            Err(SignatureError::BadMac)
        );
        assert_eq!(
            keys.verify(b"delay=1s", sig.as_bytes(), now + Duration::from_secs(61)),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            SigningKeys::new("other").verify(b"delay=1s", sig.as_bytes(), now),
            Err(SignatureError::BadMac)
        );
        let far = keys.sign("delay=1s", now + Duration::from_secs(2 * 86_400));
        assert_eq!(
            keys.verify(b"delay=1s", far.as_bytes(), now),
            Err(SignatureError::TooLong)
        );
        // rotation: signed with the old key, verified by an engine that has it as previous
        let rotated = SigningKeys::new("k2").with_previous("k1");
        assert_eq!(
            rotated.verify(b"delay=1s", sig.as_bytes(), now),
            Ok(Verified {
                key_index: 1,
                hop: 0
            })
        );
        let with_hop = format!("{sig},h=2");
        assert_eq!(
            keys.verify(b"delay=1s", with_hop.as_bytes(), now)
                .unwrap()
                .hop,
            2
        );
        assert_eq!(SigningKeys::strip_hop(&with_hop), sig);
        assert!(matches!(
            keys.verify(b"x", b"garbage", now),
            Err(SignatureError::Malformed(_))
        ));
    }
}
