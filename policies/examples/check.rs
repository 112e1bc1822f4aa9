//! Checks a policy file and prints its diagnostics: `cargo run -p poolgate-policies --example check -- FILE [--json]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: check FILE [--json]");
        std::process::exit(2);
    };
    let json = args.next().as_deref() == Some("--json");
    match poolgate_policies::load(&path) {
        Ok(c) => println!("ok: {} routes, {} roles", c.routes.len(), c.roles.len()),
        Err(d) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&d.to_json()).unwrap_or_default()
            );
            std::process::exit(1);
        }
        Err(d) => {
            eprintln!("{d}");
            std::process::exit(1);
        }
    }
}
