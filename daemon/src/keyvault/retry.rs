//! vaultlet's retry policy for every Key Vault and Entra ID request, in
//! place of the SDK's (whose exponential policy neither knows the publish
//! deadline nor tells transient transport failures from permanent ones).
//!
//! It sits in the pipeline's per-call position (`ClientOptions::
//! per_call_policies`, with `RetryOptions::none()` as the SDK's own retry
//! stage), so each try re-runs the per-try policies: the bearer-token policy,
//! [`RecordCause`](super::RecordCause), the in-flight cap and metrics, and
//! the transport. The credentials get the same `ClientOptions`, so token
//! requests are retried by it too.
//!
//! Rules:
//! - a try is retried on 408, 429, 500, 502, 503, 504, and on transport
//!   errors (`Io`, `Connection`) unless [`is_permanent_transport_failure`];
//! - the wait is the server's hint when there is one ([`retry_after`]),
//!   capped at [`RetryPolicy::max_retry_after`], else an equal-jitter
//!   exponential backoff ([`RetryPolicy::backoff`]);
//! - at most [`RetryPolicy::max_tries`] tries, or
//!   [`RetryPolicy::max_tries_throttled`] while the service sends
//!   `Retry-After`;
//! - never a wait that would end past [`DEADLINE`] (the current publish's):
//!   the policy then gives up at once with the last response or error, so
//!   the caller answers UNAVAILABLE ("retries gave up") instead of hanging
//!   into DEADLINE_EXCEEDED.
//!
//! Nothing here reads a body, a token or a header other than the retry
//! hints.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use azure_core::error::ErrorKind;
use azure_core::http::headers::{Headers, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use azure_core::time::OffsetDateTime;
use tracing::debug;

use super::is_permanent_transport_failure;

tokio::task_local! {
    /// The instant by which the current publish must have its objects (its
    /// start plus `--publish-timeout`). [`RetryPolicy`] never sleeps past
    /// it. Unset outside a publish: only the try limit applies.
    pub static DEADLINE: Instant;
}

/// HTTP statuses that are retried.
pub const RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// The retry policy (see the module docs). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (default 5).
    pub max_tries: u32,
    /// Tries in all while the service keeps sending a `Retry-After` hint
    /// (default 10): throttling tells us when to come back, so it gets more
    /// tries; the publish deadline still bounds the total.
    pub max_tries_throttled: u32,
    /// Backoff base: the first retry waits between `base_delay / 2` and
    /// `base_delay` (default 200 ms).
    pub base_delay: Duration,
    /// Backoff cap before jitter (default 10 s).
    pub max_delay: Duration,
    /// Cap on a server's `Retry-After` hint (default 60 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 5,
            max_tries_throttled: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The server's retry hint: `x-ms-retry-after-ms`, then `retry-after-ms`
/// (milliseconds), then `Retry-After` (seconds, or an HTTP-date relative to
/// `now`; a past date is zero). The first header that parses wins; `None`
/// when none does.
pub fn retry_after(headers: &Headers, now: SystemTime) -> Option<Duration> {
    for name in [X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS] {
        if let Some(ms) = headers
            .get_optional_str(&name)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get_optional_str(&RETRY_AFTER)?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = azure_core::time::parse_rfc7231(v).ok()?;
    let now = OffsetDateTime::from(now);
    Some(Duration::try_from(date - now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry) without
    /// a server hint: `d = min(max_delay, base_delay * 2^retry)`, then
    /// `d/2 + unit * d/2` ("equal jitter"). `unit` is uniform in `[0, 1)`;
    /// it is clamped into that range.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let d = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = d / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before retry number `retry`, honouring `hint` (capped).
    pub fn wait(&self, retry: u32, hint: Option<Duration>, unit: f64) -> Duration {
        match hint {
            Some(h) => h.min(self.max_retry_after),
            None => self.backoff(retry, unit),
        }
    }
}

/// Whether a try's outcome is retried, and the server's hint if any.
fn verdict(result: &PolicyResult) -> Option<Option<Duration>> {
    match result {
        Ok(response) => {
            let status = u16::from(response.status());
            RETRY_STATUSES
                .contains(&status)
                .then(|| retry_after(response.headers(), SystemTime::now()))
        }
        Err(e) => (matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection)
            && !is_permanent_transport_failure(e))
        .then_some(None),
    }
}

fn describe(result: &PolicyResult) -> String {
    match result {
        Ok(r) => format!("status {}", u16::from(r.status())),
        Err(e) => format!("{:?} error", e.kind()),
    }
}

#[async_trait::async_trait]
impl Policy for RetryPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let host = request.url().host_str().unwrap_or("?").to_string();
        let deadline = DEADLINE.try_with(|d| *d).ok();
        let mut tries = 0u32;
        loop {
            if tries > 0 {
                request.body_mut().reset().await?;
            }
            tries += 1;
            let result = next[0].send(ctx, request, &next[1..]).await;
            let Some(hint) = verdict(&result) else {
                return result;
            };
            let limit = if hint.is_some() {
                self.max_tries_throttled
            } else {
                self.max_tries
            };
            if tries >= limit {
                debug!(%host, tries, outcome = %describe(&result), "retries gave up: no tries left");
                return result;
            }
            let wait = self.wait(tries - 1, hint, rand::random::<f64>());
            if let Some(deadline) = deadline
                && Instant::now() + wait >= deadline
            {
                let note = format!(
                    "{host}: {}; retries gave up, the next try ({} ms away) would pass the publish deadline",
                    describe(&result),
                    wait.as_millis()
                );
                debug!(%host, tries, wait_ms = wait.as_millis() as u64, "retries gave up: the publish deadline comes first");
                let _ = super::LAST_CAUSE.try_with(|c| {
                    *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
                });
                return result;
            }
            debug!(%host, tries, outcome = %describe(&result), wait_ms = wait.as_millis() as u64, "retrying");
            drop(result);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{AsyncRawResponse, Method, StatusCode, Url};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn headers(pairs: &[(&'static str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(*k, v.to_string());
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_milliseconds() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1500")]), now),
            Some(Duration::from_millis(1500))
        );
        // The Microsoft header wins over the others.
        assert_eq!(
            retry_after(
                &headers(&[
                    ("retry-after", "9"),
                    ("retry-after-ms", "700"),
                    ("x-ms-retry-after-ms", "250")
                ]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        // An unparsable ms header falls through to Retry-After.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "x"), ("retry-after", "2")]),
                now
            ),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_http_date_is_relative_to_now() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 42);
        assert_eq!(
            retry_after(&headers(&[("retry-after", date)]), now),
            Some(Duration::from_secs(42))
        );
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 + 5);
        assert_eq!(
            retry_after(&headers(&[("retry-after", date)]), later),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(600));
        // 200 ms * 2^6 = 12.8 s > 10 s cap.
        assert_eq!(p.backoff(6, 0.0), Duration::from_secs(5));
        assert_eq!(p.backoff(6, 1.0), Duration::from_secs(10));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(10));
        // Out-of-range jitter is clamped.
        assert_eq!(p.backoff(0, 7.0), Duration::from_millis(200));
        // A hint wins over backoff, capped.
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(1)), 0.9),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(3600)), 0.9),
            Duration::from_secs(60)
        );
    }

    /// A transport stand-in answering `statuses` in turn (the last repeats),
    /// with `Retry-After: retry_after` when given.
    #[derive(Debug)]
    struct Script {
        statuses: Vec<u16>,
        retry_after: Option<&'static str>,
        calls: AtomicU32,
        seen: Mutex<Vec<Instant>>,
    }

    #[async_trait::async_trait]
    impl Policy for Script {
        async fn send(&self, _: &Context, _: &mut Request, _: &[Arc<dyn Policy>]) -> PolicyResult {
            let i = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
            self.seen.lock().expect("seen").push(Instant::now());
            let status = self.statuses[i.min(self.statuses.len() - 1)];
            let mut h = Headers::new();
            if let Some(ra) = self.retry_after {
                h.insert("retry-after", ra.to_string());
            }
            Ok(AsyncRawResponse::from_bytes(
                StatusCode::from(status),
                h,
                Vec::<u8>::new(),
            ))
        }
    }

    fn script(statuses: &[u16], retry_after: Option<&'static str>) -> Arc<Script> {
        Arc::new(Script {
            statuses: statuses.to_vec(),
            retry_after,
            calls: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        }
    }

    async fn run(policy: &RetryPolicy, s: &Arc<Script>) -> u16 {
        let mut req = Request::new(
            Url::parse("https://kv.vault.localhost/secrets/x").expect("url"),
            Method::Get,
        );
        let next: Vec<Arc<dyn Policy>> = vec![s.clone()];
        let r = policy
            .send(&Context::new(), &mut req, &next)
            .await
            .expect("response");
        u16::from(r.status())
    }

    #[tokio::test]
    async fn retries_transient_statuses_until_success() {
        let s = script(&[503, 429, 500, 200], None);
        assert_eq!(run(&fast(), &s).await, 200);
        assert_eq!(s.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_retry_after_hint_earns_the_throttled_try_limit() {
        // 7 throttled answers with a hint, then success: more than
        // `max_tries`, within `max_tries_throttled`.
        let s = script(&[429, 429, 429, 429, 429, 429, 429, 200], Some("0"));
        assert_eq!(run(&fast(), &s).await, 200);
        assert_eq!(s.calls.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn gives_up_after_max_tries_with_the_last_response() {
        let s = script(&[503], None);
        assert_eq!(run(&fast(), &s).await, 503);
        assert_eq!(s.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn does_not_retry_other_statuses() {
        for status in [200, 400, 401, 403, 404, 409, 501] {
            let s = script(&[status], None);
            assert_eq!(run(&fast(), &s).await, status);
            assert_eq!(s.calls.load(Ordering::SeqCst), 1, "{status}");
        }
    }

    #[tokio::test]
    async fn honours_retry_after() {
        let s = script(&[429, 200], Some("1"));
        assert_eq!(run(&fast(), &s).await, 200);
        let seen = s.seen.lock().expect("seen").clone();
        assert!(seen[1] - seen[0] >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn never_waits_past_the_deadline() {
        let s = script(&[429, 200], Some("30"));
        let deadline = Instant::now() + Duration::from_secs(2);
        let cause = Arc::new(Mutex::new(None));
        let started = Instant::now();
        let status = super::super::LAST_CAUSE
            .scope(cause.clone(), DEADLINE.scope(deadline, run(&fast(), &s)))
            .await;
        assert_eq!(status, 429);
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        let note = cause.lock().expect("cause").clone().expect("a note");
        assert!(note.contains("retries gave up"), "{note}");
        assert!(note.contains("kv.vault.localhost"), "{note}");
    }
}
