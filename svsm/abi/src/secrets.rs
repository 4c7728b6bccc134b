//! The SNP secrets page (SNP firmware ABI #56860) and the SVSM fields in it (SVSM spec #58019).
//!
//! The security processor fills the secrets page at launch; it holds the VM platform
//! communication keys (VMPCK0..3) that authenticate guest requests. An SVSM keeps the
//! page to itself, hands the guest a copy with VMPCK0 zeroed and its own location in the
//! SVSM fields (offset 0x140), as the SVSM spec asks.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The secrets page (version 2/3 layout).
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SecretsPage {
    /// 0x000: version.
    pub version: u32,
    /// 0x004: bit 0 = IMIEN (interrupt-migration enable).
    pub imien: u32,
    /// 0x008: family/model/stepping.
    pub fms: u32,
    /// 0x00C: reserved.
    pub reserved_0x00c: u32,
    /// 0x010: guest OS-visible workarounds.
    pub gosvw: [u8; 16],
    /// 0x020: VMPCK0 (VMPL0's key; never leaves VMPL0).
    pub vmpck0: [u8; 32],
    /// 0x040: VMPCK1.
    pub vmpck1: [u8; 32],
    /// 0x060: VMPCK2.
    pub vmpck2: [u8; 32],
    /// 0x080: VMPCK3.
    pub vmpck3: [u8; 32],
    /// 0x0A0: area reserved for the guest OS.
    pub os_area: [u8; 96],
    /// 0x100: VMSA tweak bitmap.
    pub vmsa_tweak_bitmap: [u8; 64],
    /// 0x140: SVSM base GPA.
    pub svsm_base: u64,
    /// 0x148: SVSM size in bytes.
    pub svsm_size: u64,
    /// 0x150: GPA of the boot vCPU's calling area.
    pub svsm_caa: u64,
    /// 0x158: highest SVSM protocol version supported.
    pub svsm_max_version: u32,
    /// 0x15C: VMPL the guest runs at.
    pub svsm_guest_vmpl: u8,
    /// 0x15D: reserved.
    pub reserved_0x15d: [u8; 3],
    /// 0x160: TSC scaling factor (Secure TSC).
    pub tsc_factor: u32,
    /// 0x164..0x1000: reserved.
    pub reserved_0x164: [u8; 0xe9c],
}
const _: () = assert!(core::mem::size_of::<SecretsPage>() == 4096);
const _: () = assert!(core::mem::offset_of!(SecretsPage, vmpck0) == 0x020);
const _: () = assert!(core::mem::offset_of!(SecretsPage, vmpck3) == 0x080);
const _: () = assert!(core::mem::offset_of!(SecretsPage, os_area) == 0x0a0);
const _: () = assert!(core::mem::offset_of!(SecretsPage, vmsa_tweak_bitmap) == 0x100);
const _: () = assert!(core::mem::offset_of!(SecretsPage, svsm_base) == 0x140);
const _: () = assert!(core::mem::offset_of!(SecretsPage, svsm_caa) == 0x150);
const _: () = assert!(core::mem::offset_of!(SecretsPage, svsm_guest_vmpl) == 0x15c);
const _: () = assert!(core::mem::offset_of!(SecretsPage, tsc_factor) == 0x160);

impl core::fmt::Debug for SecretsPage {
    // Keys are never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretsPage")
            .field("version", &self.version)
            .field("svsm_base", &self.svsm_base)
            .field("svsm_size", &self.svsm_size)
            .field("svsm_caa", &self.svsm_caa)
            .finish_non_exhaustive()
    }
}
