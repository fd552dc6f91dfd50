// Rpath to libtorch and keep libtorch_cuda linked (see subspace-link).
fn main() {
    subspace_link::libtorch();
}
