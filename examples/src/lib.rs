//! What the example programs share: a fleet of replicas on loopback and a real
//! Prometheus to judge it (the `fleet` program and its test).

pub mod fleet;
pub mod prometheus;
