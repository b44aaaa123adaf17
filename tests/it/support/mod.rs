//! Helpers shared by the integration tests: the generic ones come from
//! `chatgptd_testkit` (`runtime`, `records`), re-exported here so the tests name them once.

pub mod browser;
pub mod fleet;
pub mod node;
pub mod pipeline;

use std::process::Command;

pub use chatgptd_testkit::records::ticket;
pub use chatgptd_testkit::runtime::test_options;

/// The `chatgptd` binary, to run as a child process.
pub fn chatgptd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatgptd"));
    // The tests' own environment must not leak configuration in.
    command.env_remove("CHATGPTD_CONFIG").env_remove("RUST_LOG");
    command
}
