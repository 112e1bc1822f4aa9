//! poolgate-bench: the load-testing harness.

fn main() {}
