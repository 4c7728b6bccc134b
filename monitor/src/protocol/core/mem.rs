//! DEPOSIT_MEM (#58019 6.5) and WITHDRAW_MEM (6.6).
use super::lists::{read_list, write_next};
use super::{code_of, holds_caa, rmp_code, set_guest_rights};
use crate::addr::{Gpa, PageSize, PAGE_SIZE_4K};
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::{Perms, Platform, TermReason};
use crate::protocol::{range_to_code, Ret};
use crate::Monitor;
use alloc::vec::Vec;
use sha2::{Digest, Sha384};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{deposit, result, withdraw};
use svsm_abi::event_log::{kind, MemListPayload};

pub(super) fn deposit_mem<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = MemListPayload {
        list_gpa: list_gpa.0,
        pages: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_list(m, list_gpa) {
        Err(c) => Ret::Code(c),
        Ok(list) => match list.check_header() {
            Err(c) => Ret::Code(c),
            Ok(()) => {
                let mut i = list.hdr.next;
                let mut ret = Ret::Code(result::SUCCESS);
                while i < list.hdr.entries {
                    let (r, frames) = deposit_entry(m, list.entry(i));
                    if r != Ret::Code(result::SUCCESS) {
                        ret = r;
                        break;
                    }
                    payload.pages += frames;
                    i += 1;
                }
                payload.entries_digest =
                    Sha384::digest(list.entries_bytes(list.hdr.next, i)).into();
                // `next` tells the guest where a failure stopped.
                write_next(m, list.gpa, i);
                ret
            }
        },
    };
    set_mem_available(m);
    m.log
        .append(kind::DEPOSIT_MEM, caller, code_of(ret), &payload);
    ret
}

/// One DEPOSIT_MEM entry (6.5): bits 1:0 size, bits 11:2 reserved (INVALID_PARAMETER),
/// aligned to its size (INVALID_PARAMETER), a validated page of the guest's that holds
/// no calling area (INVALID_ADDRESS); every lower VMPL loses it. Returns the result and
/// the 4 KiB frames taken.
fn deposit_entry<P: Platform>(m: &mut Monitor<P>, e: u64) -> (Ret, u64) {
    if e & deposit::ENTRY_RESERVED_MASK != 0 {
        return (Ret::Code(result::ERR_INVALID_PARAMETER), 0);
    }
    let Some(size) = PageSize::from_field(e & deposit::ENTRY_SIZE_MASK) else {
        return (Ret::Code(result::ERR_INVALID_PARAMETER), 0);
    };
    let gpa = Gpa(e & !0xfff);
    if !gpa.is_aligned(size) {
        return (Ret::Code(result::ERR_INVALID_PARAMETER), 0);
    }
    // *Vigil*: a 2 MiB page is refused. WITHDRAW_MEM (6.6) gives pages back as 4 KiB
    // GPAs in one page's list (511 at most), and a 2 MiB RMP page cannot be handed back
    // in parts without the host splitting it; accepted, it could never be withdrawn.
    if size == PageSize::Size2M {
        return (Ret::Code(result::ERR_INVALID_PARAMETER), 0);
    }
    if let Err(err) = m.pages.check_page(gpa, size, PageState::Validated) {
        return (Ret::Code(range_to_code(err)), 0);
    }
    if holds_caa(m, gpa, size.bytes()) {
        return (Ret::Code(result::ERR_INVALID_ADDRESS), 0);
    }
    if let Err(err) = set_guest_rights(m, gpa, size, Perms::empty()) {
        let _ = set_guest_rights(m, gpa, size, Perms::all());
        return (Ret::Code(rmp_code(err)), 0);
    }
    m.pages.set(gpa, size, PageState::Deposited);
    m.deposited.push((gpa, size));
    (Ret::Code(result::SUCCESS), size.frames())
}

/// `mem_available` (section 5) tells whether WITHDRAW_MEM would return anything; 6.6
/// keeps it in the startup vCPU's calling area (the vCPU Vigil did not create), where
/// the guest looks whichever vCPU called.
fn set_mem_available<P: Platform>(m: &mut Monitor<P>) {
    if let Some(caa) = m.vcpus.iter().find(|v| v.vmsa.is_none()).map(|v| v.caa) {
        let flag = [u8::from(!m.deposited.is_empty())];
        if let Some(at) = caa.checked_add(svsm_abi::calling_area::MEM_AVAILABLE_OFFSET) {
            // A failed write (the host took the page) only loses a hint.
            let _ = m.p.write(at, &flag);
        }
    }
}

pub(super) fn withdraw_mem<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = MemListPayload {
        list_gpa: list_gpa.0,
        pages: 0,
        entries_digest: [0; 48],
    };
    let ret = withdraw_inner(m, list_gpa, &mut payload);
    set_mem_available(m);
    m.log
        .append(kind::WITHDRAW_MEM, caller, code_of(ret), &payload);
    ret
}

/// 6.6: the SVSM fills the guest's list with the 4 KiB GPAs of the pages it returns,
/// as many as the rest of the list's page holds, and writes their count. Nothing of
/// the list is read: it is output only. (Only 4 KiB pages are ever deposited; a 2 MiB
/// one would come back as its 512 GPAs, only when all of them fit.)
fn withdraw_inner<P: Platform>(m: &mut Monitor<P>, list: Gpa, payload: &mut MemListPayload) -> Ret {
    if !list.0.is_multiple_of(8) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let room = PAGE_SIZE_4K - list.page_offset();
    if let Err(e) = m.pages.check_range(list, room, PageState::Validated) {
        return Ret::Code(range_to_code(e));
    }
    if super::overlaps_caa_head(m, list, room) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    let capacity = withdraw::capacity(list.page_offset());
    // 6.6: a list with no room for a single GPA (at offset 0xFF8 of its page).
    if capacity == 0 {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let mut out: Vec<u8> = Vec::new();
    let mut n = 0usize;
    let mut ret = Ret::Code(result::SUCCESS);
    while let Some(&(gpa, size)) = m.deposited.last() {
        if n + size.frames() as usize > capacity {
            break;
        }
        m.deposited.pop();
        // Vigil may have used the page: zero it before the guest gets it back
        // (invariant 1, nothing of Vigil's leaks).
        if m.p.zero(gpa, size.bytes()).is_err()
            || set_guest_rights(m, gpa, size, Perms::all()).is_err()
        {
            ret = Ret::Fatal(TermReason::VigilMemoryLost);
            break;
        }
        m.pages.set(gpa, size, PageState::Validated);
        for f in 0..size.frames() {
            out.extend_from_slice(&(gpa.0 + f * PAGE_SIZE_4K).to_le_bytes());
        }
        payload.pages += size.frames();
        n += size.frames() as usize;
    }
    payload.entries_digest = Sha384::digest(&out).into();
    let mut hdr = [0u8; withdraw::HEADER_SIZE];
    hdr[0..2].copy_from_slice(&(n as u16).to_le_bytes());
    let written = m.p.write(list, &hdr).is_ok()
        && list
            .checked_add(withdraw::HEADER_SIZE as u64)
            .is_some_and(|at| m.p.write(at, &out).is_ok());
    if !written && ret == Ret::Code(result::SUCCESS) {
        ret = Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    ret
}
