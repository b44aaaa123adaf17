//! Integration tests: the workers and the binary against real protocols on loopback.
//!
//! One test binary (faster to link than one per file); each module is one area.

mod agents;
mod cli;
mod limits;
mod memory;
mod support;
mod tickets;
