//! Per-call-site log rate limiting for events that kubelet retries or pods
//! can trigger at will (STYLE 11): a failing publish is retried by kubelet
//! every few seconds per pod, and a pod chooses its attributes and objects.
//!
//! Each call site of [`warn_limited!`](crate::warn_limited) / [`info_limited!`](crate::info_limited) owns a
//! [`LogLimiter`]: at most [`LogLimiter::BURST`] events per
//! [`LogLimiter::WINDOW`] are emitted; the rest are counted. The first event
//! emitted after a suppression carries the field `suppressed = N`, the
//! number of events dropped at that call site since the previous emitted one
//! (0 when none were). Suppressed events still count in metrics: only the
//! log line is dropped. A suppressed count that no later event reports is
//! lost; the rate limit is per call site, not per volume.
//!
//! No crate of the `tracing` ecosystem offered this small a thing without
//! pulling in a runtime; this is ~60 lines with no dependency.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tracing as __tracing;

/// The rate limiter of one call site. `const`-constructible so each call
/// site keeps one in a `static`.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    window_start: Option<Instant>,
    emitted_in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// Events emitted per window at one call site before suppression.
    pub const BURST: u32 = 5;
    /// The window: 30 s, several kubelet retry periods.
    pub const WINDOW: Duration = Duration::from_secs(30);

    /// A limiter with the default [`Self::BURST`] and [`Self::WINDOW`].
    pub const fn new() -> Self {
        Self::with(Self::BURST, Self::WINDOW)
    }

    /// A limiter letting `burst` events through per `window`.
    pub const fn with(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new(State {
                window_start: None,
                emitted_in_window: 0,
                suppressed: 0,
            }),
        }
    }

    /// Decides on one event happening now: `Some(suppressed)` to emit it,
    /// with the number of events dropped since the last emitted one, or
    /// `None` to drop it.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`Self::admit`] at a given instant (for tests).
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = s
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            s.window_start = Some(now);
            s.emitted_in_window = 0;
        }
        if s.emitted_in_window >= self.burst {
            s.suppressed += 1;
            return None;
        }
        s.emitted_in_window += 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// `tracing::warn!` rate-limited per call site (see the [module
/// docs](crate::telemetry::ratelimit)). Takes what `warn!` takes, without
/// `target:`/`parent:`; emitted events get a `suppressed` field.
///
/// ```
/// # let e = "boom";
/// vaultlet::warn_limited!(error = %e, "publish failed");
/// ```
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMITER: $crate::telemetry::ratelimit::LogLimiter =
            $crate::telemetry::ratelimit::LogLimiter::new();
        $crate::log_limited!($crate::telemetry::ratelimit::__tracing::Level::WARN, &LIMITER, $($arg)+)
    }};
}

/// `tracing::info!` rate-limited per call site, like [`warn_limited!`](crate::warn_limited).
#[macro_export]
macro_rules! info_limited {
    ($($arg:tt)+) => {{
        static LIMITER: $crate::telemetry::ratelimit::LogLimiter =
            $crate::telemetry::ratelimit::LogLimiter::new();
        $crate::log_limited!($crate::telemetry::ratelimit::__tracing::Level::INFO, &LIMITER, $($arg)+)
    }};
}

/// The engine of [`warn_limited!`](crate::warn_limited) with an explicit level and limiter
/// (`&'static LogLimiter`); use it directly for a non-default limiter.
#[macro_export]
macro_rules! log_limited {
    ($level:expr, $limiter:expr, $($arg:tt)+) => {{
        if let Some(suppressed) = $crate::telemetry::ratelimit::LogLimiter::admit($limiter) {
            $crate::telemetry::ratelimit::__tracing::event!($level, suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_burst_is_cut_to_the_limit_and_the_next_window_reports_the_rest() {
        let l = LogLimiter::with(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let emitted: Vec<u64> = (0..1000).filter_map(|_| l.admit_at(t0)).collect();
        assert_eq!(emitted, vec![0, 0, 0]);
        // Still inside the window: dropped.
        assert_eq!(l.admit_at(t0 + Duration::from_secs(9)), None);
        // Next window: emitted with the count of what was dropped.
        assert_eq!(l.admit_at(t0 + Duration::from_secs(10)), Some(998));
        assert_eq!(l.admit_at(t0 + Duration::from_secs(11)), Some(0));
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_burst_of_1000_warnings_yields_a_few_lines_then_a_suppressed_count() {
        static FAST: LogLimiter = LogLimiter::with(LogLimiter::BURST, Duration::from_millis(50));
        let cap = Capture::default();
        let writer = cap.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                crate::log_limited!(tracing::Level::WARN, &FAST, attempt = i, "publish failed");
            }
            std::thread::sleep(Duration::from_millis(60));
            crate::log_limited!(
                tracing::Level::WARN,
                &FAST,
                attempt = 1000,
                "publish failed"
            );
            // The default macro compiles and emits its first event.
            crate::warn_limited!(error = %"boom", "default limiter");
        });
        let text = String::from_utf8_lossy(&cap.0.lock().expect("capture")).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LogLimiter::BURST as usize + 2, "{text}");
        assert!(
            lines[..LogLimiter::BURST as usize]
                .iter()
                .all(|l| l.contains("suppressed=0") && l.contains("publish failed")),
            "{text}"
        );
        let report = lines[LogLimiter::BURST as usize];
        assert!(report.contains("suppressed=995"), "{report}");
        assert!(report.contains("attempt=1000"), "{report}");
        assert!(lines[LogLimiter::BURST as usize + 1].contains("default limiter"));
    }
}
