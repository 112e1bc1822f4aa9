//! The peers run side by side with poolgate under the same load: nginx with a plain
//! `proxy_pass` (the pass-through reference) and HAProxy 2.6 verifying the bearer token with
//! `jwt_verify` RS256, checking `exp` and a group ACL on every request. Each is a single worker
//! on the proxy CPU, both keep upstream connections alive, as poolgate's pool does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A peer the harness can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    Nginx,
    Haproxy,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Nginx => "nginx",
            Peer::Haproxy => "haproxy",
        }
    }

    /// The installed binary, or why it cannot run.
    pub fn find(self) -> Result<(PathBuf, String), String> {
        let bin = which(self.name()).ok_or_else(|| {
            format!(
                "{0} is not installed: skipped (Debian: `apt-get install {0}`)",
                self.name()
            )
        })?;
        let version = match self {
            Peer::Nginx => Command::new(&bin).arg("-v").output(),
            Peer::Haproxy => Command::new(&bin).arg("-v").output(),
        }
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_default();
        if self == Peer::Haproxy && !haproxy_has_jwt(&version) {
            return Err(format!(
                "{version}: jwt_verify needs HAProxy 2.5 or later: skipped"
            ));
        }
        Ok((bin, version))
    }

    /// Writes the configuration into `dir` and returns the arguments to start it in the foreground.
    pub fn configure(
        self,
        dir: &Path,
        listen: SocketAddr,
        backend: SocketAddr,
        public_key_pem: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let write = |name: &str, text: &str| -> Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        match self {
            Peer::Nginx => {
                let conf = write("nginx.conf", &nginx_conf(dir, listen, backend))?;
                Ok(vec![
                    "-p".into(),
                    dir.display().to_string(),
                    "-e".into(),
                    dir.join("nginx-error.log").display().to_string(),
                    "-c".into(),
                    conf.display().to_string(),
                ])
            }
            Peer::Haproxy => {
                let pem = public_key_pem.ok_or("haproxy needs the issuer's public key")?;
                let key = write("issuer-public.pem", pem)?;
                let conf = write("haproxy.cfg", &haproxy_cfg(listen, backend, &key))?;
                Ok(vec!["-db".into(), "-f".into(), conf.display().to_string()])
            }
        }
    }
}

fn haproxy_has_jwt(version: &str) -> bool {
    // "HAProxy version 2.6.12-1+deb12u4 2025/..." → (2, 6)
    let v = version
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .split(['.', '-'])
        .take(2)
        .map(|p| p.parse::<u32>().unwrap_or(0))
        .collect::<Vec<_>>();
    matches!(v.as_slice(), [major, minor] if (*major, *minor) >= (2, 5))
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One worker, no master, no access log; the upstream keeps up to 128 idle connections.
pub fn nginx_conf(dir: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "# Written by poolgate-bench: nginx proxy_pass, the pass-through reference.\n\
daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
error_log {d}/nginx-error.log warn;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n\
  client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  upstream backend {{ server {backend}; keepalive 128; }}\n\
  server {{\n    listen {listen};\n    location / {{\n      proxy_pass http://backend;\n\
      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    )
}

/// HAProxy 2.6: bearer from `Authorization`, RS256 only, signature by `jwt_verify` against the
/// issuer's public key, `exp` in the future, and one of the groups that may read `/articles/`
/// among the first two of `cognito:groups` (HAProxy 2.6's `jwt_payload_query` returns nothing
/// for a whole array, so elements are read by index).
pub fn haproxy_cfg(listen: SocketAddr, backend: SocketAddr, key: &Path) -> String {
    let k = key.display();
    format!(
        "# Written by poolgate-bench: HAProxy with jwt_verify, the strongest C peer.\n\
global\n  nbthread 1\n  maxconn 8000\n  log stderr format raw local0 err\n\
defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  option http-keep-alive\n\
frontend bench\n  bind {listen}\n\
  http-request deny status 401 unless {{ req.hdr(authorization) -m beg \"Bearer \" }}\n\
  http-request set-var(txn.bearer) http_auth_bearer\n\
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')\n\
  http-request deny status 401 unless {{ var(txn.alg) -m str RS256 }}\n\
  http-request deny status 401 unless {{ var(txn.bearer),jwt_verify(\"RS256\",\"{k}\") -m int 1 }}\n\
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')\n\
  http-request set-var(txn.now) date()\n\
  http-request deny status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}\n\
  http-request set-var(txn.g0) var(txn.bearer),jwt_payload_query('$.cognito:groups[0]')\n\
  http-request set-var(txn.g1) var(txn.bearer),jwt_payload_query('$.cognito:groups[1]')\n\
  acl reader var(txn.g0) -m str readers editors admin\n\
  acl reader var(txn.g1) -m str readers editors admin\n\
  http-request deny status 403 unless reader\n\
  default_backend backend\n\
backend backend\n  http-reuse always\n  server b1 {backend}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated configurations are accepted by the installed peers (skipped when absent).
    #[test]
    fn peer_configs_are_valid() {
        let dir = std::env::temp_dir().join(format!("pgb-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let key = std::sync::Arc::new(poolgate_authorizer::testutil::TestKey::rsa("k").unwrap());
        let pem = crate::tokens::Minter::with_test_key("i", "c", key)
            .public_pem()
            .unwrap();
        for peer in [Peer::Nginx, Peer::Haproxy] {
            let Ok((bin, _)) = peer.find() else {
                eprintln!("{} not installed: not checked", peer.name());
                continue;
            };
            let mut args = peer.configure(&dir, a(1), a(2), Some(&pem)).unwrap();
            match peer {
                Peer::Nginx => args.push("-t".into()),
                Peer::Haproxy => args.insert(0, "-c".into()),
            }
            let out = Command::new(bin).args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}{}",
                peer.name(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn haproxy_versions() {
        assert!(haproxy_has_jwt(
            "HAProxy version 2.6.12-1+deb12u4 2025/06/01 - https://haproxy.org/"
        ));
        assert!(haproxy_has_jwt("HAProxy version 3.0.1 2024"));
        assert!(!haproxy_has_jwt("HAProxy version 2.4.22-0 2023"));
        assert!(!haproxy_has_jwt("garbage"));
    }
}
