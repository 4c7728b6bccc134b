//! A scripted CPU and a small 64-bit guest for the machine's tests (shared by the
//! `machine_*.rs` test files).
#![allow(dead_code)]

use std::collections::VecDeque;

use snp_model::ghcb_exits::SecurityProcessor;
use snp_model::host::{Devices, Host, Profile};
use snp_model::launch::Launched;
use snp_model::machine::vmsa::{off, Segment, Vmsa};
use snp_model::machine::walk::{map_4k, C_BIT_MASK};
use snp_model::machine::{Cpu, Exit, Machine};
use snp_model::memory::Memory;
use snp_model::rmp::{PageSize, Perms, Rmp, RmpEntry};
use snp_model::vc::gate_bytes;

/// No devices.
pub struct NoDev;
impl Devices for NoDev {
    fn io_in(&mut self, _: u16, _: u8) -> u32 {
        0
    }
    fn io_out(&mut self, _: u16, _: u8, _: u32) {}
    fn mmio_read(&mut self, _: u64, _: &mut [u8]) {}
    fn mmio_write(&mut self, _: u64, _: &[u8]) {}
}

/// A security processor that refuses everything.
pub struct NoPsp;
impl SecurityProcessor for NoPsp {
    fn guest_request(&mut self, _: &[u8; 4096]) -> Result<[u8; 4096], u32> {
        Err(0x16)
    }
}

pub type M = Machine<NoDev, NoPsp>;

/// Memory size: 4 MiB.
pub const MEM: u64 = 0x40_0000;
/// Guest layout; linear address = GPA (mapped with the C-bit unless said otherwise).
pub const PML4: u64 = 0x1000;
pub const CODE: u64 = 0x10_0000;
pub const PVALIDATE_AT: u64 = CODE;
pub const RMPADJUST_AT: u64 = CODE + 0x10;
pub const RMPQUERY_AT: u64 = CODE + 0x20;
pub const WRMSR_AT: u64 = CODE + 0x30;
pub const RDMSR_AT: u64 = CODE + 0x40;
pub const VMGEXIT_AT: u64 = CODE + 0x50;
pub const VMMCALL_AT: u64 = CODE + 0x60;
pub const CPUID_AT: u64 = CODE + 0x70;
pub const UD2_AT: u64 = CODE + 0x80;
pub const HLT_AT: u64 = CODE + 0x90;
pub const HANDLER: u64 = CODE + 0x800;
pub const IDT: u64 = 0x10_1000;
pub const GDT: u64 = 0x10_2000;
pub const TSS: u64 = 0x10_2100;
pub const STACK_TOP: u64 = 0x10_6000;
pub const RSP0: u64 = 0x10_6000 - 8;
/// A page for a VMPL2 VMSA (launched, validated, VMPL0 only).
pub const VMSA2: u64 = 0x10_8000;
/// A page assigned to the guest but not validated.
pub const FRESH: u64 = 0x11_0000;
/// A validated page VMPL2 may only read.
pub const READ_ONLY2: u64 = 0x11_1000;
/// A host (shared) page, mapped without the C-bit: the GHCB.
pub const GHCB: u64 = 0x3f_0000;
/// A host page mapped WITH the C-bit (a private access to a shared page).
pub const HOST_PAGE: u64 = 0x3e_0000;

pub const CS64: Segment = Segment {
    selector: 0x08,
    attrib: 0xa9b,
    limit: 0xffff_ffff,
    base: 0,
};
pub const SS0: Segment = Segment {
    selector: 0x10,
    attrib: 0xc93,
    limit: 0xffff_ffff,
    base: 0,
};

/// One scripted exit and the register changes the guest made before it.
pub type Apply = Box<dyn FnMut(&mut Vmsa)>;

/// A CPU that returns scripted exits (HLT when the script is done), records every
/// entry's state and every map/unmap.
#[derive(Default)]
pub struct FakeCpu {
    pub script: VecDeque<(Exit, Option<Apply>)>,
    pub entries: Vec<(u32, u8, Vmsa)>,
    pub maps: Vec<(u8, u64, Perms)>,
    pub unmaps: Vec<u64>,
}

impl FakeCpu {
    pub fn push(&mut self, code: u64, info1: u64, info2: u64, f: impl FnMut(&mut Vmsa) + 'static) {
        self.script
            .push_back((Exit { code, info1, info2 }, Some(Box::new(f))));
    }
}

impl Cpu for FakeCpu {
    fn run(&mut self, vcpu: u32, vmpl: u8, vmsa: &mut [u8; 4096]) -> Exit {
        let mut v = Vmsa(*vmsa);
        self.entries.push((vcpu, vmpl, v.clone()));
        let Some((exit, f)) = self.script.pop_front() else {
            v.set_rip(HLT_AT);
            vmsa.copy_from_slice(&v.0);
            return Exit {
                code: 0x78,
                info1: 0,
                info2: 0,
            };
        };
        if let Some(mut f) = f {
            f(&mut v);
        }
        vmsa.copy_from_slice(&v.0);
        exit
    }
    fn map(&mut self, vmpl: u8, gpa: u64, perms: Perms) {
        self.maps.push((vmpl, gpa, perms));
    }
    fn unmap(&mut self, gpa: u64) {
        self.unmaps.push(gpa);
    }
}

fn launch(rmp: &mut Rmp, gpa: u64, lower: Perms) {
    rmp.rmpupdate(
        gpa,
        PageSize::Size4K,
        RmpEntry {
            validated: true,
            perms: [Perms::ALL, lower, lower, lower],
            ..RmpEntry::assigned(PageSize::Size4K)
        },
    )
    .unwrap();
}

/// The boot VMSA: 64-bit mode at CPL0, paging through `PML4`, IDT/GDT/TSS as laid out.
pub fn boot_vmsa() -> Vmsa {
    let mut v = Vmsa::zeroed();
    v.set_efer((1 << 8) | (1 << 10) | (1 << 11) | (1 << 12));
    v.set_cr0((1 << 31) | (1 << 16) | 1);
    v.set_cr4(1 << 5);
    v.set_cr3(PML4);
    v.set_segment(off::CS, CS64);
    for o in [off::SS, off::DS, off::ES] {
        v.set_segment(o, SS0);
    }
    let table = |base, limit| Segment {
        selector: 0,
        attrib: 0,
        limit,
        base,
    };
    v.set_segment(off::IDTR, table(IDT, 0xfff));
    v.set_segment(off::GDTR, table(GDT, 0x17));
    v.set_segment(
        off::TR,
        Segment {
            selector: 0x18,
            attrib: 0x8b,
            limit: 0x67,
            base: TSS,
        },
    );
    v.set_rsp(STACK_TOP - 0x108);
    v.set_rflags(0x202);
    v.set_rip(CODE);
    v.set_sev_features(1);
    v
}

fn code_bytes(mem: &mut Memory) {
    let snippets: [(u64, &[u8]); 11] = [
        (PVALIDATE_AT, &[0xf2, 0x0f, 0x01, 0xff]),
        (RMPADJUST_AT, &[0xf3, 0x0f, 0x01, 0xfe]),
        (RMPQUERY_AT, &[0xf3, 0x0f, 0x01, 0xfd]),
        (WRMSR_AT, &[0x0f, 0x30]),
        (RDMSR_AT, &[0x0f, 0x32]),
        (VMGEXIT_AT, &[0xf3, 0x0f, 0x01, 0xd9]),
        (VMMCALL_AT, &[0x0f, 0x01, 0xd9]),
        (CPUID_AT, &[0x0f, 0xa2]),
        (UD2_AT, &[0x0f, 0x0b]),
        (HLT_AT, &[0xf4]),
        (HANDLER, &[0xf4]),
    ];
    for (at, b) in snippets {
        mem.write(at, b).unwrap();
    }
}

/// The machine with the guest loaded and `vcpus` vCPUs (vCPU 0 launched at VMPL0).
pub fn machine_with(vcpus: u32) -> M {
    machine_from(vcpus, boot_vmsa())
}

/// One vCPU launched with `vmsa`.
pub fn machine_with_launch_vmsa(vmsa: Vmsa) -> M {
    machine_from(1, vmsa)
}

/// `vcpus` vCPUs, vCPU 0 launched with `vmsa`.
pub fn machine_from(vcpus: u32, vmsa: Vmsa) -> M {
    let mut mem = Memory::new(MEM);
    let mut rmp = Rmp::new(MEM / 4096);
    mem.write(PML4, &[0; 4096]).unwrap();
    let mut next = 0x2000;
    let private = [
        CODE, IDT, GDT, 0x10_3000, 0x10_4000, 0x10_5000, VMSA2, FRESH, READ_ONLY2,
    ];
    for p in private.into_iter().chain([HOST_PAGE]) {
        map_4k(&mut mem, PML4, &mut next, p, p | C_BIT_MASK, 2);
    }
    map_4k(&mut mem, PML4, &mut next, GHCB, GHCB, 2);
    for p in (PML4..next).step_by(4096) {
        launch(&mut rmp, p, Perms::ALL);
    }
    for p in [CODE, IDT, GDT, 0x10_3000, 0x10_4000, 0x10_5000] {
        launch(&mut rmp, p, Perms::ALL);
    }
    launch(&mut rmp, VMSA2, Perms::NONE);
    launch(&mut rmp, READ_ONLY2, Perms(Perms::READ));
    rmp.make_private(FRESH, PageSize::Size4K).unwrap();
    code_bytes(&mut mem);
    mem.write(IDT + 29 * 16, &gate_bytes(HANDLER, 0x08, 0, 0xe))
        .unwrap();
    let gdt: [u64; 3] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
    for (i, d) in gdt.iter().enumerate() {
        mem.write(GDT + 8 * i as u64, &d.to_le_bytes()).unwrap();
    }
    mem.write(TSS, &[0; 104]).unwrap();
    mem.write(TSS + 4, &RSP0.to_le_bytes()).unwrap();
    let launched = Launched {
        digest: [7; 48],
        pages: 0,
        policy: 0,
        vmsas: vec![vmsa.0],
    };
    let host = Host::new(Profile::default(), vcpus, 1);
    Machine::new(mem, rmp, host, NoPsp, NoDev, &launched)
}

/// One vCPU.
pub fn machine() -> M {
    machine_with(1)
}

/// The u64 at `gpa`.
pub fn q(m: &M, gpa: u64) -> u64 {
    let mut b = [0u8; 8];
    m.mem.read(gpa, &mut b).unwrap();
    u64::from_le_bytes(b)
}

/// A guest WRMSR of `value` to `msr` (RIP at the WRMSR snippet).
pub fn wrmsr(cpu: &mut FakeCpu, msr: u32, value: u64) {
    cpu.push(0x7c, 1, 0, move |v| {
        v.set_rip(WRMSR_AT);
        v.set_gpr(snp_model::machine::vmsa::Gpr::Rcx, u64::from(msr));
        v.set_rax(value & 0xffff_ffff);
        v.set_gpr(snp_model::machine::vmsa::Gpr::Rdx, value >> 32);
    });
}

/// A guest VMGEXIT.
pub fn vmgexit(cpu: &mut FakeCpu) {
    cpu.push(0x81, 0, 0, |v| v.set_rip(VMGEXIT_AT));
}
