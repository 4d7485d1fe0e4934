//! Command-line front ends built on the library: the local demo cluster (optionally with the
//! read side) and the benchmark.

pub mod bench;
pub mod demo;
pub mod demo_readmodel;
