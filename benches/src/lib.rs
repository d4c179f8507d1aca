//! Criterion benches for the chaos layers; see `benches/layer.rs`. Run with
//! `cargo bench -p chaos-benches`.
