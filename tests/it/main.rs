//! Integration tests of the binary and across workers, against real protocols on loopback.
//! Each crate's own tests sit in its `tests/`.
//!
//! One test binary (faster to link than one per file); each module is one area.

mod actions;
mod agents;
mod auth;
mod cli;
mod dashboard;
mod faults;
mod index;
mod knowledge;
mod limits;
mod listings;
mod mcp;
mod openapi;
mod plugins;
mod registry;
mod replicas;
mod steps;
mod subscriptions;
mod support;
mod tickets;
