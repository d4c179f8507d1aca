//! The header names of the contract.

use http::HeaderName;

/// `x-chaos`: scenario tags and directives.
pub const X_CHAOS: HeaderName = HeaderName::from_static("x-chaos");
/// `x-chaos-signature`: `t=EXPIRY,v1=HMAC` over `EXPIRY.X_CHAOS`.
pub const X_CHAOS_SIGNATURE: HeaderName = HeaderName::from_static("x-chaos-signature");
/// `x-test-traffic`: `1` marks synthetic traffic.
pub const X_TEST_TRAFFIC: HeaderName = HeaderName::from_static("x-test-traffic");
/// `x-chaos-injected`: set on injected responses, the rule id.
pub const X_CHAOS_INJECTED: HeaderName = HeaderName::from_static("x-chaos-injected");
