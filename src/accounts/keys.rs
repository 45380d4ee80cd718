//! SSH public keys of provider accounts: an OpenSSH public-key file in, a
//! checked key (algorithm, SHA-256 fingerprint, canonical line) out.
//!
//! Only Ed25519, ECDSA (NIST curves) and RSA of at least 2048 bits are
//! accepted: DSA and short RSA keys are broken or deprecated, and hardware
//! (`sk-`) keys and certificates are not supported by the SFTP server. The
//! stored line is the canonical `<algorithm> <base64>` without its comment,
//! which is kept apart.

use anyhow::{bail, Context, Result};
use russh::keys::ssh_key::{HashAlg, PublicKey};

/// Smallest RSA modulus accepted, in bits.
pub const RSA_MIN_BITS: u32 = 2048;

/// A key ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub algorithm: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `<algorithm> <base64>`, no comment.
    pub openssh: String,
    pub comment: String,
}

/// Reads the one key of a public-key file's text (blank lines and `#`
/// comment lines are skipped).
pub fn parse_file_text(text: &str) -> Result<CheckedKey> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.iter().any(|l| l.starts_with("-----BEGIN")) {
        bail!("this is a private key or a PEM file: give the public key (the .pub file)");
    }
    match lines.as_slice() {
        [] => bail!("no public key found (expected one line such as \"ssh-ed25519 AAAA… comment\")"),
        [one] => parse(one),
        _ => bail!("{} lines found: give one public key per file", lines.len()),
    }
}

/// Checks one OpenSSH public-key line.
pub fn parse(line: &str) -> Result<CheckedKey> {
    let line = line.trim();
    let algo = line.split_whitespace().next().unwrap_or("");
    if algo == "ssh-dss" {
        bail!("DSA keys (ssh-dss) are refused: use an Ed25519 key (ssh-keygen -t ed25519)");
    }
    if line.starts_with("-----BEGIN") {
        bail!("this is a private key or a PEM file: give the public key (the .pub file)");
    }
    let mut key =
        PublicKey::from_openssh(line).with_context(|| format!("not an OpenSSH public key (type {algo:?})"))?;
    let data = key.key_data();
    if data.is_ed25519() || data.is_ecdsa() {
        // accepted as is
    } else if let Some(rsa) = data.rsa() {
        let bits = rsa_bits(rsa.n().as_positive_bytes().unwrap_or(&[]));
        if bits < RSA_MIN_BITS {
            bail!("RSA key of {bits} bits refused: at least {RSA_MIN_BITS} bits are needed (or use Ed25519)");
        }
    } else {
        bail!(
            "{} keys are refused: use Ed25519, ECDSA or RSA of at least {RSA_MIN_BITS} bits",
            key.algorithm().as_str()
        );
    }
    let comment = key.comment().to_string();
    key.set_comment("");
    let openssh = key.to_openssh().context("cannot encode the public key")?;
    Ok(CheckedKey {
        algorithm: key.algorithm().as_str().to_string(),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        openssh: openssh.trim().to_string(),
        comment,
    })
}

/// Exact size of a big-endian modulus, in bits.
fn rsa_bits(n: &[u8]) -> u32 {
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    (n.len() as u32) * 8 - n[0].leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with ssh-keygen; the fingerprint is what `ssh-keygen -l` printed.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOEBmlegQNyuGeR6CxGOWXhO9nLKkTOBa6MRkMzjJl7U alice@example";
    const ED_FP: &str = "SHA256:NPpPf5lo4zfyO/uJ4UriA3KPNdKEEEaSZvaNH/fcehg";
    const EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNvbotDeURWnujtNAdfS/5A3JTE4o6UgrSVp3T1KyRfFsHUKrEGVrwM3EOwlgewMccG9O2NFpfVesc67ZrpJ9w8= ec";
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDhycI/BpYp4cnBDTyRXh8RVO9ZTEk26HB4EmjVKJvqTdZhwSd9k1B30OH+EvXWnMNMe5W0+LZ2JzWdw5VIKMhj5dt5zrZc/5qFRCXdUtFN6RjkJL/POPVv4TEwxAFj75y01y7qdUBh+5hU/9lrkVHty9AbIng1sA+WudM23pZHKQ== r";

    #[test]
    fn ed25519_is_accepted_with_its_fingerprint() {
        let k = parse_file_text(&format!("# my key\n\n{ED}\n")).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.fingerprint, ED_FP);
        assert_eq!(k.comment, "alice@example");
        assert!(!k.openssh.contains("alice"));
        assert_eq!(parse(&k.openssh).unwrap().fingerprint, k.fingerprint);
        assert_eq!(parse(EC).unwrap().algorithm, "ecdsa-sha2-nistp256");
    }

    #[test]
    fn refusals_are_clear() {
        let e = |t: &str| parse_file_text(t).unwrap_err().to_string();
        assert!(e("").contains("no public key"));
        assert!(e(&format!("{ED}\n{ED}\n")).contains("one public key per file"));
        assert!(e("ssh-dss AAAAB3NzaC1kc3MAAACBAP").contains("DSA"));
        assert!(e("-----BEGIN OPENSSH PRIVATE KEY-----").contains("private key"));
        assert!(e("ssh-ed25519 not-base64").contains("not an OpenSSH public key"));
        assert!(e(RSA1024).contains("RSA key of 1024 bits refused"));
    }

    #[test]
    fn rsa_bits_are_exact() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x7f, 0]), 15);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
