//! Command-line front ends built on the library: the local demo cluster and the benchmark.

pub mod bench;
pub mod demo;
