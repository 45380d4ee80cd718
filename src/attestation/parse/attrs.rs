//! Attributes and namespaces of the attestation reader (as the billing
//! reader judges them: the two schemas have no attribute and no target
//! namespace).
//!
//! In: a start tag whose syntax the lexer already checked. Out: the
//! namespace declarations in scope, the element's name as the schema sees
//! it, a message for an attribute the schema does not allow, or a fatal
//! error for a namespace error (an undeclared prefix, an empty prefixed
//! declaration), as libxml2 reports them. All of them are A01.

use super::{fatal, ItemSink, State, XSI_NS};
use crate::xml::{self, lexer::Tag};

impl<S: ItemSink> State<'_, S> {
    /// Checks the attributes of an element: only namespace declarations and
    /// the `xsi:` schema-location hints are allowed. Returns a message
    /// for an attribute the schema does not allow.
    pub(super) fn attributes(
        &mut self,
        tag: &Tag<'_>,
        line: u64,
        depth: usize,
    ) -> Result<Option<String>, (u64, String)> {
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
                self.ns.push((depth, Vec::new(), value));
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                if value.is_empty() {
                    return fatal(line, "un préfixe d'espace de noms ne peut pas être déclaré vide");
                }
                self.ns.push((depth, p.to_vec(), value));
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

    pub(super) fn resolve(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.ns
            .iter()
            .rev()
            .find(|(_, p, _)| p == prefix)
            .map(|(_, _, u)| u.as_slice())
    }

    /// The element's name as the schema sees it: `None` when it is in a
    /// namespace (the schema has no target namespace: never valid).
    pub(super) fn local_name<'n>(&self, name: &'n [u8], line: u64) -> Result<Option<&'n [u8]>, (u64, String)> {
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
