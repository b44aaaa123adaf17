//! The model client against real servers on 127.0.0.1: the fake OpenAI-compatible server,
//! a real redis-server for the shared limiter, and real memory backends for the cache.

mod cache;
mod fixture;
mod limits;
mod provider;
mod replies;
mod retries;
mod shared_limits;
mod telemetry;
mod tools;
