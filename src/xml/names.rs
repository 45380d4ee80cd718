//! Attributes and namespaces, as both readers of the project's schemas
//! judge them (neither schema has an attribute or a target namespace).
//!
//! In: an element's start tag, its line and depth. Out: the namespace
//! declarations it makes (kept in scope until [`Namespaces::close`]), the
//! first attribute the schema does not allow (only namespace declarations
//! and the `xsi:` schema-location hints are), or a fatal error for a
//! namespace error (an undeclared prefix, an empty prefixed declaration),
//! as libxml2 reports them. The readers turn these into their own codes
//! (F02/F01 for billing files, A01 for attestation files).

use crate::xml::{self, lexer::Tag};

const XSI_NS: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";

/// Namespace declarations in scope: (depth, prefix, uri). Empty prefix:
/// the default namespace.
#[derive(Debug, Default)]
pub struct Namespaces(Vec<(usize, Vec<u8>, Vec<u8>)>);

fn fatal<T>(line: u64, msg: impl Into<String>) -> Result<T, (u64, String)> {
    Err((line, msg.into()))
}

impl Namespaces {
    /// Checks the attributes of an element: only namespace declarations and
    /// the `xsi:` schema-location hints are allowed. Returns a message
    /// for an attribute the schema does not allow (the caller's code: F02,
    /// A01), and an error (line, message) for a namespace error.
    pub fn attributes(&mut self, tag: &Tag<'_>, line: u64, depth: usize) -> Result<Option<String>, (u64, String)> {
        if !tag.has_attributes() {
            return Ok(None);
        }
        let mut refused = None;
        let mut attrs: Vec<&[u8]> = Vec::new();
        // The lexer checked the syntax (quotes, duplicates, references);
        // what is left is namespaces and what the schema allows.
        for (key, raw) in tag.attributes() {
            if !xml::is_qname(key) {
                return fatal(
                    line,
                    format!("nom d'attribut invalide : {}", String::from_utf8_lossy(key)),
                );
            }
            let value = attribute_value(raw).map_err(|m| (line, m))?;
            // Namespace declarations apply to the element's own attributes,
            // whatever their order: record them before resolving prefixes.
            if key == b"xmlns" {
                self.0.push((depth, Vec::new(), value));
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                if value.is_empty() {
                    return fatal(line, "un préfixe d'espace de noms ne peut pas être déclaré vide");
                }
                self.0.push((depth, p.to_vec(), value));
            } else {
                attrs.push(key);
            }
        }
        for k in attrs {
            match memchr::memchr(b':', k) {
                None => {
                    refused.get_or_insert_with(|| not_allowed(k));
                }
                Some(i) => {
                    let (prefix, local) = (&k[..i], &k[i + 1..]);
                    if prefix == b"xml" {
                        refused.get_or_insert_with(|| not_allowed(k));
                        continue;
                    }
                    match self.resolve(prefix) {
                        None => return fatal(line, undeclared(prefix)),
                        Some(uri)
                            if uri == XSI_NS
                                && (local == b"noNamespaceSchemaLocation" || local == b"schemaLocation") => {}
                        Some(_) => {
                            refused.get_or_insert_with(|| not_allowed(k));
                        }
                    }
                }
            }
        }
        Ok(refused)
    }

    pub fn resolve(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(_, p, _)| p == prefix)
            .map(|(_, _, u)| u.as_slice())
    }

    /// The element's name as the schema sees it: `None` when it is in a
    /// namespace (the schema has no target namespace: never valid).
    pub fn local_name<'n>(&self, name: &'n [u8], line: u64) -> Result<Option<&'n [u8]>, (u64, String)> {
        if let Some(i) = memchr::memchr(b':', name) {
            let prefix = &name[..i];
            if prefix == b"xml" || self.resolve(prefix).is_some() {
                return Ok(None);
            }
            return fatal(line, undeclared(prefix));
        }
        match self.resolve(b"") {
            Some(uri) if !uri.is_empty() => Ok(None),
            _ => Ok(Some(name)),
        }
    }

    /// Forgets the declarations of the elements deeper than `depth` (the
    /// element at `depth + 1` has just ended).
    pub fn close(&mut self, depth: usize) {
        while self.0.last().is_some_and(|(d, _, _)| *d > depth) {
            self.0.pop();
        }
    }
}

fn not_allowed(attribute: &[u8]) -> String {
    format!("attribut « {} » non permis", String::from_utf8_lossy(attribute))
}

fn undeclared(prefix: &[u8]) -> String {
    format!(
        "préfixe d'espace de noms non déclaré : {}",
        String::from_utf8_lossy(prefix)
    )
}

/// Decodes an attribute value: references resolved, `<` refused.
fn attribute_value(raw: &[u8]) -> Result<Vec<u8>, String> {
    if memchr::memchr(b'<', raw).is_some() {
        return Err("« < » interdit dans une valeur d'attribut".into());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'&', rest) {
        out.extend_from_slice(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = memchr::memchr(b';', after) else {
            return Err("« & » isolé dans une valeur d'attribut".into());
        };
        let c = xml::resolve_reference(&after[..j]).ok_or_else(|| {
            format!(
                "entité inconnue &{}; dans une valeur d'attribut",
                String::from_utf8_lossy(&after[..j])
            )
        })?;
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        rest = &after[j + 1..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}
