//! An Azure Key Vault (secrets, keys and certificates data plane) and Entra ID token endpoint
//! emulator, over TLS on loopback, for vaultlet's tests, CI and `vaultlet demo`.
//!
//! It speaks the REST protocol the official Azure SDK for Rust sends
//! (`azure_identity`, `azure_security_keyvault_secrets`, `azure_security_keyvault_keys` and
//! `azure_security_keyvault_certificates` 1.x): the 401 bearer challenge with
//! `resource="https://vault.localhost"`, the client-credentials token grant with a client
//! secret or a client assertion, and the GET and version-listing routes of secrets, keys
//! (public JWKs) and certificates. Vaults are chosen by host
//! (`https://<vault>.vault.localhost:PORT/`); the login host is
//! `https://login.localhost:PORT`. Clients must resolve `*.localhost` to 127.0.0.1 and trust
//! the CA generated at start ([`Emulator::ca_pem`]).
//!
//! Keys are generated ([`State::create_key`]) or imported from PEM
//! ([`State::import_key_pem`]); certificates are imported from PKCS#12 or PEM
//! ([`State::import_certificate_pfx`], [`State::import_certificate_pem`]) with a backing
//! secret and key of the same version, as Key Vault does (a PFX is stored with an empty
//! password).
//!
//! It also plays Azure Attestation for SEV-SNP guests (`POST /attest/SevSnpVm`, `GET /certs`,
//! at [`Emulator::attestation_url`]), AMD's KDS for VCEKs (`GET /vcek/v1/...`), and Key
//! Vault Secure Key Release (`POST /keys/{name}[/{version}]/release` of keys made with
//! [`State::create_exportable_key`]); see `attestation` and `release` in the README.
//!
//! Run it in process with [`Emulator::start`] and drive it through [`Emulator::state`], or as
//! the `keyvault-emulator` binary with its JSON admin API (see the crate README). It never
//! logs, nor puts in a response or error, a secret value, a private key, PFX content or
//! password, an access token, a client secret or a client assertion.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod attestation;
mod entra;
mod keyvault;
mod kvobjects;
mod material;
mod objects;
mod release;
mod respond;
mod server;
mod state;
mod tls;

pub use attestation::{
    ATTEST_API_VERSION, ATTEST_HOST, ATTEST_TOKEN_LIFETIME_SECS, attestation_claims,
};
pub use entra::ASSERTION_TYPE;
pub use keyvault::{VAULT_RESOURCE, VAULT_SUFFIX};
pub use objects::{
    CertImportOptions, CertificateImport, CertificateSeed, KeyImportOptions, KeySeed, KeySpec,
};
pub use release::{ExportableKeySpec, release_policy};
pub use server::{Emulator, EmulatorConfig, EmulatorError};
pub use state::{
    ClientSpec, Counters, Fault, SecretSeed, SecretSpec, Seed, SeedParseError, State, StateError,
    VaultSeed,
};
pub use tls::{CA_FILE, LEAF_SANS, TlsError};
