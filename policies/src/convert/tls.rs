//! An upstream's `tls:` block: the server name, verification, and a private CA bundle.
//!
//! The bundle is the one file besides the policy files that loading reads: a missing,
//! unreadable or non-PEM bundle is reported where `ca:` is written (so `poolgate check` finds
//! it), not when the proxy first connects. What is checked here is the shape: PEM
//! `CERTIFICATE` blocks whose base64 decodes to one DER structure each. The proxy parses the
//! certificates themselves when it builds the pool.

use super::Ctx;
use crate::file::{S, UpstreamTlsFile};
use crate::model::UpstreamTls;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest bundle read (a distribution's whole system bundle is about 200 KiB).
const MAX_CA_BYTES: u64 = 4 * 1024 * 1024;

pub(super) fn upstream_tls(ctx: &mut Ctx<'_>, t: &UpstreamTlsFile, key: &str) -> UpstreamTls {
    let sni = t
        .sni
        .as_ref()
        .and_then(|s| ctx.text(s, &format!("{key}.sni")));
    let verify = t.verify.as_ref().is_none_or(|v| v.value);
    let ca =
        t.ca.as_ref()
            .and_then(|s| ca_bundle(ctx, s, &format!("{key}.ca")));
    if let (Some(ca), false) = (&t.ca, verify) {
        ctx.push(
            ctx.diag(
                &ca.referenced,
                &format!("{key}.ca"),
                "`ca` is never used: `verify` is false",
            )
            .help("remove `verify: false` to verify the upstream against this CA"),
        );
    }
    UpstreamTls { sni, verify, ca }
}

/// The bundle's path, resolved and checked; `None` (with a diagnostic) when unusable.
fn ca_bundle(ctx: &mut Ctx<'_>, s: &S, key: &str) -> Option<PathBuf> {
    let written = ctx.text(s, key)?;
    if written.trim().is_empty() {
        ctx.push(
            ctx.diag(&s.referenced, key, "empty `ca` path")
                .help("name a PEM file of CA certificates, e.g. `ca: certs/internal-ca.pem`"),
        );
        return None;
    }
    let path = resolve(&ctx.file, &written);
    let problem = match read_limited(&path, MAX_CA_BYTES) {
        Ok(bytes) => check_pem(&bytes).err(),
        Err(e) => Some(e),
    };
    match problem {
        None => Some(path),
        Some(problem) => {
            ctx.push(
                ctx.diag(
                    &s.referenced,
                    key,
                    format!("CA bundle `{}`: {problem}", path.display()),
                )
                .help(
                    "name a PEM file of CA certificates (`-----BEGIN CERTIFICATE-----`); a \
                     relative path is read from the directory of this policy file",
                ),
            );
            None
        }
    }
}

/// `written` as is when absolute, else relative to the directory of the policy file `file`
/// (as includes are).
pub(crate) fn resolve(file: &str, written: &str) -> PathBuf {
    let p = Path::new(written);
    match Path::new(file).parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// A file the policy names besides itself (a CA bundle, a signing key): a regular file of at
/// most `max` bytes, or the problem in words.
pub(super) fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    // Looked at before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    let too_large = || format!("larger than {max} bytes");
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read it: {e}"))?;
    // It may have grown since it was looked at.
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Whether `bytes` is PEM text of one or more certificates (text between blocks is allowed,
/// as in system bundles; blocks of any other kind are not).
fn check_pem(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not PEM text".to_owned())?;
    let mut count = 0usize;
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        count += 1;
        if label != "CERTIFICATE" {
            return Err(format!(
                "block {count} is `{label}`, not `CERTIFICATE` (a CA bundle holds certificates only)"
            ));
        }
        let end = format!("-----END {label}-----");
        let mut b64 = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            b64.push_str(l);
        }
        if !closed {
            return Err(format!("certificate {count} has no `{end}` line"));
        }
        let der = base64_decode(&b64)
            .ok_or_else(|| format!("certificate {count} is not valid base64"))?;
        if !is_one_der_sequence(&der) {
            return Err(format!("certificate {count} is not a DER certificate"));
        }
    }
    if count == 0 {
        return Err("no PEM certificate in it".to_owned());
    }
    Ok(())
}

/// Standard base64 with optional `=` padding; `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        // Only the bits not yet written out matter: at most 6 + 6 of them.
        acc = ((acc << 6) | u32::from(v)) & 0xfff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    // Leftover bits are padding and must be zero; a lone sixth of a byte is not base64.
    (bits < 6 && acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// Whether `der` is exactly one DER SEQUENCE (what every X.509 certificate is).
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, rest) = if *first < 0x80 {
        (usize::from(*first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return false;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    len > 0 && rest.len() == len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_junk() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("TQ===").is_none());
        assert!(base64_decode("T").is_none());
        assert!(base64_decode("TR==").is_none(), "non-zero padding bits");
        assert!(base64_decode("TW-u").is_none());
    }

    #[test]
    fn der_sequence_lengths() {
        assert!(is_one_der_sequence(&[0x30, 0x01, 0x00]));
        assert!(!is_one_der_sequence(&[0x30, 0x02, 0x00]));
        assert!(!is_one_der_sequence(&[0x31, 0x01, 0x00]));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0u8, 256));
        assert!(is_one_der_sequence(&long));
        long.push(0);
        assert!(!is_one_der_sequence(&long));
        assert!(!is_one_der_sequence(&[0x30, 0x80]));
        assert!(!is_one_der_sequence(&[]));
    }

    #[test]
    fn pem_shapes() {
        let cert = "-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE-----\n";
        assert!(check_pem(cert.as_bytes()).is_ok());
        let bundle = format!("# Issuer: test\n{cert}\n{cert}");
        assert!(check_pem(bundle.as_bytes()).is_ok());
        assert!(
            check_pem(b"hello")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(
            check_pem(&[0xff, 0xfe])
                .unwrap_err()
                .contains("not PEM text")
        );
        let key = "-----BEGIN PRIVATE KEY-----\nMAEA\n-----END PRIVATE KEY-----\n";
        assert!(
            check_pem(key.as_bytes())
                .unwrap_err()
                .contains("`PRIVATE KEY`")
        );
        let open = "-----BEGIN CERTIFICATE-----\nMAEA\n";
        assert!(
            check_pem(open.as_bytes())
                .unwrap_err()
                .contains("no `-----END")
        );
        let junk = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(check_pem(junk.as_bytes()).unwrap_err().contains("base64"));
    }

    #[test]
    fn relative_paths_follow_the_policy_file() {
        assert_eq!(
            resolve("/etc/poolgate/policy.yaml", "ca.pem"),
            PathBuf::from("/etc/poolgate/ca.pem")
        );
        assert_eq!(
            resolve("/etc/poolgate/policy.yaml", "/srv/ca.pem"),
            PathBuf::from("/srv/ca.pem")
        );
        assert_eq!(resolve("policy.yaml", "ca.pem"), PathBuf::from("ca.pem"));
    }

    #[test]
    fn a_loaded_policy_carries_resolved_bundle_and_listener_paths() {
        let dir = std::env::temp_dir().join(format!("poolgate-ca-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("parts")).unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nMAEA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.join("ca.pem"), cert).unwrap();
        std::fs::write(dir.join("parts/ca.pem"), cert).unwrap();
        std::fs::write(
            dir.join("policy.yaml"),
            "version: 1\ninclude: [parts/more.yaml]\nlisten:\n  - { address: \"127.0.0.1:8443\", tls: { cert: tls/cert.pem, key: /srv/key.pem } }\nupstreams:\n  a: { targets: [\"h:1\"], tls: { ca: ca.pem } }\n",
        )
        .unwrap();
        // An included file's relative paths are read from its own directory.
        std::fs::write(
            dir.join("parts/more.yaml"),
            "upstreams:\n  b: { targets: [\"h:1\"], tls: { ca: ca.pem } }\n",
        )
        .unwrap();
        let config = crate::load(dir.join("policy.yaml")).unwrap_or_else(|d| panic!("{d}"));
        let ca = |name: &str| {
            let up = config.upstreams.iter().find(|u| u.name == name).unwrap();
            up.tls.as_ref().unwrap().ca.clone().unwrap()
        };
        assert_eq!(ca("a"), dir.join("ca.pem"));
        assert_eq!(ca("b"), dir.join("parts/ca.pem"));
        // A listener's certificate and key follow the same rule.
        let tls = config.listeners[0].tls.clone().unwrap();
        assert_eq!(tls.cert, dir.join("tls/cert.pem"));
        assert_eq!(tls.key, PathBuf::from("/srv/key.pem"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
