//! Tests of both memory backends against real servers: a `redis-server` per test (testkit)
//! and SQLite files in temporary directories. One binary, so it links once.

mod conformance;
mod fixture;
mod open;
mod redis_failures;
mod sqlite;
