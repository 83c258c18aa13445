//! Conversion tests. The oracle is the `openssl` CLI, not our own parsers:
//! every PEM written must parse with `openssl x509`/`openssl pkey`, the
//! ordered chain must pass `openssl verify -partial_chain`, the key must
//! match the leaf, and PFX files must open with an empty password without
//! `-legacy`. Without `openssl` on PATH those tests print why and pass.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use rcgen::SignatureAlgorithm;
use tempfile::TempDir;

use super::fixture::{Made, Pki, issued, issued_with, root};
use super::*;

const ALL_KEY_ALGS: [&SignatureAlgorithm; 4] = [
    &rcgen::PKCS_ECDSA_P256_SHA256,
    &rcgen::PKCS_ECDSA_P384_SHA384,
    &rcgen::PKCS_ECDSA_P521_SHA512,
    &rcgen::PKCS_RSA_SHA256,
];

// ---------------------------------------------------------------- openssl --

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Returns from the test, with a printed reason, when `openssl` is absent.
macro_rules! require_openssl {
    () => {
        if !have_openssl() {
            eprintln!("skipped: the openssl CLI is not on PATH (it is the oracle of this test)");
            return;
        }
    };
}

/// Runs `openssl args` in `dir` with `stdin`; stdout and stderr on success,
/// a panic showing stderr otherwise.
fn openssl(dir: &Path, args: &[&str], stdin: &[u8]) -> (String, String) {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("openssl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{stderr}\n{stdout}"
    );
    (stdout, stderr)
}

fn openssl_bytes(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(stdin)?;
            c.wait_with_output()
        })
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write temp file");
}

/// The text of each PEM block of `pem`, exactly as written, with its label.
fn block_texts(pem: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let label_end = rest[start + 11..].find("-----").expect("label end") + start + 11;
        let label = rest[start + 11..label_end].to_string();
        let end_marker = format!("-----END {label}-----\n");
        let end = rest[start..].find(&end_marker).expect("end line") + start + end_marker.len();
        out.push((label, rest[start..end].to_string()));
        rest = &rest[end..];
    }
    out
}

/// Checks a written key + chain bundle with openssl:
/// - labels are `PRIVATE KEY` then `CERTIFICATE`s, and the certificates are
///   `expected` (DER) in that order;
/// - the text is nothing but those blocks in Go's layout;
/// - every block parses with `openssl pkey` / `openssl x509`;
/// - the key's public half is the leaf's and is `leaf_key`'s;
/// - `openssl verify -partial_chain` accepts the leaf with the rest.
fn check_key_and_chain(out: &SecretBytes, expected: &[Vec<u8>], leaf_key: &Made) {
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    let text = std::str::from_utf8(out.expose()).expect("PEM is ASCII");
    let blocks = block_texts(text);
    let labels: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    let mut want = vec!["PRIVATE KEY"];
    want.extend(std::iter::repeat_n("CERTIFICATE", expected.len()));
    assert_eq!(labels, want);
    assert_eq!(
        blocks.iter().map(|(_, t)| t.len()).sum::<usize>(),
        text.len(),
        "nothing outside the blocks"
    );
    assert!(!text.contains("RSA PRIVATE KEY") && !text.contains("EC PRIVATE KEY"));
    for (_, t) in &blocks {
        assert!(t.lines().all(|l| l.len() <= 64), "64-column lines");
    }

    // Each block on its own parses with openssl; certificates round-trip to
    // the expected DER, in order.
    openssl(d, &["pkey", "-noout"], blocks[0].1.as_bytes());
    for (i, (_, t)) in blocks[1..].iter().enumerate() {
        let der = openssl_bytes(d, &["x509", "-outform", "DER"], t.as_bytes());
        assert_eq!(der, expected[i], "certificate {i} is the expected one");
    }

    // The key matches the leaf and the key we made.
    write(d, "out.pem", out.expose());
    let (key_pub, _) = openssl(d, &["pkey", "-in", "out.pem", "-pubout"], b"");
    let (leaf_pub, _) = openssl(d, &["x509", "-in", "out.pem", "-pubkey", "-noout"], b"");
    assert_eq!(key_pub, leaf_pub, "private key matches the leaf");
    let (made_pub, _) = openssl(d, &["pkey", "-pubout"], leaf_key.key_pem().as_bytes());
    assert_eq!(key_pub, made_pub, "private key is the one we made");

    // The chain verifies leaf-first.
    if blocks.len() > 2 {
        write(d, "leaf.pem", blocks[1].1.as_bytes());
        let rest: String = blocks[2..].iter().map(|(_, t)| t.as_str()).collect();
        write(d, "rest.pem", rest.as_bytes());
        let (stdout, _) = openssl(
            d,
            &[
                "verify",
                "-partial_chain",
                "-CAfile",
                "rest.pem",
                "leaf.pem",
            ],
            b"",
        );
        assert_eq!(stdout.trim(), "leaf.pem: OK");
    }
}

/// A PFX whose bags are in the order of `certs`, the key's bag linked to
/// `leaf` by localKeyId, written by p12-keystore (PBES2, empty password).
fn pfx_in_bag_order(certs: &[&Made], leaf: &Made) -> Vec<u8> {
    let mut store = KeyStore::new();
    for (i, m) in certs.iter().enumerate() {
        let cert = Certificate::from_der(&m.der()).expect("cert");
        if std::ptr::eq(*m, leaf) {
            let key = PrivateKey::from_der(leaf.key_der()).expect("key");
            store.add_entry(
                &format!("{i}"),
                KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(b"k".to_vec(), key, [cert])),
            );
        } else {
            store.add_entry(&format!("{i}"), KeyStoreEntry::Certificate(cert));
        }
    }
    let pfx = store.writer("").write().expect("pfx");
    // The writer puts trusted certificates first, in alias order, then the
    // key's certificate: the bag order is the one asked for as long as the
    // leaf is last. Check that precondition with an independent reader.
    let archive = Pkcs12Archive::from_pkcs12(&pfx, "").expect("reads back");
    let order: Vec<Vec<u8>> = archive
        .certs
        .iter()
        .map(|c| c.cert.as_der().to_vec())
        .collect();
    assert_eq!(order, certs.iter().map(|m| m.der()).collect::<Vec<_>>());
    pfx
}

/// A PFX made by `openssl pkcs12 -export` from `key` and `certs` (PEM,
/// in the order given), with extra `args`.
fn openssl_pfx(dir: &Path, key: &Made, certs: &[&Made], args: &[&str]) -> Vec<u8> {
    write(dir, "key.pem", key.key_pem().as_bytes());
    let all: String = certs.iter().map(|m| m.pem()).collect();
    write(dir, "certs.pem", all.as_bytes());
    let mut full = vec![
        "pkcs12",
        "-export",
        "-inkey",
        "key.pem",
        "-in",
        "certs.pem",
        "-passout",
        "pass:",
    ];
    full.extend_from_slice(args);
    openssl_bytes(dir, &full, b"")
}

/// The `-traditional` (PKCS#1 / SEC1) form of `m`'s key, by openssl.
fn traditional_key(dir: &Path, m: &Made) -> String {
    let (pem, _) = openssl(dir, &["pkey", "-traditional"], m.key_pem().as_bytes());
    assert!(
        pem.starts_with("-----BEGIN RSA PRIVATE KEY-----")
            || pem.starts_with("-----BEGIN EC PRIVATE KEY-----"),
        "fixture is traditional: {}",
        pem.lines().next().unwrap_or_default()
    );
    pem
}

// ------------------------------------------------------------------- C13 --

#[test]
fn c13_pfx_bags_root_intermediate_leaf_are_written_key_leaf_intermediate_root() {
    require_openssl!();
    for aki in [true, false] {
        let pki = Pki::new(&rcgen::PKCS_RSA_SHA256, aki);
        let pfx = pfx_in_bag_order(&[&pki.root, &pki.inter, &pki.leaf], &pki.leaf);
        let out = pfx_to_pem(&pfx, "").expect("converts");
        check_key_and_chain(&out, &pki.chain(), &pki.leaf);
    }
}

#[test]
fn c13_openssl_pfx_with_shrouded_legacy_and_plain_bags_is_read() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    for args in [
        &[][..],
        // PKCS#12 PBE with 3DES and a SHA-1 MAC, as older Windows and Java
        // write; available in OpenSSL 3's default provider.
        &[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ][..],
        // A plain (unshrouded) key bag and unencrypted certificates.
        &["-keypbe", "NONE", "-certpbe", "NONE"][..],
        &["-nomac", "-keypbe", "NONE", "-certpbe", "NONE"][..],
    ] {
        let pfx = openssl_pfx(
            dir.path(),
            &pki.leaf,
            &[&pki.root, &pki.inter, &pki.leaf],
            args,
        );
        let out = pfx_to_pem(&pfx, "").unwrap_or_else(|e| panic!("{args:?}: {e}"));
        check_key_and_chain(&out, &pki.chain(), &pki.leaf);
    }
}

// ------------------------------------------------------------------- C14 --

#[test]
fn c14_pem_leaf_last_is_written_like_the_pfx() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    let pki = Pki::new(&rcgen::PKCS_RSA_SHA256, true);
    let from_pfx = pfx_to_pem(
        &pfx_in_bag_order(&[&pki.root, &pki.inter, &pki.leaf], &pki.leaf),
        "",
    )
    .expect("pfx converts");
    let (root, inter, leaf, key) = (
        pki.root.pem(),
        pki.inter.pem(),
        pki.leaf.pem(),
        pki.leaf.key_pem(),
    );
    for input in [
        format!("{root}{inter}{leaf}{key}"),
        format!("{key}{root}{inter}{leaf}"),
        format!("{inter}\n\n{leaf}{root}some trailing text\n{key}"),
        format!("{root}{inter}{leaf}{key}").replace('\n', "\r\n"),
        format!(
            "{root}{inter}{leaf}{}",
            traditional_key(dir.path(), &pki.leaf)
        ),
    ] {
        let out = pem_bundle_normalise(input.as_bytes())
            .expect("converts")
            .expect("holds a certificate");
        check_key_and_chain(&out, &pki.chain(), &pki.leaf);
        // Same key (PKCS#8 as made, or converted from PKCS#1 to the same
        // PKCS#8 by openssl's and rsa's encoders) and same chain as C13.
        let pkcs1 = input.contains("RSA PRIVATE KEY");
        if !pkcs1 {
            assert_eq!(out, from_pfx, "same bytes as the PFX path");
        }
    }
}

// ------------------------------------------------------------------- C16 --

#[test]
fn c16_leaf_without_aki_and_its_ca_keep_every_certificate() {
    require_openssl!();
    let ca = root("Issuing CA");
    let leaf = issued("leaf.example", false, false, &ca);
    let other_root = root("Other Root");
    let unrelated = issued("unrelated.example", false, false, &other_root);
    // Bags: unrelated, CA, other root, leaf+key.
    let pfx = pfx_in_bag_order(&[&unrelated, &ca, &other_root, &leaf], &leaf);
    let out = pfx_to_pem(&pfx, "").expect("converts");
    check_key_and_chain(
        &out,
        &[leaf.der(), ca.der(), unrelated.der(), other_root.der()],
        &leaf,
    );
}

// ------------------------------------------------------------------- C17 --

fn key_type_line(dir: &Path, out: &SecretBytes) -> String {
    let (text, _) = openssl(dir, &["pkey", "-noout", "-text"], out.expose());
    text.lines()
        .find(|l| l.contains("OID") || l.contains("NIST"))
        .map_or_else(
            || text.lines().next().unwrap_or_default().to_string(),
            str::to_string,
        )
}

#[test]
fn c17_ec_and_rsa_keys_are_pkcs8_private_key_through_pfx_and_pem() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    for (alg, expect) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "prime256v1"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "secp384r1"),
        (&rcgen::PKCS_ECDSA_P521_SHA512, "secp521r1"),
        (&rcgen::PKCS_RSA_SHA256, "Private-Key: (2048 bit"),
    ] {
        let pki = Pki::new(alg, true);
        let pfx = openssl_pfx(
            dir.path(),
            &pki.leaf,
            &[&pki.leaf, &pki.inter, &pki.root],
            &[],
        );
        let from_pfx = pfx_to_pem(&pfx, "").expect("pfx converts");
        check_key_and_chain(&from_pfx, &pki.chain(), &pki.leaf);
        assert!(
            key_type_line(dir.path(), &from_pfx).contains(expect),
            "{expect}"
        );

        let traditional = traditional_key(dir.path(), &pki.leaf);
        let bundle = format!(
            "{traditional}{}{}{}",
            pki.leaf.pem(),
            pki.inter.pem(),
            pki.root.pem()
        );
        let from_pem = pem_bundle_normalise(bundle.as_bytes())
            .expect("pem converts")
            .expect("holds a certificate");
        check_key_and_chain(&from_pem, &pki.chain(), &pki.leaf);
        assert!(
            key_type_line(dir.path(), &from_pem).contains(expect),
            "{expect}"
        );
    }
}

#[test]
fn c17_sec1_key_without_public_point_or_with_parameters_block_is_converted() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    for (alg, curve) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "prime256v1"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "secp384r1"),
    ] {
        let ca = root("CA");
        let leaf = issued_with(alg, "leaf", false, true, &ca);
        let (bare, _) = openssl(dir.path(), &["ec", "-no_public"], leaf.key_pem().as_bytes());
        assert!(
            bare.starts_with("-----BEGIN EC PRIVATE KEY-----"),
            "fixture"
        );
        let (params, _) = openssl(dir.path(), &["ecparam", "-name", curve], b"");
        let bundle = format!("{params}{bare}{}{}", leaf.pem(), ca.pem());
        let out = pem_bundle_normalise(bundle.as_bytes())
            .expect("converts")
            .expect("holds a certificate");
        check_key_and_chain(&out, &[leaf.der(), ca.der()], &leaf);

        // Without the certificate that tells the curve, the key is refused
        // rather than guessed.
        let other = root("someone else");
        let bundle = format!("{bare}{}", other.pem());
        assert_eq!(
            pem_bundle_normalise(bundle.as_bytes()).map(|o| o.is_some()),
            Err(ConvertError::UnknownCurve { position: 0 })
        );
    }
}

// ------------------------------------------------------------------- C18 --

#[test]
fn c18_public_keys_and_certificates_parse_with_openssl() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    for alg in ALL_KEY_ALGS {
        let m = root_with_alg(alg);
        let spki = rcgen::PublicKeyData::subject_public_key_info(&m.key);
        let (_, info) =
            <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(&spki)
            .expect("fixture SPKI");
        let jwk = match info.parsed().expect("fixture key") {
            x509_parser::public_key::PublicKey::RSA(k) => Jwk {
                kty: "RSA".into(),
                n: Some(k.modulus.to_vec()),
                e: Some(k.exponent.to_vec()),
                ..Jwk::default()
            },
            x509_parser::public_key::PublicKey::EC(p) => {
                let raw = p.data();
                let half = (raw.len() - 1) / 2;
                let crv = match half {
                    32 => "P-256",
                    48 => "P-384",
                    _ => "P-521",
                };
                Jwk {
                    kty: "EC-HSM".into(),
                    crv: Some(crv.into()),
                    x: Some(raw[1..=half].to_vec()),
                    y: Some(raw[1 + half..].to_vec()),
                    ..Jwk::default()
                }
            }
            _ => panic!("fixture"),
        };
        let pem = jwk_to_spki_pem(&jwk).expect("converts");
        let der = openssl_bytes(
            dir.path(),
            &["pkey", "-pubin", "-outform", "DER"],
            pem.as_bytes(),
        );
        assert_eq!(der, spki, "openssl reads back the same SPKI");

        let cert_pem = cert_der_to_pem(&m.der()).expect("cert converts");
        assert_eq!(cert_pem, m.pem(), "one CERTIFICATE block, Go layout");
        let der = openssl_bytes(
            dir.path(),
            &["x509", "-outform", "DER"],
            cert_pem.as_bytes(),
        );
        assert_eq!(der, m.der());
    }
}

fn root_with_alg(alg: &'static SignatureAlgorithm) -> Made {
    super::fixture::root_with(alg, "key holder")
}

#[test]
fn c18_cert_der_to_pem_rejects_what_is_not_one_certificate() {
    let m = root("r");
    let mut trailing = m.der();
    trailing.push(0);
    for bad in [&b""[..], b"\x30\x03\x02\x01\x01", &trailing, m.key_der()] {
        assert_eq!(
            cert_der_to_pem(bad),
            Err(ConvertError::MalformedCertificate { position: 0 })
        );
    }
}

// ------------------------------------------------------------------- C19 --

#[test]
fn c19_pem_to_pfx_opens_without_legacy_and_holds_the_key_and_chain() {
    require_openssl!();
    let dir = TempDir::new().expect("tempdir");
    let d = dir.path();
    for alg in [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384] {
        let pki = Pki::new(alg, false);
        let pem = format!(
            "{}{}{}{}",
            pki.root.pem(),
            pki.leaf.pem(),
            pki.leaf.key_pem(),
            pki.inter.pem()
        );
        let pfx = pem_to_pfx(pem.as_bytes()).expect("converts");
        write(d, "out.pfx", pfx.expose());

        let (_, info) = openssl(
            d,
            &[
                "pkcs12", "-info", "-noout", "-in", "out.pfx", "-passin", "pass:",
            ],
            b"",
        );
        for want in [
            "MAC: sha256, Iteration 2048",
            "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
            "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
        ] {
            assert!(info.contains(want), "missing {want:?} in:\n{info}");
        }

        let (dump, _) = openssl(
            d,
            &["pkcs12", "-in", "out.pfx", "-passin", "pass:", "-nodes"],
            b"",
        );
        let blocks = pem::parse_many(&dump).expect("openssl output is PEM");
        let keys: Vec<_> = blocks.iter().filter(|b| b.tag() == "PRIVATE KEY").collect();
        assert_eq!(keys.len(), 1, "one key");
        assert_eq!(keys[0].contents(), pki.leaf.key_der(), "the key we put in");
        let certs: Vec<Vec<u8>> = blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .collect();
        let (mut got, mut want) = (certs.clone(), pki.chain());
        got.sort();
        want.sort();
        assert_eq!(got, want, "all three certificates");
        write(d, "dump.pem", dump.as_bytes());
        let (key_pub, _) = openssl(d, &["pkey", "-in", "dump.pem", "-pubout"], b"");
        let (leaf_pub, _) = openssl(d, &["x509", "-pubkey", "-noout"], pki.leaf.pem().as_bytes());
        assert_eq!(key_pub, leaf_pub);

        // And back: the PFX reads as the normalised PEM.
        let back = pfx_to_pem(pfx.expose(), "").expect("reads back");
        let normalised = pem_bundle_normalise(pem.as_bytes())
            .expect("normalises")
            .expect("has certs");
        assert_eq!(back, normalised);
        check_key_and_chain(&back, &pki.chain(), &pki.leaf);
    }
}

#[test]
fn c19_pem_to_pfx_needs_exactly_one_key_and_a_certificate() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let other = root("other");
    let certs = format!("{}{}", pki.leaf.pem(), pki.root.pem());
    assert_eq!(
        pem_to_pfx(certs.as_bytes()).map(|_| ()),
        Err(ConvertError::NoPrivateKey)
    );
    let two = format!("{}{}{certs}", pki.leaf.key_pem(), other.key_pem());
    assert_eq!(
        pem_to_pfx(two.as_bytes()).map(|_| ()),
        Err(ConvertError::TooManyPrivateKeys)
    );
    assert_eq!(
        pem_to_pfx(pki.leaf.key_pem().as_bytes()).map(|_| ()),
        Err(ConvertError::NoCertificate)
    );
}

// ------------------------------------------------------------------- C20 --

#[test]
fn c20_pfx_errors_say_what_failed() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    assert_eq!(
        pfx_to_pem(b"hello world!", "").map(|_| ()),
        Err(ConvertError::NotPkcs12)
    );
    assert_eq!(
        pfx_to_pem(pki.leaf.pem().as_bytes(), "").map(|_| ()),
        Err(ConvertError::NotPkcs12)
    );
    let mut store = KeyStore::new();
    store.add_entry(
        "k",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            b"k".to_vec(),
            PrivateKey::from_der(pki.leaf.key_der()).expect("key"),
            [Certificate::from_der(&pki.leaf.der()).expect("cert")],
        )),
    );
    let with_password = store.writer("not-empty").write().expect("pfx");
    assert_eq!(
        pfx_to_pem(&with_password, "").map(|_| ()),
        Err(ConvertError::Pkcs12Integrity)
    );
    assert!(pfx_to_pem(&with_password, "not-empty").is_ok());
    let empty = KeyStore::new().writer("").write().expect("pfx");
    assert_eq!(
        pfx_to_pem(&empty, "").map(|_| ()),
        Err(ConvertError::NoCertificate)
    );
}

#[test]
fn c20_pfx_without_key_gives_the_certificates_in_order() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let mut store = KeyStore::new();
    for (alias, m) in [("a", &pki.root), ("b", &pki.leaf), ("c", &pki.inter)] {
        let cert = Certificate::from_der(&m.der()).expect("cert");
        store.add_entry(alias, KeyStoreEntry::Certificate(cert));
    }
    let pfx = store.writer("").write().expect("pfx");
    let out = pfx_to_pem(&pfx, "").expect("converts");
    let blocks = pem::parse_many(out.expose()).expect("pem");
    let ders: Vec<Vec<u8>> = blocks.iter().map(|b| b.contents().to_vec()).collect();
    assert!(blocks.iter().all(|b| b.tag() == "CERTIFICATE"));
    assert_eq!(ders, pki.chain());
}

// ------------------------------------------------ PEM secrets, DESIGN §4 --

#[test]
fn pem_without_a_certificate_is_left_as_is() {
    let key_only = root("r").key_pem();
    for input in [
        &b"hello world!"[..],
        b"",
        b"\xff\xfe\x00binary",
        key_only.as_bytes(),
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN FOO-----\n!!!\n-----END BAR-----\n",
    ] {
        assert_eq!(pem_bundle_normalise(input).map(|o| o.is_some()), Ok(false));
    }
}

#[test]
fn pem_bundle_errors_name_the_block() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let cert = pki.leaf.pem();
    let key = pki.leaf.key_pem();
    let cases = [
        (
            format!("{cert}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
            ConvertError::UnsupportedPemBlock {
                label: "X509 CRL".into(),
                position: 1,
            },
        ),
        (
            format!(
                "{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            ),
            ConvertError::EncryptedPrivateKey { position: 1 },
        ),
        (
            format!(
                "{key}{cert}-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                 DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
                 -----END RSA PRIVATE KEY-----\n"
            ),
            ConvertError::EncryptedPrivateKey { position: 2 },
        ),
        (
            format!("{key}{cert}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            ConvertError::MalformedCertificate { position: 2 },
        ),
        (
            format!("{cert}-----BEGIN CERTIFICATE-----\n!!notbase64\n-----END CERTIFICATE-----\n"),
            ConvertError::MalformedPem,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            pem_bundle_normalise(input.as_bytes()).map(|o| o.is_some()),
            Err(want.clone())
        );
        assert_eq!(pem_to_pfx(input.as_bytes()).map(|_| ()), Err(want));
    }
}

#[test]
fn errors_and_outputs_never_show_input_bytes() {
    use base64::Engine;
    let canary = b"CANARY-hunter2-CANARY-hunter2-CANARY-hunter2";
    let b64 = base64::engine::general_purpose::STANDARD.encode(canary);
    let cert = root("r").pem();
    let inputs = [
        format!("{cert}-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
        format!("{cert}-----BEGIN RSA PRIVATE KEY-----\n{b64}\n-----END RSA PRIVATE KEY-----\n"),
        format!("{cert}-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n"),
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
    ];
    for input in &inputs {
        let err = pem_bundle_normalise(input.as_bytes()).expect_err("refused");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("CANARY") && !shown.contains("hunter2") && !shown.contains(&b64[..16]),
            "{shown}"
        );
        let err = pfx_to_pem(input.as_bytes(), "").expect_err("refused");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("CANARY") && !shown.contains(&b64[..16]),
            "{shown}"
        );
    }
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let out = pem_bundle_normalise(format!("{}{}", pki.leaf.key_pem(), pki.leaf.pem()).as_bytes())
        .expect("ok")
        .expect("some");
    let shown = format!("{out:?}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
}

#[test]
fn output_is_exactly_sized_and_ends_with_a_newline() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256, true);
    let out = pem_bundle_normalise(
        format!("{}{}{}", pki.root.pem(), pki.leaf.pem(), pki.leaf.key_pem()).as_bytes(),
    )
    .expect("ok")
    .expect("some");
    let text = std::str::from_utf8(out.expose()).expect("ascii");
    let expected = format!("{}{}{}", pki.leaf.key_pem(), pki.leaf.pem(), pki.root.pem());
    assert_eq!(text, expected);
    assert!(text.ends_with("-----END CERTIFICATE-----\n"));
}
