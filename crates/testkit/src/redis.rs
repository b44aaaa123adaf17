//! Placeholder: the redis-server harness (issue 3).
