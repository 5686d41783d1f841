//! Link settings that tch's own build script cannot pass on to our binaries.
//!
//! Cargo does not forward a dependency's link arguments to the final binary, so without this the
//! CLIP helper fails at start with "libtorch_cpu.so: cannot open shared object file", and the
//! linker drops libtorch_cuda (nothing references it by symbol), so CUDA never registers on a GPU
//! machine. `torch-sys` is a direct dependency so that `DEP_TCH_LIBTORCH_LIB` is visible here.
//!
//! Only `mimicit-clip` (and the tests) link libtorch: `mimicit` does not mention tch, so it neither
//! links nor loads it; the run path it gets is inert.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
        for arg in ["-Wl,--no-as-needed", "-ltorch"] {
            println!("cargo:rustc-link-arg-bin=mimicit-clip={arg}");
        }
    }
}
