//! Test support: a recording echo backend and an in-process proxy, both on ephemeral ports.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod backend;
pub mod certs;
pub mod client;
pub mod h2;
pub mod harness;
pub mod nginx;
