//! The one place where errors become `tonic::Status` (DESIGN §7).

use tonic::{Code, Status};

use crate::auth::AuthError;
use crate::keyvault::{AttestError, Cause, FetchError, FetchErrorKind};
use crate::mount::MountError;
use crate::params::ParamsError;
use crate::volume::VolumeError;

/// Every way a CSI call can fail.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    /// A required request field is missing or malformed.
    #[error("{0}")]
    Request(String),
    /// Volume attributes.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// Identity selection.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Key Vault.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Mount, write or teardown.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// State dir.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The target is published with other attributes.
    #[error("target {target} is already published with different attributes or capability")]
    AlreadyExists {
        /// target_path.
        target: String,
    },
    /// `--publish-timeout` ran out.
    #[error(
        "publish timed out after {seconds}s fetching from key vault {vault}; last cause: {cause}"
    )]
    Timeout {
        /// Vault name.
        vault: String,
        /// The timeout.
        seconds: u64,
        /// Last failure seen, or `none recorded`.
        cause: String,
    },
    /// A precondition that is not about attributes (e.g. a symlink at the
    /// target on publish).
    #[error("{0}")]
    Precondition(String),
    /// The attestation service (key release of a confidential volume).
    #[error("attestation for key release: {0}")]
    Attest(#[from] AttestError),
    /// A bug or an unexpected runtime failure (a panicked task).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CsiError {
    /// The gRPC code per DESIGN §7.
    pub fn code(&self) -> Code {
        match self {
            CsiError::Request(_) => Code::InvalidArgument,
            CsiError::Params(ParamsError::NotInThisBuild { .. }) => Code::FailedPrecondition,
            CsiError::Params(_) => Code::InvalidArgument,
            CsiError::Auth(AuthError::BadTokensEntry) => Code::InvalidArgument,
            CsiError::Auth(AuthError::Credential { .. }) => Code::InvalidArgument,
            CsiError::Auth(_) => Code::FailedPrecondition,
            CsiError::Fetch(f) => match &f.kind {
                FetchErrorKind::Service(c) => match c {
                    Cause::NotFound { .. } => Code::NotFound,
                    Cause::Forbidden { .. } => Code::PermissionDenied,
                    Cause::Disabled => Code::FailedPrecondition,
                    Cause::Unauthenticated { .. } => Code::Unauthenticated,
                    Cause::Throttled { .. } | Cause::Unavailable { .. } => Code::Unavailable,
                    Cause::Rejected { .. } => Code::InvalidArgument,
                    Cause::Other { .. } => Code::Unavailable,
                },
                FetchErrorKind::Decode { .. } => Code::InvalidArgument,
                FetchErrorKind::Convert(_) | FetchErrorKind::Usage(_) => Code::InvalidArgument,
                FetchErrorKind::PinnedVersionNotFound => Code::NotFound,
            },
            CsiError::Mount(MountError::TooLarge { .. }) => Code::ResourceExhausted,
            CsiError::Mount(MountError::Foreign { .. }) => Code::FailedPrecondition,
            CsiError::Mount(MountError::Io { .. }) => Code::Internal,
            CsiError::Volume(_) => Code::Internal,
            CsiError::AlreadyExists { .. } => Code::AlreadyExists,
            CsiError::Timeout { .. } => Code::DeadlineExceeded,
            CsiError::Precondition(_) => Code::FailedPrecondition,
            // The service refused the node's evidence, or the flag is
            // wrong: the node must change, not the request.
            CsiError::Attest(AttestError::Rejected { .. } | AttestError::BadUrl { .. }) => {
                Code::FailedPrecondition
            }
            CsiError::Attest(_) => Code::Unavailable,
            CsiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<CsiError> for Status {
    fn from(e: CsiError) -> Status {
        let code = e.code();
        let message = match &e {
            // Unexpected failures get a generic message; details go to the log.
            CsiError::Internal(_) => "internal error; see the vaultlet log".to_string(),
            _ => e.to_string(),
        };
        Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_version_is_failed_precondition() {
        let e = CsiError::Fetch(FetchError {
            vault: "kv".into(),
            index: Some(0),
            name: Some("s1".into()),
            kind: FetchErrorKind::Service(Cause::Disabled),
        });
        let s = Status::from(e);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("s1") && s.message().contains("kv"));
    }

    #[test]
    fn fuse_not_in_build_is_failed_precondition() {
        let e = CsiError::Params(ParamsError::NotInThisBuild {
            what: "fuse".into(),
        });
        assert_eq!(e.code(), Code::FailedPrecondition);
    }

    #[test]
    fn internal_errors_are_generic() {
        let s = Status::from(CsiError::Internal("panic at x".into()));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("panic"));
    }
}
