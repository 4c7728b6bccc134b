//! The probe's IDT: vector 29 (#VC) to the #VC handler ([`super::vc`]), every other
//! exception vector (0..31) to a handler that names the vector and terminates. Interrupt
//! gates at CPL0 on the current stack (the probe never leaves CPL0 and the target has no
//! red zone). Gate layout: APM vol. 2 §8.9.1 (64-bit interrupt gate).

use core::arch::{asm, global_asm};
use core::ptr::{addr_of, addr_of_mut};

global_asm!(
    r#"
    .section .text.probe_vectors, "ax"
    .global probe_vc_stub
probe_vc_stub:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    sub rsp, 8
    call {vc}
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 8
    iretq

    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
probe_exc_\n:
    push \n
    jmp probe_exc_common
    .endr
probe_exc_common:
    mov rdi, [rsp]
    mov rsi, [rsp + 8]
    mov rdx, [rsp + 16]
    and rsp, -16
    call {exc}
6:
    hlt
    jmp 6b

    .section .rodata.probe_vectors, "a"
    .balign 8
    .global probe_exc_table
probe_exc_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad probe_exc_\n
    .endr
    "#,
    vc = sym super::vc::probe_vc,
    exc = sym probe_exception,
);

unsafe extern "C" {
    static probe_exc_table: [u64; 32];
    fn probe_vc_stub();
}

/// The #VC vector.
pub const VC: usize = 29;

#[repr(C, align(16))]
struct Idt([u64; 64]);

static mut IDT: Idt = Idt([0; 64]);

fn gate(handler: u64) -> (u64, u64) {
    let low = (handler & 0xffff) | (0x08 << 16) | (0x8e << 40) | ((handler >> 16) & 0xffff) << 48;
    (low, handler >> 32)
}

/// Fill and load the IDT.
pub fn load() {
    let idt = addr_of_mut!(IDT);
    // SAFETY: one vCPU, interrupts off; the table is the probe's static and the stubs
    // are its own code; LIDT takes a 10-byte pseudo-descriptor on the stack.
    unsafe {
        let table = &*addr_of!(probe_exc_table);
        for (v, stub) in table.iter().enumerate() {
            let h = if v == VC {
                probe_vc_stub as *const () as u64
            } else {
                *stub
            };
            let (lo, hi) = gate(h);
            (*idt).0[2 * v] = lo;
            (*idt).0[2 * v + 1] = hi;
        }
        let mut desc = [0u8; 10];
        desc[..2].copy_from_slice(&(32u16 * 16 - 1).to_le_bytes());
        desc[2..].copy_from_slice(&(idt as u64).to_le_bytes());
        asm!("lidt [{}]", in(reg) desc.as_ptr(), options(nostack));
    }
}

/// Any exception but #VC: name it and terminate.
extern "C" fn probe_exception(vector: u64, word1: u64, word2: u64) -> ! {
    crate::say!("probe-step exception fail vector={vector} words={word1:#x},{word2:#x}");
    super::msr_protocol::terminate(0x40 + vector)
}
