//! Read latency of a 4 KiB secret file, FUSE vs tmpfs, in one run.
//!
//! `cargo bench -p vaultlet-tests --bench read` (root: it mounts). Each
//! sample is open + read of the whole file + close through the pod's target
//! path; medians and p99 of 2000 samples per backend are printed with their
//! ratio.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use vaultlet_tests::{Env, attrs, objects, privileged_or_skip};

const SAMPLES: usize = 2000;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn measure(path: &std::path::Path) -> Vec<Duration> {
    let mut buf = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        buf.clear();
        let t = Instant::now();
        let mut f = std::fs::File::open(path).expect("open");
        f.read_to_end(&mut buf).expect("read");
        drop(f);
        out.push(t.elapsed());
        assert_eq!(buf.len(), 4096);
    }
    out.sort();
    out
}

fn main() {
    if !privileged_or_skip("bench read") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut env = Env::start().await;
        env.vault("kv-read", &["read-client"]);
        let value: String = (0..4096)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        env.secret("kv-read", "s4k", &value);
        let objs = objects(&["objectName: s4k\nobjectType: secret"]);
        let mut results = Vec::new();
        for (i, backend) in ["tmpfs", "fuse"].into_iter().enumerate() {
            let pod = env.wi_pod("read-client", "bench", &format!("uid-read-{i}"));
            let mut a = attrs("kv-read", Some("read-client"), &objs);
            a.insert("vaultlet.dev/backend".into(), backend.into());
            let target = env
                .kubelet
                .publish(&pod, "vol", &a, &HashMap::new())
                .await
                .expect("publish");
            let file = target.join("s4k");
            let samples = tokio::task::spawn_blocking(move || measure(&file))
                .await
                .expect("measure");
            env.kubelet
                .unpublish(&pod.uid, "vol")
                .await
                .expect("unpublish");
            results.push((backend, pct(&samples, 0.5), pct(&samples, 0.99)));
        }
        println!("read of a 4 KiB file (open+read+close), {SAMPLES} samples each, same run:");
        println!("  backend   p50        p99");
        for (b, p50, p99) in &results {
            println!(
                "  {b:<8}  {:>7.1} µs  {:>7.1} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
        println!(
            "  fuse/tmpfs p50 ratio: {:.1}",
            results[1].1.as_secs_f64() / results[0].1.as_secs_f64()
        );
        env.stop().await;
    });
}
