fn main() {
    // The SDK's own test binary runs libtorch code: it needs the rpath like every binary.
    subspace_link::libtorch();
    println!("cargo:rustc-env=SUBSPACE_LIBTORCH_VERSION={}", subspace_link::libtorch_version());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!(
        "cargo:rustc-env=SUBSPACE_CXX11_ABI={}",
        std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into())
    );
}
