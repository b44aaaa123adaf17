//! The trackers a ticket can come from: the one `Source` of the types crate.

pub use chatgptd_types::Source;
