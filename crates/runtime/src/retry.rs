//! Retry spacing: the one [`Backoff`] (from the types crate), and polling delays.

use std::time::Duration;

pub use chatgptd_types::backoff::Backoff;

/// Delays for polling something that usually settles fast: 5 ms, doubling up to `max`, so a
/// quick answer is seen within milliseconds and a slow one costs few polls.
pub fn polling(max: Duration) -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(Duration::from_millis(5)), move |delay| {
        Some((*delay * 2).min(max))
    })
}
