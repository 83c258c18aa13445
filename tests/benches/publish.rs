//! Publish latency of a 3-secret volume against the in-process emulator.
//!
//! `cargo bench -p vaultlet-tests --bench publish` (root: it mounts tmpfs).
//! Prints the cold publish (first use of the identity: Entra token request +
//! TLS handshake) and the median / p90 of warm publishes, each followed by
//! an unpublish, all measured in the same run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vaultlet_tests::{Env, attrs, objects, privileged_or_skip};

const ROUNDS: usize = 50;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    if !privileged_or_skip("bench publish") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut env = Env::start().await;
        env.vault("kv-bench", &["bench-client"]);
        for name in ["s1", "s2", "s3"] {
            env.secret("kv-bench", name, &format!("bench-value-{name}-0123456789"));
        }
        let objs = objects(&[
            "objectName: s1\nobjectType: secret",
            "objectName: s2\nobjectType: secret\nfilePermission: \"0400\"",
            "objectName: s3\nobjectType: secret\nobjectAlias: nested/s3",
        ]);
        let a = attrs("kv-bench", Some("bench-client"), &objs);
        let mut samples = Vec::with_capacity(ROUNDS);
        let mut cold = Duration::ZERO;
        for i in 0..=ROUNDS {
            let pod = env.wi_pod("bench-client", "bench", &format!("uid-{i}"));
            let t = Instant::now();
            env.kubelet
                .publish(&pod, "vol", &a, &HashMap::new())
                .await
                .expect("publish");
            let d = t.elapsed();
            env.kubelet
                .unpublish(&pod.uid, "vol")
                .await
                .expect("unpublish");
            if i == 0 {
                cold = d;
            } else {
                samples.push(d);
            }
        }
        samples.sort();
        let c = env.emulator.state().counters();
        println!("publish of 3 secrets, {ROUNDS} warm rounds + 1 cold, same run:");
        println!(
            "  cold (token + TLS handshake): {:.2} ms",
            cold.as_secs_f64() * 1e3
        );
        println!(
            "  warm median: {:.2} ms",
            pct(&samples, 0.5).as_secs_f64() * 1e3
        );
        println!(
            "  warm p90:    {:.2} ms",
            pct(&samples, 0.9).as_secs_f64() * 1e3
        );
        println!(
            "  cold / warm-median ratio: {:.1}",
            cold.as_secs_f64() / pct(&samples, 0.5).as_secs_f64()
        );
        println!(
            "  emulator saw {} Key Vault requests and {} token requests",
            c.total, c.token_requests
        );
        env.stop().await;
    });
}
