//! The node's own parts against real protocols on loopback: the event streams it serves.

mod events;
