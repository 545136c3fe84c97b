//! `storefleet`: wiring only; the work lives in the library.
fn main() -> anyhow::Result<()> {
    storefleet::cli::run()
}
