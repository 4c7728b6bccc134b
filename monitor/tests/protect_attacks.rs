//! Attacks on a locked protection (issue 12), each refused by the simulated RMP's
//! per-VMPL rule for its access kind, not by the monitor's bookkeeping: the evidence is
//! the machine's own record of refused accesses (`SimMachine::rmp_faults`) and of
//! refused host actions (`host_refused`). Each attack is first shown to work before
//! the lock, so that the lock is what refuses it. Then the invariant checker is shown
//! to catch each protection invariant broken on purpose.
use monitor::access::Access;
use monitor::addr::{Gpa, PageSize, Vmpl};
use monitor::platform::{Perms, Platform};
use monitor::sim::invariants::check;
use monitor::sim::protect_calls::range;
use monitor::sim::vm::SimConfig;
use monitor::sim::SimVm;
use svsm_abi::core_protocol::result::*;
use svsm_abi::protect_protocol::range_kind;
use svsm_abi::pvalidate::PvalidateEntry;

const TEXT: u64 = 0x1_0000;
const RODATA: u64 = 0x2_0000;
const DATA: u64 = 0x3_0000;
const FREE: u64 = 2 << 20;

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(7))
}

fn declare(v: &mut SimVm) {
    let r = [
        range(TEXT, 4, range_kind::TEXT),
        range(RODATA, 2, range_kind::RODATA),
    ];
    assert_eq!(v.protect_declare(&r), SUCCESS);
}

fn locked() -> SimVm {
    let mut v = vm();
    declare(&mut v);
    assert_eq!(v.protect_lock(), SUCCESS);
    v
}

/// The machine refused the guest VMPL's access of kind `bits` to the page of `gpa`.
fn machine_refused(v: &SimVm, gpa: u64, bits: u32) -> bool {
    v.mach()
        .rmp_faults
        .borrow()
        .iter()
        .any(|f| f.0 == 2 && f.1 == Gpa(gpa & !0xfff) && f.2 == bits)
}

#[test]
fn the_guest_cannot_write_its_text_or_read_only_data_after_the_lock() {
    let mut v = vm();
    declare(&mut v);
    assert!(v.guest_write(Gpa(TEXT + 0x10), &[0xcc]).is_ok());
    assert_eq!(v.protect_lock(), SUCCESS);
    let mut before = [0u8; 1];
    v.mach().peek(Gpa(TEXT + 0x10), &mut before);
    assert!(v.guest_write(Gpa(TEXT + 0x10), &[0x90]).is_err());
    assert!(machine_refused(&v, TEXT, Access::WRITE.bits()));
    assert!(v.guest_write(Gpa(RODATA), &[1]).is_err());
    assert!(machine_refused(&v, RODATA, Access::WRITE.bits()));
    let mut after = [0u8; 1];
    v.mach().peek(Gpa(TEXT + 0x10), &mut after);
    assert_eq!(before, after);
    // Nor can VMPL1, the VMPL between Vigil and the guest.
    assert!(v.mach_mut().guest_write(1, Gpa(TEXT), &[0]).is_err());
    // The text still reads and runs in supervisor mode; not in user mode.
    assert!(v.guest_read(Gpa(TEXT), &mut [0u8; 8]).is_ok());
    assert!(v.guest_exec(Gpa(TEXT), true).is_ok());
    assert!(v.guest_exec(Gpa(TEXT), false).is_err());
    check(&v).unwrap();
}

#[test]
fn supervisor_execution_from_a_data_page_is_refused_after_the_lock() {
    let mut v = vm();
    declare(&mut v);
    assert!(v.guest_exec(Gpa(DATA), true).is_ok());
    assert_eq!(v.protect_lock(), SUCCESS);
    assert!(v.guest_exec(Gpa(DATA), true).is_err());
    assert!(machine_refused(&v, DATA, Access::FETCH.bits()));
    // Read-only data is not executable in any mode.
    assert!(v.guest_exec(Gpa(RODATA), true).is_err());
    assert!(v.guest_exec(Gpa(RODATA), false).is_err());
    check(&v).unwrap();
}

#[test]
fn supervisor_execution_from_a_user_page_is_refused_user_execution_is_not() {
    // A page holding user-space code: the RMP lets it run at CPL 3 and refuses it at
    // CPL 0, whatever the U/S bit the guest's page tables give it (SMEP-like, with no
    // intercept of CR4).
    let v = locked();
    assert!(v.guest_exec(Gpa(DATA + 0x1000), false).is_ok());
    assert!(v.guest_exec(Gpa(DATA + 0x1000), true).is_err());
    assert!(machine_refused(&v, DATA + 0x1000, Access::FETCH.bits()));
    check(&v).unwrap();
}

#[test]
fn supervisor_execution_from_a_page_validated_after_the_lock_is_refused() {
    // Attack: validate a fresh page, write code into it, jump there in kernel mode.
    let mut v = locked();
    assert_eq!(v.accept(Gpa(FREE), PageSize::Size4K, 1), SUCCESS);
    assert!(v.guest_write(Gpa(FREE), &[0x0f, 0x0b]).is_ok());
    assert!(v.guest_exec(Gpa(FREE), true).is_err());
    assert!(machine_refused(&v, FREE, Access::FETCH.bits()));
    assert!(v.guest_exec(Gpa(FREE), false).is_ok());
    // The same through DEPOSIT_MEM and WITHDRAW_MEM.
    let dep = PvalidateEntry(svsm_abi::core_protocol::deposit::entry(FREE, false));
    let list = monitor::sim::vm::LIST_PAGE;
    assert_eq!(
        v.list_call(svsm_abi::core_protocol::call::DEPOSIT_MEM, list, &[dep], 0)
            .0,
        SUCCESS
    );
    let rax = svsm_abi::calling_area::SvsmRegs::rax_for(0, 5);
    assert_eq!(v.call(rax, list.0, 0, 0).1.rax, SUCCESS);
    assert!(v.guest_exec(Gpa(FREE), true).is_err());
    check(&v).unwrap();
}

#[test]
fn a_data_page_remapped_over_a_text_address_does_not_run() {
    // Attack: the guest points the virtual address of a kernel function at a data
    // page in its own page tables and jumps there. Page tables are the guest's to
    // write; the RMP checks the physical page the walk ends at, the data page.
    let mut v = locked();
    let gva_to_gpa = |gva: u64| {
        if gva == 0xffff_ffff_8100_0000 {
            DATA
        } else {
            TEXT
        }
    };
    assert!(v.guest_write(Gpa(DATA), &[0x90; 16]).is_ok());
    assert!(v
        .guest_exec(Gpa(gva_to_gpa(0xffff_ffff_8100_0000)), true)
        .is_err());
    assert!(machine_refused(&v, DATA, Access::FETCH.bits()));
    assert!(v.guest_exec(Gpa(gva_to_gpa(0)), true).is_ok());
    check(&v).unwrap();
}

#[test]
fn the_host_cannot_change_the_protection_only_take_pages_away() {
    let mut v = locked();
    let before = v.state_digest();
    // The host has no RMPADJUST: each attempt is refused by the machine.
    for (gpa, perms) in [(TEXT, Perms::all()), (DATA, Perms::EXEC_SUPERVISOR)] {
        assert!(v.mach_mut().host_rmpadjust(Gpa(gpa), 2, perms).is_err());
    }
    assert_eq!(v.mach().host_refused.len(), 2);
    assert_eq!(v.state_digest(), before);
    // RMPUPDATE is the host's: it can take a text page away and fill it with its own
    // bytes. The guest can then neither run it nor get it validated again (so the
    // host's bytes never run in the guest's kernel mode): availability only.
    v.mach_mut().host_remap(Gpa(TEXT), 0xcc);
    assert!(v.guest_exec(Gpa(TEXT), true).is_err());
    let again = PvalidateEntry::new(TEXT >> 12, false, true, true);
    assert_eq!(v.pvalidate(&[again]).0, ERR_INVALID_ADDRESS);
    let rescind = PvalidateEntry::new(TEXT >> 12, false, false, true);
    assert_eq!(v.pvalidate(&[rescind]).0, ERR_INVALID_ADDRESS);
    assert!(v.guest_exec(Gpa(TEXT), true).is_err());
    check(&v).unwrap();
}

// ----------------------------------------------------------- the checker, broken on purpose

fn vmpl2() -> Vmpl {
    Vmpl::new(2).unwrap()
}

#[test]
fn the_checker_catches_writable_locked_text() {
    let mut v = locked();
    v.mach_mut()
        .rmpadjust(Gpa(TEXT), PageSize::Size4K, vmpl2(), Perms::all(), false)
        .unwrap();
    assert!(check(&v).unwrap_err().starts_with("P1"), "{:?}", check(&v));
}

#[test]
fn the_checker_catches_lost_locked_text() {
    // Vigil (VMPL0) rescinding a locked page, which no call lets it do.
    let mut v = locked();
    v.mach_mut()
        .rmpadjust(Gpa(TEXT), PageSize::Size4K, vmpl2(), Perms::empty(), false)
        .unwrap();
    v.mach_mut()
        .pvalidate(Gpa(TEXT), PageSize::Size4K, false)
        .unwrap();
    let e = check(&v).unwrap_err();
    assert!(e.starts_with("P1") && e.contains("lost"), "{e}");
}

#[test]
fn the_checker_catches_supervisor_execute_outside_the_text() {
    let mut v = locked();
    v.mach_mut()
        .rmpadjust(
            Gpa(DATA),
            PageSize::Size4K,
            Vmpl::new(1).unwrap(),
            Perms::READ | Perms::EXEC_SUPERVISOR,
            false,
        )
        .unwrap();
    assert!(check(&v).unwrap_err().starts_with("P2"), "{:?}", check(&v));
}

#[test]
fn a_hostile_host_during_declare_and_lock_cannot_change_the_protection() {
    use monitor::sim::HostMode;
    // The protection calls ask the host for nothing but the switch back to the guest;
    // under every hostile mode the lock is either whole (and the VM maybe ended because
    // the host refused to resume it) or absent, and every invariant holds.
    for mode in [
        HostMode::RefuseAll,
        HostMode::PscPartial(1),
        HostMode::PscBackwards,
        HostMode::PscAlterEntry,
        HostMode::PscLie,
        HostMode::PscStall,
        HostMode::ApRefuse,
        HostMode::GuestRequestCorrupt,
        HostMode::GuestRequestReplay,
        HostMode::GuestRequestForge,
        HostMode::Garbage,
        HostMode::VcpuPinned,
    ] {
        let mut v = vm();
        declare(&mut v);
        v.mach_mut().hv.mode = mode;
        let rax = v.protect_lock();
        let p = v.m.protection();
        if p.is_locked() {
            assert_eq!(
                v.mach().rmp.get(TEXT >> 12).unwrap().perms[2],
                0x09,
                "{mode:?}"
            );
        } else {
            assert_ne!(rax, SUCCESS, "{mode:?}");
        }
        if mode == HostMode::RefuseAll {
            assert!(v.m.terminated().is_some(), "{mode:?}");
        }
        check(&v).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    }
}
