//! SVSM core protocol (0), every call of spec #58019.
//!
//! Each handler follows the same order: copy the guest's arguments in once, check them
//! against the page table (bounds, alignment, Vigil's memory, page state), apply the
//! policy, act through the platform, log one record. Attack reasoning sits next to the
//! checks that answer it.
use super::{range_to_code, Ret, PROTOCOLS};
use crate::addr::{Gpa, PageSize, PAGE_SIZE_4K};
use crate::event_log::Caller;
use crate::pages::{PageState, RangeError};
use crate::platform::{ApOp, Perms, Platform, PvalidateOutcome, RmpError, TermReason};
use crate::vcpu::Vcpu;
use crate::Monitor;
use alloc::vec::Vec;
use sha2::{Digest, Sha384};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result, CONFIGURE_VTOM_SET};
use svsm_abi::event_log::{
    kind, MemListPayload, PvalidatePayload, QueryPayload, RemapCaPayload, VcpuPayload,
};
use svsm_abi::pvalidate::{
    PvalidateEntry, PvalidateListHeader, ENTRY_SIZE, HEADER_SIZE, NEXT_OFFSET,
};
use svsm_abi::vmsa::Vmsa;
use zerocopy::FromBytes;

/// Result code logged for a call that ended the VM.
pub(crate) const FATAL_RESULT: u64 = 0xffff_ffff;

/// EFER.SVME, which an SEV-ES/SNP VMSA must have set.
const EFER_SVME: u64 = 1 << 12;

pub(crate) fn handle<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    c: u32,
    regs: &mut SvsmRegs,
) -> Option<Ret> {
    Some(match c {
        call::REMAP_CA => remap_ca(m, caller, regs),
        call::PVALIDATE => pvalidate(m, caller, regs),
        call::CREATE_VCPU => create_vcpu(m, caller, regs),
        call::DELETE_VCPU => delete_vcpu(m, caller, regs),
        call::DEPOSIT_MEM => deposit_mem(m, caller, regs),
        call::WITHDRAW_MEM => withdraw_mem(m, caller, regs),
        call::QUERY_PROTOCOL => query_protocol(m, caller, regs),
        call::CONFIGURE_VTOM => configure_vtom(m, caller, regs),
        _ => return None,
    })
}

fn code_of(r: Ret) -> u64 {
    match r {
        Ret::Code(c) => c,
        Ret::Fatal(_) => FATAL_RESULT,
    }
}

/// A list in guest memory (PVALIDATE layout): copied in with one read of the rest of
/// its page. Attack: the guest rewrites the list from another vCPU while Vigil works on
/// it; Vigil never reads it twice, so what it checks is what it uses (invariant 4).
struct List {
    gpa: Gpa,
    hdr: PvalidateListHeader,
    raw: Vec<u8>,
    capacity: u16,
}

impl List {
    fn entry(&self, i: u16) -> PvalidateEntry {
        let off = HEADER_SIZE + i as usize * ENTRY_SIZE;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.raw[off..off + 8]);
        PvalidateEntry(u64::from_le_bytes(b))
    }
    fn entries_bytes(&self, from: u16, to: u16) -> &[u8] {
        &self.raw[HEADER_SIZE + from as usize * ENTRY_SIZE..HEADER_SIZE + to as usize * ENTRY_SIZE]
    }
}

fn read_list<P: Platform>(m: &mut Monitor<P>, gpa: Gpa) -> Result<List, u64> {
    if !gpa.0.is_multiple_of(8) {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    let avail = PAGE_SIZE_4K - gpa.page_offset();
    m.pages
        .check_range(gpa, avail, PageState::Validated)
        .map_err(range_to_code)?;
    let mut raw = alloc::vec![0u8; avail as usize];
    m.p.read(gpa, &mut raw)
        .map_err(|_| result::ERR_INVALID_ADDRESS)?;
    let (hdr, _) =
        PvalidateListHeader::read_from_prefix(&raw).map_err(|_| result::ERR_INVALID_ADDRESS)?;
    let capacity = ((avail as usize - HEADER_SIZE) / ENTRY_SIZE) as u16;
    Ok(List {
        gpa,
        hdr,
        raw,
        capacity,
    })
}

fn write_next<P: Platform>(m: &mut Monitor<P>, list: Gpa, next: u16) -> bool {
    match list.checked_add(NEXT_OFFSET) {
        Some(at) => m.p.write(at, &next.to_le_bytes()).is_ok(),
        None => false,
    }
}

/// Whether any 4 KiB page of [gpa, gpa+len) is a calling area in use.
fn holds_caa<P: Platform>(m: &Monitor<P>, gpa: Gpa, len: u64) -> bool {
    m.vcpus
        .iter()
        .any(|v| v.caa.0 >= gpa.0 && v.caa.0 < gpa.0.saturating_add(len))
}

fn pvalidate<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = PvalidatePayload {
        list_gpa: list_gpa.0,
        entries: 0,
        first: 0,
        done: 0,
        reserved: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_list(m, list_gpa) {
        Err(code) => Ret::Code(code),
        Ok(list) => {
            payload.entries = list.hdr.entries;
            payload.first = list.hdr.next;
            payload.done = list.hdr.next;
            if list.hdr.entries > list.capacity
                || list.hdr.next > list.hdr.entries
                || list.hdr.reserved != 0
            {
                Ret::Code(result::ERR_INVALID_PARAMETER)
            } else {
                let stop = if m.policy.pvalidate_batch == 0 {
                    list.hdr.entries
                } else {
                    list.hdr
                        .entries
                        .min(list.hdr.next.saturating_add(m.policy.pvalidate_batch))
                };
                let mut i = list.hdr.next;
                let mut ret = Ret::Code(result::SUCCESS);
                while i < stop {
                    match pvalidate_entry(m, list.entry(i)) {
                        Ret::Code(result::SUCCESS) => i += 1,
                        other => {
                            ret = other;
                            break;
                        }
                    }
                }
                if ret == Ret::Code(result::SUCCESS) && i < list.hdr.entries {
                    ret = Ret::Code(result::ERR_INCOMPLETE);
                }
                payload.done = i;
                payload.entries_digest =
                    Sha384::digest(list.entries_bytes(list.hdr.next, i)).into();
                if !write_next(m, list.gpa, i) && ret == Ret::Code(result::SUCCESS) {
                    ret = Ret::Code(result::ERR_INVALID_ADDRESS);
                }
                ret
            }
        }
    };
    m.log
        .append(kind::PVALIDATE, caller, code_of(ret), &payload);
    ret
}

fn pvalidate_entry<P: Platform>(m: &mut Monitor<P>, e: PvalidateEntry) -> Ret {
    if e.reserved() != 0 {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let Some(size) = PageSize::from_field(e.size_field()) else {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    };
    let gpa = Gpa(e.gpa());
    if !gpa.is_aligned(size) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    if e.validate() {
        // Invariant 2: at most one validation per page, never Vigil's memory.
        match m.pages.check_page(gpa, size, PageState::Unvalidated) {
            Ok(()) => {}
            Err(RangeError::WrongState(PageState::Validated)) if e.ignore_cf() => {
                return Ret::Code(result::SUCCESS)
            }
            Err(RangeError::WrongState(PageState::Validated)) => {
                return Ret::Code(result::ERR_PVALIDATE_FAIL_UNCHANGED)
            }
            Err(err) => return Ret::Code(range_to_code(err)),
        }
        match m.p.pvalidate(gpa, size, true) {
            Ok(PvalidateOutcome::Changed) => {}
            // Only VMPL0 can validate, and Vigil's table says it did not: the RMP and
            // the table disagree, which nothing but corrupted state explains.
            Ok(PvalidateOutcome::Unchanged) => return Ret::Fatal(TermReason::HostInconsistent),
            Err(err) => return Ret::Code(pvalidate_code(err)),
        }
        // Invariant 3: zero before the guest can see the page. Attack: the host
        // remapped the page between its page-state change and this PVALIDATE, so the
        // page holds data the host chose (or another guest's stale data).
        if m.p.zero(gpa, size.bytes()).is_err() {
            return Ret::Fatal(TermReason::HostInconsistent);
        }
        if m.p
            .rmpadjust(gpa, size, m.guest_vmpl, Perms::all(), false)
            .is_err()
        {
            return Ret::Fatal(TermReason::HostInconsistent);
        }
        m.pages.set(gpa, size, PageState::Validated);
    } else {
        match m.pages.check_page(gpa, size, PageState::Validated) {
            Ok(()) => {}
            Err(RangeError::WrongState(PageState::Unvalidated)) if e.ignore_cf() => {
                return Ret::Code(result::SUCCESS)
            }
            Err(RangeError::WrongState(PageState::Unvalidated)) => {
                return Ret::Code(result::ERR_PVALIDATE_FAIL_UNCHANGED)
            }
            Err(err) => return Ret::Code(range_to_code(err)),
        }
        if holds_caa(m, gpa, size.bytes()) {
            return Ret::Code(result::ERR_INVALID_PARAMETER);
        }
        match m.p.pvalidate(gpa, size, false) {
            // Unchanged: the host already took the page away (a page-state change
            // clears the validated bit); the page is not validated either way.
            Ok(_) => {}
            Err(err) => return Ret::Code(pvalidate_code(err)),
        }
        m.pages.set(gpa, size, PageState::Unvalidated);
    }
    Ret::Code(result::SUCCESS)
}

fn pvalidate_code(e: RmpError) -> u64 {
    result::ERR_PVALIDATE_BASE | e.code() as u64
}

fn remap_ca<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let new = Gpa(regs.rcx);
    let old = m
        .vcpus
        .by_apic(caller.apic_id)
        .map(|v| v.caa)
        .unwrap_or(Gpa(0));
    let ret = if !new.is_aligned(PageSize::Size4K) {
        Ret::Code(result::ERR_INVALID_ADDRESS)
    } else if let Err(e) = m
        .pages
        .check_page(new, PageSize::Size4K, PageState::Validated)
    {
        Ret::Code(range_to_code(e))
    } else if new != old && m.vcpus.caa_in_use(new) {
        Ret::Code(result::ERR_INVALID_PARAMETER)
    } else if let Some(v) = m.vcpus.by_apic_mut(caller.apic_id) {
        v.caa = new;
        Ret::Code(result::SUCCESS)
    } else {
        Ret::Code(result::ERR_INVALID_REQUEST)
    };
    m.log.append(
        kind::REMAP_CA,
        caller,
        code_of(ret),
        &RemapCaPayload {
            old_caa: old.0,
            new_caa: new.0,
        },
    );
    ret
}

fn create_vcpu<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let vmsa_gpa = Gpa(regs.rcx);
    let caa = Gpa(regs.rdx);
    let mut payload = VcpuPayload {
        vmsa_gpa: vmsa_gpa.0,
        caa_gpa: caa.0,
        apic_id: regs.r8 as u32,
        vmpl: 0,
        sev_features: 0,
    };
    let ret = create_vcpu_inner(m, vmsa_gpa, caa, regs.r8, &mut payload);
    m.log
        .append(kind::CREATE_VCPU, caller, code_of(ret), &payload);
    ret
}

fn create_vcpu_inner<P: Platform>(
    m: &mut Monitor<P>,
    vmsa_gpa: Gpa,
    caa: Gpa,
    r8: u64,
    payload: &mut VcpuPayload,
) -> Ret {
    let Ok(apic_id) = u32::try_from(r8) else {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    };
    if !vmsa_gpa.is_aligned(PageSize::Size4K) || !caa.is_aligned(PageSize::Size4K) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    // Invariant 6: never a VMSA on Vigil's memory or on a page the guest does not own.
    if let Err(e) = m
        .pages
        .check_page(vmsa_gpa, PageSize::Size4K, PageState::Validated)
    {
        return Ret::Code(range_to_code(e));
    }
    if let Err(e) = m
        .pages
        .check_page(caa, PageSize::Size4K, PageState::Validated)
    {
        return Ret::Code(range_to_code(e));
    }
    if caa == vmsa_gpa || m.vcpus.by_apic(apic_id).is_some() || m.vcpus.caa_in_use(vmsa_gpa) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    // Attack: the guest rewrites the VMSA from another vCPU between Vigil's check and
    // its use. Vigil first takes the page away from the guest, then reads and checks
    // it: what it checked is what the CPU will run.
    match m.p.rmpadjust(
        vmsa_gpa,
        PageSize::Size4K,
        m.guest_vmpl,
        Perms::empty(),
        false,
    ) {
        Ok(()) => {}
        // A VMSA must be a 4 KiB RMP page; a page inside a 2 MiB entry is refused.
        Err(RmpError::FailSizeMismatch) => return Ret::Code(result::ERR_INVALID_PARAMETER),
        Err(_) => return Ret::Code(result::ERR_INVALID_ADDRESS),
    }
    let restore = |m: &mut Monitor<P>| {
        if m.p
            .rmpadjust(
                vmsa_gpa,
                PageSize::Size4K,
                m.guest_vmpl,
                Perms::all(),
                false,
            )
            .is_err()
        {
            Ret::Fatal(TermReason::HostInconsistent)
        } else {
            Ret::Code(result::ERR_INVALID_PARAMETER)
        }
    };
    let mut raw = alloc::vec![0u8; 4096];
    if m.p.read(vmsa_gpa, &mut raw).is_err() {
        return restore(m);
    }
    let Ok(vmsa) = Vmsa::read_from_bytes(&raw) else {
        return restore(m);
    };
    payload.vmpl = vmsa.vmpl as u32;
    payload.sev_features = vmsa.sev_features;
    if vmsa.vmpl != m.guest_vmpl.get()
        || !m.policy.sev_features_ok(vmsa.sev_features)
        || vmsa.efer & EFER_SVME == 0
    {
        return restore(m);
    }
    if m.p
        .rmpadjust(
            vmsa_gpa,
            PageSize::Size4K,
            m.guest_vmpl,
            Perms::empty(),
            true,
        )
        .is_err()
    {
        return Ret::Fatal(TermReason::HostInconsistent);
    }
    m.pages.set(vmsa_gpa, PageSize::Size4K, PageState::Vmsa);
    m.vcpus.add(Vcpu {
        apic_id,
        caa,
        vmsa: Some(vmsa_gpa),
    });
    // The host may refuse to run the vCPU; it cannot make Vigil undo the VMSA bit
    // while it might be running it, so a refusal ends the VM (availability is the
    // host's to deny, integrity is not).
    if m.p
        .ap_create(ApOp::Create, apic_id, vmsa_gpa, vmsa.sev_features)
        .is_err()
    {
        return Ret::Fatal(TermReason::HostRefused);
    }
    Ret::Code(result::SUCCESS)
}

fn delete_vcpu<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let vmsa_gpa = Gpa(regs.rcx);
    let mut payload = VcpuPayload {
        vmsa_gpa: vmsa_gpa.0,
        caa_gpa: 0,
        apic_id: 0,
        vmpl: 0,
        sev_features: 0,
    };
    let ret = match m.vcpus.by_vmsa(vmsa_gpa).copied() {
        None => Ret::Code(result::ERR_INVALID_PARAMETER),
        Some(v) if v.apic_id == caller.apic_id => Ret::Code(result::ERR_BUSY),
        Some(v) => {
            payload.vmpl = m.guest_vmpl.get() as u32;
            if m.p
                .ap_create(ApOp::Destroy, v.apic_id, vmsa_gpa, 0)
                .is_err()
            {
                Ret::Fatal(TermReason::HostRefused)
            } else if m
                .p
                .rmpadjust(
                    vmsa_gpa,
                    PageSize::Size4K,
                    m.guest_vmpl,
                    Perms::empty(),
                    false,
                )
                .is_err()
                || m.p
                    .rmpadjust(
                        vmsa_gpa,
                        PageSize::Size4K,
                        m.guest_vmpl,
                        Perms::all(),
                        false,
                    )
                    .is_err()
            {
                Ret::Fatal(TermReason::HostInconsistent)
            } else {
                m.vcpus.remove_vmsa(vmsa_gpa);
                m.pages
                    .set(vmsa_gpa, PageSize::Size4K, PageState::Validated);
                Ret::Code(result::SUCCESS)
            }
        }
    };
    m.log
        .append(kind::DELETE_VCPU, caller, code_of(ret), &payload);
    ret
}

fn deposit_mem<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = MemListPayload {
        list_gpa: list_gpa.0,
        pages: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_list(m, list_gpa) {
        Err(c) => Ret::Code(c),
        Ok(list) if list.hdr.entries > list.capacity || list.hdr.next > list.hdr.entries => {
            Ret::Code(result::ERR_INVALID_PARAMETER)
        }
        Ok(list) => {
            let mut i = list.hdr.next;
            let mut ret = Ret::Code(result::SUCCESS);
            while i < list.hdr.entries {
                let e = list.entry(i);
                let r = deposit_entry(m, e);
                if r != Ret::Code(result::SUCCESS) {
                    ret = r;
                    break;
                }
                payload.pages += PageSize::from_field(e.size_field()).map_or(0, |s| s.frames());
                i += 1;
            }
            payload.entries_digest = Sha384::digest(list.entries_bytes(list.hdr.next, i)).into();
            write_next(m, list.gpa, i);
            ret
        }
    };
    set_mem_available(m, caller);
    m.log
        .append(kind::DEPOSIT_MEM, caller, code_of(ret), &payload);
    ret
}

fn deposit_entry<P: Platform>(m: &mut Monitor<P>, e: PvalidateEntry) -> Ret {
    let Some(size) = PageSize::from_field(e.size_field()) else {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    };
    if e.reserved() != 0 {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let gpa = Gpa(e.gpa());
    if !gpa.is_aligned(size) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    if let Err(err) = m.pages.check_page(gpa, size, PageState::Validated) {
        return Ret::Code(range_to_code(err));
    }
    if holds_caa(m, gpa, size.bytes()) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    match m
        .p
        .rmpadjust(gpa, size, m.guest_vmpl, Perms::empty(), false)
    {
        Ok(()) => {}
        Err(_) => return Ret::Code(result::ERR_INVALID_PARAMETER),
    }
    m.pages.set(gpa, size, PageState::Deposited);
    m.deposited.push((gpa, size));
    Ret::Code(result::SUCCESS)
}

fn set_mem_available<P: Platform>(m: &mut Monitor<P>, caller: Caller) {
    if let Some(caa) = m.vcpus.by_apic(caller.apic_id).map(|v| v.caa) {
        let flag = [u8::from(!m.deposited.is_empty())];
        if let Some(at) = caa.checked_add(svsm_abi::calling_area::MEM_AVAILABLE_OFFSET) {
            // A failed write (the host took the page) only loses a hint.
            let _ = m.p.write(at, &flag);
        }
    }
}

fn withdraw_mem<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = MemListPayload {
        list_gpa: list_gpa.0,
        pages: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_list(m, list_gpa) {
        Err(c) => Ret::Code(c),
        Ok(list) if list.hdr.entries > list.capacity => Ret::Code(result::ERR_INVALID_PARAMETER),
        Ok(list) => {
            // The list's `entries` is its capacity on entry; Vigil fills it and writes
            // back the number returned into `entries` and `next`.
            let mut out: Vec<u8> = Vec::new();
            let mut n = 0u16;
            let mut ret = Ret::Code(result::SUCCESS);
            while n < list.hdr.entries {
                let Some((gpa, size)) = m.deposited.pop() else {
                    break;
                };
                // Vigil may have used the page: zero it before the guest gets it back
                // (invariant 1, nothing of Vigil's leaks).
                if m.p.zero(gpa, size.bytes()).is_err()
                    || m.p
                        .rmpadjust(gpa, size, m.guest_vmpl, Perms::all(), false)
                        .is_err()
                {
                    ret = Ret::Fatal(TermReason::VigilMemoryLost);
                    break;
                }
                m.pages.set(gpa, size, PageState::Validated);
                let e = PvalidateEntry::new(gpa.gfn(), size == PageSize::Size2M, true, false);
                out.extend_from_slice(&e.0.to_le_bytes());
                payload.pages += size.frames();
                n += 1;
            }
            payload.entries_digest = Sha384::digest(&out).into();
            let mut hdr = [0u8; 8];
            hdr[0..2].copy_from_slice(&n.to_le_bytes());
            hdr[2..4].copy_from_slice(&n.to_le_bytes());
            if (m.p.write(list.gpa, &hdr).is_err()
                || list
                    .gpa
                    .checked_add(HEADER_SIZE as u64)
                    .is_none_or(|at| m.p.write(at, &out).is_err()))
                && ret == Ret::Code(result::SUCCESS)
            {
                ret = Ret::Code(result::ERR_INVALID_ADDRESS);
            }
            ret
        }
    };
    set_mem_available(m, caller);
    m.log
        .append(kind::WITHDRAW_MEM, caller, code_of(ret), &payload);
    ret
}

fn query_protocol<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let rcx_in = regs.rcx;
    let (proto, version) = ((rcx_in >> 32) as u32, rcx_in as u32);
    regs.rcx = PROTOCOLS
        .iter()
        .find(|(p, lo, hi)| *p == proto && (*lo..=*hi).contains(&version))
        .map_or(0, |(_, lo, hi)| ((*hi as u64) << 32) | *lo as u64);
    m.log.append(
        kind::QUERY_PROTOCOL,
        caller,
        0,
        &QueryPayload {
            rcx_in,
            rcx_out: regs.rcx,
        },
    );
    Ret::Code(result::SUCCESS)
}

fn configure_vtom<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let rcx_in = regs.rcx;
    let ret = if rcx_in & CONFIGURE_VTOM_SET == 0 {
        regs.rcx = m.vtom;
        Ret::Code(result::SUCCESS)
    } else if !m.policy.allow_vtom {
        Ret::Code(result::ERR_INVALID_REQUEST)
    } else {
        let v = rcx_in & !CONFIGURE_VTOM_SET;
        if !v.is_multiple_of(crate::addr::PAGE_SIZE_2M) || v == 0 || v > m.pages.ram_size() {
            Ret::Code(result::ERR_INVALID_PARAMETER)
        } else {
            m.vtom = v;
            regs.rcx = v;
            Ret::Code(result::SUCCESS)
        }
    };
    let out = if ret == Ret::Code(result::SUCCESS) {
        regs.rcx
    } else {
        0
    };
    m.log.append(
        kind::CONFIGURE_VTOM,
        caller,
        code_of(ret),
        &QueryPayload {
            rcx_in,
            rcx_out: out,
        },
    );
    ret
}
