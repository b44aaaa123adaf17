//! Helpers shared by the integration tests: the generic ones come from
//! `chatgptd_testkit` (`runtime`, `records`), re-exported here so the tests name them once.

pub mod node;

pub use chatgptd_testkit::records::{step, step_value, ticket};
pub use chatgptd_testkit::runtime::{
    FnProcessor, Running, echo, produce_runs, start, start_in, test_options,
};
