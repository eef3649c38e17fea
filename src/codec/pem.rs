//! PEM blocks (RFC 7468): the base64 bodies between BEGIN and END lines. Pure.

use super::base64;

/// The decoded bodies of every `-----BEGIN LABEL-----` block of `text`.
pub fn blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&begin) {
        let after = &rest[i + begin.len()..];
        let Some(j) = after.find(&end) else { break };
        let body: String = after[..j].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::decode(&body) {
            out.push(der);
        }
        rest = &after[j + end.len()..];
    }
    out
}
