//! Progress of long work at the command line (`index rebuild`, `dlq replay`): a bar on a
//! terminal; plain lines every few seconds when stderr is a file, a pipe or a CI log, where a
//! bar would be a wall of carriage returns. Progress goes to stderr, results to stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is printed.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Progress of one piece of work, counted in `unit`s.
pub struct Meter {
    label: &'static str,
    unit: &'static str,
    started: Instant,
    draw: Draw,
}

enum Draw {
    Bar(ProgressBar),
    Lines {
        out: Box<dyn Write + Send>,
        last: Option<Instant>,
    },
}

impl Meter {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn stderr(label: &'static str, unit: &'static str, total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total).with_prefix(label);
            let style = ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(unit);
            bar.enable_steady_tick(Duration::from_millis(200));
            Meter::with(label, unit, Draw::Bar(bar))
        } else {
            Meter::lines(label, unit, Box::new(std::io::stderr()))
        }
    }

    /// Plain lines to `out`.
    fn lines(label: &'static str, unit: &'static str, out: Box<dyn Write + Send>) -> Self {
        Meter::with(label, unit, Draw::Lines { out, last: None })
    }

    fn with(label: &'static str, unit: &'static str, draw: Draw) -> Self {
        Meter {
            label,
            unit,
            started: Instant::now(),
            draw,
        }
    }

    /// `done` of `total` so far. The total can grow (it is 0 until known).
    pub fn set(&mut self, done: u64, total: u64) {
        let now = Instant::now();
        let elapsed = now - self.started;
        match &mut self.draw {
            Draw::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Draw::Lines { out, last } => {
                if last.is_none_or(|at| now - at >= LINE_EVERY) {
                    *last = Some(now);
                    let line = line(self.label, self.unit, done, total, elapsed);
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }

    /// The work ended at `done` of `total`: the bar is cleared (the caller prints the result),
    /// the last plain line is printed whenever the last one was.
    pub fn finish(mut self, done: u64, total: u64) {
        let elapsed = self.started.elapsed();
        match &mut self.draw {
            Draw::Bar(bar) => bar.finish_and_clear(),
            Draw::Lines { out, .. } => {
                let line = line(self.label, self.unit, done, total, elapsed);
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

/// A meter that follows a count read every 200 ms, until [`Following::end`].
pub struct Following {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    /// Follows `read() -> (done, total)`; nothing is drawn while the total is 0 (not known yet).
    pub fn start(
        label: &'static str,
        unit: &'static str,
        read: impl Fn() -> (u64, u64) + Send + 'static,
    ) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut meter = Meter::stderr(label, unit, 0);
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.cancelled() => break,
                    }
                    let (done, total) = read();
                    if total > 0 {
                        meter.set(done, total);
                    }
                }
                let (done, total) = read();
                meter.finish(done, total);
            }
        });
        Following { stop, task }
    }

    /// Draws the last state and stops.
    pub async fn end(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// `replay: 1,200/3,000 letters (40%), 850/s, about 2s left`.
fn line(label: &str, unit: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let left = if done >= total {
        format!("done in {}", whole_seconds(elapsed))
    } else if rate > 0.0 {
        let left = Duration::from_secs_f64((total - done) as f64 / rate);
        format!("about {} left", whole_seconds(left))
    } else {
        "starting".to_string()
    };
    format!(
        "{label}: {}/{} {unit} ({percent}%), {rate:.0}/s, {left}",
        indicatif::HumanCount(done),
        indicatif::HumanCount(total)
    )
}

fn whole_seconds(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_say_done_of_total_rate_and_time_left() {
        let line = line("replay", "letters", 1_200, 3_000, Duration::from_secs(2));
        assert_eq!(
            line,
            "replay: 1,200/3,000 letters (40%), 600/s, about 3s left"
        );
        let done = super::line("rebuild", "records", 10, 10, Duration::from_millis(4_200));
        assert_eq!(done, "rebuild: 10/10 records (100%), 2/s, done in 4s");
        let nothing = super::line("rebuild", "records", 0, 0, Duration::ZERO);
        assert_eq!(nothing, "rebuild: 0/0 records (100%), 0/s, done in 0s");
    }

    #[test]
    fn off_a_terminal_a_line_is_printed_at_most_every_few_seconds_and_at_the_end() {
        let captured = Captured::default();
        let mut meter = Meter::lines("replay", "letters", Box::new(captured.clone()));
        for done in 0..1_000 {
            meter.set(done, 1_000);
        }
        meter.finish(1_000, 1_000);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("replay: 0/1,000 letters (0%)"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("replay: 1,000/1,000 letters (100%)"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }
}
