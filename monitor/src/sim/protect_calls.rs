//! Guest-side helpers for the Vigil protection protocol on a [`SimVm`]: what a guest
//! kernel does early in boot (declare its ranges, lock, query).
use super::vm::{SimVm, LIST_PAGE};
use crate::addr::Gpa;
use std::vec::Vec;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::protect_protocol::{call, RangeEntry, VIGIL_PROTECT_PROTOCOL};
use zerocopy::IntoBytes;

/// A range entry.
pub fn range(gpa: u64, pages: u32, kind: u32) -> RangeEntry {
    RangeEntry { gpa, pages, kind }
}

impl SimVm {
    /// A protection-protocol call from the boot vCPU.
    pub fn protect_call(&mut self, c: u32, rcx: u64) -> SvsmRegs {
        self.call(SvsmRegs::rax_for(VIGIL_PROTECT_PROTOCOL, c), rcx, 0, 0)
            .1
    }

    /// Writes a range list (header with `count` = the entries given) at `at` and
    /// calls DECLARE on it; returns RAX.
    pub fn protect_declare_at(&mut self, at: Gpa, ranges: &[RangeEntry]) -> u64 {
        let mut b: Vec<u8> = Vec::with_capacity(8 + ranges.len() * 16);
        b.extend_from_slice(&(ranges.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 6]);
        for r in ranges {
            b.extend_from_slice(r.as_bytes());
        }
        let _ = self.guest_write(at, &b);
        self.protect_call(call::DECLARE, at.0).rax
    }

    /// DECLARE with the list at [`LIST_PAGE`].
    pub fn protect_declare(&mut self, ranges: &[RangeEntry]) -> u64 {
        self.protect_declare_at(LIST_PAGE, ranges)
    }

    /// LOCK; returns RAX.
    pub fn protect_lock(&mut self) -> u64 {
        self.protect_call(call::LOCK, 0).rax
    }

    /// The guest VMPL executes at `gpa` in supervisor (`true`) or user mode. The guest's
    /// own page tables are not modelled: whatever virtual address the guest maps (a data
    /// page remapped over a text address included), the RMP checks the physical page
    /// the walk ends at, which is `gpa`.
    pub fn guest_exec(&self, gpa: Gpa, supervisor: bool) -> Result<(), crate::memory::MemError> {
        let gv = self.m.guest_vmpl().get();
        self.mach().guest_exec(gv, gpa, supervisor)
    }

    /// QUERY; returns the registers (RAX, RCX state, RDX text pages, R8 read-only pages).
    pub fn protect_query(&mut self) -> SvsmRegs {
        self.protect_call(call::QUERY, 0)
    }
}
