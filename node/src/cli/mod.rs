//! Command-line front ends built on the library: the local demo cluster (optionally with the
//! read side), the benchmark and certificate generation.

pub mod bench;
pub mod certs;
pub mod demo;
pub mod demo_readmodel;
