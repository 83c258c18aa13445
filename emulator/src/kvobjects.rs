//! The Key Vault data plane for keys and certificates: GET of a version, of the current
//! version, of version listings and object listings, and of a certificate's policy.
//!
//! Bodies have the shapes the official SDK crates (`azure_security_keyvault_keys` and
//! `azure_security_keyvault_certificates` 1.x) parse: a key bundle `{"key": JWK,
//! "attributes", "tags", "managed"?}` whose JWK carries only public members, and a
//! certificate bundle `{"id","kid","sid","x5t","cer","attributes","policy","tags"}`. Access checks,
//! faults and counters happen in [`crate::keyvault`] before these are called.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::StatusCode;
use serde_json::{Map, Value, json};
use sha1::{Digest as _, Sha1};

use crate::keyvault::{Collection, attributes, bad_name, disabled, next_link, not_found, paging};
use crate::objects::{CertVersion, KeyMaterial, KeyVersion, StoredCert, StoredKey};
use crate::respond::{Req, Resp, json};
use crate::state::{Vault, valid_secret_name};

/// `name` or `name/version`, as not-found messages name an object.
fn object_id(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    }
}

fn key_attributes(v: &KeyVersion) -> Value {
    let mut map = attributes(v.enabled, v.created, v.updated);
    map.insert("exportable".to_owned(), Value::Bool(v.exportable));
    if let Some(nbf) = v.not_before {
        map.insert("nbf".to_owned(), json!(nbf));
    }
    if let Some(exp) = v.expires {
        map.insert("exp".to_owned(), json!(exp));
    }
    Value::Object(map)
}

/// `{"kid", "attributes", "tags", "managed"?}`, the key properties of listings.
fn key_properties(kid: String, key: &StoredKey, v: &KeyVersion) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("kid".to_owned(), Value::String(kid));
    map.insert("attributes".to_owned(), key_attributes(v));
    map.insert("tags".to_owned(), json!(v.tags));
    if key.managed {
        map.insert("managed".to_owned(), Value::Bool(true));
    }
    map
}

/// The key bundle: properties without `kid`, plus the JWK under `key`.
fn key_bundle(host: &str, key: &StoredKey, v: &KeyVersion) -> Value {
    let kid = format!("https://{host}/keys/{}/{}", key.name, v.id);
    let mut jwk = Map::new();
    jwk.insert("kid".to_owned(), Value::String(kid.clone()));
    jwk.insert("kty".to_owned(), Value::String(v.kty.clone()));
    jwk.insert("key_ops".to_owned(), json!(v.key_ops));
    if let KeyMaterial::Public(public) = &v.material {
        public.jwk_members(&mut jwk);
    }
    let mut map = key_properties(kid, key, v);
    map.remove("kid");
    map.insert("key".to_owned(), Value::Object(jwk));
    if let Some(release) = &v.release {
        map.insert(
            "release_policy".to_owned(),
            crate::release::policy_member(release),
        );
    }
    Value::Object(map)
}

pub(crate) fn get_key(host: &str, vault: &Vault, name: &str, version: Option<&str>) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Keys, name);
    }
    let Some(key) = vault.key(name) else {
        return not_found(Collection::Keys, name);
    };
    let found = match version {
        Some(id) => key.version(id),
        None => key.latest(),
    };
    let Some(found) = found else {
        return not_found(Collection::Keys, &object_id(name, version));
    };
    if !found.enabled {
        return disabled(Collection::Keys);
    }
    tracing::debug!(vault = %vault.name, key = %key.name, version = %found.id, "key read");
    json(StatusCode::OK, &key_bundle(host, key, found))
}

pub(crate) fn list_key_versions(req: &Req, host: &str, vault: &Vault, name: &str) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Keys, name);
    }
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let Some(key) = vault.key(name) else {
        return not_found(Collection::Keys, name);
    };
    let items: Vec<Value> = key
        .versions
        .iter()
        .skip(skip)
        .take(max)
        .map(|v| {
            Value::Object(key_properties(
                format!("https://{host}/keys/{}/{}", key.name, v.id),
                key,
                v,
            ))
        })
        .collect();
    let base = format!("/keys/{}/versions", key.name);
    let next = next_link(
        req,
        host,
        &base,
        max,
        skip.saturating_add(max),
        key.versions.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}

pub(crate) fn list_keys(req: &Req, host: &str, vault: &Vault) -> Resp {
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let items: Vec<Value> = vault
        .keys
        .values()
        .filter_map(|k| k.latest().map(|v| (k, v)))
        .skip(skip)
        .take(max)
        .map(|(k, v)| {
            Value::Object(key_properties(
                format!("https://{host}/keys/{}", k.name),
                k,
                v,
            ))
        })
        .collect();
    let next = next_link(
        req,
        host,
        "/keys",
        max,
        skip.saturating_add(max),
        vault.keys.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}

fn cert_attributes(v: &CertVersion) -> Value {
    let mut map = attributes(v.enabled, v.created, v.updated);
    map.insert("nbf".to_owned(), json!(v.facts.not_before));
    map.insert("exp".to_owned(), json!(v.facts.not_after));
    Value::Object(map)
}

/// `x5t`: the SHA-1 thumbprint of the leaf's DER, base64url without padding, as Key
/// Vault reports it on certificate bundles and listing items.
fn x5t(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha1::digest(der))
}

/// `{"id", "x5t", "attributes", "tags"}`, the certificate properties of listings.
fn cert_properties(id: String, v: &CertVersion) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("id".to_owned(), Value::String(id));
    map.insert("x5t".to_owned(), Value::String(x5t(&v.facts.der)));
    map.insert("attributes".to_owned(), cert_attributes(v));
    map.insert("tags".to_owned(), json!(v.tags));
    map
}

/// The certificate policy Key Vault reports for an imported certificate.
fn policy(host: &str, cert: &StoredCert, v: &CertVersion) -> Value {
    let facts = &v.facts;
    let mut key_props = Map::new();
    key_props.insert("exportable".to_owned(), Value::Bool(true));
    key_props.insert("kty".to_owned(), Value::String(facts.key.kty().to_owned()));
    key_props.insert("key_size".to_owned(), json!(facts.key.bits()));
    if let crate::material::PublicParams::Ec { crv, .. } = &facts.key.params {
        key_props.insert("crv".to_owned(), Value::String((*crv).to_owned()));
    }
    key_props.insert("reuse_key".to_owned(), Value::Bool(false));
    let mut sans = Map::new();
    for (field, values) in [
        ("dns_names", &facts.dns_names),
        ("emails", &facts.emails),
        ("uris", &facts.uris),
    ] {
        if !values.is_empty() {
            sans.insert(field.to_owned(), json!(values));
        }
    }
    let mut x509 = Map::new();
    x509.insert("subject".to_owned(), Value::String(facts.subject.clone()));
    if !sans.is_empty() {
        x509.insert("sans".to_owned(), Value::Object(sans));
    }
    x509.insert("ekus".to_owned(), json!(facts.ekus));
    x509.insert("key_usage".to_owned(), json!(facts.key_usage));
    x509.insert("validity_months".to_owned(), json!(facts.validity_months()));
    json!({
        "id": format!("https://{host}/certificates/{}/policy", cert.name),
        "key_props": key_props,
        "secret_props": { "contentType": v.content_type },
        "x509_props": x509,
        "issuer": { "name": "Unknown" },
        "attributes": { "enabled": true, "created": v.created, "updated": v.updated },
    })
}

fn cert_bundle(host: &str, cert: &StoredCert, v: &CertVersion) -> Value {
    let name = &cert.name;
    let mut map = cert_properties(format!("https://{host}/certificates/{name}/{}", v.id), v);
    map.insert(
        "kid".to_owned(),
        Value::String(format!("https://{host}/keys/{name}/{}", v.id)),
    );
    map.insert(
        "sid".to_owned(),
        Value::String(format!("https://{host}/secrets/{name}/{}", v.id)),
    );
    map.insert(
        "cer".to_owned(),
        Value::String(STANDARD.encode(&v.facts.der)),
    );
    map.insert("policy".to_owned(), policy(host, cert, v));
    if v.preserve_cert_order {
        map.insert("preserveCertOrder".to_owned(), Value::Bool(true));
    }
    Value::Object(map)
}

pub(crate) fn get_certificate(
    host: &str,
    vault: &Vault,
    name: &str,
    version: Option<&str>,
) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Certificates, name);
    }
    let Some(cert) = vault.certificate(name) else {
        return not_found(Collection::Certificates, name);
    };
    let found = match version {
        Some(id) => cert.version(id),
        None => cert.latest(),
    };
    let Some(found) = found else {
        return not_found(Collection::Certificates, &object_id(name, version));
    };
    if !found.enabled {
        return disabled(Collection::Certificates);
    }
    tracing::debug!(vault = %vault.name, certificate = %cert.name, version = %found.id, "certificate read");
    json(StatusCode::OK, &cert_bundle(host, cert, found))
}

pub(crate) fn get_policy(host: &str, vault: &Vault, name: &str) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Certificates, name);
    }
    match vault
        .certificate(name)
        .and_then(|c| c.latest().map(|v| (c, v)))
    {
        Some((cert, v)) => json(StatusCode::OK, &policy(host, cert, v)),
        None => not_found(Collection::Certificates, name),
    }
}

pub(crate) fn list_certificate_versions(req: &Req, host: &str, vault: &Vault, name: &str) -> Resp {
    if !valid_secret_name(name) {
        return bad_name(Collection::Certificates, name);
    }
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let Some(cert) = vault.certificate(name) else {
        return not_found(Collection::Certificates, name);
    };
    let items: Vec<Value> = cert
        .versions
        .iter()
        .skip(skip)
        .take(max)
        .map(|v| {
            Value::Object(cert_properties(
                format!("https://{host}/certificates/{}/{}", cert.name, v.id),
                v,
            ))
        })
        .collect();
    let base = format!("/certificates/{}/versions", cert.name);
    let next = next_link(
        req,
        host,
        &base,
        max,
        skip.saturating_add(max),
        cert.versions.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}

pub(crate) fn list_certificates(req: &Req, host: &str, vault: &Vault) -> Resp {
    let (max, skip) = match paging(req) {
        Ok(p) => p,
        Err(err) => return err.into_resp(),
    };
    let items: Vec<Value> = vault
        .certificates
        .values()
        .filter_map(|c| c.latest().map(|v| (c, v)))
        .skip(skip)
        .take(max)
        .map(|(c, v)| {
            Value::Object(cert_properties(
                format!("https://{host}/certificates/{}", c.name),
                v,
            ))
        })
        .collect();
    let next = next_link(
        req,
        host,
        "/certificates",
        max,
        skip.saturating_add(max),
        vault.certificates.len(),
    );
    json(StatusCode::OK, &json!({ "value": items, "nextLink": next }))
}
