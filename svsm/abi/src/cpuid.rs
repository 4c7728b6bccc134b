//! The SNP CPUID page (SNP firmware ABI #56860).
//!
//! The security processor checks the CPUID values the host proposes at launch and
//! places them in this page; the guest answers CPUID from it instead of asking the host.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Most functions in the page.
pub const CPUID_MAX_ENTRIES: usize = 64;

/// One CPUID function.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CpuidFunction {
    /// 0x00: EAX input.
    pub eax_in: u32,
    /// 0x04: ECX input.
    pub ecx_in: u32,
    /// 0x08: XCR0 input.
    pub xcr0_in: u64,
    /// 0x10: XSS input.
    pub xss_in: u64,
    /// 0x18: EAX output.
    pub eax: u32,
    /// 0x1C: EBX output.
    pub ebx: u32,
    /// 0x20: ECX output.
    pub ecx: u32,
    /// 0x24: EDX output.
    pub edx: u32,
    /// 0x28: reserved.
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<CpuidFunction>() == 48);
const _: () = assert!(core::mem::offset_of!(CpuidFunction, eax) == 0x18);

/// The CPUID page.
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CpuidPage {
    /// 0x000: number of valid functions.
    pub count: u32,
    /// 0x004: reserved.
    pub reserved_0x004: u32,
    /// 0x008: reserved.
    pub reserved_0x008: u64,
    /// 0x010: functions.
    pub functions: [CpuidFunction; CPUID_MAX_ENTRIES],
    /// 0xC10..0x1000: reserved.
    pub reserved_0xc10: [u8; 0x3f0],
}
const _: () = assert!(core::mem::size_of::<CpuidPage>() == 4096);
const _: () = assert!(core::mem::offset_of!(CpuidPage, functions) == 0x10);
