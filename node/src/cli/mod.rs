//! Command-line front ends built on the library: the local demo cluster (optionally with the
//! read side), the benchmark, `apikey` (makes a client API key) and `certs` (certificates).

pub mod apikey;
pub mod bench;
pub mod certs;
pub mod demo;
pub mod demo_readmodel;
