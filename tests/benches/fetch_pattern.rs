//! Fetch pattern of the node-wide object cache, with 20 ms injected on every
//! Key Vault and token request, all in one run against the in-process
//! emulator.
//!
//! `cargo bench -p vaultlet-tests --bench fetch_pattern` (root: it mounts
//! tmpfs). Prints one markdown table:
//!
//! - **(a)** publish latency of a 10-secret workload-identity volume, cold
//!   (a fresh namespace and client per sample: token request and fetches)
//!   and warm (new pods of one namespace/identity while another volume holds
//!   the objects);
//! - **(b)** Key Vault GETs and token requests for 110 concurrent publishes
//!   of the same objects and identity from cold, next to one GET per object
//!   per pod (the Secrets Store CSI driver's pattern), and their wall time;
//! - **(c)** VmRSS of this process (daemon + emulator + simulator, all in
//!   process) after warmup and with the 110 volumes published;
//! - **(d)** the warm p50 against a floor measured in the same run: mount a
//!   tmpfs and write the same 10 files in the `..data` layout.
//!
//! Logs go to stderr at `warn`: the subscriber is installed before
//! [`Env::start_with`], so the harness's trace-level in-memory capture
//! (which would add time and memory to every request) stays off. Rotation is
//! pushed to one hour so that no re-read lands in the counts, and the state
//! dir is on a tmpfs, as `/run/vaultlet` is on a node. Method and results:
//! `docs/benchmarks.md`.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use keyvault_emulator::Fault;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{Env, attrs, objects, privileged_or_skip};

const COMMAND: &str = "cargo bench -p vaultlet-tests --bench fetch_pattern";
const VAULT: &str = "kv-fetch";
const COLD: usize = 50;
const WARM: usize = 200;
const BURST: usize = 110;
const DELAY_MS: u64 = 20;
/// Sizes of the 10 secrets: from a short password to a 4 KiB PEM bundle.
const SIZES: [usize; 10] = [64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096];

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Name of secret `i`.
fn name(i: usize) -> String {
    format!("s{i:02}")
}

/// A printable value of exactly `len` bytes, distinct per secret.
fn value(i: usize, len: usize) -> String {
    let head = format!("fetch-pattern-{i:02}-");
    let mut v: String = head.chars().take(len).collect();
    v.extend((0..len - v.len()).map(|k| char::from(b'a' + ((k * 7 + i) % 26) as u8)));
    v
}

/// Pod `uid` of `template`'s namespace, service account and token.
fn pod_like(template: &Pod, uid: &str) -> Pod {
    Pod {
        name: format!("pod-{uid}"),
        uid: uid.into(),
        ..template.clone()
    }
}

/// One floor sample: mount a tmpfs with the daemon's flags, write the files
/// into a payload dir, point `..data` at it and link each name through it.
/// The unmount is not timed, as a publish sample does not include the
/// unpublish.
fn floor_sample(dir: &Path, files: &[(String, Vec<u8>)]) -> Duration {
    let t = Instant::now();
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1048576"),
    )
    .expect("mount tmpfs");
    let payload = dir.join("..2026_01_01_00_00_00.000000000");
    std::fs::create_dir(&payload).expect("payload dir");
    for (name, bytes) in files {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(payload.join(name))
            .expect("create file");
        f.write_all(bytes).expect("write file");
    }
    symlink("..2026_01_01_00_00_00.000000000", dir.join("..data")).expect("..data link");
    for (name, _) in files {
        symlink(format!("..data/{name}"), dir.join(name)).expect("name link");
    }
    let d = t.elapsed();
    umount2(dir, MntFlags::empty()).expect("umount tmpfs");
    d
}

struct Row(String, String);

/// A tmpfs mounted at a path, lazily unmounted on drop (also on a panic).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0700,size=16777216"),
        )
        .expect("mount tmpfs");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

fn main() {
    if !privileged_or_skip("bench fetch_pattern") {
        return;
    }
    // Installed first, so the harness's trace-level capture is not.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    let rss_start = rss_kib();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let rows = rt.block_on(run(rss_start));
    println!(
        "fetch pattern, 10 secrets ({}–{} B), {DELAY_MS} ms injected on every Key Vault and token request, one run:\n",
        SIZES[0], SIZES[9]
    );
    println!("| Measure | Value |");
    println!("|---|---|");
    for Row(k, v) in rows {
        println!("| {k} | {v} |");
    }
    println!("\ncommand (as root): {COMMAND}");
}

async fn run(rss_start: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    // The state dir on a tmpfs, as `/run/vaultlet` is on a node: the index
    // is fsynced on every publish, which costs milliseconds on a disk.
    let state_fs = tempfile::Builder::new()
        .prefix("vaultlet-state-")
        .tempdir()
        .expect("state dir");
    let state_mount = Tmpfs::mount(state_fs.path());
    let state_dir = state_fs.path().join("state");
    let mut env = Env::start_with(|c| {
        c.rotation_poll_interval = Duration::from_secs(3600);
        c.state_dir = state_dir;
    })
    .await;
    let cold_clients: Vec<String> = (0..COLD).map(|i| format!("cold-client-{i}")).collect();
    let mut clients: Vec<&str> = cold_clients.iter().map(String::as_str).collect();
    clients.extend(["warm-client", "burst-client"]);
    env.vault(VAULT, &clients);
    let files: Vec<(String, Vec<u8>)> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &len)| (name(i), value(i, len).into_bytes()))
        .collect();
    for (n, v) in &files {
        env.secret(VAULT, n, std::str::from_utf8(v).expect("ascii value"));
    }
    let items: Vec<String> = files
        .iter()
        .map(|(n, _)| format!("objectName: {n}\nobjectType: secret"))
        .collect();
    let objs = objects(&items.iter().map(String::as_str).collect::<Vec<_>>());
    env.emulator.state().inject_fault(Fault {
        path_prefix: "/".into(),
        status: 0,
        delay_ms: Some(DELAY_MS),
        count: u32::MAX,
        ..Fault::default()
    });
    let none = HashMap::new();

    // (a) cold: a fresh namespace and client per sample.
    env.emulator.state().reset_counters();
    let mut cold = Vec::with_capacity(COLD);
    for (i, client) in cold_clients.iter().enumerate() {
        let pod = env.wi_pod(client, &format!("cold-{i}"), &format!("cold-{i}"));
        let a = attrs(VAULT, Some(client), &objs);
        let t = Instant::now();
        env.kubelet
            .publish(&pod, "vol", &a, &none)
            .await
            .expect("cold publish");
        cold.push(t.elapsed());
        env.kubelet
            .unpublish(&pod.uid, "vol")
            .await
            .expect("unpublish");
    }
    let cold_counts = env.emulator.state().counters();
    cold.sort();

    // (a) warm: new pods of one namespace/identity while a holder volume
    // keeps the objects in the cache.
    let holder = env.wi_pod("warm-client", "warm", "warm-holder");
    let warm_attrs = attrs(VAULT, Some("warm-client"), &objs);
    env.kubelet
        .publish(&holder, "vol", &warm_attrs, &none)
        .await
        .expect("holder publish");
    env.emulator.state().reset_counters();
    let mut warm = Vec::with_capacity(WARM);
    for i in 0..WARM {
        let pod = pod_like(&holder, &format!("warm-{i}"));
        let t = Instant::now();
        env.kubelet
            .publish(&pod, "vol", &warm_attrs, &none)
            .await
            .expect("warm publish");
        warm.push(t.elapsed());
        env.kubelet
            .unpublish(&pod.uid, "vol")
            .await
            .expect("unpublish");
    }
    let warm_counts = env.emulator.state().counters();
    warm.sort();

    // (d) the floor, same number of samples as warm.
    let floor_dir = tempfile::Builder::new()
        .prefix("vaultlet-floor-")
        .tempdir()
        .expect("floor dir");
    let floor_path = floor_dir.path().to_path_buf();
    let floor_files = files.clone();
    let mut floor = tokio::task::spawn_blocking(move || {
        (0..WARM)
            .map(|_| floor_sample(&floor_path, &floor_files))
            .collect::<Vec<_>>()
    })
    .await
    .expect("floor samples");
    floor.sort();

    // (b) 110 concurrent publishes of one fresh namespace/identity.
    let rss_warm = rss_kib();
    env.emulator.state().reset_counters();
    let burst_template = env.wi_pod("burst-client", "burst", "burst-0");
    let burst_attrs = attrs(VAULT, Some("burst-client"), &objs);
    let pods: Vec<Pod> = (0..BURST)
        .map(|i| pod_like(&burst_template, &format!("burst-{i}")))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    for pod in pods.clone() {
        let mut kubelet = env.kubelet.clone();
        let a = burst_attrs.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            kubelet
                .publish(&pod, "vol", &a, &HashMap::new())
                .await
                .map(|_| t.elapsed())
        });
    }
    let mut burst = Vec::with_capacity(BURST);
    while let Some(r) = tasks.join_next().await {
        burst.push(r.expect("publish task").expect("burst publish"));
    }
    let burst_wall = t.elapsed();
    burst.sort();
    let burst_counts = env.emulator.state().counters();
    for pod in &pods {
        let target = env.kubelet.target_path(&pod.uid, "vol");
        for (n, v) in &files {
            let got = std::fs::read(target.join(n)).expect("published file");
            assert!(got == *v, "{}: wrong content in {n}", pod.uid);
        }
    }

    // (c) RSS with the 110 volumes (and the warm holder) published.
    let rss_burst = rss_kib();
    for pod in &pods {
        env.kubelet
            .unpublish(&pod.uid, "vol")
            .await
            .expect("unpublish");
    }
    env.kubelet
        .unpublish(&holder.uid, "vol")
        .await
        .expect("unpublish holder");
    let rss_end = rss_kib();
    env.emulator.state().clear_faults();

    let authed = |c: &keyvault_emulator::Counters, client: &str| {
        c.per_client.get(client).copied().unwrap_or(0)
    };
    let cold_authed: u64 = cold_clients.iter().map(|c| authed(&cold_counts, c)).sum();
    let per_object = |c: &keyvault_emulator::Counters| c.per_object.values().sum::<u64>();
    let fmt_lat = |s: &[Duration]| format!("{:.2} / {:.2}", ms(pct(s, 0.5)), ms(pct(s, 0.99)));

    rows.push(Row(
        format!("(a) cold publish p50 / p99 (ms), {COLD} samples"),
        fmt_lat(&cold),
    ));
    rows.push(Row(
        "(a) cold: min (ms); token requests; KV GETs with a bearer token; all KV requests".into(),
        format!(
            "{:.1}; {}; {}; {}",
            ms(cold[0]),
            cold_counts.token_requests,
            cold_authed,
            cold_counts.total
        ),
    ));
    rows.push(Row(
        format!("(a) warm publish p50 / p99 (ms), {WARM} samples"),
        fmt_lat(&warm),
    ));
    rows.push(Row(
        "(a) warm: token requests; KV requests".into(),
        format!("{}; {}", warm_counts.token_requests, warm_counts.total),
    ));
    rows.push(Row(
        format!("(b) {BURST} concurrent publishes: KV GETs with a bearer token"),
        format!(
            "{} (vs {} at one GET per object per pod)",
            authed(&burst_counts, "burst-client"),
            BURST * 10
        ),
    ));
    rows.push(Row(
        format!("(b) {BURST} concurrent publishes: token requests"),
        format!("{} (vs {BURST})", burst_counts.token_requests),
    ));
    rows.push(Row(
        "(b) all KV requests (incl. bare challenge probes); per_object sum".into(),
        format!("{}; {}", burst_counts.total, per_object(&burst_counts)),
    ));
    rows.push(Row(
        format!("(b) wall time of the {BURST} publishes (ms); per-publish p50 / p99"),
        format!("{:.1}; {}", ms(burst_wall), fmt_lat(&burst)),
    ));
    rows.push(Row(
        "(c) VmRSS of the bench process (daemon + emulator + simulator): at start; after warmup; 110 volumes published; all unpublished (MiB)".into(),
        format!(
            "{:.1}; {:.1}; {:.1}; {:.1}",
            mib(rss_start),
            mib(rss_warm),
            mib(rss_burst),
            mib(rss_end)
        ),
    ));
    rows.push(Row(
        "(c) delta, after warmup → 110 volumes published (MiB)".into(),
        format!("{:+.1}", (rss_burst as f64 - rss_warm as f64) / 1024.0),
    ));
    rows.push(Row(
        format!("(d) floor p50 / p99 (ms), {WARM} samples: tmpfs mount + 10 files + links"),
        fmt_lat(&floor),
    ));
    rows.push(Row(
        "(d) warm p50 / floor p50".into(),
        format!(
            "{:.1}",
            pct(&warm, 0.5).as_secs_f64() / pct(&floor, 0.5).as_secs_f64()
        ),
    ));
    env.stop().await;
    drop(state_mount);
    rows
}
