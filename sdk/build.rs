fn main() {
    println!("cargo:rustc-env=SUBSPACE_LIBTORCH_VERSION={}", subspace_link::libtorch_version());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rustc-env=SUBSPACE_CXX11_ABI={}", std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()));
}
