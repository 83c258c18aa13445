//! The target_path rule (DESIGN §5, §7): a target must be
//! `<kubelet-root>/pods/<uid>/volumes/kubernetes.io~csi/<vol>/mount`, written
//! without `.`/`..` or empty components, for publish and unpublish alike.

use std::path::{Path, PathBuf};

/// A target path that passed the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath {
    /// The full path.
    pub path: PathBuf,
    /// The pod uid component.
    pub pod_uid: String,
    /// The volume name component.
    pub volume_name: String,
}

fn clean_components(s: &str) -> Option<Vec<&str>> {
    let rest = s.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.chars().any(char::is_control))
    {
        return None;
    }
    Some(parts)
}

/// Checks `target` against the rule for `kubelet_root`.
///
/// # Errors
/// A message naming target_path and the expected shape.
pub fn parse_target(kubelet_root: &Path, target: &str) -> Result<TargetPath, String> {
    let expected = format!(
        "target_path must be {}/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount",
        kubelet_root.display()
    );
    let root = kubelet_root.to_str().ok_or_else(|| expected.clone())?;
    let root_parts = if root == "/" {
        Vec::new()
    } else {
        clean_components(root.trim_end_matches('/')).ok_or_else(|| expected.clone())?
    };
    let parts = clean_components(target).ok_or_else(|| expected.clone())?;
    if parts.len() != root_parts.len() + 6 || parts[..root_parts.len()] != root_parts[..] {
        return Err(expected);
    }
    let tail = &parts[root_parts.len()..];
    if tail[0] != "pods"
        || tail[2] != "volumes"
        || tail[3] != "kubernetes.io~csi"
        || tail[5] != "mount"
    {
        return Err(expected);
    }
    Ok(TargetPath {
        path: PathBuf::from(target),
        pod_uid: tail[1].to_string(),
        volume_name: tail[4].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/var/lib/kubelet";

    #[test]
    fn accepts_the_kubelet_shape() {
        let t = parse_target(
            Path::new(ROOT),
            "/var/lib/kubelet/pods/u-1/volumes/kubernetes.io~csi/secrets/mount",
        )
        .expect("valid");
        assert_eq!(t.pod_uid, "u-1");
        assert_eq!(t.volume_name, "secrets");
    }

    #[test]
    fn rejects_escapes_and_other_shapes() {
        for bad in [
            "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount/",
            "/var/lib/kubelet/pods/../volumes/kubernetes.io~csi/v/mount",
            "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/../mount",
            "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount/x",
            "/var/lib/kubelet//pods/u/volumes/kubernetes.io~csi/v/mount",
            "/tmp/pods/u/volumes/kubernetes.io~csi/v/mount",
            "/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/v/mount",
            "var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount",
            "/etc",
            "",
        ] {
            let err = parse_target(Path::new(ROOT), bad).expect_err(bad);
            assert!(err.contains("target_path"), "{err}");
        }
    }

    #[test]
    fn root_with_trailing_slash_works() {
        assert!(
            parse_target(
                Path::new("/k/"),
                "/k/pods/u/volumes/kubernetes.io~csi/v/mount"
            )
            .is_ok()
        );
    }
}
