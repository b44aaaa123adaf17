//! The node's own parts against real protocols on loopback: the event streams it serves and
//! the memory backend it opens.

mod events;
mod memory;
