//! A real nginx (Debian's `nginx-light`) as a backend with name-based virtual hosts, started on a
//! free port in the foreground and stopped by PID when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};

use super::harness::{free_port, wait_listening};

/// The nginx binary: on PATH or in `/usr/sbin`. Tests that need it fail when it is missing
/// (`make test` installs it).
pub fn binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .expect("nginx is not installed (Debian: apt-get install nginx-light)")
}

pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// nginx whose virtual hosts answer `200 <name>\n`: one `server` per `(server_name, name)`,
    /// and a `default_server` that answers `default`.
    pub fn vhosts(hosts: &[(&str, &str)]) -> Self {
        let addr = free_port();
        let dir = std::env::temp_dir().join(format!(
            "poolgate-nginx-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let mut servers = format!(
            "  server {{ listen {addr} default_server; server_name _; \
             location / {{ return 200 \"default\\n\"; }} }}\n"
        );
        for (server_name, name) in hosts {
            servers.push_str(&format!(
                "  server {{ listen {addr}; server_name {server_name}; \
                 location / {{ return 200 \"{name}\\n\"; }} }}\n"
            ));
        }
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  default_type text/plain;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n{servers}}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .spawn()
            .unwrap();
        wait_listening(addr);
        Self { addr, child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
