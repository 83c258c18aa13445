//! Certificate chain ordering: leaf first, then each issuer up to the root.
//!
//! Links follow RFC 5280 §4.1.2.4/§4.1.2.6 (issuer name = subject name,
//! compared as DER bytes, as Go's `crypto/x509` looks up parents) and, where
//! both are present, §4.2.1.1/§4.2.1.2 (authorityKeyIdentifier.keyIdentifier =
//! subjectKeyIdentifier). A name match whose key identifiers disagree is not a
//! link. Signatures are not verified: ordering is presentation, not trust.
//!
//! Guarantees: the output is a permutation of the input (no certificate is
//! dropped, duplicates are kept), the walk visits each certificate at most
//! once (no loop), a self-signed certificate ends the chain, and certificates
//! that are not on the leaf's chain follow it in their original relative
//! order. Certificates that do not parse are never linked; they keep their
//! place among the rest.

use x509_parser::extensions::ParsedExtension;

use super::key::PublicKey;

/// What the ordering needs from one certificate.
struct Node<'a> {
    subject: &'a [u8],
    issuer: &'a [u8],
    ski: Option<&'a [u8]>,
    aki: Option<&'a [u8]>,
    is_ca: bool,
    der: &'a [u8],
    spki: &'a [u8],
}

impl<'a> Node<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let (mut ski, mut aki) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|id| id.0);
                }
                _ => {}
            }
        }
        Some(Self {
            subject: cert.tbs_certificate.subject.as_raw(),
            issuer: cert.tbs_certificate.issuer.as_raw(),
            ski,
            aki,
            is_ca: cert.is_ca(),
            der,
            spki: cert.tbs_certificate.subject_pki.raw,
        })
    }

    /// Self-signed for ordering purposes: its own issuer by name, and not
    /// contradicted by its key identifiers (a self-issued certificate of a
    /// rolled-over CA key has AKI ≠ SKI and is not a root).
    fn self_signed(&self) -> bool {
        self.subject == self.issuer && !matches!((self.aki, self.ski), (Some(a), Some(s)) if a != s)
    }
}

/// How strongly `parent` is `child`'s issuer: `None` (not at all), `Some(1)`
/// by name only, `Some(2)` by name and matching key identifiers.
fn link(child: &Node<'_>, parent: &Node<'_>) -> Option<u8> {
    if child.issuer != parent.subject || child.der == parent.der {
        return None;
    }
    match (child.aki, parent.ski) {
        (Some(a), Some(s)) if a == s => Some(2),
        (Some(_), Some(_)) => None,
        _ => Some(1),
    }
}

/// Orders DER certificates: leaf first, then its issuers, then the rest in
/// their original order. See the module documentation for the rules.
///
/// The leaf is the certificate that issues no other certificate in the set
/// (self-signed children do not count). Among several, an end-entity
/// (non-CA, not self-signed) certificate is preferred, then the first in the
/// original order. With no candidate at all (every certificate issues
/// another, i.e. a loop), the first certificate is the leaf.
pub fn order_chain(certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let order = {
        let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
        order_indices(&refs, None)
    };
    permute(certs, &order)
}

/// Applies `order` (a permutation of `0..items.len()`) to `items`.
pub(super) fn permute<T>(items: Vec<T>, order: &[usize]) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|&i| slots.get_mut(i)?.take())
        .collect()
}

/// The chain order as indices into `certs`. When `key` is given, the first
/// certificate whose public key is that key's is the leaf, whatever else
/// holds.
pub(super) fn order_indices(certs: &[&[u8]], key: Option<&PublicKey>) -> Vec<usize> {
    let nodes: Vec<Option<Node<'_>>> = certs.iter().map(|der| Node::parse(der)).collect();
    let n = nodes.len();
    let issues_another = |i: usize| {
        let Some(parent) = &nodes[i] else {
            return false;
        };
        nodes.iter().enumerate().any(|(j, child)| {
            j != i
                && child
                    .as_ref()
                    .is_some_and(|c| !c.self_signed() && link(c, parent).is_some())
        })
    };

    let by_key = key.and_then(|k| {
        nodes.iter().position(|node| {
            node.as_ref()
                .is_some_and(|c| PublicKey::from_spki(c.spki).as_ref() == Some(k))
        })
    });
    let leaf = by_key.or_else(|| {
        let candidates: Vec<usize> = (0..n)
            .filter(|&i| nodes[i].is_some() && !issues_another(i))
            .collect();
        let end_entity = candidates.iter().copied().find(|&i| {
            nodes[i]
                .as_ref()
                .is_some_and(|c| !c.is_ca && !c.self_signed())
        });
        end_entity
            .or_else(|| candidates.first().copied())
            .or_else(|| (0..n).find(|&i| nodes[i].is_some()))
    });

    let mut used = vec![false; n];
    let mut order = Vec::with_capacity(n);
    if let Some(leaf) = leaf {
        used[leaf] = true;
        order.push(leaf);
        let mut cur = leaf;
        // Each step marks a new certificate as used, so this ends after at
        // most `n` steps.
        while let Some(child) = nodes[cur].as_ref().filter(|c| !c.self_signed()) {
            let mut best: Option<(usize, u8)> = None;
            for (j, parent) in nodes.iter().enumerate() {
                if used[j] {
                    continue;
                }
                let Some(strength) = parent.as_ref().and_then(|p| link(child, p)) else {
                    continue;
                };
                if best.is_none_or(|(_, s)| strength > s) {
                    best = Some((j, strength));
                }
            }
            let Some((next, _)) = best else { break };
            used[next] = true;
            order.push(next);
            cur = next;
        }
    }
    order.extend((0..n).filter(|&i| !used[i]));
    order
}

#[cfg(test)]
mod tests {
    use rcgen::{Issuer, KeyPair};

    use super::super::fixture::{Made, issued, params, root};
    use super::*;

    fn names(out: &[Vec<u8>], all: &[(&str, &Made)]) -> Vec<String> {
        out.iter()
            .map(|d| {
                all.iter()
                    .find(|(_, m)| m.der() == *d)
                    .map_or("?".to_string(), |(n, _)| n.to_string())
            })
            .collect()
    }

    #[test]
    fn root_intermediate_leaf_in_any_order_comes_out_leaf_first() {
        for aki in [false, true] {
            let r = root("root");
            let i = issued("inter", true, aki, &r);
            let l = issued("leaf", false, aki, &i);
            let all = [("root", &r), ("inter", &i), ("leaf", &l)];
            for input in [
                vec![&r, &i, &l],
                vec![&l, &i, &r],
                vec![&i, &r, &l],
                vec![&r, &l, &i],
            ] {
                let out = order_chain(input.iter().map(|m| m.der()).collect());
                assert_eq!(names(&out, &all), ["leaf", "inter", "root"], "aki {aki}");
            }
        }
    }

    #[test]
    fn c16_leaf_without_aki_and_its_ca_are_linked_and_unrelated_keep_order() {
        let ca = root("ca");
        let leaf = issued("leaf", false, false, &ca);
        let u1 = root("unrelated-1");
        let other_ca = root("other-ca");
        let u2 = issued("unrelated-2", false, false, &other_ca);
        let all = [
            ("ca", &ca),
            ("leaf", &leaf),
            ("u1", &u1),
            ("u2", &u2),
            ("other", &other_ca),
        ];
        let input = vec![u1.der(), ca.der(), u2.der(), leaf.der()];
        let out = order_chain(input);
        // `leaf` and `u2` are both candidates; without a key the first
        // end-entity in the input wins, so u2 leads. Nothing is dropped and
        // the unlinked keep their relative order.
        assert_eq!(names(&out, &all), ["u2", "u1", "ca", "leaf"]);

        // With the key known, the leaf is the key's certificate.
        let ders = [u1.der(), ca.der(), u2.der(), leaf.der()];
        let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&leaf.key);
        let key = PublicKey::from_spki(&spki).expect("leaf key");
        let order = order_indices(&refs, Some(&key));
        assert_eq!(order, [3, 1, 0, 2]);
    }

    #[test]
    fn unrelated_certificates_keep_their_original_order() {
        let a = root("a");
        let b = issued("b", false, false, &root("x"));
        let c = issued("c", false, false, &root("y"));
        let all = [("a", &a), ("b", &b), ("c", &c)];
        let out = order_chain(vec![b.der(), a.der(), c.der()]);
        assert_eq!(names(&out, &all), ["b", "a", "c"]);
    }

    #[test]
    fn mismatched_key_identifiers_break_a_name_link() {
        // Two CAs with the same name but different keys: the leaf's AKI
        // names the second, so the first is not its issuer.
        let old = root("ca");
        let new = root("ca");
        let leaf = issued("leaf", false, true, &new);
        let old_ski = Node::parse(old.cert.der()).and_then(|n| n.ski.map(<[u8]>::to_vec));
        let new_ski = Node::parse(new.cert.der()).and_then(|n| n.ski.map(<[u8]>::to_vec));
        assert_ne!(old_ski, new_ski, "fixture: distinct SKIs");
        let all = [("old", &old), ("new", &new), ("leaf", &leaf)];
        let out = order_chain(vec![old.der(), new.der(), leaf.der()]);
        assert_eq!(names(&out, &all), ["leaf", "new", "old"]);
        // With only the wrong CA present, it is not linked: it stays behind
        // an unrelated certificate that came first.
        let other = root("other");
        let all = [("old", &old), ("other", &other), ("leaf", &leaf)];
        let out = order_chain(vec![other.der(), old.der(), leaf.der()]);
        assert_eq!(names(&out, &all), ["leaf", "other", "old"]);
    }

    #[test]
    fn two_certificates_issuing_each_other_terminate_with_nothing_dropped() {
        // a is issued by "b", b is issued by "a".
        let ka = KeyPair::generate().expect("keygen");
        let kb = KeyPair::generate().expect("keygen");
        let pa = params("a", true, false);
        let pb = params("b", true, false);
        let a = pa
            .signed_by(&ka, &Issuer::from_params(&pb, &kb))
            .expect("a");
        let b = pb
            .signed_by(&kb, &Issuer::from_params(&pa, &ka))
            .expect("b");
        let (a, b) = (a.der().to_vec(), b.der().to_vec());
        let extra = root("z").der();
        for input in [
            vec![a.clone(), b.clone()],
            vec![b.clone(), a.clone()],
            vec![extra.clone(), a.clone(), b.clone(), a.clone()],
        ] {
            let out = order_chain(input.clone());
            assert_eq!(out.len(), input.len());
            let mut x = out.clone();
            let mut y = input.clone();
            x.sort();
            y.sort();
            assert_eq!(x, y, "a permutation of the input");
        }
        // With no candidate leaf, the first certificate leads.
        assert_eq!(order_chain(vec![b.clone(), a.clone()]), vec![b, a]);
    }

    #[test]
    fn duplicates_and_garbage_are_kept() {
        let r = root("root");
        let l = issued("leaf", false, false, &r);
        let junk = b"not a certificate".to_vec();
        let input = vec![junk.clone(), r.der(), l.der(), r.der()];
        let out = order_chain(input);
        assert_eq!(out, vec![l.der(), r.der(), junk, r.der()]);
    }

    #[test]
    fn self_signed_certificate_ends_the_chain() {
        // A self-signed "leaf" named like the CA must not pull the CA in.
        let ca = root("ca");
        let lone = root("ca");
        let out = order_chain(vec![ca.der(), lone.der()]);
        assert_eq!(out, vec![ca.der(), lone.der()]);
        assert!(Node::parse(&out[0]).is_some_and(|n| n.self_signed()));
    }

    #[test]
    fn empty_input_is_empty() {
        assert!(order_chain(Vec::new()).is_empty());
    }
}
