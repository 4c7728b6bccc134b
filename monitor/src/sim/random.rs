//! Random guest calls and host behaviours for property tests, the soak run and
//! fuzzers. A step is four raw numbers; [`apply`] turns them into one action on a
//! [`SimVm`] built with [`super::vm::SimConfig::small`], biased towards the addresses
//! that matter (page and 2 MiB boundaries, Vigil's memory, the calling area, VMSAs).
//! Step 13 also drives the protection protocol (declare, lock, query, unlock).
use super::hypervisor::HostMode;
use super::machine::Race;
use super::vm::{SimVm, BOOT_APIC, LIST_PAGE};
use crate::addr::{Gpa, PageSize};
use crate::platform::{PscOp, PscRequest};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::call;
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::IntoBytes;

/// One random step: an action selector and three raw arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which action.
    pub op: u8,
    /// Argument.
    pub a: u64,
    /// Argument.
    pub b: u64,
    /// Argument.
    pub c: u64,
}

const RAM_PAGES: u64 = 2048;

/// A page address: mostly the interesting ones.
fn page(x: u64) -> Gpa {
    let gfn = match x % 8 {
        0 => 0x200 + (x >> 3) % 0x200,                      // [2, 4) MiB
        1 => 0x600 + (x >> 3) % 0x200,                      // [6, 8) MiB
        2 => 0x400 + (x >> 3) % 0x200,                      // Vigil
        3 => (x >> 3) % 0x100,                              // launch image
        4 => [0x1, 0x2, 0x10, 0x11][(x >> 3) as usize % 4], // CA, list page, VMSA candidates
        5 => RAM_PAGES + (x >> 3) % 4,                      // just past RAM
        _ => 0x200 + (x >> 3) % 0x600,
    };
    Gpa::from_gfn(gfn)
}

fn base_2m(x: u64) -> Gpa {
    Gpa((x % 4) << 21)
}

fn entry(x: u64, y: u64) -> PvalidateEntry {
    let size_2m = y.is_multiple_of(5);
    let gpa = if size_2m { base_2m(x) } else { page(x) };
    let mut e = PvalidateEntry::new(gpa.gfn(), size_2m, y & 2 != 0, y & 4 != 0);
    if y % 97 == 1 {
        e.0 |= 0x10; // a reserved bit
    }
    if y % 89 == 1 {
        e.0 |= 3; // an invalid size
    }
    e
}

fn modes(x: u64) -> HostMode {
    match x % 10 {
        0 => HostMode::RefuseAll,
        1 => HostMode::PscPartial(1 + (x % 7) as u16),
        2 => HostMode::PscBackwards,
        3 => HostMode::PscAlterEntry,
        4 => HostMode::PscLie,
        5 => HostMode::PscStall,
        6 => HostMode::ApRefuse,
        7 => HostMode::GuestRequestCorrupt,
        8 => HostMode::GuestRequestReplay,
        9 if x & 0x10 != 0 => HostMode::VcpuPinned,
        _ => HostMode::Garbage,
    }
}

/// Applies one step. Host modes set by a step last for the next step only (a step
/// that ends early leaves the mode set).
pub fn apply(vm: &mut SimVm, s: Step) {
    let hostile = vm.mach().hv.mode != HostMode::Honest;
    let completed = match s.op % 20 {
        0 | 1 => psc_step(vm, s),
        2..=5 => pvalidate_step(vm, s),
        6 | 7 => create_vcpu_step(vm, s),
        8 => delete_vcpu_step(vm, s),
        9 | 10 => deposit_step(vm, s),
        11 => withdraw_step(vm, s),
        12 => remap_ca_step(vm, s),
        13 => query_step(vm, s),
        14 => attest_step(vm, s, hostile),
        15 => host_remap_step(vm, s),
        16 => hostile_mode_step(vm, s),
        17 => raw_call_step(vm, s),
        18 => guest_write_step(vm, s),
        _ => race_step(vm, s),
    };
    if hostile && completed {
        vm.mach_mut().hv.mode = HostMode::Honest;
    }
}

/// A page-state change the guest asks the host for (rarely one that hits Vigil or the
/// call pages).
/// Returns false when the step ends early (the host mode then stays).
fn psc_step(vm: &mut SimVm, s: Step) -> bool {
    let size_2m = s.b.is_multiple_of(4);
    let (gpa, size) = if size_2m {
        (base_2m(s.a), PageSize::Size2M)
    } else {
        (page(s.a), PageSize::Size4K)
    };
    let n = 1 + s.c % 4;
    let op = if s.op.is_multiple_of(20) || !s.c.is_multiple_of(3) {
        PscOp::Private
    } else {
        PscOp::Shared
    };
    let req: std::vec::Vec<_> = (0..n)
        .map(|i| PscRequest {
            gpa: Gpa(gpa.0 + i * size.bytes()),
            size,
            op,
        })
        .collect();
    // Asking the host to take Vigil's memory ends the VM; keep it rare so that
    // runs reach deep states.
    let hits_vigil = req
        .iter()
        .any(|r| vm.m.pages().overlaps_vigil(r.gpa, r.size.bytes()));
    // Likewise for the pages that carry the calls (calling area, list page).
    let hits_calls = req
        .iter()
        .any(|r| r.gpa.0 < 0x3000 + r.size.bytes() && r.gpa.0 + r.size.bytes() > 0x1000);
    if (hits_vigil || hits_calls) && !s.c.is_multiple_of(64) {
        return false;
    }
    let _ = vm.guest_psc(&req);
    true
}

/// A PVALIDATE list call, sometimes after the page-state change a guest makes first.
fn pvalidate_step(vm: &mut SimVm, s: Step) -> bool {
    let n = 1 + s.c % 4;
    let list: std::vec::Vec<_> = (0..n)
        .map(|i| {
            entry(
                s.a.rotate_left(i as u32 * 13),
                s.b.rotate_left(i as u32 * 7),
            )
        })
        .collect();
    let next = if s.c.is_multiple_of(31) {
        (s.c >> 8) as u16 % 6
    } else {
        0
    };
    if s.c & 0x100 != 0 {
        // The guest's usual flow: page-state change to private, then PVALIDATE.
        let req: std::vec::Vec<_> = list
            .iter()
            .filter_map(|e| {
                let size = PageSize::from_field(e.size_field())?;
                if vm.m.pages().overlaps_vigil(Gpa(e.gpa()), size.bytes()) || e.gpa() < 0x3000 {
                    return None;
                }
                Some(PscRequest {
                    gpa: Gpa(e.gpa()),
                    size,
                    op: PscOp::Private,
                })
            })
            .collect();
        if !req.is_empty() {
            let _ = vm.guest_psc(&req);
        }
    }
    vm.list_call(call::PVALIDATE, LIST_PAGE, &list, next);
    true
}

/// CREATE_VCPU with a VMSA the guest wrote (sometimes a bad one), then the guest starts
/// it.
fn create_vcpu_step(vm: &mut SimVm, s: Step) -> bool {
    let core = |c| SvsmRegs::rax_for(0, c);
    let vmsa = page(s.a);
    let caa = page(s.b);
    let vmpl = if s.c.is_multiple_of(7) {
        (s.c >> 3) as u8 % 4
    } else {
        vm.m.guest_vmpl().get()
    };
    let mut f = SevFeatures::SNP_ACTIVE.bits();
    if s.c.is_multiple_of(11) {
        f = (s.c >> 5) & 0x1_ffff;
    }
    let efer = if s.c.is_multiple_of(13) { 0 } else { 1 << 12 };
    let _ = vm.write_vmsa(vmsa, vmpl, f, efer);
    let apic = ((s.c >> 16) % 6) as u32;
    let (_, r) = vm.call(core(call::CREATE_VCPU), vmsa.0, caa.0, apic as u64);
    // The guest starts its new vCPU itself, as Linux does after CREATE_VCPU.
    if r.rax == 0 && !s.b.is_multiple_of(3) {
        let _ = vm.guest_ap_create(apic, vmsa);
    }
    true
}

/// DELETE_VCPU of a known VMSA or a random page, from the boot vCPU or another.
fn delete_vcpu_step(vm: &mut SimVm, s: Step) -> bool {
    let core = |c| SvsmRegs::rax_for(0, c);
    let vmsa = match vm
        .m
        .vcpus()
        .iter()
        .filter_map(|v| v.vmsa)
        .nth((s.a % 4) as usize)
    {
        Some(g) if !s.b.is_multiple_of(4) => g,
        _ => page(s.a),
    };
    let apic = if s.c.is_multiple_of(3) {
        (s.c >> 4) as u32 % 6
    } else {
        BOOT_APIC
    };
    vm.call_from(
        apic,
        SvsmRegs {
            rax: core(call::DELETE_VCPU),
            rcx: vmsa.0,
            ..Default::default()
        },
    );
    true
}

/// DEPOSIT_MEM entries (6.5): size in bits 1:0, bits 11:2 reserved.
fn deposit_step(vm: &mut SimVm, s: Step) -> bool {
    let n = 1 + s.c % 2;
    let list: std::vec::Vec<_> = (0..n)
        .map(|i| {
            let e = entry(s.a.rotate_left(i as u32 * 17), s.b);
            PvalidateEntry(
                e.0 & !(svsm_abi::pvalidate::ENTRY_VALIDATE | svsm_abi::pvalidate::ENTRY_IGNORE_CF),
            )
        })
        .collect();
    vm.list_call(call::DEPOSIT_MEM, LIST_PAGE, &list, 0);
    true
}

/// WITHDRAW_MEM.
fn withdraw_step(vm: &mut SimVm, s: Step) -> bool {
    vm.list_call(
        call::WITHDRAW_MEM,
        LIST_PAGE,
        &[PvalidateEntry(0); 4][..1 + (s.c % 4) as usize],
        0,
    );
    true
}

/// REMAP_CA to the usual calling area or a random page.
fn remap_ca_step(vm: &mut SimVm, s: Step) -> bool {
    let core = |c| SvsmRegs::rax_for(0, c);
    let to = if s.c.is_multiple_of(2) {
        Gpa(0x1000)
    } else {
        page(s.a)
    };
    vm.call(core(call::REMAP_CA), to.0, 0, 0);
    true
}

/// QUERY_PROTOCOL and CONFIGURE_VTOM, and half the time a protection-protocol call.
fn query_step(vm: &mut SimVm, s: Step) -> bool {
    let core = |c| SvsmRegs::rax_for(0, c);
    vm.call(
        core(call::QUERY_PROTOCOL),
        ((s.a % 3) << 32) | (s.b % 3),
        0,
        0,
    );
    vm.call(core(call::CONFIGURE_VTOM), s.c, 0, 0);
    if s.a % 2 == 1 {
        protect_step(vm, s);
    }
    true
}

/// Attestation: signing is the slowest step, so it is rarer (unless the host was just
/// made hostile, to exercise the guest-request checks).
fn attest_step(vm: &mut SimVm, s: Step, hostile: bool) -> bool {
    // Attestation: signing is the slowest step, so it is rarer (unless the host
    // was just made hostile, to exercise the guest-request checks).
    if s.a.is_multiple_of(4) || hostile {
        let req = svsm_abi::attest_protocol::AttestServicesRequest {
            report_gpa: 0x23000,
            report_size: if s.b.is_multiple_of(5) { 16 } else { 4096 },
            nonce_gpa: if s.c.is_multiple_of(4) {
                page(s.c).0
            } else {
                0x21000
            },
            nonce_size: (s.b % 80) as u16,
            manifest_gpa: 0x22000,
            manifest_size: 4096,
            ..Default::default()
        };
        let _ = vm.guest_write(Gpa(0x20000), req.as_bytes());
        vm.call(SvsmRegs::rax_for(1, (s.c % 3) as u32), 0x20000, 0, 0);
    }
    true
}

/// The host remaps a page (rarely one of Vigil's).
/// Returns false when the step ends early (the host mode then stays).
fn host_remap_step(vm: &mut SimVm, s: Step) -> bool {
    let g = if s.b.is_multiple_of(50) {
        Gpa((4 << 20) + (s.a % 0x200) * 4096)
    } else {
        page(s.a)
    };
    if (vm.m.pages().overlaps_vigil(g, 4096) || (0x1000..0x3000).contains(&g.0))
        && !s.b.is_multiple_of(50)
    {
        return false;
    }
    vm.mach_mut().host_remap(g, s.c as u8);
    true
}

/// The next step meets a hostile host (one time in four).
/// Returns false when the step ends early (the host mode then stays).
fn hostile_mode_step(vm: &mut SimVm, s: Step) -> bool {
    if s.b.is_multiple_of(4) {
        vm.mach_mut().hv.mode = modes(s.a);
        return false;
    }
    true
}

/// A call with random registers from one of three vCPUs.
fn raw_call_step(vm: &mut SimVm, s: Step) -> bool {
    vm.call_from(
        (s.c % 3) as u32,
        SvsmRegs {
            rax: s.a,
            rcx: s.b,
            rdx: s.c,
            r8: s.a ^ s.b,
            r9: 0,
        },
    );
    true
}

/// The guest writes a random page.
fn guest_write_step(vm: &mut SimVm, s: Step) -> bool {
    let _ = vm.guest_write(page(s.a), &s.b.to_le_bytes());
    true
}

/// A racing vCPU rewrites the list page while Vigil reads it.
fn race_step(vm: &mut SimVm, s: Step) -> bool {
    let at = Gpa(LIST_PAGE.0 + (s.b % 5) * 8);
    vm.mach_mut().race = Some(Race {
        vmpl: vm.m.guest_vmpl().get(),
        at,
        bytes: entry(s.a, s.c).0.to_le_bytes().to_vec(),
    });
    vm.list_call(call::PVALIDATE, LIST_PAGE, &[entry(s.c, s.a)], 0);
    vm.mach_mut().race = None;
    true
}

/// A protection-protocol call: declare ranges in [256 KiB, 512 KiB) of the launch
/// image (clear of the calling area, the list page, the VMSA candidates and the
/// attestation buffers, so that locking them leaves the other calls their pages),
/// sometimes of an unknown kind, half the time locked at once; lock; query; unlock.
fn protect_step(vm: &mut SimVm, s: Step) {
    use super::protect_calls::range;
    use svsm_abi::protect_protocol::call as pcall;
    match s.b % 4 {
        0 | 1 => {
            let n = 1 + (s.c >> 20) % 2;
            let ranges: std::vec::Vec<_> = (0..n)
                .map(|i| {
                    let x = s.c.rotate_left(i as u32 * 23);
                    let kind = if x.is_multiple_of(17) {
                        3
                    } else {
                        1 + ((x >> 12) & 1) as u32
                    };
                    range((0x40 + x % 0x40) << 12, 1 + ((x >> 8) % 4) as u32, kind)
                })
                .collect();
            // The usual guest flow: declare, then lock at once (half the time).
            if vm.protect_declare(&ranges) == 0 && (s.c >> 30) & 1 == 0 {
                let _ = vm.protect_lock();
            }
        }
        2 => {
            let _ = vm.protect_lock();
        }
        _ => {
            let c = if s.c.is_multiple_of(2) {
                pcall::QUERY
            } else {
                pcall::UNLOCK
            };
            let _ = vm.protect_call(c, s.c);
        }
    }
}

/// Summary of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunSummary {
    /// Steps applied.
    pub steps: u64,
    /// VMs launched.
    pub vms: u64,
    /// VMs that ended in termination.
    pub terminations: u64,
    /// Terminations by reason: host inconsistent, host refused, guest request failed,
    /// Vigil memory lost.
    pub reasons: [u64; 4],
    /// Calls dispatched.
    pub calls: u64,
    /// Successful calls by log record kind: PVALIDATE, CREATE_VCPU, DELETE_VCPU,
    /// DEPOSIT_MEM, WITHDRAW_MEM, REMAP_CA, ATTEST.
    pub ok: [u64; 7],
    /// Refused calls (non-zero result).
    pub refused: u64,
    /// Successful protection locks (PROTECT_LOCK with result 0).
    pub locks: u64,
}

impl RunSummary {
    fn tally(&mut self, vm: &SimVm) {
        use svsm_abi::event_log::kind;
        self.calls += vm.dispatched;
        let _ = svsm_abi::event_log::replay(vm.m.event_log().bytes(), |h, _| {
            let slot = match h.kind {
                kind::PVALIDATE => 0,
                kind::CREATE_VCPU => 1,
                kind::DELETE_VCPU => 2,
                kind::DEPOSIT_MEM => 3,
                kind::WITHDRAW_MEM => 4,
                kind::REMAP_CA => 5,
                kind::ATTEST => 6,
                _ => 7,
            };
            if h.kind == kind::PROTECT_LOCK && h.result == 0 {
                self.locks += 1;
            }
            if h.result != 0 {
                self.refused += 1;
            } else if let Some(x) = self.ok.get_mut(slot) {
                *x += 1;
            }
        });
    }
}

/// Runs `steps` random steps from `seed`, a fresh VM every `episode` steps (or after a
/// termination), checking every invariant after every step. Returns the first broken
/// invariant with its step number.
pub fn run(seed: u64, steps: u64, episode: u64) -> Result<RunSummary, std::string::String> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut sum = RunSummary::default();
    let mut vm = SimVm::new(super::vm::SimConfig::small(seed));
    sum.vms = 1;
    let mut in_episode = 0;
    for i in 0..steps {
        if in_episode == episode || vm.m.terminated().is_some() {
            if let Some(r) = vm.m.terminated() {
                sum.terminations += 1;
                sum.reasons[r as usize] += 1;
            }
            sum.tally(&vm);
            vm = SimVm::new(super::vm::SimConfig::small(rng.next_u64()));
            sum.vms += 1;
            in_episode = 0;
        }
        let s = Step {
            op: rng.next_u32() as u8,
            a: rng.next_u64(),
            b: rng.next_u64(),
            c: rng.next_u64(),
        };
        apply(&mut vm, s);
        super::invariants::check(&vm).map_err(|e| std::format!("step {i} ({s:?}): {e}"))?;
        in_episode += 1;
        sum.steps += 1;
    }
    sum.tally(&vm);
    Ok(sum)
}
