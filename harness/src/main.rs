//! The `harness` command line.

fn main() {
    println!("harness: not yet implemented");
}
