//! `chaosctl sign`: the two headers of a signed per-request directive.

use std::time::{Duration, SystemTime};

use chaos_core::context::XChaos;
use chaos_core::context::signature::SigningKeys;
use chaos_core::headers::{X_CHAOS, X_CHAOS_SIGNATURE};
use chaos_core::rules::Limits;

use crate::code;
use crate::out::say;

pub(crate) fn run(key_env: &str, ttl: Duration, value: &str) -> u8 {
    let key = match std::env::var(key_env) {
        Ok(k) if !k.is_empty() => k,
        _ => {
            eprintln!("chaosctl: the signing key is read from ${key_env}, which is unset or empty");
            return code::USAGE;
        }
    };
    // A value the services would ignore is refused here, before anyone pastes it.
    if let Err(e) = XChaos::parse(value, &Limits::default()) {
        eprintln!("chaosctl: `{value}` is not an x-chaos value: {e}");
        return code::FAILED;
    }
    let signature = SigningKeys::new(key).sign(value, SystemTime::now() + ttl);
    say!("{X_CHAOS}: {value}");
    say!("{X_CHAOS_SIGNATURE}: {signature}");
    code::OK
}
