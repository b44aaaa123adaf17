//! The dead-letter replayer: `chatgptd dlq replay` and `POST /dead-letters/replay`; and
//! `GET /dead-letters`, the newest letters with their reasons (`list`).
//!
//! After a fix (a corrected prompt, a bug fixed in a worker, a dependency back), dead letters
//! can be sent back to the topic they came from, byte for byte, with their key and headers.
//! It runs on the worker runtime like any worker: it consumes the dead-letter topic in its own
//! consumer group (so a second run does not replay the same letters again), re-publishes the
//! ones that match the filter, and stops once it has caught up with the end of the topic as
//! it was when the run started.
//!
//! A replayed record carries `dlq.replay.count`; a letter replayed `max_replays` times is
//! skipped, so a record that keeps failing cannot loop forever.

mod list;
mod progress;
mod replayer;
mod routes;

pub use list::{ListedLetter, Listing, recent};
pub use progress::Tally;
pub use replayer::{Filter, Options, ReplayReport, ReplayedLetter, replay};
pub use routes::routes;
