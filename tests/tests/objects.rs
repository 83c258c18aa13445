//! Issue 3 through the kubelet simulator: keys, certificates, certificate-backed
//! and plain secrets holding certificates, PFX, encodings and version history
//! (CASES C13 C14 C16 C17 C18 C19 C20 C22 C24 C25 C31 E23).
//!
//! Every key and certificate is generated here with rcgen; PKCS#12 inputs are
//! built with p12-keystore or the `openssl` command. The oracle is the
//! `openssl` command, never vaultlet's own parser: every PEM written must
//! parse (`openssl x509`, `openssl pkey`), a written chain must pass `openssl
//! verify -partial_chain`, a private key must be the leaf's, and a PFX must
//! open with an empty password without `-legacy`. Files are compared to the
//! exact bytes Go's `pem.Encode` would write for the expected blocks, in the
//! expected order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyvault_emulator::{CertImportOptions, KeyImportOptions, KeySpec, SecretSpec};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _,
};
use tonic::{Code, Status};
use vaultlet::demo::kubelet::Pod;
use vaultlet_tests::{Env, assert_nothing_at, attrs, objects, privileged_or_skip};

const VAULT: &str = "kv-objects";
const CLIENT: &str = "0b0b0b0b-1111-2222-3333-444444444444";
/// 2026-01-01T00:00:00Z: `created` of seeded versions.
const T0: i64 = 1_767_225_600;
const PKCS12: &str = "application/x-pkcs12";
const PEM_FILE: &str = "application/x-pem-file";

// ---- Environment ----

async fn setup(uid: &str) -> (Env, Pod) {
    let mut env = Env::start().await;
    env.vault(VAULT, &[CLIENT]);
    let pod = env.wi_pod(CLIENT, "team-a", uid);
    (env, pod)
}

async fn publish_with(
    env: &mut Env,
    pod: &Pod,
    volume: &str,
    items: &[&str],
    tmpfs_size: Option<&str>,
) -> Result<PathBuf, Status> {
    let mut a = attrs(VAULT, Some(CLIENT), &objects(items));
    if let Some(size) = tmpfs_size {
        a.insert("vaultlet.dev/tmpfs-size".into(), size.into());
    }
    env.kubelet.publish(pod, volume, &a, &HashMap::new()).await
}

async fn publish(env: &mut Env, pod: &Pod, volume: &str, items: &[&str]) -> PathBuf {
    publish_with(env, pod, volume, items, None)
        .await
        .unwrap_or_else(|e| panic!("publish {volume}: {e:?}"))
}

/// Publishes `items` expecting `code`; the message must name the object and
/// the vault, and the failed publish must leave nothing behind.
async fn publish_fails(
    env: &mut Env,
    pod: &Pod,
    volume: &str,
    items: &[&str],
    code: Code,
    object: &str,
) -> String {
    let err = publish_with(env, pod, volume, items, None)
        .await
        .expect_err("the publish must fail");
    assert_eq!(err.code(), code, "{volume}: {err:?}");
    let msg = err.message().to_string();
    assert!(
        msg.contains(&format!("object {object}")) || msg.contains(&format!("object \"{object}\"")),
        "{volume}: the message must name the object {object}: {msg}"
    );
    assert!(
        msg.contains(VAULT),
        "{volume}: the message must name the vault: {msg}"
    );
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    msg
}

async fn unpublish(env: &mut Env, pod: &Pod, volume: &str) {
    env.kubelet
        .unpublish(&pod.uid, volume)
        .await
        .unwrap_or_else(|e| panic!("unpublish {volume}: {e:?}"));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn absent(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err()
}

fn item(name: &str, ty: &str, extra: &[(&str, &str)]) -> String {
    let mut s = format!("objectName: {name}\nobjectType: {ty}");
    for (k, v) in extra {
        s.push_str(&format!("\n{k}: {v}"));
    }
    s
}

fn refs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

// ---- PEM, written and read independently of vaultlet ----

/// One PEM block exactly as Go's `pem.Encode` writes it (no headers, 64
/// base64 characters a line, LF endings): the Azure provider's format.
fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[derive(Debug, Clone)]
struct Block {
    label: String,
    der: Vec<u8>,
    /// `localKeyID` of an `openssl pkcs12` dump's bag attributes.
    local_key_id: Option<String>,
}

/// The PEM blocks of `text`, in order; text between blocks (e.g. openssl's
/// bag attributes) is skipped, except `localKeyID`.
fn blocks(text: &[u8]) -> Vec<Block> {
    let text = std::str::from_utf8(text).expect("PEM output is UTF-8");
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    let mut key_id = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        match &mut current {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                {
                    current = Some((label.to_string(), String::new()));
                } else if let Some(id) = line.trim().strip_prefix("localKeyID:") {
                    key_id = Some(id.trim().to_string());
                }
            }
            Some((label, body)) => {
                if line == format!("-----END {label}-----") {
                    out.push(Block {
                        label: label.clone(),
                        der: STANDARD
                            .decode(body.as_bytes())
                            .expect("PEM body is base64"),
                        local_key_id: key_id.take(),
                    });
                    current = None;
                } else {
                    body.push_str(line.trim());
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated PEM block");
    out
}

fn labels(blocks: &[Block]) -> Vec<&str> {
    blocks.iter().map(|b| b.label.as_str()).collect()
}

/// Names `ders` by the known certificates, for readable order assertions.
fn names<'a>(ders: impl Iterator<Item = &'a [u8]>, known: &[(&'a str, &'a [u8])]) -> Vec<String> {
    ders.map(|d| {
        known.iter().find(|(_, k)| *k == d).map_or_else(
            || "<unknown certificate>".to_string(),
            |(n, _)| (*n).to_string(),
        )
    })
    .collect()
}

// ---- The openssl oracle ----

fn openssl_or_skip(name: &str) -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipping {name}: the openssl command (the independent oracle) is not on PATH; .ci/run installs it"
        );
    }
    ok
}

/// Runs `openssl` on files in its own temp dir.
struct Oracle {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Oracle {
    fn new() -> Self {
        Oracle {
            dir: tempfile::Builder::new()
                .prefix("vaultlet-openssl-")
                .tempdir()
                .expect("temp dir"),
            next: AtomicUsize::new(0),
        }
    }

    /// Writes `bytes` to a new file and returns its path as a string.
    fn file(&self, bytes: &[u8]) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("f{n}"));
        std::fs::write(&path, bytes).expect("write oracle input");
        path.to_str().expect("UTF-8 temp path").to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs")
    }

    /// stdout of a command that must succeed.
    fn ok(&self, what: &str, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{what}: openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `openssl pkey -pubout` of a private key (PEM text).
    fn private_key_public_half(&self, what: &str, key_pem: &str) -> Vec<u8> {
        let f = self.file(key_pem.as_bytes());
        self.ok(what, &["pkey", "-in", &f, "-pubout"])
    }

    /// `openssl x509 -pubkey -noout` of a certificate (DER).
    fn certificate_public_key(&self, what: &str, der: &[u8]) -> Vec<u8> {
        let f = self.file(der);
        self.ok(
            what,
            &["x509", "-inform", "DER", "-in", &f, "-pubkey", "-noout"],
        )
    }

    /// The algorithm OIDs of a PKCS#8 key (`openssl asn1parse`): the key
    /// algorithm and, for EC, the curve.
    fn pkcs8_algorithm(&self, what: &str, der: &[u8]) -> Vec<String> {
        let f = self.file(der);
        let out = self.ok(what, &["asn1parse", "-inform", "DER", "-in", &f]);
        let text = String::from_utf8_lossy(&out);
        let mut lines = text.lines();
        // PrivateKeyInfo ::= SEQUENCE { version INTEGER (0), algorithm, ... }
        assert!(
            lines.next().is_some_and(|l| l.contains("cons: SEQUENCE")),
            "{what}: not a PKCS#8 PrivateKeyInfo: {text}"
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.contains("prim: INTEGER") && l.trim_end().ends_with(":00")),
            "{what}: PKCS#8 version is not 0: {text}"
        );
        text.lines()
            .filter(|l| l.contains("prim: OBJECT"))
            .filter_map(|l| l.rsplit(':').next().map(|s| s.trim().to_string()))
            .take(2)
            .collect()
    }

    /// `openssl verify -partial_chain -CAfile <rest> <leaf>` succeeds.
    fn verify(&self, what: &str, chain: &[&[u8]]) {
        let leaf = self.file(pem_block("CERTIFICATE", chain[0]).as_bytes());
        let rest: String = if chain.len() > 1 {
            chain[1..]
                .iter()
                .map(|d| pem_block("CERTIFICATE", d))
                .collect()
        } else {
            pem_block("CERTIFICATE", chain[0])
        };
        let ca = self.file(rest.as_bytes());
        let out = self.ok(what, &["verify", "-partial_chain", "-CAfile", &ca, &leaf]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.trim_end().ends_with(": OK"), "{what}: {text}");
    }

    /// `openssl pkcs12 -in <pfx> -passin pass: -nodes` (never `-legacy`):
    /// every bag, in bag order.
    fn pkcs12_dump(&self, what: &str, pfx: &[u8]) -> Vec<Block> {
        let f = self.file(pfx);
        let out = self.ok(what, &["pkcs12", "-in", &f, "-passin", "pass:", "-nodes"]);
        blocks(&out)
    }

    /// `openssl pkcs12 -info -noout` (algorithms), empty password.
    fn pkcs12_info(&self, what: &str, pfx: &[u8]) -> String {
        let f = self.file(pfx);
        let out = self.run(&["pkcs12", "-in", &f, "-passin", "pass:", "-info", "-noout"]);
        assert!(
            out.status.success(),
            "{what}: openssl pkcs12 -info failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Checks a certificate-holding secret's file: exactly one PKCS#8 `PRIVATE
/// KEY` block, then the certificates of `chain` in this order, byte for byte
/// as Go's `pem.Encode` writes them; openssl parses every block, the key is
/// the leaf's, and (with `verify`) openssl verifies the leaf with the rest.
/// Returns the key's DER.
fn check_bundle(
    o: &Oracle,
    what: &str,
    file: &[u8],
    chain: &[(&str, &[u8])],
    verify: bool,
) -> Vec<u8> {
    let found = blocks(file);
    let mut want_labels = vec!["PRIVATE KEY"];
    want_labels.extend(std::iter::repeat_n("CERTIFICATE", chain.len()));
    assert_eq!(labels(&found), want_labels, "{what}: PEM blocks");
    let certs: Vec<&[u8]> = found[1..].iter().map(|b| b.der.as_slice()).collect();
    assert_eq!(
        names(certs.iter().copied(), chain),
        chain.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
        "{what}: chain order"
    );
    let exact: String = found.iter().map(|b| pem_block(&b.label, &b.der)).collect();
    assert_eq!(
        String::from_utf8_lossy(file),
        exact,
        "{what}: not exactly the PEM blocks, as Go's pem.Encode writes them"
    );
    let key_pem = pem_block("PRIVATE KEY", &found[0].der);
    let key_pub = o.private_key_public_half(what, &key_pem);
    for (name, der) in chain {
        let f = o.file(der);
        o.ok(
            &format!("{what}: {name}"),
            &["x509", "-inform", "DER", "-in", &f, "-noout", "-subject"],
        );
    }
    assert_eq!(
        key_pub,
        o.certificate_public_key(what, chain[0].1),
        "{what}: the private key is not the leaf's"
    );
    o.pkcs8_algorithm(what, &found[0].der);
    if verify {
        o.verify(what, &chain.iter().map(|(_, d)| *d).collect::<Vec<_>>());
    }
    found[0].der.clone()
}

/// Checks a key object's file: one SPKI `PUBLIC KEY` block, exactly as Go
/// writes it, whose DER is `spki`, and which openssl parses and re-encodes
/// to the same DER.
fn check_public_key(o: &Oracle, what: &str, file: &[u8], spki: &[u8]) {
    let found = blocks(file);
    assert_eq!(labels(&found), ["PUBLIC KEY"], "{what}");
    assert_eq!(
        String::from_utf8_lossy(file),
        pem_block("PUBLIC KEY", spki),
        "{what}: not the key's SubjectPublicKeyInfo"
    );
    let f = o.file(file);
    let der = o.ok(what, &["pkey", "-pubin", "-in", &f, "-outform", "DER"]);
    assert_eq!(der, spki, "{what}: openssl reads another key");
}

/// Checks a PFX: it opens with an empty password without `-legacy`, holds
/// exactly one private key (the leaf's) and the certificates of `chain`
/// (leaf first when `leaf_first`), and the key bag and the leaf share a
/// localKeyID.
fn check_pfx(o: &Oracle, what: &str, pfx: &[u8], chain: &[(&str, &[u8])], leaf_first: bool) {
    let dump = o.pkcs12_dump(what, pfx);
    let keys: Vec<&Block> = dump.iter().filter(|b| b.label == "PRIVATE KEY").collect();
    assert_eq!(keys.len(), 1, "{what}: private keys in {:?}", labels(&dump));
    let certs: Vec<&Block> = dump.iter().filter(|b| b.label == "CERTIFICATE").collect();
    assert_eq!(
        certs.len() + keys.len(),
        dump.len(),
        "{what}: {:?}",
        labels(&dump)
    );
    let mut got = names(certs.iter().map(|b| b.der.as_slice()), chain);
    let mut want: Vec<String> = chain.iter().map(|(n, _)| n.to_string()).collect();
    if leaf_first {
        assert_eq!(got, want, "{what}: certificate order in the PFX");
    } else {
        got.sort();
        want.sort();
        assert_eq!(got, want, "{what}: certificates in the PFX");
    }
    let key_pem = pem_block("PRIVATE KEY", &keys[0].der);
    assert_eq!(
        o.private_key_public_half(what, &key_pem),
        o.certificate_public_key(what, chain[0].1),
        "{what}: the PFX's key is not the leaf's"
    );
    let leaf = certs
        .iter()
        .find(|b| b.der == chain[0].1)
        .expect("the leaf is in the PFX");
    assert!(
        keys[0].local_key_id.is_some() && keys[0].local_key_id == leaf.local_key_id,
        "{what}: key and leaf do not share a localKeyID ({:?} vs {:?})",
        keys[0].local_key_id,
        leaf.local_key_id
    );
}

/// The certificates of a PFX in bag order (empty password, no `-legacy`).
fn pfx_cert_order(o: &Oracle, what: &str, pfx: &[u8], known: &[(&str, &[u8])]) -> Vec<String> {
    let dump = o.pkcs12_dump(what, pfx);
    names(
        dump.iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| b.der.as_slice()),
        known,
    )
}

// ---- Test PKI, generated with rcgen ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    P256,
    P384,
    P521,
    Rsa2048,
}

impl Alg {
    fn key(self) -> KeyPair {
        match self {
            Alg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Alg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Alg::P521 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
            Alg::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
        .expect("key pair")
    }

    /// The OIDs openssl names in the PKCS#8 AlgorithmIdentifier.
    fn openssl_oids(self) -> Vec<&'static str> {
        match self {
            Alg::P256 => vec!["id-ecPublicKey", "prime256v1"],
            Alg::P384 => vec!["id-ecPublicKey", "secp384r1"],
            Alg::P521 => vec!["id-ecPublicKey", "secp521r1"],
            Alg::Rsa2048 => vec!["rsaEncryption"],
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Alg::P256 => "p256",
            Alg::P384 => "p384",
            Alg::P521 => "p521",
            Alg::Rsa2048 => "rsa2048",
        }
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

struct Ca {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str, path_len: Option<u8>, aki: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(match path_len {
        None => BasicConstraints::Unconstrained,
        Some(n) => BasicConstraints::Constrained(n),
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = aki;
    p
}

fn root_ca(cn: &str) -> Ca {
    let key = KeyPair::generate().expect("root key");
    let params = ca_params(cn, None, false);
    let cert = params.self_signed(&key).expect("root");
    Ca {
        der: cert.der().to_vec(),
        issuer: Issuer::new(params, key),
    }
}

fn sub_ca(cn: &str, parent: &Ca, aki: bool) -> Ca {
    let key = Alg::P384.key();
    let params = ca_params(cn, Some(0), aki);
    let cert = params.signed_by(&key, &parent.issuer).expect("sub CA");
    Ca {
        der: cert.der().to_vec(),
        issuer: Issuer::new(params, key),
    }
}

fn leaf_cert(cn: &str, parent: &Ca, alg: Alg, aki: bool) -> (Vec<u8>, KeyPair) {
    let key = alg.key();
    let mut p = CertificateParams::new(vec![cn.to_string()]).expect("params");
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = aki;
    let cert = p.signed_by(&key, &parent.issuer).expect("leaf");
    (cert.der().to_vec(), key)
}

/// A root, an intermediate and a leaf with its key.
struct Pki {
    root: Vec<u8>,
    inter: Vec<u8>,
    leaf: Vec<u8>,
    key: KeyPair,
}

impl Pki {
    fn new(tag: &str, alg: Alg) -> Pki {
        let root = root_ca(&format!("{tag} root"));
        let inter = sub_ca(&format!("{tag} intermediate"), &root, true);
        let (leaf, key) = leaf_cert(&format!("{tag}.example.test"), &inter, alg, true);
        Pki {
            root: root.der,
            inter: inter.der,
            leaf,
            key,
        }
    }

    /// Leaf, intermediate, root: the right order.
    fn chain(&self) -> [(&str, &[u8]); 3] {
        [
            ("leaf", self.leaf.as_slice()),
            ("intermediate", self.inter.as_slice()),
            ("root", self.root.as_slice()),
        ]
    }

    fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn pem(&self, which: &str) -> String {
        let der = match which {
            "root" => &self.root,
            "intermediate" => &self.inter,
            "leaf" => &self.leaf,
            "key" => return self.key_pem(),
            other => panic!("unknown part {other}"),
        };
        pem_block("CERTIFICATE", der)
    }

    /// The parts in the given order (`key`, `root`, `intermediate`, `leaf`).
    fn pem_of(&self, order: &[&str]) -> String {
        order.iter().map(|p| self.pem(p)).collect()
    }
}

/// A PKCS#12 file written by p12-keystore (PBES2 AES-256, HMAC-SHA256) whose
/// bags are `before` as stand-alone certificate bags, in this order, then the
/// leaf carrying the key's localKeyID, then `after`.
fn pfx<B: AsRef<[u8]>>(
    before: &[B],
    leaf: &[u8],
    key: &KeyPair,
    after: &[&[u8]],
    password: &str,
) -> Vec<u8> {
    let cert = |der: &[u8]| Certificate::from_der(der).expect("certificate");
    let mut store = KeyStore::new();
    for (i, der) in before.iter().enumerate() {
        // Stand-alone bags are written first, sorted by alias.
        store.add_entry(
            &format!("{i:02}-ca"),
            KeyStoreEntry::Certificate(cert(der.as_ref())),
        );
    }
    let mut chain = vec![cert(leaf)];
    chain.extend(after.iter().map(|d| cert(d)));
    store.add_entry(
        "zz-leaf",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            b"leaf-key-id".as_slice(),
            PrivateKey::from_der(key.serialized_der()).expect("PKCS#8"),
            chain,
        )),
    );
    store.writer(password).write().expect("PFX written")
}

fn preserve_order() -> CertImportOptions {
    CertImportOptions {
        preserve_cert_order: true,
        ..Default::default()
    }
}

// ---- C13 C14 C16 C17: chains and private keys ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c13_pfx_chain_is_written_key_then_leaf_intermediate_root_whatever_the_bag_order() {
    let name = "c13_pfx_chain_is_written_key_then_leaf_intermediate_root_whatever_the_bag_order";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c13").await;
    let pki = Pki::new("c13", Alg::Rsa2048);
    env.watched.push(pki.key_pem());
    let (root, inter, leaf) = (&pki.root[..], &pki.inter[..], &pki.leaf[..]);
    // (object, bags before the leaf, bags after it, preserveCertOrder, stored order)
    type BagCase<'a> = (&'a str, Vec<&'a [u8]>, Vec<&'a [u8]>, bool, [&'a str; 3]);
    let cases: [BagCase<'_>; 4] = [
        (
            "web",
            vec![root, inter],
            vec![],
            true,
            ["root", "intermediate", "leaf"],
        ),
        (
            "web-int-root-leaf",
            vec![inter, root],
            vec![],
            true,
            ["intermediate", "root", "leaf"],
        ),
        (
            "web-root-leaf-int",
            vec![root],
            vec![inter],
            true,
            ["root", "leaf", "intermediate"],
        ),
        // Key Vault's default import puts the leaf first, the rest as given.
        (
            "web-default",
            vec![root, inter],
            vec![],
            false,
            ["leaf", "root", "intermediate"],
        ),
    ];
    let mut items = Vec::new();
    for (obj, before, after, preserve, _) in &cases {
        let opts = if *preserve {
            preserve_order()
        } else {
            CertImportOptions::default()
        };
        env.emulator
            .state()
            .import_certificate_pfx(
                VAULT,
                obj,
                &pfx(before, leaf, &pki.key, after, ""),
                None,
                opts,
            )
            .expect("import");
        items.push(item(obj, "secret", &[]));
        items.push(item(
            obj,
            "secret",
            &[
                ("objectAlias", &format!("{obj}.pfx")),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ));
    }
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    let chain = pki.chain();
    let mut first: Option<Vec<u8>> = None;
    for (obj, _, _, _, stored) in &cases {
        // Precondition: the stored PFX really has this bag order.
        assert_eq!(
            pfx_cert_order(&o, obj, &read(&target.join(format!("{obj}.pfx"))), &chain),
            stored,
            "{obj}: stored bag order"
        );
        let file = read(&target.join(obj));
        check_bundle(&o, obj, &file, &chain, true);
        // Same key, same chain: the same bytes whatever the bag order.
        match &first {
            None => first = Some(file),
            Some(f) => assert_eq!(&file, f, "{obj}: differs from {}", cases[0].0),
        }
    }
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c14_pem_chain_leaf_last_is_written_in_the_same_order_as_the_pfx() {
    let name = "c14_pem_chain_leaf_last_is_written_in_the_same_order_as_the_pfx";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c14").await;
    let pki = Pki::new("c14", Alg::P256);
    env.watched.push(pki.key_pem());
    let state = env.emulator.state();
    // The C13 certificate as a PFX (bags root, intermediate, leaf+key)...
    state
        .import_certificate_pfx(
            VAULT,
            "web-pfx",
            &pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], ""),
            None,
            preserve_order(),
        )
        .expect("pfx import");
    // ...and as PEM with the chain leaf-last, in several layouts.
    let layouts: [(&str, &[&str]); 4] = [
        ("web-pem", &["key", "root", "intermediate", "leaf"]),
        ("web-pem-key-last", &["root", "intermediate", "leaf", "key"]),
        ("web-pem-key-mid", &["intermediate", "root", "key", "leaf"]),
        (
            "web-pem-leaf-first",
            &["leaf", "root", "key", "intermediate"],
        ),
    ];
    for (obj, order) in &layouts {
        state
            .import_certificate_pem(VAULT, obj, &pki.pem_of(order), CertImportOptions::default())
            .expect("pem import");
    }
    // The same PEM as a plain secret with the pem contentType.
    env.secret_spec(
        VAULT,
        "s-pem",
        SecretSpec {
            content_type: Some(PEM_FILE.into()),
            ..SecretSpec::new(pki.pem_of(layouts[0].1))
        },
    );
    let mut objs: Vec<&str> = vec!["web-pfx", "s-pem"];
    objs.extend(layouts.iter().map(|(n, _)| *n));
    let items: Vec<String> = objs.iter().map(|n| item(n, "secret", &[])).collect();
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    let chain = pki.chain();
    let reference = read(&target.join("web-pfx"));
    let key = check_bundle(&o, "web-pfx", &reference, &chain, true);
    assert_eq!(key, pki.key.serialized_der(), "web-pfx: PKCS#8 key");
    for obj in &objs[1..] {
        let file = read(&target.join(obj));
        check_bundle(&o, obj, &file, &chain, true);
        assert_eq!(
            String::from_utf8_lossy(&file),
            String::from_utf8_lossy(&reference),
            "{obj}: PEM and PFX storage must give the same bytes"
        );
    }
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c16_leaf_without_aki_and_unresolvable_links_drop_no_certificate() {
    let name = "c16_leaf_without_aki_and_unresolvable_links_drop_no_certificate";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c16").await;
    let state = env.emulator.state();

    // A leaf without authorityKeyIdentifier, and its CA (a root).
    let ca = root_ca("c16 ca");
    let (leaf, key) = leaf_cert("c16.example.test", &ca, Alg::P256, false);
    env.watched.push(key.serialize_pem());
    // An intermediate and a leaf without AKI under a root.
    let root2 = root_ca("c16 root two");
    let inter2 = sub_ca("c16 intermediate two", &root2, false);
    let (leaf2, key2) = leaf_cert("c16-two.example.test", &inter2, Alg::P384, false);
    // A certificate that links to nothing in the bundle.
    let stranger = root_ca("c16 unrelated root");
    // A leaf whose issuer is not in the bundle.
    let absent_ca = root_ca("c16 absent issuer");
    let (orphan, orphan_key) = leaf_cert("c16-orphan.example.test", &absent_ca, Alg::P256, true);

    // (object, bags before the leaf, leaf, key, expected output, whether openssl verifies it)
    type ChainCase<'a> = (
        &'a str,
        Vec<&'a [u8]>,
        &'a [u8],
        &'a KeyPair,
        Vec<(&'a str, &'a [u8])>,
        bool,
    );
    let cases: Vec<ChainCase<'_>> = vec![
        (
            "leaf-ca",
            vec![&ca.der],
            &leaf,
            &key,
            vec![("leaf", &leaf), ("ca", &ca.der)],
            true,
        ),
        (
            "root-int-leaf",
            vec![&root2.der, &inter2.der],
            &leaf2,
            &key2,
            vec![
                ("leaf2", &leaf2),
                ("intermediate2", &inter2.der),
                ("root2", &root2.der),
            ],
            true,
        ),
        // Links resolve for leaf → ca; the stranger keeps its place after.
        (
            "with-stranger",
            vec![&stranger.der, &ca.der],
            &leaf,
            &key,
            vec![
                ("leaf", &leaf),
                ("ca", &ca.der),
                ("stranger", &stranger.der),
            ],
            true,
        ),
        // No link at all: the leaf, then the rest in the original order.
        (
            "orphan",
            vec![&stranger.der, &ca.der],
            &orphan,
            &orphan_key,
            vec![
                ("orphan", &orphan),
                ("stranger", &stranger.der),
                ("ca", &ca.der),
            ],
            false,
        ),
    ];
    let mut items = Vec::new();
    for (obj, before, leaf, key, _, _) in &cases {
        state
            .import_certificate_pfx(
                VAULT,
                obj,
                &pfx(before, leaf, key, &[], ""),
                None,
                preserve_order(),
            )
            .expect("import");
        items.push(item(obj, "secret", &[]));
    }
    // The same bundles as PEM, key first, leaf last.
    for (obj, before, leaf, key, _, _) in &cases {
        let mut text = key.serialize_pem();
        for der in before {
            text.push_str(&pem_block("CERTIFICATE", der));
        }
        text.push_str(&pem_block("CERTIFICATE", leaf));
        state
            .import_certificate_pem(
                VAULT,
                &format!("{obj}-pem"),
                &text,
                CertImportOptions::default(),
            )
            .expect("pem import");
        items.push(item(&format!("{obj}-pem"), "secret", &[]));
    }
    // A duplicated intermediate is kept too, after the chain.
    let dup = format!(
        "{}{}{}{}{}",
        key2.serialize_pem(),
        pem_block("CERTIFICATE", &root2.der),
        pem_block("CERTIFICATE", &inter2.der),
        pem_block("CERTIFICATE", &inter2.der),
        pem_block("CERTIFICATE", &leaf2),
    );
    state
        .import_certificate_pem(VAULT, "dup-pem", &dup, CertImportOptions::default())
        .expect("pem import");
    items.push(item("dup-pem", "secret", &[]));
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    for (obj, _, _, _, want, verify) in &cases {
        for name in [obj.to_string(), format!("{obj}-pem")] {
            check_bundle(&o, &name, &read(&target.join(&name)), want, *verify);
        }
    }
    check_bundle(
        &o,
        "dup-pem",
        &read(&target.join("dup-pem")),
        &[
            ("leaf2", &leaf2),
            ("intermediate2", &inter2.der),
            ("root2", &root2.der),
            ("intermediate2", &inter2.der),
        ],
        true,
    );
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

/// `EC PRIVATE KEY` / `RSA PRIVATE KEY` (traditional) PEM of a key, made by openssl.
fn traditional_key_pem(o: &Oracle, key: &KeyPair) -> String {
    let f = o.file(key.serialize_pem().as_bytes());
    let out = o.ok("traditional key", &["pkey", "-in", &f, "-traditional"]);
    String::from_utf8(out).expect("PEM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c17_ec_and_rsa_keys_are_pkcs8_private_key_never_labelled_rsa() {
    let name = "c17_ec_and_rsa_keys_are_pkcs8_private_key_never_labelled_rsa";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c17").await;
    let algs = [Alg::P256, Alg::P384, Alg::P521, Alg::Rsa2048];
    let pkis: Vec<Pki> = algs
        .iter()
        .map(|a| Pki::new(&format!("c17-{}", a.tag()), *a))
        .collect();
    let mut items = Vec::new();
    for (alg, pki) in algs.iter().zip(&pkis) {
        env.watched.push(pki.key_pem());
        let state = env.emulator.state();
        let tag = alg.tag();
        // From a PFX (Key Vault's application/x-pkcs12).
        state
            .import_certificate_pfx(
                VAULT,
                &format!("c-{tag}"),
                &pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], ""),
                None,
                CertImportOptions::default(),
            )
            .expect("pfx import");
        // From PEM with a traditional key block (EC PRIVATE KEY / RSA PRIVATE KEY).
        let traditional = traditional_key_pem(&o, &pki.key);
        let want_label = if *alg == Alg::Rsa2048 {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert_eq!(labels(&blocks(traditional.as_bytes())), [want_label]);
        env.watched.push(traditional.clone());
        let text = format!(
            "{traditional}{}",
            pki.pem_of(&["leaf", "intermediate", "root"])
        );
        state
            .import_certificate_pem(
                VAULT,
                &format!("c-{tag}-pem"),
                &text,
                CertImportOptions::default(),
            )
            .expect("pem import");
        // And as a plain secret with the pem contentType.
        env.secret_spec(
            VAULT,
            &format!("s-{tag}-pem"),
            SecretSpec {
                content_type: Some(PEM_FILE.into()),
                ..SecretSpec::new(text)
            },
        );
        for obj in [
            format!("c-{tag}"),
            format!("c-{tag}-pem"),
            format!("s-{tag}-pem"),
        ] {
            items.push(item(&obj, "secret", &[]));
        }
    }
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    for (alg, pki) in algs.iter().zip(&pkis) {
        let tag = alg.tag();
        for obj in [
            format!("c-{tag}"),
            format!("c-{tag}-pem"),
            format!("s-{tag}-pem"),
        ] {
            let file = read(&target.join(&obj));
            let text = String::from_utf8_lossy(&file).to_string();
            assert!(
                !text.contains("RSA PRIVATE KEY") && !text.contains("EC PRIVATE KEY"),
                "{obj}: a traditional key label"
            );
            let key = check_bundle(&o, &obj, &file, &pki.chain(), true);
            assert_eq!(
                o.pkcs8_algorithm(&obj, &key),
                alg.openssl_oids(),
                "{obj}: PKCS#8 algorithm"
            );
            // `openssl pkey` reads it as the right kind of key.
            let f = o.file(pem_block("PRIVATE KEY", &key).as_bytes());
            let text =
                String::from_utf8_lossy(&o.ok(&obj, &["pkey", "-in", &f, "-noout", "-text"]))
                    .to_string();
            if *alg == Alg::Rsa2048 {
                assert!(
                    text.contains("Private-Key: (2048 bit") && text.contains("modulus:"),
                    "{obj}: {}",
                    text.lines().next().unwrap_or_default()
                );
            } else {
                assert!(
                    text.contains(alg.openssl_oids()[1]) && !text.contains("modulus"),
                    "{obj}: {}",
                    text.lines().next().unwrap_or_default()
                );
            }
        }
    }
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

// ---- C18: keys, certificates, certificate-backed secrets ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c18_key_is_spki_public_key_cert_is_the_certificate_secret_is_key_and_chain() {
    let name = "c18_key_is_spki_public_key_cert_is_the_certificate_secret_is_key_and_chain";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c18").await;
    let state = env.emulator.state();
    // Generated in the emulator: compare to the SPKI it keeps.
    let generated: [(&str, KeySpec); 6] = [
        ("k-ec", KeySpec::ec("P-256")),
        (
            "k-ec-hsm-384",
            KeySpec {
                kty: "EC-HSM".into(),
                ..KeySpec::ec("P-384")
            },
        ),
        ("k-ec-521", KeySpec::ec("P-521")),
        ("k-rsa", KeySpec::rsa(2048)),
        (
            "k-rsa-hsm",
            KeySpec {
                kty: "RSA-HSM".into(),
                ..KeySpec::rsa(3072)
            },
        ),
        ("k-rsa-4096", KeySpec::rsa(4096)),
    ];
    for (n, spec) in &generated {
        state
            .create_key(VAULT, n, spec.clone())
            .expect("create key");
    }
    // Generated here and imported: compare to our own key's SPKI.
    let mine: [(&str, Alg, bool); 3] = [
        ("k-mine-ec", Alg::P384, false),
        ("k-mine-rsa", Alg::Rsa2048, true),
        ("k-mine-521", Alg::P521, true),
    ];
    let mut mine_spki = Vec::new();
    for (n, alg, hsm) in &mine {
        let key = alg.key();
        state
            .import_key_pem(
                VAULT,
                n,
                &key.serialize_pem(),
                KeyImportOptions {
                    hsm: *hsm,
                    ..Default::default()
                },
            )
            .expect("import key");
        mine_spki.push(key.subject_public_key_info());
    }
    let pki = Pki::new("c18", Alg::P256);
    env.watched.push(pki.key_pem());
    state
        .import_certificate_pfx(
            VAULT,
            "c1",
            &pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], ""),
            None,
            preserve_order(),
        )
        .expect("import c1");

    let mut items: Vec<String> = generated
        .iter()
        .map(|(n, _)| item(n, "key", &[]))
        .chain(mine.iter().map(|(n, _, _)| item(n, "key", &[])))
        .collect();
    items.push(item("c1", "cert", &[("objectAlias", "c1.crt")]));
    items.push(item("c1", "secret", &[("objectAlias", "c1.pem")]));
    items.push(item("c1", "key", &[("objectAlias", "c1.pub")]));
    // Enumerated values are case-insensitive.
    items.push(item("k-ec", "KEY", &[("objectAlias", "k-ec-upper")]));
    let target = publish(&mut env, &pod, "objects", &refs(&items)).await;

    for (n, _) in &generated {
        let spki = env
            .emulator
            .state()
            .key_public_spki(VAULT, n, None)
            .expect("emulator SPKI");
        check_public_key(&o, n, &read(&target.join(n)), &spki);
    }
    for ((n, _, _), spki) in mine.iter().zip(&mine_spki) {
        check_public_key(&o, n, &read(&target.join(n)), spki);
    }
    assert_eq!(read(&target.join("k-ec-upper")), read(&target.join("k-ec")));
    // cert: the certificate only, one block.
    let crt = read(&target.join("c1.crt"));
    assert_eq!(
        String::from_utf8_lossy(&crt),
        pem_block("CERTIFICATE", &pki.leaf),
        "c1 as cert: the leaf certificate alone"
    );
    let f = o.file(&crt);
    o.ok("c1.crt", &["x509", "-in", &f, "-noout"]);
    // secret on a cert: key + chain.
    check_bundle(
        &o,
        "c1.pem",
        &read(&target.join("c1.pem")),
        &pki.chain(),
        true,
    );
    // key on a cert: the leaf's public key.
    check_public_key(
        &o,
        "c1.pub",
        &read(&target.join("c1.pub")),
        &pki.key.subject_public_key_info(),
    );
    unpublish(&mut env, &pod, "objects").await;

    // Symmetric keys cannot be exported.
    for (n, spec) in [
        ("k-oct", KeySpec::oct()),
        (
            "k-oct-hsm",
            KeySpec {
                kty: "oct-HSM".into(),
                ..KeySpec::oct()
            },
        ),
    ] {
        env.emulator
            .state()
            .create_key(VAULT, n, spec)
            .expect("oct key");
        let one = item(n, "key", &[]);
        let msg = publish_fails(&mut env, &pod, n, &[&one], Code::InvalidArgument, n).await;
        assert!(
            msg.to_ascii_lowercase()
                .contains("symmetric keys cannot be exported"),
            "{n}: {msg}"
        );
    }
    env.stop().await;
}

// ---- C19 C20 C22 E23: formats and encodings ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c19_pem_stored_certificate_as_pfx_is_converted_with_an_empty_password() {
    let name = "c19_pem_stored_certificate_as_pfx_is_converted_with_an_empty_password";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c19").await;
    let rsa = Pki::new("c19-rsa", Alg::Rsa2048);
    let ec = Pki::new("c19-ec", Alg::P384);
    env.watched.push(rsa.key_pem());
    env.watched.push(ec.key_pem());
    let state = env.emulator.state();
    state
        .import_certificate_pem(
            VAULT,
            "c1",
            &rsa.pem_of(&["key", "root", "intermediate", "leaf"]),
            CertImportOptions::default(),
        )
        .expect("c1");
    let traditional = traditional_key_pem(&o, &ec.key);
    env.watched.push(traditional.clone());
    state
        .import_certificate_pem(
            VAULT,
            "c2",
            &format!(
                "{}{traditional}",
                ec.pem_of(&["intermediate", "leaf", "root"])
            ),
            CertImportOptions::default(),
        )
        .expect("c2");
    // A plain secret with the pem contentType converts the same way.
    env.secret_spec(
        VAULT,
        "s-pem",
        SecretSpec {
            content_type: Some(PEM_FILE.into()),
            ..SecretSpec::new(rsa.pem_of(&["root", "leaf", "key", "intermediate"]))
        },
    );
    let mut items = Vec::new();
    for obj in ["c1", "c2", "s-pem"] {
        items.push(item(
            obj,
            "secret",
            &[
                ("objectAlias", &format!("{obj}.pfx")),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ));
        items.push(item(
            obj,
            "secret",
            &[
                ("objectAlias", &format!("{obj}.b64")),
                ("objectFormat", "PFX"),
            ],
        ));
        items.push(item(
            obj,
            "secret",
            &[
                ("objectAlias", &format!("{obj}.pem")),
                ("objectFormat", "pem"),
            ],
        ));
    }
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    for (obj, pki) in [("c1", &rsa), ("c2", &ec), ("s-pem", &rsa)] {
        let chain = pki.chain();
        let binary = read(&target.join(format!("{obj}.pfx")));
        check_pfx(&o, &format!("{obj}.pfx"), &binary, &chain, true);
        let info = o.pkcs12_info(obj, &binary);
        assert!(info.contains("MAC: sha256"), "{obj}: MAC: {info}");
        assert!(
            info.contains("PBES2, PBKDF2, AES-256-CBC") && info.contains("hmacWithSHA256"),
            "{obj}: encryption: {info}"
        );
        assert!(
            !info.contains("pbeWithSHA1") && !info.contains("RC2"),
            "{obj}: legacy algorithm: {info}"
        );
        // Without objectEncoding: the same kind of PFX as base64 text.
        let text = read(&target.join(format!("{obj}.b64")));
        assert!(
            text.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)),
            "{obj}.b64 is not one line of standard base64"
        );
        let decoded = STANDARD.decode(&text).expect("standard base64");
        check_pfx(&o, &format!("{obj}.b64"), &decoded, &chain, true);
        // objectFormat pem: key and chain.
        check_bundle(
            &o,
            obj,
            &read(&target.join(format!("{obj}.pem"))),
            &chain,
            true,
        );
    }
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

/// A PFX made by `openssl pkcs12 -export` with an empty password: the leaf
/// with its key, then `certfile`; `extra` adds options (e.g. plain key bags).
fn openssl_pfx(o: &Oracle, pki: &Pki, certfile: &[&str], extra: &[&str]) -> Vec<u8> {
    let key = o.file(pki.key_pem().as_bytes());
    let leaf = o.file(pki.pem("leaf").as_bytes());
    let others = o.file(pki.pem_of(certfile).as_bytes());
    let mut args = vec![
        "pkcs12",
        "-export",
        "-inkey",
        &key,
        "-in",
        &leaf,
        "-certfile",
        &others,
        "-passout",
        "pass:",
    ];
    args.extend_from_slice(extra);
    o.ok("openssl pkcs12 -export", &args)
}

/// Like [`openssl_pfx`] with `-legacy` (RC2-40 certificates, 3DES key, SHA-1
/// MAC: the format Windows and older tools write), or `None` when this
/// openssl has no legacy provider.
fn openssl_legacy_pfx(o: &Oracle, pki: &Pki, certfile: &[&str]) -> Option<Vec<u8>> {
    let key = o.file(pki.key_pem().as_bytes());
    let leaf = o.file(pki.pem("leaf").as_bytes());
    let others = o.file(pki.pem_of(certfile).as_bytes());
    let out = o.run(&[
        "pkcs12",
        "-export",
        "-legacy",
        "-inkey",
        &key,
        "-in",
        &leaf,
        "-certfile",
        &others,
        "-passout",
        "pass:",
    ]);
    if out.status.success() {
        Some(out.stdout)
    } else {
        eprintln!("openssl has no legacy provider: the RC2-40 PFX input is not tried");
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c20_plain_secret_with_pkcs12_content_type_is_converted_and_without_is_raw() {
    let name = "c20_plain_secret_with_pkcs12_content_type_is_converted_and_without_is_raw";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c20").await;
    let pki = Pki::new("c20", Alg::P256);
    let rsa = Pki::new("c20-rsa", Alg::Rsa2048);
    env.watched.push(pki.key_pem());
    env.watched.push(rsa.key_pem());
    let value = STANDARD.encode(pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], ""));
    let by_openssl = STANDARD.encode(openssl_pfx(&o, &rsa, &["root", "intermediate"], &[]));
    // Plain (unshrouded) key bag and unencrypted certificates.
    let plain_bags = STANDARD.encode(openssl_pfx(
        &o,
        &pki,
        &["intermediate", "root"],
        &["-keypbe", "NONE", "-certpbe", "NONE"],
    ));
    // No password at all: nothing encrypted, no MAC.
    let no_mac = STANDARD.encode(openssl_pfx(
        &o,
        &rsa,
        &["root", "intermediate"],
        &["-keypbe", "NONE", "-certpbe", "NONE", "-nomac"],
    ));
    // Legacy PBE (what Key Vault and Windows export): 3DES, SHA-1 MAC...
    let triple_des = STANDARD.encode(openssl_pfx(
        &o,
        &rsa,
        &["intermediate", "root"],
        &[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
    ));
    // ...and RC2-40 certificates when this openssl can write them.
    let legacy =
        openssl_legacy_pfx(&o, &pki, &["root", "intermediate"]).map(|p| STANDARD.encode(p));
    let with = |v: &str, ct: Option<&str>| SecretSpec {
        content_type: ct.map(str::to_string),
        ..SecretSpec::new(v)
    };
    env.secret_spec(VAULT, "s-pfx", with(&value, Some(PKCS12)));
    env.secret_spec(VAULT, "s-pfx-raw", with(&value, None));
    env.secret_spec(VAULT, "s-pfx-openssl", with(&by_openssl, Some(PKCS12)));
    env.secret_spec(VAULT, "s-pfx-plain-bags", with(&plain_bags, Some(PKCS12)));
    env.secret_spec(VAULT, "s-pfx-no-mac", with(&no_mac, Some(PKCS12)));
    env.secret_spec(VAULT, "s-pfx-3des", with(&triple_des, Some(PKCS12)));
    if let Some(legacy) = &legacy {
        env.secret_spec(VAULT, "s-pfx-legacy", with(legacy, Some(PKCS12)));
    }
    env.secret_spec(VAULT, "s-pfx-text", with(&value, Some("text/plain")));
    // A pem contentType without a certificate is written as is.
    let no_cert = "not a certificate, just text\n";
    env.secret_spec(VAULT, "s-pem-no-cert", with(no_cert, Some(PEM_FILE)));
    let mut items = vec![
        item("s-pfx", "secret", &[]),
        item("s-pfx-raw", "secret", &[]),
        item("s-pfx-openssl", "secret", &[]),
        item("s-pfx-plain-bags", "secret", &[]),
        item("s-pfx-no-mac", "secret", &[]),
        item("s-pfx-3des", "secret", &[]),
        item("s-pfx-text", "secret", &[]),
        item("s-pem-no-cert", "secret", &[]),
        // objectFormat pfx on a pkcs12 secret: the stored value, unchanged.
        item(
            "s-pfx",
            "secret",
            &[("objectAlias", "s-pfx.b64"), ("objectFormat", "pfx")],
        ),
        item(
            "s-pfx",
            "secret",
            &[
                ("objectAlias", "s-pfx.pfx"),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ),
    ];
    if legacy.is_some() {
        items.push(item("s-pfx-legacy", "secret", &[]));
    }
    let target = publish(&mut env, &pod, "secrets", &refs(&items)).await;
    check_bundle(
        &o,
        "s-pfx",
        &read(&target.join("s-pfx")),
        &pki.chain(),
        true,
    );
    for (obj, p) in [
        ("s-pfx-no-mac", &rsa),
        ("s-pfx-3des", &rsa),
        ("s-pfx-legacy", &pki),
    ] {
        if obj == "s-pfx-legacy" && legacy.is_none() {
            continue;
        }
        check_bundle(&o, obj, &read(&target.join(obj)), &p.chain(), true);
    }
    check_bundle(
        &o,
        "s-pfx-openssl",
        &read(&target.join("s-pfx-openssl")),
        &rsa.chain(),
        true,
    );
    check_bundle(
        &o,
        "s-pfx-plain-bags",
        &read(&target.join("s-pfx-plain-bags")),
        &pki.chain(),
        true,
    );
    assert_eq!(
        read(&target.join("s-pfx-raw")),
        value.as_bytes(),
        "raw value"
    );
    assert_eq!(
        read(&target.join("s-pfx-text")),
        value.as_bytes(),
        "another contentType: raw value"
    );
    assert_eq!(read(&target.join("s-pem-no-cert")), no_cert.as_bytes());
    assert_eq!(read(&target.join("s-pfx.b64")), value.as_bytes());
    assert_eq!(
        read(&target.join("s-pfx.pfx")),
        STANDARD.decode(&value).expect("b64")
    );
    unpublish(&mut env, &pod, "secrets").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c22_encodings_decode_exactly_and_invalid_values_name_the_object_not_the_value() {
    let name = "c22_encodings_decode_exactly_and_invalid_values_name_the_object_not_the_value";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c22").await;
    env.secret(VAULT, "s-txt", "hello world!");
    env.secret(VAULT, "s-b64", "aGVsbG8=");
    env.secret(VAULT, "s-hex", "zz");
    env.secret(VAULT, "s-hex-ok", "68656c6c6f");
    env.secret(VAULT, "s-hex-odd", "68656c6c6");
    let pki = Pki::new("c22", Alg::Rsa2048);
    env.watched.push(pki.key_pem());
    env.emulator
        .state()
        .import_certificate_pfx(
            VAULT,
            "c1",
            &pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], ""),
            None,
            CertImportOptions::default(),
        )
        .expect("c1");

    let items = [
        item("s-b64", "secret", &[("objectEncoding", "base64")]),
        item("s-hex-ok", "secret", &[("objectEncoding", "HEX")]),
        item("s-txt", "secret", &[("objectEncoding", "utf-8")]),
        item(
            "c1",
            "secret",
            &[("objectAlias", "c1.b64"), ("objectFormat", "pfx")],
        ),
        item(
            "c1",
            "secret",
            &[
                ("objectAlias", "c1.pfx"),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ),
    ];
    let target = publish(&mut env, &pod, "good", &refs(&items)).await;
    assert_eq!(read(&target.join("s-b64")), b"hello");
    assert_eq!(read(&target.join("s-hex-ok")), b"hello");
    assert_eq!(read(&target.join("s-txt")), b"hello world!");
    let text = read(&target.join("c1.b64"));
    let binary = read(&target.join("c1.pfx"));
    let decoded = STANDARD
        .decode(&text)
        .expect("pfx without objectEncoding is base64 text");
    assert_eq!(
        binary, decoded,
        "pfx with base64 encoding is the binary PFX"
    );
    assert_eq!(binary.first(), Some(&0x30), "a DER SEQUENCE");
    check_pfx(&o, "c1.pfx", &binary, &pki.chain(), false);
    unpublish(&mut env, &pod, "good").await;

    // Invalid stored values: INVALID_ARGUMENT naming the object, never the value.
    for (volume, obj, enc, value) in [
        ("bad-b64", "s-txt", "base64", "hello world"),
        ("bad-hex", "s-hex", "hex", "zz"),
        ("bad-hex-odd", "s-hex-odd", "hex", "68656c6c6"),
    ] {
        let one = item(obj, "secret", &[("objectEncoding", enc)]);
        let msg = publish_fails(&mut env, &pod, volume, &[&one], Code::InvalidArgument, obj).await;
        assert!(
            !msg.contains(value),
            "{volume}: the message quotes the value: {msg}"
        );
        assert!(
            msg.contains(enc),
            "{volume}: the message names the encoding: {msg}"
        );
        assert!(
            !msg.to_ascii_lowercase().contains("illegal base64"),
            "{volume}: {msg}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c22_encoding_and_format_that_do_not_fit_the_object_are_errors_naming_it() {
    let name = "c22_encoding_and_format_that_do_not_fit_the_object_are_errors_naming_it";
    if !privileged_or_skip(name) {
        return;
    }
    let (mut env, pod) = setup("uid-c22-usage").await;
    env.secret(VAULT, "s-plain", "plain-value-0123456789");
    env.emulator
        .state()
        .create_key(VAULT, "k1", KeySpec::ec("P-256"))
        .expect("k1");
    let pki = Pki::new("c22-usage", Alg::P256);
    env.watched.push(pki.key_pem());
    env.emulator
        .state()
        .import_certificate_pem(
            VAULT,
            "c1",
            &pki.pem_of(&["key", "leaf", "intermediate", "root"]),
            CertImportOptions::default(),
        )
        .expect("c1");
    // DESIGN §4: encodings decode plain secrets only (base64 + pfx excepted);
    // pfx applies only to secrets that hold a certificate.
    for (volume, obj, ty, extra) in [
        ("key-b64", "k1", "key", vec![("objectEncoding", "base64")]),
        ("cert-hex", "c1", "cert", vec![("objectEncoding", "hex")]),
        (
            "cert-secret-b64",
            "c1",
            "secret",
            vec![("objectEncoding", "base64")],
        ),
        (
            "pfx-hex",
            "c1",
            "secret",
            vec![("objectFormat", "pfx"), ("objectEncoding", "hex")],
        ),
        (
            "plain-pfx",
            "s-plain",
            "secret",
            vec![("objectFormat", "pfx")],
        ),
        ("key-pfx", "k1", "key", vec![("objectFormat", "pfx")]),
        ("cert-pfx", "c1", "cert", vec![("objectFormat", "pfx")]),
    ] {
        let one = item(obj, ty, &extra);
        let err = publish_with(&mut env, &pod, volume, &[&one], None)
            .await
            .expect_err("must fail");
        assert_eq!(err.code(), Code::InvalidArgument, "{volume}: {err:?}");
        let msg = err.message();
        assert!(
            msg.contains("objects[0]") || msg.contains(&format!("object {obj}")),
            "{volume}: names the object: {msg}"
        );
        assert!(!msg.contains("plain-value"), "{volume}: {msg}");
        assert_nothing_at(&env.kubelet.target_path(&pod.uid, volume));
    }
    env.stop().await;
}

/// Standard base64 broken into lines of `width` characters, each ending in `eol`
/// (what `base64` and `openssl base64` print).
fn wrapped_base64(bytes: &[u8], width: usize, eol: &str) -> String {
    STANDARD
        .encode(bytes)
        .as_bytes()
        .chunks(width)
        .map(|c| format!("{}{eol}", std::str::from_utf8(c).expect("ascii")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c22_base64_with_line_breaks_decodes_as_the_azure_provider_does() {
    let name = "c22_base64_with_line_breaks_decodes_as_the_azure_provider_does";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c22-lines").await;
    env.secret(VAULT, "s-b64-lf", "aGVs\nbG8=\n");
    env.secret(VAULT, "s-b64-crlf", "aGVs\r\nbG8=\r\n");
    let pki = Pki::new("c22-lines", Alg::P256);
    env.watched.push(pki.key_pem());
    let der = pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], "");
    // As `base64 cert.pfx` prints it: 76 columns, LF.
    let wrapped = wrapped_base64(&der, 76, "\n");
    env.secret_spec(
        VAULT,
        "s-pfx-wrapped",
        SecretSpec {
            content_type: Some(PKCS12.into()),
            ..SecretSpec::new(wrapped.clone())
        },
    );
    let items = [
        item("s-b64-lf", "secret", &[("objectEncoding", "base64")]),
        item("s-b64-crlf", "secret", &[("objectEncoding", "base64")]),
        item("s-pfx-wrapped", "secret", &[]),
        item(
            "s-pfx-wrapped",
            "secret",
            &[
                ("objectAlias", "s-pfx-wrapped.pfx"),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ),
        item(
            "s-pfx-wrapped",
            "secret",
            &[
                ("objectAlias", "s-pfx-wrapped.b64"),
                ("objectFormat", "pfx"),
            ],
        ),
    ];
    let target = publish(&mut env, &pod, "lines", &refs(&items)).await;
    assert_eq!(read(&target.join("s-b64-lf")), b"hello");
    assert_eq!(read(&target.join("s-b64-crlf")), b"hello");
    check_bundle(
        &o,
        "s-pfx-wrapped",
        &read(&target.join("s-pfx-wrapped")),
        &pki.chain(),
        true,
    );
    assert_eq!(read(&target.join("s-pfx-wrapped.pfx")), der);
    assert_eq!(read(&target.join("s-pfx-wrapped.b64")), wrapped.as_bytes());
    unpublish(&mut env, &pod, "lines").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e23_password_protected_pfx_import_is_stored_with_an_empty_password() {
    let name = "e23_password_protected_pfx_import_is_stored_with_an_empty_password";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-e23").await;
    let pki = Pki::new("e23", Alg::P256);
    let rsa = Pki::new("e23-rsa", Alg::Rsa2048);
    env.watched.push(pki.key_pem());
    env.watched.push(rsa.key_pem());
    let password = "e23-import-password-Qx7";
    env.watched.push(password.to_string());
    let state = env.emulator.state();
    state
        .import_certificate_pfx(
            VAULT,
            "c",
            &pfx(&[&pki.root, &pki.inter], &pki.leaf, &pki.key, &[], password),
            Some(password),
            CertImportOptions::default(),
        )
        .expect("import with a password");
    // A password-protected PFX made by openssl.
    let passout = format!("pass:{password}");
    let key = o.file(rsa.key_pem().as_bytes());
    let leaf = o.file(rsa.pem("leaf").as_bytes());
    let others = o.file(rsa.pem_of(&["intermediate", "root"]).as_bytes());
    let by_openssl = o.ok(
        "openssl pkcs12 -export",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            &key,
            "-in",
            &leaf,
            "-certfile",
            &others,
            "-passout",
            &passout,
        ],
    );
    state
        .import_certificate_pfx(
            VAULT,
            "c-openssl",
            &by_openssl,
            Some(password),
            CertImportOptions::default(),
        )
        .expect("import an openssl PFX with a password");
    // A legacy one (RC2-40 certificates, 3DES key, SHA-1 MAC), as Windows exports.
    let legacy = o.run(&[
        "pkcs12",
        "-export",
        "-legacy",
        "-inkey",
        &key,
        "-in",
        &leaf,
        "-certfile",
        &others,
        "-passout",
        &passout,
    ]);
    let mut objs = vec![("c", &pki), ("c-openssl", &rsa)];
    if legacy.status.success() {
        state
            .import_certificate_pfx(
                VAULT,
                "c-legacy",
                &legacy.stdout,
                Some(password),
                CertImportOptions::default(),
            )
            .expect("import a legacy PFX with a password");
        objs.push(("c-legacy", &rsa));
    } else {
        eprintln!("openssl has no legacy provider: the RC2-40 PFX import is not tried");
    }
    let mut items = Vec::new();
    for (obj, _) in &objs {
        items.push(item(obj, "secret", &[]));
        items.push(item(
            obj,
            "secret",
            &[
                ("objectAlias", &format!("{obj}.pfx")),
                ("objectFormat", "pfx"),
                ("objectEncoding", "base64"),
            ],
        ));
    }
    let target = publish(&mut env, &pod, "certs", &refs(&items)).await;
    for (obj, p) in &objs {
        check_bundle(&o, obj, &read(&target.join(obj)), &p.chain(), true);
        let stored = read(&target.join(format!("{obj}.pfx")));
        check_pfx(&o, &format!("{obj}.pfx"), &stored, &p.chain(), false);
        // The import password no longer opens it.
        let f = o.file(&stored);
        let out = o.run(&[
            "pkcs12",
            "-in",
            &f,
            "-passin",
            &format!("pass:{password}"),
            "-nokeys",
        ]);
        assert!(
            !out.status.success(),
            "{obj}: the backing PFX still opens with the import password"
        );
    }
    unpublish(&mut env, &pod, "certs").await;
    env.stop().await;
}

// ---- C24 C25: version history ----

/// Seeds `values` as versions of secret `name`, with the given `created`
/// seconds, oldest inserted first. Returns the version ids.
fn seed_versions(env: &mut Env, name: &str, versions: &[(&str, i64)]) -> Vec<String> {
    versions
        .iter()
        .map(|(value, created)| {
            env.secret_spec(
                VAULT,
                name,
                SecretSpec {
                    created: Some(*created),
                    ..SecretSpec::new(*value)
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c24_history_skips_disabled_versions_and_a_disabled_current_version_fails() {
    let name = "c24_history_skips_disabled_versions_and_a_disabled_current_version_fails";
    if !privileged_or_skip(name) {
        return;
    }
    let (mut env, pod) = setup("uid-c24").await;
    let values = [
        "c24-v1-0123456789",
        "c24-v2-0123456789",
        "c24-v3-0123456789",
        "c24-v4-0123456789",
        "c24-v5-0123456789",
    ];
    let seeded: Vec<(&str, i64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, T0 + 60 * i as i64))
        .collect();
    let ids = seed_versions(&mut env, "s1", &seeded);
    for id in &ids[..3] {
        env.emulator
            .state()
            .set_secret_enabled(VAULT, "s1", id, false)
            .expect("disable");
    }
    let hist5 = item("s1", "secret", &[("objectVersionHistory", "5")]);
    // N = 0 or 1 writes one file, the current version.
    let zero = item(
        "s1",
        "secret",
        &[("objectVersionHistory", "0"), ("objectAlias", "zero")],
    );
    let one = item(
        "s1",
        "secret",
        &[("objectVersionHistory", "1"), ("objectAlias", "one")],
    );
    let target = publish(&mut env, &pod, "hist", &[&hist5, &zero, &one]).await;
    for single in ["zero", "one"] {
        assert!(target.join(single).is_file(), "{single} is one file");
        assert_eq!(read(&target.join(single)), values[4].as_bytes(), "{single}");
    }
    assert_eq!(read(&target.join("s1/0")), values[4].as_bytes(), "s1/0");
    assert_eq!(read(&target.join("s1/1")), values[3].as_bytes(), "s1/1");
    for i in 2..5 {
        assert!(absent(&target.join(format!("s1/{i}"))), "s1/{i} written");
    }
    assert!(target.join("s1").is_dir());
    unpublish(&mut env, &pod, "hist").await;

    // History starts at a pinned version.
    let pinned = item(
        "s1",
        "secret",
        &[("objectVersion", &ids[3]), ("objectVersionHistory", "3")],
    );
    let target = publish(&mut env, &pod, "pinned", &[&pinned]).await;
    assert_eq!(read(&target.join("s1/0")), values[3].as_bytes());
    assert!(absent(&target.join("s1/1")));
    unpublish(&mut env, &pod, "pinned").await;

    // A pinned disabled version fails, with or without history.
    for (volume, extra) in [
        ("pinned-disabled", vec![("objectVersion", ids[1].as_str())]),
        (
            "pinned-disabled-hist",
            vec![
                ("objectVersion", ids[1].as_str()),
                ("objectVersionHistory", "3"),
            ],
        ),
    ] {
        let one = item("s1", "secret", &extra);
        let msg = publish_fails(
            &mut env,
            &pod,
            volume,
            &[&one],
            Code::FailedPrecondition,
            "s1",
        )
        .await;
        assert!(!msg.contains("c24-v"), "{volume}: {msg}");
    }

    // v5 disabled: without history the current version is disabled.
    env.emulator
        .state()
        .set_secret_enabled(VAULT, "s1", &ids[4], false)
        .expect("disable v5");
    let one = item("s1", "secret", &[]);
    let msg = publish_fails(
        &mut env,
        &pod,
        "current",
        &[&one],
        Code::FailedPrecondition,
        "s1",
    )
    .await;
    assert!(msg.contains("disabled"), "{msg}");
    assert!(!msg.contains("c24-v"), "{msg}");
    // With history the disabled current version is skipped.
    let target = publish(&mut env, &pod, "hist-after", &[&hist5]).await;
    assert_eq!(read(&target.join("s1/0")), values[3].as_bytes());
    assert!(absent(&target.join("s1/1")));
    unpublish(&mut env, &pod, "hist-after").await;
    env.stop().await;
}

/// The expected history: enabled versions by (created, id) descending.
fn expected_history(rows: &[(String, i64, bool, String)], n: usize) -> Vec<String> {
    let mut enabled: Vec<&(String, i64, bool, String)> = rows.iter().filter(|r| r.2).collect();
    enabled.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    enabled.into_iter().take(n).map(|r| r.3.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c25_history_orders_by_created_then_version_id_never_by_list_order() {
    let name = "c25_history_orders_by_created_then_version_id_never_by_list_order";
    if !privileged_or_skip(name) {
        return;
    }
    let (mut env, pod) = setup("uid-c25").await;
    // Inserted (listed) in an order that is neither created order nor its reverse;
    // c and d share a second.
    let seeded = [
        ("c25-a-0123456789", T0 + 10),
        ("c25-b-0123456789", T0 + 30),
        ("c25-c-0123456789", T0 + 20),
        ("c25-d-0123456789", T0 + 20),
    ];
    let ids = seed_versions(&mut env, "s1", &seeded);
    let rows: Vec<(String, i64, bool, String)> = ids
        .iter()
        .zip(&seeded)
        .map(|(id, (v, c))| (id.clone(), *c, true, v.to_string()))
        .collect();
    let want = expected_history(&rows, 4);
    assert_eq!(want[0], seeded[1].0);
    assert_eq!(want[3], seeded[0].0);
    let (c, d) = (&ids[2], &ids[3]);
    let tie = if c > d {
        [seeded[2].0, seeded[3].0]
    } else {
        [seeded[3].0, seeded[2].0]
    };
    assert_eq!(want[1..3], tie);
    let hist = item("s1", "secret", &[("objectVersionHistory", "4")]);
    let target = publish(&mut env, &pod, "hist", &[&hist]).await;
    for (i, value) in want.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&read(&target.join(format!("s1/{i}")))),
            *value,
            "s1/{i}"
        );
    }
    // More files asked than versions exist: only those are written.
    let hist6 = item(
        "s1",
        "secret",
        &[("objectVersionHistory", "6"), ("objectAlias", "six")],
    );
    let target6 = publish(&mut env, &pod, "hist6", &[&hist6]).await;
    for (i, value) in want.iter().enumerate() {
        assert_eq!(read(&target6.join(format!("six/{i}"))), value.as_bytes());
    }
    assert!(absent(&target6.join("six/4")) && absent(&target6.join("six/5")));
    unpublish(&mut env, &pod, "hist").await;
    unpublish(&mut env, &pod, "hist6").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c25_history_spans_more_than_one_page_with_disabled_versions_mixed_in() {
    let name = "c25_history_spans_more_than_one_page_with_disabled_versions_mixed_in";
    if !privileged_or_skip(name) {
        return;
    }
    let (mut env, pod) = setup("uid-c25-pages").await;
    // 30 versions (the daemon lists 25 a page); created is a permutation of
    // the insertion order, and the newest ones are on the second page.
    let mut seeded: Vec<(String, i64)> = (0..30)
        .map(|i| {
            (
                format!("c25-page-v{i:02}-0123456789"),
                T0 + ((i * 7) % 30) * 60,
            )
        })
        .collect();
    seeded[27].1 = T0 + 10_000;
    seeded[26].1 = T0 + 9_000;
    let refs_seeded: Vec<(&str, i64)> = seeded.iter().map(|(v, c)| (v.as_str(), *c)).collect();
    let ids = seed_versions(&mut env, "s1", &refs_seeded);
    let mut rows = Vec::new();
    for (i, (id, (value, created))) in ids.iter().zip(&seeded).enumerate() {
        // Disabled ones on both pages, including the newest-but-one.
        let enabled = !(i % 4 == 1 || i == 26);
        if !enabled {
            env.emulator
                .state()
                .set_secret_enabled(VAULT, "s1", id, false)
                .expect("disable");
        }
        rows.push((id.clone(), *created, enabled, value.clone()));
    }
    let enabled_count = rows.iter().filter(|r| r.2).count();
    let want = expected_history(&rows, 20);
    assert_eq!(want[0], seeded[27].0, "the newest is on page two");
    let hist = item("s1", "secret", &[("objectVersionHistory", "20")]);
    let all = item(
        "s1",
        "secret",
        &[("objectVersionHistory", "40"), ("objectAlias", "all")],
    );
    // History from a version pinned on page two.
    let pinned_id = &ids[28];
    let mut sorted: Vec<&(String, i64, bool, String)> = rows.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let start = sorted
        .iter()
        .position(|r| &r.0 == pinned_id)
        .expect("pinned");
    let want_pinned: Vec<&str> = sorted[start..]
        .iter()
        .filter(|r| r.2)
        .take(3)
        .map(|r| r.3.as_str())
        .collect();
    assert_eq!(want_pinned.len(), 3);
    let pinned = item(
        "s1",
        "secret",
        &[
            ("objectVersionHistory", "3"),
            ("objectVersion", pinned_id),
            ("objectAlias", "pinned"),
        ],
    );
    let target = publish(&mut env, &pod, "hist", &[&hist, &all, &pinned]).await;
    for (i, value) in want_pinned.iter().enumerate() {
        assert_eq!(
            read(&target.join(format!("pinned/{i}"))),
            value.as_bytes(),
            "pinned/{i}"
        );
    }
    assert!(absent(&target.join("pinned/3")));
    for (i, value) in want.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&read(&target.join(format!("s1/{i}")))),
            *value,
            "s1/{i}"
        );
    }
    assert!(absent(&target.join("s1/20")));
    let want_all = expected_history(&rows, 40);
    assert_eq!(want_all.len(), enabled_count);
    for (i, value) in want_all.iter().enumerate() {
        assert_eq!(
            read(&target.join(format!("all/{i}"))),
            value.as_bytes(),
            "all/{i}"
        );
    }
    assert!(absent(&target.join(format!("all/{enabled_count}"))));
    unpublish(&mut env, &pod, "hist").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c25_history_applies_to_keys_and_certificates_across_pages() {
    let name = "c25_history_applies_to_keys_and_certificates_across_pages";
    if !privileged_or_skip(name) || !openssl_or_skip(name) {
        return;
    }
    let o = Oracle::new();
    let (mut env, pod) = setup("uid-c25-kinds").await;
    let state = env.emulator.state();
    // 27 key versions; created runs backwards from insertion, so the newest
    // is listed first and the oldest on page two, except two late ones.
    let mut key_rows = Vec::new();
    for i in 0..27i64 {
        let created = match i {
            25 => T0 + 100_000,
            26 => T0 + 100_000, // same second as 25
            _ => T0 + (27 - i) * 60,
        };
        let v = state
            .create_key(
                VAULT,
                "k1",
                KeySpec {
                    created: Some(created),
                    ..KeySpec::ec("P-256")
                },
            )
            .expect("key version");
        let enabled = !(i == 25 || i % 5 == 0);
        if !enabled {
            state
                .set_key_enabled(VAULT, "k1", &v, false)
                .expect("disable");
        }
        let spki = state.key_public_spki(VAULT, "k1", Some(&v)).expect("spki");
        key_rows.push((v, created, enabled, STANDARD.encode(spki)));
    }
    // 26 certificate versions, same idea.
    let ca = root_ca("c25 ca");
    let mut cert_rows = Vec::new();
    let mut cert_keys = Vec::new();
    for i in 0..26i64 {
        let created = if i == 25 {
            T0 + 100_000
        } else {
            T0 + (26 - i) * 60
        };
        let (leaf, key) = leaf_cert(&format!("v{i}.c25.example.test"), &ca, Alg::P256, true);
        let text = format!("{}{}", key.serialize_pem(), pem_block("CERTIFICATE", &leaf));
        let v = state
            .import_certificate_pem(
                VAULT,
                "c1",
                &text,
                CertImportOptions {
                    created: Some(created),
                    ..Default::default()
                },
            )
            .expect("cert version");
        let enabled = i % 4 != 2;
        if !enabled {
            state
                .set_certificate_enabled(VAULT, "c1", &v, false)
                .expect("disable");
        }
        cert_rows.push((v, created, enabled, STANDARD.encode(&leaf)));
        cert_keys.push((leaf, key));
    }
    let items = [
        item("k1", "key", &[("objectVersionHistory", "4")]),
        item("c1", "cert", &[("objectVersionHistory", "3")]),
        item(
            "c1",
            "secret",
            &[("objectVersionHistory", "2"), ("objectAlias", "c1-bundle")],
        ),
    ];
    let target = publish(&mut env, &pod, "hist", &refs(&items)).await;
    let want_keys = expected_history(&key_rows, 4);
    assert_eq!(
        want_keys[0], key_rows[26].3,
        "precondition: the newest key is on page two"
    );
    for (i, spki) in want_keys.iter().enumerate() {
        let spki = STANDARD.decode(spki).expect("b64");
        check_public_key(
            &o,
            &format!("k1/{i}"),
            &read(&target.join(format!("k1/{i}"))),
            &spki,
        );
    }
    assert!(absent(&target.join("k1/4")));
    let want_certs = expected_history(&cert_rows, 3);
    assert_eq!(want_certs[0], cert_rows[25].3, "precondition: page two");
    for (i, der) in want_certs.iter().enumerate() {
        let der = STANDARD.decode(der).expect("b64");
        assert_eq!(
            String::from_utf8_lossy(&read(&target.join(format!("c1/{i}")))),
            pem_block("CERTIFICATE", &der),
            "c1/{i}"
        );
    }
    for (i, der) in expected_history(&cert_rows, 2).iter().enumerate() {
        let der = STANDARD.decode(der).expect("b64");
        let chain = [("leaf", der.as_slice()), ("ca", ca.der.as_slice())];
        let file = read(&target.join(format!("c1-bundle/{i}")));
        // PEM import of key + leaf: the bundle holds only those.
        check_bundle(&o, &format!("c1-bundle/{i}"), &file, &chain[..1], false);
    }
    unpublish(&mut env, &pod, "hist").await;
    env.stop().await;
}

// ---- C31: size ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c31_many_large_objects_mount_or_fail_naming_the_size_limit() {
    let name = "c31_many_large_objects_mount_or_fail_naming_the_size_limit";
    if !privileged_or_skip(name) {
        return;
    }
    let (mut env, pod) = setup("uid-c31").await;
    const N: usize = 180;
    const SIZE: usize = 24 * 1024;
    let value = |i: usize| -> String {
        let head = format!("c31-object-{i:03}-");
        let mut v = head.clone();
        let mut n = 0u64;
        while v.len() < SIZE {
            v.push_str(&format!("{:016x}", (i as u64) << 32 | n));
            n += 1;
        }
        v.truncate(SIZE);
        v
    };
    let state = env.emulator.state();
    for i in 0..N {
        state
            .set_secret(VAULT, &format!("big-{i:03}"), SecretSpec::new(value(i)))
            .expect("seed");
    }
    // History: 40 versions of 128 KiB, about 5 MiB.
    const HIST: usize = 40;
    let hist_value = |i: usize| -> String {
        let mut v = format!("c31-hist-{i:02}-");
        v.push_str(&"h".repeat(128 * 1024 - v.len()));
        v
    };
    for i in 0..HIST {
        state
            .set_secret(
                VAULT,
                "big-hist",
                SecretSpec {
                    created: Some(T0 + i as i64),
                    ..SecretSpec::new(hist_value(i))
                },
            )
            .expect("seed history");
    }
    let items: Vec<String> = (0..N)
        .map(|i| item(&format!("big-{i:03}"), "secret", &[]))
        .collect();
    let target = publish_with(&mut env, &pod, "bulk", &refs(&items), Some("8Mi"))
        .await
        .expect("180 x 24 KiB in an 8 MiB volume");
    for i in 0..N {
        let got = read(&target.join(format!("big-{i:03}")));
        assert_eq!(got.len(), SIZE, "big-{i:03}");
        assert!(got == value(i).as_bytes(), "big-{i:03}: content");
    }
    unpublish(&mut env, &pod, "bulk").await;

    let hist = item("big-hist", "secret", &[("objectVersionHistory", "40")]);
    let target = publish_with(&mut env, &pod, "history", &[&hist], Some("8Mi"))
        .await
        .expect("5 MiB of history in an 8 MiB volume");
    for i in 0..HIST {
        let got = read(&target.join(format!("big-hist/{i}")));
        assert!(got == hist_value(HIST - 1 - i).as_bytes(), "big-hist/{i}");
    }
    unpublish(&mut env, &pod, "history").await;

    // Too small: RESOURCE_EXHAUSTED naming the limit; nothing left behind.
    let err = publish_with(&mut env, &pod, "small", &refs(&items), Some("4Mi"))
        .await
        .expect_err("4.3 MiB cannot fit in 4 MiB");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let msg = err.message();
    assert!(
        msg.contains("4194304") || msg.contains("4Mi") || msg.contains("4 MiB"),
        "the message must name the limit: {msg}"
    );
    assert!(!msg.contains("c31-object"), "{msg}");
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "small"));
    env.stop().await;
}

// ---- Review findings ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_with_every_version_disabled_is_failed_precondition_naming_the_object() {
    if !privileged_or_skip(
        "history_with_every_version_disabled_is_failed_precondition_naming_the_object",
    ) {
        return;
    }
    let (mut env, pod) = setup("uid-hist-all-off").await;
    for i in 0..3 {
        env.secret_spec(
            VAULT,
            "s-alloff",
            SecretSpec {
                enabled: false,
                ..SecretSpec::new(format!("alloff-value-{i}-0123456789"))
            },
        );
    }
    env.secret(VAULT, "s2", "alloff-other-0123456789");
    let items = [
        item("s-alloff", "secret", &[("objectVersionHistory", "3")]),
        item("s2", "secret", &[]),
    ];
    let err = publish_with(&mut env, &pod, "vol", &refs(&items), None)
        .await
        .expect_err("no enabled version");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("s-alloff"), "{}", err.message());
    assert_nothing_at(&env.kubelet.target_path(&pod.uid, "vol"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pem_secret_with_blocks_that_cannot_be_normalised_is_written_as_stored() {
    if !privileged_or_skip("pem_secret_with_blocks_that_cannot_be_normalised_is_written_as_stored")
    {
        return;
    }
    let (mut env, pod) = setup("uid-pem-asis").await;
    let ck = rcgen::generate_simple_self_signed(vec!["asis.example".to_string()]).expect("cert");
    // An unknown block whose label is part of the (secret) value.
    let value = format!(
        "{}{}-----BEGIN CANARYLABEL7f3a9-----\nAAAA\n-----END CANARYLABEL7f3a9-----\n",
        ck.signing_key.serialize_pem(),
        ck.cert.pem()
    );
    env.secret_spec(
        VAULT,
        "pem-asis",
        SecretSpec {
            content_type: Some(PEM_FILE.into()),
            ..SecretSpec::new(value.clone())
        },
    );
    let items = [item("pem-asis", "secret", &[])];
    let target = publish_with(&mut env, &pod, "vol", &refs(&items), None)
        .await
        .expect("written as stored");
    assert_eq!(read(&target.join("pem-asis")), value.as_bytes());
    assert!(
        !vaultlet_tests::logs().text().contains("CANARYLABEL7f3a9"),
        "a label from the value reached the logs"
    );
    env.kubelet
        .unpublish(&pod.uid, "vol")
        .await
        .expect("unpublish");
    env.stop().await;
}
