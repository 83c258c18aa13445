//! Test material made on the fly with `rcgen`: keys, self-signed roots and
//! chains with or without authorityKeyIdentifier. No fixture files.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, SignatureAlgorithm,
};

/// A certificate, its key and the params it was made from.
pub(super) struct Made {
    pub(super) params: CertificateParams,
    pub(super) key: KeyPair,
    pub(super) cert: Certificate,
}

impl Made {
    /// The certificate, DER.
    pub(super) fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The certificate, PEM with LF line ends.
    pub(super) fn pem(&self) -> String {
        self.cert.pem().replace("\r\n", "\n")
    }

    /// The private key, PKCS#8 DER.
    pub(super) fn key_der(&self) -> &[u8] {
        self.key.serialized_der()
    }

    /// The private key, PKCS#8 PEM with LF line ends.
    pub(super) fn key_pem(&self) -> String {
        self.key.serialize_pem().replace("\r\n", "\n")
    }
}

/// Params for `cn`; a CA gets basicConstraints and a subjectKeyIdentifier,
/// and `aki` adds an authorityKeyIdentifier naming the issuer's key.
pub(super) fn params(cn: &str, ca: bool, aki: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = if ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::NoCa
    };
    p.use_authority_key_identifier_extension = aki;
    p
}

/// A self-signed CA with a key of `alg`.
pub(super) fn root_with(alg: &'static SignatureAlgorithm, cn: &str) -> Made {
    let key = KeyPair::generate_for(alg).expect("keygen");
    let params = params(cn, true, false);
    let cert = params.self_signed(&key).expect("self-signed");
    Made { params, key, cert }
}

/// A certificate with a key of `alg`, issued by `by`.
pub(super) fn issued_with(
    alg: &'static SignatureAlgorithm,
    cn: &str,
    ca: bool,
    aki: bool,
    by: &Made,
) -> Made {
    let key = KeyPair::generate_for(alg).expect("keygen");
    let params = params(cn, ca, aki);
    let issuer = Issuer::from_params(&by.params, &by.key);
    let cert = params.signed_by(&key, &issuer).expect("signed");
    Made { params, key, cert }
}

/// A self-signed P-256 CA.
pub(super) fn root(cn: &str) -> Made {
    root_with(&rcgen::PKCS_ECDSA_P256_SHA256, cn)
}

/// A P-256 certificate issued by `by`.
pub(super) fn issued(cn: &str, ca: bool, aki: bool, by: &Made) -> Made {
    issued_with(&rcgen::PKCS_ECDSA_P256_SHA256, cn, ca, aki, by)
}

/// root → intermediate → leaf; the leaf's key is of `alg`.
pub(super) struct Pki {
    pub(super) root: Made,
    pub(super) inter: Made,
    pub(super) leaf: Made,
}

impl Pki {
    pub(super) fn new(alg: &'static SignatureAlgorithm, aki: bool) -> Self {
        let root = root("Test Root");
        let inter = issued("Test Intermediate", true, aki, &root);
        let leaf = issued_with(alg, "leaf.example", false, aki, &inter);
        Self { root, inter, leaf }
    }

    /// DER certificates in chain order: leaf, intermediate, root.
    pub(super) fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.leaf.der(), self.inter.der(), self.root.der()]
    }
}
