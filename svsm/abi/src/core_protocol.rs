//! SVSM core protocol (0): call numbers, arguments and result codes (SVSM spec #58019).
//!
//! Result codes are returned in RAX. A failing PVALIDATE instruction is reported in the
//! spec's dedicated range, `0x8000_1000 | instruction return code`.
//!
//! DEPOSIT_MEM and WITHDRAW_MEM take a page list in guest memory; Vigil uses the
//! PVALIDATE list layout of [`crate::pvalidate`] for it (the action bit is ignored),
//! as documented in docs/protocols.md.

/// Protocol number of the core protocol.
pub const SVSM_CORE_PROTOCOL: u32 = 0;
/// Protocol number of the attestation protocol.
pub const SVSM_ATTEST_PROTOCOL: u32 = 1;

/// Core protocol call numbers (RAX bits 31:0).
pub mod call {
    /// Move this vCPU's calling area: RCX = GPA of the new calling area (4 KiB aligned).
    pub const REMAP_CA: u32 = 0;
    /// Validate or rescind pages: RCX = GPA of a PVALIDATE request list.
    pub const PVALIDATE: u32 = 1;
    /// Create a vCPU: RCX = GPA of the VMSA page, RDX = GPA of its calling area, R8 = APIC ID.
    pub const CREATE_VCPU: u32 = 2;
    /// Delete a vCPU: RCX = GPA of its VMSA page.
    pub const DELETE_VCPU: u32 = 3;
    /// Give pages to the SVSM: RCX = GPA of a page list.
    pub const DEPOSIT_MEM: u32 = 4;
    /// Take pages back from the SVSM: RCX = GPA of a page list the SVSM fills in.
    pub const WITHDRAW_MEM: u32 = 5;
    /// Ask which versions of a protocol are supported: RCX = `protocol << 32 | version`.
    pub const QUERY_PROTOCOL: u32 = 6;
    /// Query or configure vTOM: RCX bit 0 = 1 to configure, bits 63:1 = vTOM value.
    pub const CONFIGURE_VTOM: u32 = 7;
}

/// Result codes in RAX.
pub mod result {
    /// The call succeeded.
    pub const SUCCESS: u64 = 0x0000_0000;
    /// The call was only partly done; call again to continue.
    pub const ERR_INCOMPLETE: u64 = 0x8000_0000;
    /// The protocol number is not supported.
    pub const ERR_UNSUPPORTED_PROTOCOL: u64 = 0x8000_0001;
    /// The call number is not supported within the protocol.
    pub const ERR_UNSUPPORTED_CALL: u64 = 0x8000_0002;
    /// An address argument is invalid (alignment, range, Vigil's own memory).
    pub const ERR_INVALID_ADDRESS: u64 = 0x8000_0003;
    /// A structure in guest memory is malformed.
    pub const ERR_INVALID_FORMAT: u64 = 0x8000_0004;
    /// A parameter is invalid.
    pub const ERR_INVALID_PARAMETER: u64 = 0x8000_0005;
    /// The request is invalid in the current state.
    pub const ERR_INVALID_REQUEST: u64 = 0x8000_0006;
    /// A resource is busy; try again.
    pub const ERR_BUSY: u64 = 0x8000_0007;
    /// Base of the PVALIDATE instruction failure range; the low byte is the instruction's code.
    pub const ERR_PVALIDATE_BASE: u64 = 0x8000_1000;
    /// PVALIDATE failed with FAIL_INPUT.
    pub const ERR_PVALIDATE_FAIL_INPUT: u64 = 0x8000_1001;
    /// PVALIDATE failed with FAIL_SIZEMISMATCH.
    pub const ERR_PVALIDATE_FAIL_SIZEMISMATCH: u64 = 0x8000_1006;
    /// PVALIDATE did not change the validated state (rFLAGS.CF = 1) and the entry did
    /// not ask to ignore that.
    pub const ERR_PVALIDATE_FAIL_UNCHANGED: u64 = 0x8000_1010;
}

/// Bit 0 of RCX in CONFIGURE_VTOM: 1 = configure, 0 = query.
pub const CONFIGURE_VTOM_SET: u64 = 1;
