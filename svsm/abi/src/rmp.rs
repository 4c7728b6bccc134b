//! RMP permission bits (RMPADJUST) and page sizes (APM vol. 2, SEV-SNP).
//!
//! RMPADJUST takes the target page's virtual address in RAX, its page size in RCX
//! (0 = 4 KiB, 1 = 2 MiB) and in RDX the attributes: bits 7:0 the target VMPL, bits
//! 15:8 the permission mask for it, bit 16 the VMSA flag (APM vol. 3, RMPADJUST; Linux
//! `RMPADJUST_VMSA_PAGE_BIT` = bit 16 with target VMPL 1 in RDX = 1, edk2
//! `BaseVmsaRmpAdjust` the same). PVALIDATE takes
//! the address in RAX, the size in RCX and validate (1) / rescind (0) in RDX. Both return
//! a code in EAX (below); PVALIDATE also sets rFLAGS.CF when the validated bit did not
//! change.

/// Permission mask bit: read.
pub const PERM_READ: u8 = 1 << 0;
/// Permission mask bit: write.
pub const PERM_WRITE: u8 = 1 << 1;
/// Permission mask bit: execute in user mode.
pub const PERM_EXEC_USER: u8 = 1 << 2;
/// Permission mask bit: execute in supervisor mode.
pub const PERM_EXEC_SUPERVISOR: u8 = 1 << 3;
/// All four permission bits.
pub const PERM_ALL: u8 = 0x0f;

/// RMPADJUST RDX bits 7:0: the target VMPL.
pub const RMPADJUST_VMPL_MASK: u64 = 0xff;
/// RMPADJUST RDX bits 15:8: the permission mask for the target VMPL.
pub const RMPADJUST_PERM_SHIFT: u32 = 8;
/// RMPADJUST RDX bit 16.
pub const RMPADJUST_VMSA: u64 = 1 << 16;

/// Builds the RMPADJUST RDX value.
pub const fn rmpadjust_attrs(target_vmpl: u8, perms: u8, vmsa: bool) -> u64 {
    let mut v = target_vmpl as u64 | ((perms as u64) << RMPADJUST_PERM_SHIFT);
    if vmsa {
        v |= RMPADJUST_VMSA;
    }
    v
}

/// RCX value for a 4 KiB page.
pub const RMP_PG_SIZE_4K: u64 = 0;
/// RCX value for a 2 MiB page.
pub const RMP_PG_SIZE_2M: u64 = 1;

/// Return codes of PVALIDATE and RMPADJUST (EAX).
pub mod ret {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// Bad input: invalid address, reserved bits, target not in the RMP, page not assigned.
    pub const FAIL_INPUT: u32 = 1;
    /// RMPADJUST: the caller lacks the permission it tries to grant or the target VMPL
    /// is not lower (numerically greater) than the caller's.
    pub const FAIL_PERMISSION: u32 = 2;
    /// RMPADJUST: the page is a VMSA in use by a running vCPU (its VMSA bit cannot be
    /// cleared now).
    pub const FAIL_INUSE: u32 = 3;
    /// The page size in the request does not match the RMP entry's.
    pub const FAIL_SIZEMISMATCH: u32 = 6;
    /// PVALIDATE: the validated state was already what was asked (rFLAGS.CF = 1). Not an
    /// EAX value of the instruction; used by SVSMs to report it (SVSM spec).
    pub const FAIL_UNCHANGED: u32 = 0x10;
}

#[cfg(test)]
mod tests {
    use super::*;
    /// APM vol. 3 RMPADJUST: RDX = target VMPL (7:0) | permissions (15:8) | VMSA (16).
    /// Linux's `snp_set_vmsa` and edk2's `BaseVmsaRmpAdjust` pass RDX = 1 (target VMPL1,
    /// no rights) | bit 16; the same bytes must come out here.
    #[test]
    fn rmpadjust_rdx_is_vmpl_then_perms_then_vmsa() {
        assert_eq!(rmpadjust_attrs(1, 0, true), 1 | (1 << 16));
        assert_eq!(rmpadjust_attrs(2, PERM_ALL, false), 0x0f02);
        assert_eq!(
            rmpadjust_attrs(3, PERM_READ, false) & RMPADJUST_VMPL_MASK,
            3
        );
    }
}
