//! SVSM core protocol (0): call numbers, arguments and result codes (SVSM spec #58019).
//!
//! Result codes are returned in RAX. A failing PVALIDATE instruction is reported in the
//! spec's dedicated range, `0x8000_1000 | instruction return code`.
//!
//! DEPOSIT_MEM (#58019 6.5) takes a list with the PVALIDATE list's header and entries
//! whose bits 1:0 are the page size and bits 11:2 reserved ([`deposit`]); WITHDRAW_MEM
//! (6.6) returns a list of plain 4 KiB GPAs after a 16-bit count ([`withdraw`]).

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
    /// Query (RCX bit 0 = 1) or configure (bit 0 = 0) vTOM; see [`super::vtom`].
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
    /// RMPADJUST failed with FAIL_INUSE: the VMSA is in use by a running vCPU
    /// (DELETE_VCPU, #58019 6.4).
    pub const ERR_FAIL_INUSE: u64 = 0x8000_1003;
    /// PVALIDATE did not change the validated state (rFLAGS.CF = 1) and the entry did
    /// not ask to ignore that.
    pub const ERR_PVALIDATE_FAIL_UNCHANGED: u64 = 0x8000_1010;
}

/// CONFIGURE_VTOM's RCX (#58019 6.8).
pub mod vtom {
    /// Bit 0: 1 = query, 0 = configure.
    pub const QUERY: u64 = 1 << 0;
    /// Configure, bit 1: enable vTOM (0 = disable).
    pub const ENABLE: u64 = 1 << 1;
    /// Configure, bits 4:2: load CR3, RIP and RSP of the calling VMSA.
    pub const LOAD_MASK: u64 = 0b111 << 2;
    /// Configure, bits 11:5: must be zero.
    pub const MBZ_MASK: u64 = 0x7f << 5;
    /// Configure, bits 63:12: the vTOM value.
    pub const VALUE_MASK: u64 = !0xfff;
    /// Query answer, RCX bit 1: vTOM can be configured.
    pub const SUPPORTED: u64 = 1 << 1;
    /// Query answer, RCX bits 19:12: the alignment a vTOM needs, as a power of two.
    pub const ALIGN_SHIFT: u32 = 12;
    /// Query answer: mask of the alignment field after the shift.
    pub const ALIGN_MASK: u64 = 0xff;
}

/// The DEPOSIT_MEM list (#58019 6.5): the header of [`crate::pvalidate`]
/// (entries u16, next u16, reserved u32), then entries of bits 1:0 page size
/// (0 = 4 KiB, 1 = 2 MiB), bits 11:2 reserved, bits 63:12 GFN.
pub mod deposit {
    /// Entry bits 1:0.
    pub const ENTRY_SIZE_MASK: u64 = 0b11;
    /// Entry bits 11:2: reserved, must be zero.
    pub const ENTRY_RESERVED_MASK: u64 = 0xffc;
    /// An entry for the page at `gpa` (aligned by the caller).
    pub const fn entry(gpa: u64, size_2m: bool) -> u64 {
        (gpa & !0xfff) | size_2m as u64
    }
}

/// The WITHDRAW_MEM list (#58019 6.6), filled in by the SVSM: a 16-bit count of the
/// entries written, 6 unused bytes, then that many 4 KiB GPAs (u64). How many fit is
/// the room left in the list's page.
pub mod withdraw {
    /// Size of the count and the unused bytes before the first GPA.
    pub const HEADER_SIZE: usize = 8;
    /// Size of one GPA.
    pub const ENTRY_SIZE: usize = 8;
    /// How many GPAs fit in a list at byte `page_offset` of its page.
    pub const fn capacity(page_offset: u64) -> usize {
        let room = 4096usize.saturating_sub(page_offset as usize);
        room.saturating_sub(HEADER_SIZE) / ENTRY_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn s6_6_withdraw_capacity_is_the_room_left_in_the_page() {
        assert_eq!(withdraw::capacity(0), 511);
        assert_eq!(withdraw::capacity(8), 510);
        assert_eq!(withdraw::capacity(4088), 0);
    }
    #[test]
    fn s6_8_vtom_fields_do_not_overlap() {
        let all = [
            vtom::QUERY,
            vtom::ENABLE,
            vtom::LOAD_MASK,
            vtom::MBZ_MASK,
            vtom::VALUE_MASK,
        ];
        let mut seen = 0u64;
        for f in all {
            assert_eq!(seen & f, 0);
            seen |= f;
        }
        assert_eq!(seen, u64::MAX);
        assert_eq!(deposit::entry(0x20_0000, true), 0x20_0001);
    }
}
