//! Where things are: the repository, the target directories, the kernel images.

use std::path::{Path, PathBuf};

/// The kernel's target triple.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// A kernel build flavour. Each has its own cargo target directory, so that building one
/// never invalidates another (features and profile settings differ between them; in a
/// shared directory cargo would relink the same output path back and forth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The normal kernel.
    Release,
    /// With the in-kernel tests (`--features ktest`).
    Ktest,
    /// With the deliberately failing test (`--features ktest-selftest-fail`).
    SelftestFail,
}

impl Flavour {
    /// Cargo features for this flavour.
    pub fn features(self) -> Option<&'static str> {
        match self {
            Flavour::Release => None,
            Flavour::Ktest => Some("ktest"),
            Flavour::SelftestFail => Some("ktest-selftest-fail"),
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Flavour::Release => "vigil-kernel",
            Flavour::Ktest => "vigil-kernel-ktest",
            Flavour::SelftestFail => "vigil-kernel-selftest-fail",
        }
    }
}

/// Paths of this checkout.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The repository root (holds the workspace Cargo.toml).
    pub root: PathBuf,
    /// The cargo target directory host builds use ($CARGO_TARGET_DIR or `<root>/target`).
    pub target: PathBuf,
}

impl Workspace {
    /// Finds the workspace from xtask's own manifest directory.
    pub fn locate() -> Self {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().map(Path::to_path_buf).unwrap_or(manifest);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| if p.is_absolute() { p } else { root.join(p) })
            .unwrap_or_else(|| root.join("target"));
        Workspace { root, target }
    }

    /// The cargo target directory of a kernel flavour.
    pub fn kernel_target_dir(&self, f: Flavour) -> PathBuf {
        self.target.join(f.dir_name())
    }

    /// The stripped kernel ELF of a flavour.
    pub fn kernel_image(&self, f: Flavour) -> PathBuf {
        self.kernel_target_dir(f)
            .join(KERNEL_TARGET)
            .join("release")
            .join("svsm")
    }

    /// Scratch directory for generated files (the benchmark's baseline image).
    pub fn scratch(&self) -> PathBuf {
        self.target.join("vigil-xtask")
    }
}
