fn main() {
    subspace_link::libtorch();
    // The TorchScript assembly shim (see cpp/script_module.cpp) compiles against libtorch's headers.
    println!("cargo:rerun-if-changed=cpp/script_module.cpp");
    let Some(dir) = subspace_link::libtorch_dir() else {
        panic!("LIBTORCH is not set: run scripts/install-libtorch.sh and link .libtorch");
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .file("cpp/script_module.cpp")
        .include(dir.join("include"))
        .include(dir.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-O1")
        .warnings(false)
        .compile("subspace_world_script");
}
