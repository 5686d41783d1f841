//! Link settings that tch's own build script cannot pass on to our binaries.
//!
//! Cargo does not forward a dependency's link arguments to the final binary, so without this the
//! binary fails at start with "libtorch_cpu.so: cannot open shared object file", and the linker
//! drops libtorch_cuda (nothing references it by symbol), so CUDA never registers on a GPU machine.
//! `torch-sys` is a direct dependency so that `DEP_TCH_LIBTORCH_LIB` is visible here.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
