fn main() {
    std::process::exit(edge_ecli::cli::main(std::env::args().collect()));
}
