//! Every cell of the scenario catalog under `cargo test`, each its own test (libtest-mimic,
//! `harness = false`): `cargo test --test matrix swap/` runs the swap cells,
//! `cargo nextest run -E 'test(/swap/)'` too, and `--partition hash:1/2` splits the matrix
//! cell by cell. A failing cell fails with every failing oracle's evidence and its stderr.

use scenarios::catalog::{RuntimeCacheCatalog, Sizes};

fn main() -> std::process::ExitCode {
    let catalog = RuntimeCacheCatalog::new(env!("CARGO_BIN_EXE_scenario-child"), Sizes::default());
    exit_harness::libtest::main(exit_harness::Catalog::cells(&catalog))
}
