//! Command-line flags (clap derive; every flag also reads `VAULTLET_<FLAG>`)
//! parsed into a validated [`Config`] (DESIGN §3).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::attest::{AttestationConfig, SourceSpec};
use crate::params::{Backend, parse_size};

/// Delivery backend flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A tmpfs per volume.
    Tmpfs,
    /// A per-namespace FUSE in-memory filesystem, bind-mounted per volume.
    Fuse,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Tmpfs => Backend::Tmpfs,
            BackendArg::Fuse => Backend::Fuse,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for cluster log collectors.
    Json,
}

/// Flags of `vaultlet serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// CSI socket: `unix:///path` or a bare path. Created with mode 0600; a
    /// stale socket file is replaced.
    #[arg(
        long,
        env = "VAULTLET_ENDPOINT",
        default_value = "unix:///csi/csi.sock"
    )]
    pub endpoint: String,

    /// Node name returned by NodeGetInfo (required).
    #[arg(long, env = "VAULTLET_NODE_ID")]
    pub node_id: String,

    /// Driver name returned by GetPluginInfo. Use `secrets-store.csi.k8s.io`
    /// for a drop-in replacement of the Secrets Store CSI Driver.
    #[arg(long, env = "VAULTLET_DRIVER_NAME", default_value = "csi.vaultlet.dev")]
    pub driver_name: String,

    /// Kubelet root dir; target paths must be
    /// `<root>/pods/<uid>/volumes/kubernetes.io~csi/<vol>/mount`.
    #[arg(
        long,
        env = "VAULTLET_KUBELET_ROOT",
        default_value = "/var/lib/kubelet"
    )]
    pub kubelet_root: PathBuf,

    /// Directory for the index of published volumes (never holds secret values).
    #[arg(long, env = "VAULTLET_STATE_DIR", default_value = "/run/vaultlet")]
    pub state_dir: PathBuf,

    /// Default delivery backend; a volume may override it with
    /// `vaultlet.dev/backend`.
    #[arg(long, env = "VAULTLET_BACKEND", value_enum, default_value = "tmpfs")]
    pub backend: BackendArg,

    /// Size cap of each tmpfs volume (`64Ki`, `16Mi`, bytes). The attribute
    /// `vaultlet.dev/tmpfs-size` overrides it per volume.
    #[arg(long, env = "VAULTLET_TMPFS_SIZE", default_value = "16Mi")]
    pub tmpfs_size: String,

    /// Overrides the cloud's Key Vault DNS suffix: the vault URL becomes
    /// `https://{keyvaultName}.{SUFFIX}/`. `SUFFIX` may carry a `:PORT`.
    #[arg(long, env = "VAULTLET_KEYVAULT_DNS_SUFFIX")]
    pub keyvault_dns_suffix: Option<String>,

    /// Overrides the cloud's Entra ID authority host (`https://HOST[:PORT]`).
    #[arg(long, env = "VAULTLET_AUTHORITY_HOST")]
    pub authority_host: Option<String>,

    /// PEM file of CA certificates trusted in addition to the system's roots.
    #[arg(long, env = "VAULTLET_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,

    /// Address of `/metrics`, `/healthz` and `/readyz`. An empty value turns
    /// the endpoint off.
    #[arg(long, env = "VAULTLET_METRICS_ADDR", default_value = "127.0.0.1:9810")]
    pub metrics_addr: String,

    /// Idle Key Vault connections are closed after this long (their buffers
    /// held plaintext). humantime form: `500ms`, `30s`, `2m`.
    #[arg(long, env = "VAULTLET_HTTP_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,

    /// Log format; `RUST_LOG` sets the level (default `info`).
    #[arg(long, env = "VAULTLET_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Upper bound on one NodePublishVolume, below kubelet's 2 minutes.
    #[arg(long, env = "VAULTLET_PUBLISH_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    pub publish_timeout: Duration,

    /// How often objects that track the latest version are re-read (each
    /// with up to 10% jitter); superseded payload dirs are removed one
    /// interval after their swap.
    #[arg(long, env = "VAULTLET_ROTATION_POLL_INTERVAL", default_value = "2m", value_parser = parse_duration)]
    pub rotation_poll_interval: Duration,
    /// Most requests in flight at once to one vault (host and port), across
    /// all volumes and identities. Requests over the cap wait their turn;
    /// retries waiting out a backoff hold no slot. Must be at least 1.
    #[arg(long, env = "VAULTLET_KEYVAULT_MAX_CONCURRENCY", default_value_t = 8)]
    pub keyvault_max_concurrency: usize,

    /// Where this node's SEV-SNP evidence comes from, for confidential
    /// volumes: `auto` (sev-guest, then tsm, then vtpm), `sev-guest`
    /// (/dev/sev-guest), `tsm` (configfs-tsm), `vtpm` (Azure CVM HCL report),
    /// `file:PATH` (offline replay). Consulted only when a confidential
    /// volume is published.
    #[arg(long, env = "VAULTLET_ATTESTATION_SOURCE", default_value = "auto")]
    pub attestation_source: String,

    /// SEV-SNP appraisal policy, YAML or JSON (vaultlet-snp schema). The
    /// default policy (no debug, no migration agent, VMPL 0) when absent.
    #[arg(long, env = "VAULTLET_ATTESTATION_POLICY")]
    pub attestation_policy: Option<PathBuf>,

    /// Azure Attestation endpoint (`https://…`) for key release.
    #[arg(long, env = "VAULTLET_ATTESTATION_SERVICE")]
    pub attestation_service: Option<String>,

    /// PEM file of extra SEV-SNP root certificates (ARKs) trusted besides
    /// AMD's pinned ones. Development and tests only: logged at warn, and
    /// verdicts relying on one say `non-AMD root`.
    #[arg(long, env = "VAULTLET_ATTESTATION_EXTRA_ROOTS")]
    pub attestation_extra_roots: Option<PathBuf>,

    /// AMD Key Distribution Service base URL, for VCEK and ASK/ARK when the
    /// evidence carries none.
    #[arg(
        long,
        env = "VAULTLET_ATTESTATION_VCEK_URL",
        default_value = "https://kdsintf.amd.com"
    )]
    pub attestation_vcek_url: String,

    /// Evidence older than this is gathered and verified again.
    #[arg(long, env = "VAULTLET_ATTESTATION_MAX_AGE", default_value = "10m", value_parser = parse_duration)]
    pub attestation_max_age: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("not a duration ({e})"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Errors of turning flags into a [`Config`]. Each names the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag value is invalid.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// Flag name without dashes.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// Validated daemon configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Path of the CSI unix socket.
    pub socket_path: PathBuf,
    /// NodeGetInfo node_id.
    pub node_id: String,
    /// GetPluginInfo name.
    pub driver_name: String,
    /// Kubelet root dir (absolute).
    pub kubelet_root: PathBuf,
    /// State dir (absolute).
    pub state_dir: PathBuf,
    /// Default backend.
    pub backend: Backend,
    /// Default tmpfs size cap in bytes.
    pub tmpfs_size: u64,
    /// Key Vault DNS suffix override (`host[:port]`, no leading dot).
    pub keyvault_dns_suffix: Option<String>,
    /// Entra ID authority host override (`https://host[:port]`, no trailing slash).
    pub authority_host: Option<String>,
    /// Extra PEM roots.
    pub extra_ca_file: Option<PathBuf>,
    /// Metrics listen address, `None` when disabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Idle connection timeout.
    pub http_idle_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Bound on one publish.
    pub publish_timeout: Duration,
    /// Re-read interval of objects that track the latest version.
    pub rotation_poll_interval: Duration,
    /// Concurrent requests per vault host (at least 1).
    pub keyvault_max_concurrency: usize,
    /// SEV-SNP attestation settings (`--attestation-*`).
    pub attestation: AttestationConfig,
}

/// CSI plugin name rule (CSI spec, GetPluginInfo): at most 63 characters,
/// starts and ends with an alphanumeric, inside only alphanumerics, `-`, `.`.
pub fn validate_driver_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit".into());
    }
    if !bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'.') {
        return Err("may contain only letters, digits, '-' and '.'".into());
    }
    Ok(())
}

impl TryFrom<ServeArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: ServeArgs) -> Result<Self, ConfigError> {
        let socket_path = match a.endpoint.strip_prefix("unix://") {
            Some(p) => PathBuf::from(p),
            None if a.endpoint.contains("://") => {
                return Err(invalid("endpoint", "only unix:// endpoints are supported"));
            }
            None => PathBuf::from(&a.endpoint),
        };
        if socket_path.as_os_str().is_empty() {
            return Err(invalid("endpoint", "empty socket path"));
        }
        if a.node_id.trim().is_empty() {
            return Err(invalid("node-id", "must not be empty"));
        }
        validate_driver_name(&a.driver_name).map_err(|r| invalid("driver-name", r))?;
        if !a.kubelet_root.is_absolute() {
            return Err(invalid("kubelet-root", "must be an absolute path"));
        }
        if !a.state_dir.is_absolute() {
            return Err(invalid("state-dir", "must be an absolute path"));
        }
        let tmpfs_size = parse_size(&a.tmpfs_size).map_err(|r| invalid("tmpfs-size", r))?;
        if tmpfs_size == 0 {
            return Err(invalid("tmpfs-size", "must be greater than zero"));
        }
        let keyvault_dns_suffix = match a.keyvault_dns_suffix.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let s = s.trim_start_matches('.');
                if s.contains('/') || s.contains("://") {
                    return Err(invalid("keyvault-dns-suffix", "expected HOST[:PORT]"));
                }
                url::Url::parse(&format!("https://kv.{s}/"))
                    .map_err(|e| invalid("keyvault-dns-suffix", format!("not a host ({e})")))?;
                Some(s.to_string())
            }
        };
        let authority_host = match a.authority_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let u = url::Url::parse(s)
                    .map_err(|e| invalid("authority-host", format!("not a URL ({e})")))?;
                if u.scheme() != "https" {
                    return Err(invalid("authority-host", "must use https"));
                }
                Some(s.trim_end_matches('/').to_string())
            }
        };
        if a.keyvault_max_concurrency == 0 {
            return Err(invalid(
                "keyvault-max-concurrency",
                "must be greater than zero",
            ));
        }
        let metrics_addr = match a.metrics_addr.trim() {
            "" => None,
            s => Some(
                s.parse()
                    .map_err(|_| invalid("metrics-addr", "expected IP:PORT or empty"))?,
            ),
        };
        let attestation = attestation_config(&a)?;
        Ok(Config {
            attestation,
            socket_path,
            node_id: a.node_id,
            driver_name: a.driver_name,
            kubelet_root: a.kubelet_root,
            state_dir: a.state_dir,
            backend: a.backend.into(),
            tmpfs_size,
            keyvault_dns_suffix,
            authority_host,
            extra_ca_file: a.extra_ca_file,
            metrics_addr,
            http_idle_timeout: a.http_idle_timeout,
            log_format: a.log_format,
            publish_timeout: a.publish_timeout,
            rotation_poll_interval: a.rotation_poll_interval,
            keyvault_max_concurrency: a.keyvault_max_concurrency,
        })
    }
}

/// The `--attestation-*` flags, with the policy and extra roots read.
fn attestation_config(a: &ServeArgs) -> Result<AttestationConfig, ConfigError> {
    let source =
        SourceSpec::parse(&a.attestation_source).map_err(|r| invalid("attestation-source", r))?;
    let policy = match &a.attestation_policy {
        None => vaultlet_snp::Policy::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("attestation-policy", format!("{}: {e}", path.display())))?;
            let parsed = if text.trim_start().starts_with('{') {
                vaultlet_snp::Policy::from_json(&text)
            } else {
                vaultlet_snp::Policy::from_yaml(&text)
            };
            parsed.map_err(|e| invalid("attestation-policy", format!("{}: {e}", path.display())))?
        }
    };
    let service = match a.attestation_service.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => {
            let u = url::Url::parse(s)
                .map_err(|e| invalid("attestation-service", format!("not a URL ({e})")))?;
            if u.scheme() != "https" {
                return Err(invalid("attestation-service", "must use https"));
            }
            Some(s.trim_end_matches('/').to_string())
        }
    };
    let extra_roots = match &a.attestation_extra_roots {
        None => Vec::new(),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                invalid(
                    "attestation-extra-roots",
                    format!("{}: {e}", path.display()),
                )
            })?;
            let roots = vaultlet_snp::certs::split_pem(&pem).map_err(|e| {
                invalid(
                    "attestation-extra-roots",
                    format!("{}: {e}", path.display()),
                )
            })?;
            if roots.is_empty() {
                return Err(invalid(
                    "attestation-extra-roots",
                    format!("{}: no PEM certificate", path.display()),
                ));
            }
            roots
        }
    };
    let vcek_url = url::Url::parse(a.attestation_vcek_url.trim())
        .map_err(|e| invalid("attestation-vcek-url", format!("not a URL ({e})")))?;
    if vcek_url.scheme() != "https" {
        return Err(invalid("attestation-vcek-url", "must use https"));
    }
    Ok(AttestationConfig {
        source,
        policy,
        policy_file: a.attestation_policy.clone(),
        service,
        extra_roots,
        extra_roots_file: a.attestation_extra_roots.clone(),
        vcek_url: a
            .attestation_vcek_url
            .trim()
            .trim_end_matches('/')
            .to_string(),
        max_age: a.attestation_max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["vaultlet"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::try_from(cli.serve).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = parse(&["--node-id", "n1"]).expect("valid");
        assert_eq!(c.socket_path, PathBuf::from("/csi/csi.sock"));
        assert_eq!(c.driver_name, "csi.vaultlet.dev");
        assert_eq!(c.kubelet_root, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(c.state_dir, PathBuf::from("/run/vaultlet"));
        assert_eq!(c.tmpfs_size, 16 * 1024 * 1024);
        assert_eq!(
            c.metrics_addr,
            Some("127.0.0.1:9810".parse().expect("addr"))
        );
        assert_eq!(c.http_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.publish_timeout, Duration::from_secs(90));
        assert_eq!(c.rotation_poll_interval, Duration::from_secs(120));
        assert_eq!(c.backend, Backend::Tmpfs);
        assert_eq!(c.keyvault_max_concurrency, 8);
    }

    #[test]
    fn attestation_defaults_and_flag_errors() {
        let c = parse(&["--node-id", "n"]).expect("valid");
        assert_eq!(c.attestation.source, SourceSpec::Auto);
        assert_eq!(c.attestation.vcek_url, "https://kdsintf.amd.com");
        assert_eq!(c.attestation.max_age, Duration::from_secs(600));
        assert_eq!(c.attestation.policy, vaultlet_snp::Policy::default());
        assert!(c.attestation.extra_roots.is_empty());
        for (flag, value) in [
            ("--attestation-source", "tpm"),
            ("--attestation-policy", "/nonexistent/policy.yaml"),
            ("--attestation-extra-roots", "/nonexistent/roots.pem"),
            ("--attestation-vcek-url", "http://kds.example"),
            ("--attestation-service", "not a url"),
        ] {
            let err = parse(&["--node-id", "n", flag, value]).expect_err(flag);
            assert!(err.contains(flag), "{err}");
        }
        assert!(parse(&["--node-id", "n", "--attestation-max-age", "0s"]).is_err());
    }

    #[test]
    fn attestation_policy_file_is_parsed() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, "debug_allowed: true\nvmpl: null\n").expect("write");
        let c = parse(&[
            "--node-id",
            "n",
            "--attestation-policy",
            p.to_str().expect("utf-8"),
            "--attestation-source",
            "file:/r.bin",
        ])
        .expect("valid");
        assert!(c.attestation.policy.debug_allowed);
        assert_eq!(c.attestation.policy.vmpl, None);
        assert_eq!(c.attestation.source, SourceSpec::File("/r.bin".into()));
        std::fs::write(&p, "debug: yes\n").expect("write");
        let err = parse(&[
            "--node-id",
            "n",
            "--attestation-policy",
            p.to_str().expect("utf-8"),
        ])
        .expect_err("unknown key");
        assert!(err.contains("--attestation-policy"), "{err}");
    }

    #[test]
    fn keyvault_max_concurrency_must_be_positive() {
        let c = parse(&["--node-id", "n", "--keyvault-max-concurrency", "3"]).expect("valid");
        assert_eq!(c.keyvault_max_concurrency, 3);
        let err = parse(&["--node-id", "n", "--keyvault-max-concurrency", "0"]).expect_err("zero");
        assert!(err.contains("--keyvault-max-concurrency"), "{err}");
        assert!(parse(&["--node-id", "n", "--keyvault-max-concurrency", "-1"]).is_err());
    }

    #[test]
    fn empty_metrics_addr_disables_metrics() {
        let c = parse(&["--node-id", "n1", "--metrics-addr", ""]).expect("valid");
        assert_eq!(c.metrics_addr, None);
    }

    #[test]
    fn bare_socket_path_and_short_durations_are_accepted() {
        let c = parse(&[
            "--node-id",
            "n1",
            "--endpoint",
            "/tmp/x.sock",
            "--http-idle-timeout",
            "500ms",
        ])
        .expect("valid");
        assert_eq!(c.socket_path, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.http_idle_timeout, Duration::from_millis(500));
    }

    #[test]
    fn node_id_is_required() {
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn driver_name_rules() {
        assert!(validate_driver_name("secrets-store.csi.k8s.io").is_ok());
        assert!(validate_driver_name("-bad").is_err());
        assert!(validate_driver_name("bad.").is_err());
        assert!(validate_driver_name(&"a".repeat(64)).is_err());
        assert!(validate_driver_name(&"a".repeat(63)).is_ok());
        assert!(validate_driver_name("has space").is_err());
        let err = parse(&["--node-id", "n1", "--driver-name=-x"]).expect_err("invalid");
        assert!(err.contains("--driver-name"), "{err}");
    }

    #[test]
    fn dns_suffix_with_port_is_kept() {
        let c = parse(&[
            "--node-id",
            "n",
            "--keyvault-dns-suffix",
            "vault.localhost:8443",
        ])
        .expect("valid");
        assert_eq!(
            c.keyvault_dns_suffix.as_deref(),
            Some("vault.localhost:8443")
        );
    }

    #[test]
    fn authority_host_must_be_https() {
        let err = parse(&[
            "--node-id",
            "n",
            "--authority-host",
            "http://login.localhost",
        ])
        .expect_err("invalid");
        assert!(err.contains("--authority-host"), "{err}");
    }
}
