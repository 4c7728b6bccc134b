//! The in-kernel tests. Each names the behaviour it checks; each can fail.
//!
//! Fault tests use `cpu::exceptions::catch_fault`: the faulting access is a single
//! instruction in inline assembly (so Rust never sees an invalid access), run through
//! `catch_fault`, and the test checks the vector, the error code and CR2 the handler
//! recorded. The helper functions own nothing and hold no lock, as `catch_fault` requires.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;

use super::{Ctx, KTest, TestResult};
use crate::cpu::exceptions::{catch_fault, set_double_fault_hook, vector, CaughtFault, TrapFrame};
use crate::cpu::{gdt, idt, instr, tss};
use crate::exit::{exit, ExitCode};
use crate::kassert;
use crate::kprintln;
use crate::mm::address::{VirtAddr, PAGE_SIZE};
use crate::mm::heap;
use crate::mm::layout::{guard_page_of, image_layout, Stack};
use crate::mm::paging::Perm;
use crate::mm::with_page_tables;

/// The tests `ktest=all` runs, in order.
pub static TESTS: &[KTest] = &[
    KTest {
        name: "heap_alloc_and_free",
        run: heap_alloc_and_free,
    },
    KTest {
        name: "heap_alignment_and_bounds",
        run: heap_alignment_and_bounds,
    },
    KTest {
        name: "heap_exhaustion_is_an_error",
        run: heap_exhaustion_is_an_error,
    },
    KTest {
        name: "pvh_memory_map_and_cmdline",
        run: pvh_memory_map_and_cmdline,
    },
    KTest {
        name: "descriptor_tables_and_ist",
        run: descriptor_tables_and_ist,
    },
    KTest {
        name: "page_table_policy",
        run: page_table_policy,
    },
    KTest {
        name: "page_fault_unmapped_read_caught",
        run: page_fault_unmapped_read_caught,
    },
    KTest {
        name: "page_fault_write_to_text_caught",
        run: page_fault_write_to_text_caught,
    },
    KTest {
        name: "page_fault_write_to_rodata_caught",
        run: page_fault_write_to_rodata_caught,
    },
    KTest {
        name: "page_fault_execute_data_caught",
        run: page_fault_execute_data_caught,
    },
    KTest {
        name: "page_fault_guard_pages_caught",
        run: page_fault_guard_pages_caught,
    },
    KTest {
        name: "general_protection_caught",
        run: general_protection_caught,
    },
    KTest {
        name: "invalid_opcode_caught",
        run: invalid_opcode_caught,
    },
    KTest {
        name: "fault_recovery_preserves_state",
        run: fault_recovery_preserves_state,
    },
    #[cfg(feature = "ktest-selftest-fail")]
    KTest {
        name: "selftest_deliberate_failure",
        run: selftest_deliberate_failure,
    },
];

/// A test that ends its boot (run alone with `ktest=<name>`, checked by xtask).
pub struct SoloTest {
    /// Name.
    pub name: &'static str,
    /// What xtask expects, for the log.
    pub expect: &'static str,
    /// The test; never returns.
    pub run: fn(&Ctx<'_>) -> !,
}

/// The solo tests.
pub static SOLO: &[SoloTest] = &[
    SoloTest {
        name: "hang",
        expect: "no exit at all: xtask must kill the run after its timeout and show this line",
        run: hang,
    },
    SoloTest {
        name: "software_interrupt_caught",
        expect: "an INT 0x41 caught through its gate, then exit 33 (TCG only: see docs/kernel.md)",
        run: software_interrupt_solo,
    },
    SoloTest {
        name: "stack_overflow",
        expect: "a #DF on the IST stack reporting the main stack's guard page, then exit 33",
        run: stack_overflow,
    },
    SoloTest {
        name: "unhandled_gp",
        expect: "an exception report for #GP, then exit 37",
        run: unhandled_gp,
    },
    SoloTest {
        name: "panic",
        expect: "a panic report with its source location, then exit 37",
        run: deliberate_panic,
    },
];

// ---------------------------------------------------------------------------------------
// Faulting helpers: one instruction each.

extern "C" fn read_u64(addr: usize) {
    // SAFETY: a read whose fault is expected and caught by `catch_fault`; if it does not
    // fault, it reads a value into a scratch register and changes nothing.
    unsafe {
        asm!("mov {t}, qword ptr [{a}]", a = in(reg) addr, t = out(reg) _, options(nostack, readonly))
    }
}

extern "C" fn rewrite_byte(addr: usize) {
    // SAFETY: reads a byte and writes the same value back: if the page were writable
    // (the bug the test looks for), memory would be unchanged; the write's fault is
    // expected and caught by `catch_fault`.
    unsafe {
        asm!("mov {t}, byte ptr [{a}]", "mov byte ptr [{a}], {t}", a = in(reg) addr, t = out(reg_byte) _, options(nostack))
    }
}

extern "C" fn call_address(addr: usize) {
    // SAFETY: the target is a `ret` instruction in a data page: if it were executable, the
    // call would return at once; the no-execute fault is expected and caught.
    unsafe { asm!("call {a}", a = in(reg) addr, clobber_abi("C")) }
}

extern "C" fn non_canonical_read(_: usize) {
    // SAFETY: a read of a non-canonical address always raises #GP, expected and caught.
    unsafe {
        asm!("mov {t}, qword ptr [{a}]", a = in(reg) 0x0000_8000_0000_0000u64, t = out(reg) _, options(nostack, readonly))
    }
}

extern "C" fn undefined_instruction(_: usize) {
    // SAFETY: UD2 always raises #UD, expected and caught.
    unsafe { asm!("ud2", options(nomem, nostack)) }
}

/// A vector no device uses: `int` to it tests a gate outside the exception range.
const SOFT_VECTOR: u8 = 0x41;

extern "C" fn software_interrupt(_: usize) {
    // SAFETY: INT 0x41 enters the vector-0x41 gate, expected and caught. (Not INT3: under
    // nested KVM on this machine, #BP made KVM fail with an emulation error.)
    unsafe { asm!("int 0x41", options(nomem, nostack)) }
}

extern "C" fn no_fault(_: usize) {}

/// A `ret` in a writable, no-execute data page.
static mut RET_IN_DATA: [u8; 16] = [0xc3; 16];

fn expect(vector: u8, f: extern "C" fn(usize), arg: usize) -> Result<CaughtFault, super::Failure> {
    // SAFETY: every helper above is a leaf function that owns nothing and holds no lock.
    let caught = unsafe { catch_fault(vector, f, arg) };
    match caught {
        Some(c) => Ok(c),
        None => Err(super::Failure {
            file: file!(),
            line: line!(),
            message: alloc::format!("expected vector {vector} at {arg:#x}, nothing happened"),
        }),
    }
}

const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_FETCH: u64 = 16;

// ---------------------------------------------------------------------------------------
// Heap.

fn heap_alloc_and_free(_: &Ctx<'_>) -> TestResult {
    let (used0, _) = heap::usage();
    let mut v = Vec::new();
    for i in 0..10_000u32 {
        v.push(i);
    }
    let b = Box::new([7u8; 4096]);
    let sum: u64 = v.iter().map(|&x| u64::from(x)).sum();
    kassert!(sum == 49_995_000, "vector contents corrupted: sum {sum}");
    kassert!(b[4095] == 7, "box contents corrupted");
    let (used1, _) = heap::usage();
    kassert!(
        used1 >= used0 + 40_000 + 4096,
        "heap usage {used0} -> {used1} too small"
    );
    drop(v);
    drop(b);
    let (used2, _) = heap::usage();
    kassert!(
        used2 == used0,
        "heap usage not restored after free: {used0} -> {used2}"
    );
    Ok(())
}

fn heap_alignment_and_bounds(ctx: &Ctx<'_>) -> TestResult {
    let layout = core::alloc::Layout::from_size_align(8192, 4096).map_err(|_| super::Failure {
        file: file!(),
        line: line!(),
        message: "layout".into(),
    })?;
    // SAFETY: the layout has a non-zero size; the block is freed below with it.
    let p = unsafe { alloc::alloc::alloc(layout) };
    kassert!(!p.is_null(), "8 KiB aligned allocation failed");
    let addr = p as u64;
    // SAFETY: `p` came from `alloc` with `layout`.
    unsafe { alloc::alloc::dealloc(p, layout) };
    kassert!(
        addr.is_multiple_of(4096),
        "allocation {addr:#x} not 4 KiB aligned"
    );
    let heap = ctx.mem.heap;
    kassert!(
        heap.contains(addr) && addr + 8192 <= heap.end,
        "allocation {addr:#x} outside heap {heap:x?}"
    );
    let big: Vec<u8> = alloc::vec![0x5a; 1 << 20];
    let (s, e) = (big.as_ptr() as u64, big.as_ptr() as u64 + (1 << 20));
    kassert!(
        heap.contains(s) && e <= heap.end,
        "1 MiB block {s:#x} outside heap"
    );
    kassert!(big.iter().all(|&b| b == 0x5a), "1 MiB block contents");
    Ok(())
}

fn heap_exhaustion_is_an_error(ctx: &Ctx<'_>) -> TestResult {
    let mut v: Vec<u8> = Vec::new();
    let too_big = ctx.mem.heap.len() as usize + 1;
    kassert!(
        v.try_reserve(too_big).is_err(),
        "reserving {too_big} bytes did not fail"
    );
    kassert!(
        v.try_reserve(4096).is_ok(),
        "heap unusable after a refused allocation"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Boot information and CPU tables.

fn pvh_memory_map_and_cmdline(ctx: &Ctx<'_>) -> TestResult {
    use crate::boot::pvh::MemKind;
    let map = ctx.boot.memory_map();
    kassert!(!map.is_empty(), "empty memory map");
    let in_ram = |s: u64, e: u64| {
        map.iter()
            .any(|r| r.kind == MemKind::Ram && r.start <= s && e <= r.end)
    };
    let img = image_layout().image;
    kassert!(
        in_ram(img.start, img.end),
        "image {img:x?} not inside a RAM entry"
    );
    let h = ctx.mem.heap;
    kassert!(in_ram(h.start, h.end), "heap {h:x?} not inside a RAM entry");
    kassert!(!h.overlaps(&img), "heap overlaps the image");
    kassert!(
        ctx.boot.option("ktest").is_some(),
        "command line lost: {:?}",
        ctx.boot.cmdline()
    );
    Ok(())
}

fn descriptor_tables_and_ist(_: &Ctx<'_>) -> TestResult {
    let (cs, tr) = gdt::current_cs_tr();
    kassert!(
        cs == gdt::KERNEL_CS && tr == gdt::TSS_SEL,
        "CS {cs:#x} TR {tr:#x}"
    );
    let t = tss::TSS.get();
    let ist = t.interrupt_stack_table;
    for (slot, stack) in [
        (tss::IST_DOUBLE_FAULT, Stack::DoubleFault),
        (tss::IST_NMI, Stack::Nmi),
        (tss::IST_MACHINE_CHECK, Stack::MachineCheck),
    ] {
        let got = ist[usize::from(slot - 1)].as_u64();
        kassert!(
            got == stack.top(),
            "IST{slot} = {got:#x}, expected top of {}",
            stack.name()
        );
    }
    for (v, slot) in [(8u8, 1u8), (2, 2), (18, 3), (14, 0), (13, 0)] {
        let g = idt::gate(v);
        kassert!(
            g.ist() == slot,
            "vector {v} gate IST {} expected {slot}",
            g.ist()
        );
    }
    let text = image_layout().text;
    for v in 0..=255u8 {
        let h = idt::gate(v).handler();
        kassert!(text.contains(h), "vector {v} handler {h:#x} outside .text");
    }
    Ok(())
}

fn page_table_policy(ctx: &Ctx<'_>) -> TestResult {
    let l = image_layout();
    let expect: [(u64, Option<Perm>, &str); 12] = [
        (l.text.start, Some(Perm::ReadExec), "text"),
        (l.rodata.start, Some(Perm::Read), "rodata"),
        (l.data.start, Some(Perm::ReadWrite), "data"),
        (
            Stack::Main.usable().start,
            Some(Perm::ReadWrite),
            "main stack",
        ),
        (Stack::Main.guard().start, None, "main stack guard"),
        (Stack::DoubleFault.guard().start, None, "#DF stack guard"),
        (Stack::Nmi.guard().start, None, "NMI stack guard"),
        (Stack::MachineCheck.guard().start, None, "#MC stack guard"),
        (ctx.mem.heap.start, Some(Perm::ReadWrite), "heap"),
        (ctx.boot.start_info_paddr, None, "PVH start info"),
        (0, None, "page 0"),
        (ctx.mem.heap.end, None, "first page above the heap"),
    ];
    for (addr, want, what) in expect {
        let got = with_page_tables(|pt| pt.translate(VirtAddr(addr))).flatten();
        let got_perm = got.map(|(_, p)| p);
        kassert!(
            got_perm == want,
            "{what} at {addr:#x}: mapped as {got_perm:?}, expected {want:?}"
        );
        if let Some((pa, _)) = got {
            kassert!(
                pa.0 == addr,
                "{what} at {addr:#x} not identity-mapped (-> {:#x})",
                pa.0
            );
        }
    }
    let root = with_page_tables(|pt| pt.root().0).unwrap_or(0);
    kassert!(
        instr::read_cr3() & !0xfff == root,
        "CR3 is not the kernel's tables"
    );
    kassert!(
        instr::read_cr0() & (1 << 16) != 0,
        "CR0.WP clear: supervisor writes ignore R/O"
    );
    // SAFETY: EFER exists on every x86-64 CPU.
    let efer = unsafe { instr::rdmsr(0xc000_0080) };
    kassert!(
        efer & (1 << 11) != 0,
        "EFER.NXE clear: no-execute bits ignored"
    );
    // Executable pages are never writable, anywhere in the image.
    let mut a = l.image.start;
    while a < l.image.end {
        if let Some((_, p)) = with_page_tables(|pt| pt.translate(VirtAddr(a))).flatten() {
            kassert!(
                p != Perm::ReadWrite || !l.text.contains(a),
                "writable text page {a:#x}"
            );
            kassert!(
                p != Perm::ReadExec || l.text.contains(a),
                "executable non-text page {a:#x}"
            );
        }
        a += PAGE_SIZE;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Faults caught and reported.

fn page_fault_unmapped_read_caught(ctx: &Ctx<'_>) -> TestResult {
    // The PVH start info was copied and is not mapped any more.
    let addr = ctx.boot.start_info_paddr as usize;
    let c = expect(vector::PF, read_u64, addr)?;
    kassert!(c.vector == vector::PF, "vector {}", c.vector);
    kassert!(c.cr2 == addr as u64, "CR2 {:#x} expected {addr:#x}", c.cr2);
    kassert!(
        c.error_code & (PF_PRESENT | PF_WRITE) == 0,
        "error code {:#x}: expected not-present read",
        c.error_code
    );
    kassert!(
        image_layout().text.contains(c.rip),
        "fault RIP {:#x} outside .text",
        c.rip
    );
    Ok(())
}

fn page_fault_write_to_text_caught(_: &Ctx<'_>) -> TestResult {
    let addr = read_u64 as *const () as usize;
    let before = black_box(addr as u64);
    let c = expect(vector::PF, rewrite_byte, addr)?;
    kassert!(c.cr2 == before, "CR2 {:#x} expected {before:#x}", c.cr2);
    kassert!(
        c.error_code & (PF_PRESENT | PF_WRITE) == PF_PRESENT | PF_WRITE,
        "error code {:#x}: expected present+write",
        c.error_code
    );
    Ok(())
}

fn page_fault_write_to_rodata_caught(_: &Ctx<'_>) -> TestResult {
    let addr = crate::BANNER.as_ptr() as usize;
    kassert!(
        image_layout().rodata.contains(addr as u64),
        "BANNER {addr:#x} not in .rodata"
    );
    let c = expect(vector::PF, rewrite_byte, addr)?;
    kassert!(c.cr2 == addr as u64, "CR2 {:#x} expected {addr:#x}", c.cr2);
    kassert!(
        c.error_code & PF_WRITE != 0 && c.error_code & PF_PRESENT != 0,
        "error code {:#x}",
        c.error_code
    );
    Ok(())
}

fn page_fault_execute_data_caught(_: &Ctx<'_>) -> TestResult {
    let addr = core::ptr::addr_of!(RET_IN_DATA) as usize;
    kassert!(
        image_layout().data.contains(addr as u64),
        "RET_IN_DATA {addr:#x} not in .data"
    );
    let c = expect(vector::PF, call_address, addr)?;
    kassert!(c.cr2 == addr as u64, "CR2 {:#x} expected {addr:#x}", c.cr2);
    kassert!(
        c.error_code & PF_FETCH != 0,
        "error code {:#x}: no instruction-fetch bit",
        c.error_code
    );
    kassert!(
        c.rip == addr as u64,
        "fault RIP {:#x} expected the data address",
        c.rip
    );
    Ok(())
}

fn page_fault_guard_pages_caught(_: &Ctx<'_>) -> TestResult {
    for s in Stack::ALL {
        let g = s.guard();
        let addr = (g.start + 8) as usize;
        let c = expect(vector::PF, read_u64, addr)?;
        kassert!(c.cr2 == addr as u64, "{}: CR2 {:#x}", s.name(), c.cr2);
        kassert!(
            c.error_code & PF_PRESENT == 0,
            "{}: guard page present",
            s.name()
        );
        kassert!(
            guard_page_of(c.cr2) == Some(s),
            "{}: guard page not recognised",
            s.name()
        );
    }
    Ok(())
}

fn general_protection_caught(_: &Ctx<'_>) -> TestResult {
    let c = expect(vector::GP, non_canonical_read, 0)?;
    kassert!(
        c.vector == vector::GP && c.error_code == 0,
        "vector {} error {:#x}",
        c.vector,
        c.error_code
    );
    let f = non_canonical_read as *const () as u64;
    kassert!(
        c.rip >= f && c.rip < f + 64,
        "#GP RIP {:#x} not in the helper at {f:#x}",
        c.rip
    );
    Ok(())
}

fn invalid_opcode_caught(_: &Ctx<'_>) -> TestResult {
    let c = expect(vector::UD, undefined_instruction, 0)?;
    let f = undefined_instruction as *const () as u64;
    kassert!(
        c.rip >= f && c.rip < f + 16,
        "#UD RIP {:#x} not in the helper at {f:#x}",
        c.rip
    );
    Ok(())
}

/// Run alone, and by xtask under TCG only: on this machine's nested KVM, a software
/// interrupt (INT3 or INT n) made KVM stop the VM with "KVM internal error. Suberror: 1
/// (emulation failure)" before the gate was entered, which is a host limitation, not a
/// kernel fault; keeping it out of `ktest=all` keeps the suite runnable under KVM.
fn software_interrupt_solo(ctx: &Ctx<'_>) -> ! {
    let t = KTest {
        name: "software_interrupt_caught",
        run: software_interrupt_caught,
    };
    let ok = super::run_one(&t, ctx);
    super::finish(usize::from(ok), usize::from(!ok))
}

fn software_interrupt_caught(_: &Ctx<'_>) -> TestResult {
    let c = expect(SOFT_VECTOR, software_interrupt, 0)?;
    kassert!(c.vector == SOFT_VECTOR, "vector {}", c.vector);
    let f = software_interrupt as *const () as u64;
    // INT n is a trap: the saved RIP is the next instruction, inside the helper.
    kassert!(
        c.rip > f && c.rip < f + 16,
        "RIP {:#x} not after the INT in the helper at {f:#x}",
        c.rip
    );
    Ok(())
}

fn fault_recovery_preserves_state(_: &Ctx<'_>) -> TestResult {
    // Values live across many recoveries; a landing pad that lost a callee-saved
    // register or the stack pointer would corrupt them.
    let mut acc: u64 = 0x1234_5678;
    let mut count = 0u32;
    for i in 0..200u64 {
        let k = black_box(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let c = expect(vector::GP, non_canonical_read, 0)?;
        kassert!(c.vector == vector::GP, "iteration {i}: vector {}", c.vector);
        acc = acc.rotate_left(5) ^ k;
        count += 1;
    }
    let mut check: u64 = 0x1234_5678;
    for i in 0..200u64 {
        check = check.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    kassert!(
        count == 200 && acc == check,
        "state corrupted across recoveries"
    );
    // SAFETY: `no_fault` owns nothing.
    let none = unsafe { catch_fault(vector::GP, no_fault, 0) };
    kassert!(none.is_none(), "a fault was reported where none happened");
    Ok(())
}

#[cfg(feature = "ktest-selftest-fail")]
fn selftest_deliberate_failure(_: &Ctx<'_>) -> TestResult {
    let two = black_box(2);
    kassert!(
        two == 3,
        "deliberate failure (feature ktest-selftest-fail): 2 != 3"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Solo tests.

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth; 64];
    let b = black_box(&buf);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(b[7])
}

fn on_double_fault(frame: &TrapFrame, cr2: u64) -> ! {
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    let on_ist = Stack::DoubleFault.usable().contains(rsp);
    let hit_guard = guard_page_of(cr2) == Some(Stack::Main);
    if frame.vector == u64::from(vector::DF) && on_ist && hit_guard {
        kprintln!("ktest: stack_overflow ... ok");
        kprintln!("ktest: 1 passed, 0 failed");
        exit(ExitCode::Success);
    }
    kprintln!("ktest: stack_overflow ... FAILED");
    kprintln!(
        "ktest-detail: stack_overflow: vector {} on IST stack {on_ist}, CR2 {cr2:#x} in main guard {hit_guard}",
        frame.vector
    );
    kprintln!("ktest: 0 passed, 1 failed");
    exit(ExitCode::TestsFailed);
}

fn stack_overflow(_: &Ctx<'_>) -> ! {
    set_double_fault_hook(on_double_fault);
    let r = recurse(0);
    kprintln!("ktest: stack_overflow ... FAILED");
    kprintln!("ktest-detail: stack_overflow: recursion returned {r} without a fault");
    kprintln!("ktest: 0 passed, 1 failed");
    exit(ExitCode::TestsFailed);
}

fn unhandled_gp(_: &Ctx<'_>) -> ! {
    non_canonical_read(0);
    kprintln!("ktest-detail: unhandled_gp: the non-canonical read did not fault");
    exit(ExitCode::TestsFailed);
}

fn hang(_: &Ctx<'_>) -> ! {
    kprintln!("ktest-detail: hang: halting with interrupts off, on purpose");
    loop {
        instr::hlt();
    }
}

fn deliberate_panic(_: &Ctx<'_>) -> ! {
    panic!("deliberate panic (ktest=panic)");
}
