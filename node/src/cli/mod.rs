//! Command-line front ends built on the library: the local demo cluster (optionally with the
//! read side), the benchmark, and `apikey` (makes a client API key).

pub mod apikey;
pub mod bench;
pub mod demo;
pub mod demo_readmodel;
