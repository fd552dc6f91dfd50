fn main() {
    subspace_link::libtorch();
}
