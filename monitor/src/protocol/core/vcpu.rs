//! CREATE_VCPU (#58019 6.3) and DELETE_VCPU (6.4).
//!
//! CREATE_VCPU turns a guest page into a VMSA and does not start it: the guest starts
//! it with its own GHCB AP creation (Linux `wakeup_cpu_via_vmgexit`: `snp_set_vmsa`,
//! then `vmgexit_ap_control`). A CPU brought back online gets a new VMSA for its APIC
//! ID before the old one is deleted, so one APIC ID may have two VMSAs for a while;
//! the newest is the one whose calling area serves the APIC ID's calls.
use super::{code_of, rmp_code, set_guest_rights};
use crate::addr::{Gpa, PageSize};
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::{Perms, Platform, RmpError, TermReason};
use crate::protocol::{range_to_code, Ret};
use crate::vcpu::Vcpu;
use crate::Monitor;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, VcpuPayload};
use svsm_abi::vmsa::{offsets, Vmsa};
use zerocopy::FromBytes;

/// EFER.SVME, which an SEV-ES/SNP VMSA must have set to run.
const EFER_SVME: u64 = 1 << 12;

pub(super) fn create_vcpu<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let vmsa_gpa = Gpa(regs.rcx);
    let caa = Gpa(regs.rdx);
    // 6.3: R8 is the 32-bit APIC ID; the upper half is not part of the argument.
    let apic_id = regs.r8 as u32;
    let mut payload = VcpuPayload {
        vmsa_gpa: vmsa_gpa.0,
        caa_gpa: caa.0,
        apic_id,
        vmpl: 0,
        sev_features: 0,
    };
    let ret = match check_create_addresses(m, vmsa_gpa, caa, apic_id) {
        Err(code) => Ret::Code(code),
        Ok(()) => make_vmsa(m, vmsa_gpa, caa, apic_id, &mut payload),
    };
    m.log
        .append(kind::CREATE_VCPU, caller, code_of(ret), &payload);
    ret
}

/// The address rules of 6.3: both pages 4 KiB aligned (INVALID_PARAMETER, section 5),
/// both owned by the guest (invariant 6: never Vigil's memory), and no conflict with a
/// calling area or VMSA in use (INVALID_ADDRESS). The new calling area may be the one
/// the same APIC ID already uses (Linux keeps one calling area per CPU across
/// offline/online).
fn check_create_addresses<P: Platform>(
    m: &Monitor<P>,
    vmsa: Gpa,
    caa: Gpa,
    apic_id: u32,
) -> Result<(), u64> {
    if !vmsa.is_aligned(PageSize::Size4K) || !caa.is_aligned(PageSize::Size4K) {
        return Err(result::ERR_INVALID_PARAMETER);
    }
    for g in [vmsa, caa] {
        m.pages
            .check_page(g, PageSize::Size4K, PageState::Validated)
            .map_err(range_to_code)?;
    }
    let caa_taken = m.vcpus.iter().any(|v| v.caa == caa && v.apic_id != apic_id);
    if vmsa == caa || m.vcpus.caa_in_use(vmsa) || caa_taken {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    Ok(())
}

/// Takes the page from the guest, checks its contents, sets the VMSA bit.
fn make_vmsa<P: Platform>(
    m: &mut Monitor<P>,
    vmsa_gpa: Gpa,
    caa: Gpa,
    apic_id: u32,
    payload: &mut VcpuPayload,
) -> Ret {
    // Attack: the guest rewrites the VMSA from another vCPU between Vigil's check and
    // its use. Vigil first takes the page away from the guest, then reads and checks
    // it: what it checked is what the CPU will run.
    match set_guest_rights(m, vmsa_gpa, PageSize::Size4K, Perms::empty()) {
        Ok(()) => {}
        // A VMSA must be a 4 KiB RMP page; a page inside a 2 MiB entry is refused.
        Err(RmpError::FailSizeMismatch) => return Ret::Code(result::ERR_INVALID_PARAMETER),
        Err(e) => return Ret::Code(rmp_code(e)),
    }
    let mut raw = alloc::vec![0u8; 4096];
    let vmsa = match m.p.read(vmsa_gpa, &mut raw) {
        Ok(()) => Vmsa::read_from_bytes(&raw).ok(),
        Err(_) => None,
    };
    let Some(vmsa) = vmsa else {
        return give_back(m, vmsa_gpa);
    };
    payload.vmpl = vmsa.vmpl as u32;
    payload.sev_features = vmsa.sev_features;
    // 6.3 (COCONUT `check_vmsa` alike): the guest's VMPL, exactly the boot vCPU's
    // SEV_FEATURES (which the policy allowed at launch, invariant 6), EFER.SVME set.
    if vmsa.vmpl != m.guest_vmpl.get()
        || vmsa.sev_features != m.boot_sev_features
        || vmsa.efer & EFER_SVME == 0
    {
        return give_back(m, vmsa_gpa);
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
    Ret::Code(result::SUCCESS)
}

/// A refused VMSA: the guest gets its page back (INVALID_PARAMETER).
fn give_back<P: Platform>(m: &mut Monitor<P>, vmsa_gpa: Gpa) -> Ret {
    if set_guest_rights(m, vmsa_gpa, PageSize::Size4K, Perms::all()).is_err() {
        Ret::Fatal(TermReason::HostInconsistent)
    } else {
        Ret::Code(result::ERR_INVALID_PARAMETER)
    }
}

pub(super) fn delete_vcpu<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let vmsa_gpa = Gpa(regs.rcx);
    let mut payload = VcpuPayload {
        vmsa_gpa: vmsa_gpa.0,
        caa_gpa: 0,
        apic_id: 0,
        vmpl: 0,
        sev_features: 0,
    };
    // 6.4: a misaligned GPA (section 5), an unknown VMSA and the startup vCPU's VMSA
    // (which Vigil never lists) are all INVALID_PARAMETER.
    let known = if vmsa_gpa.is_aligned(PageSize::Size4K) {
        m.vcpus.by_vmsa(vmsa_gpa).copied()
    } else {
        None
    };
    let ret = match known {
        None => Ret::Code(result::ERR_INVALID_PARAMETER),
        Some(v) => {
            payload.vmpl = m.guest_vmpl.get() as u32;
            let own = m.vcpus.by_apic(caller.apic_id) == Some(&v);
            let r = unmake_vmsa(m, vmsa_gpa);
            if r == Ret::Code(result::SUCCESS) {
                m.vcpus.remove_vmsa(vmsa_gpa);
                m.pages
                    .set(vmsa_gpa, PageSize::Size4K, PageState::Validated);
                // 6.4: deleting one's own VMSA does not return; the vCPU is gone.
                m.caller_deleted = own;
            }
            r
        }
    };
    m.log
        .append(kind::DELETE_VCPU, caller, code_of(ret), &payload);
    ret
}

/// 6.4: clear EFER.SVME in the VMSA (the CPU refuses to run it from then on), clear
/// the VMSA bit (RMPADJUST fails with FAIL_INUSE while a vCPU is running on it: the
/// call then returns 0x8000_1003 and the guest may retry), give the page back.
fn unmake_vmsa<P: Platform>(m: &mut Monitor<P>, vmsa_gpa: Gpa) -> Ret {
    let Some(at) = vmsa_gpa.checked_add(offsets::EFER as u64) else {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    };
    let mut efer = [0u8; 8];
    if m.p.read(at, &mut efer).is_err() {
        // Vigil's own VMSA page is gone: only the host can have done that.
        return Ret::Fatal(TermReason::HostInconsistent);
    }
    let cleared = u64::from_le_bytes(efer) & !EFER_SVME;
    if m.p.write(at, &cleared.to_le_bytes()).is_err() {
        return Ret::Fatal(TermReason::HostInconsistent);
    }
    match m.p.rmpadjust(
        vmsa_gpa,
        PageSize::Size4K,
        m.guest_vmpl,
        Perms::empty(),
        false,
    ) {
        Ok(()) => {}
        Err(RmpError::FailInUse) => return Ret::Code(result::ERR_FAIL_INUSE),
        Err(e) => return Ret::Code(rmp_code(e)),
    }
    if set_guest_rights(m, vmsa_gpa, PageSize::Size4K, Perms::all()).is_err() {
        return Ret::Fatal(TermReason::HostInconsistent);
    }
    Ret::Code(result::SUCCESS)
}
