//! Helpers shared by the integration tests: the generic ones come from
//! `chatgptd_testkit` (`runtime`, `records`), re-exported here so the tests name them once.

pub mod fleet;
pub mod node;

pub use chatgptd_testkit::records::ticket;
pub use chatgptd_testkit::runtime::test_options;
