//! REMAP_CA (#58019 6.1), QUERY_PROTOCOL (6.7), CONFIGURE_VTOM (6.8).
use super::code_of;
use crate::addr::{Gpa, PageSize, PAGE_SIZE_2M};
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::Platform;
use crate::protocol::{range_to_code, Ret, PROTOCOLS};
use crate::Monitor;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{result, vtom};
use svsm_abi::event_log::{kind, QueryPayload, RemapCaPayload};

pub(super) fn remap_ca<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let new = Gpa(regs.rcx);
    let old = m
        .vcpus
        .by_apic(caller.apic_id)
        .map(|v| v.caa)
        .unwrap_or(Gpa(0));
    let ret = if !new.is_aligned(PageSize::Size4K) {
        // Section 5: a misaligned address is INVALID_PARAMETER.
        Ret::Code(result::ERR_INVALID_PARAMETER)
    } else if let Err(e) = m
        .pages
        .check_page(new, PageSize::Size4K, PageState::Validated)
    {
        Ret::Code(range_to_code(e))
    } else if new != old && m.vcpus.caa_in_use(new) {
        // Another vCPU's calling area: a conflict of addresses, INVALID_ADDRESS.
        Ret::Code(result::ERR_INVALID_ADDRESS)
    } else if let Some(v) = m.vcpus.by_apic_mut(caller.apic_id) {
        v.caa = new;
        // Section 5: the new area starts with no call pending (COCONUT `core_remap_ca`
        // clears it too). The call itself came through the old area, whose flag the
        // handshake clears after the call.
        if new != old {
            let _ = m.p.write(new, &[0]);
        }
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

pub(super) fn query_protocol<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
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

pub(super) fn configure_vtom<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let rcx_in = regs.rcx;
    let ret = if rcx_in & vtom::QUERY != 0 {
        vtom_query(m, regs)
    } else {
        vtom_configure(m, rcx_in)
    };
    let out = if ret == Ret::Code(result::SUCCESS) && rcx_in & vtom::QUERY != 0 {
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

/// 6.8 query (RCX bit 0 = 1, bits 63:1 zero, else INVALID_PARAMETER). The answer:
/// RCX bit 1 = vTOM configurable, bits 19:12 = the alignment a vTOM needs as a power of
/// two, everything else 0; RDX = the lowest and R8 = the highest vTOM accepted. Under a
/// policy without vTOM, RCX = 0 (not configurable; COCONUT answers the same) and RDX,
/// R8 are left as they were (undefined by the spec).
fn vtom_query<P: Platform>(m: &mut Monitor<P>, regs: &mut SvsmRegs) -> Ret {
    if regs.rcx != vtom::QUERY {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    if m.policy.allow_vtom {
        regs.rcx =
            vtom::SUPPORTED | (u64::from(PAGE_SIZE_2M.trailing_zeros()) << vtom::ALIGN_SHIFT);
        regs.rdx = PAGE_SIZE_2M;
        regs.r8 = m.pages.ram_size();
    } else {
        regs.rcx = 0;
    }
    Ret::Code(result::SUCCESS)
}

/// 6.8 configure (RCX bit 0 = 0): bits 11:5 must be zero, and so must bits 63:12 when
/// disabling (INVALID_PARAMETER); a policy without vTOM refuses with INVALID_REQUEST
/// (as COCONUT does), and so does *Vigil* for the register loads of bits 4:2 (the spec
/// lets an SVSM refuse what it cannot support); enable (bit 1) takes the vTOM of bits
/// 63:12, which must be 2 MiB aligned (INVALID_PARAMETER, section 5) and non-zero and
/// within guest RAM (else INVALID_ADDRESS: a value the environment cannot support).
fn vtom_configure<P: Platform>(m: &mut Monitor<P>, rcx: u64) -> Ret {
    let value = rcx & vtom::VALUE_MASK;
    if rcx & vtom::MBZ_MASK != 0 || (rcx & vtom::ENABLE == 0 && value != 0) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    if !m.policy.allow_vtom || rcx & vtom::LOAD_MASK != 0 {
        return Ret::Code(result::ERR_INVALID_REQUEST);
    }
    if rcx & vtom::ENABLE == 0 {
        m.vtom = 0;
        return Ret::Code(result::SUCCESS);
    }
    if !value.is_multiple_of(PAGE_SIZE_2M) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    if value == 0 || value > m.pages.ram_size() {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    m.vtom = value;
    Ret::Code(result::SUCCESS)
}
