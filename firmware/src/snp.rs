//! The test guest on SEV-SNP, the pure parts (the instructions are the guest binary's,
//! `src/guest/snp.rs`): what Linux's `arch/x86/boot/compressed/sev.c` and
//! `arch/x86/coco/sev/` do to get a GHCB under an SVSM, and its #VC handling of port I/O.
//!
//! * Platform: SEV_STATUS (MSR 0xC001_0131) bit 2, [`is_snp`]. On SNP the CPU answers
//!   it without a #VC; on `emulated` Vigil answers 0 (the guest is not encrypted).
//! * The C-bit: from the guest's own tables (Vigil sets it in CR3 and every present
//!   entry), [`c_bit_from_tables`], cross-checked with CPUID 0x8000_001F EBX\[5:0\]
//!   asked through the GHCB MSR protocol, [`check_c_bit`].
//! * The GHCB page: rescinded through the SVSM (at VMPL2 the guest cannot PVALIDATE),
//!   made shared (MSR-protocol PSC, [`check_psc`]), mapped without the C-bit
//!   ([`split_2m`]), registered ([`check_register`]).
//! * #VC for IOIO (0x7B): the instruction at RIP decoded ([`decode_io`]), the GHCB
//!   filled ([`ioio_ghcb`]), the host's answer checked ([`ghcb_result`]).
//!
//! Every value the host returns is checked here before the guest uses it.
#![forbid(unsafe_code)]

use svsm_abi::ghcb::{exit, ioio, msr, offset, Ghcb};
use svsm_abi::sev_status::SNP_ENABLED;
use zerocopy::FromBytes;

/// The guest's own termination codes (GHCB MSR protocol termination request, reason set
/// 1, `svsm_abi::ghcb::term::SET_SVSM`), kept clear of Vigil's codes 0x10..=0x24: the
/// run's record names who stopped the VM and why.
pub mod term {
    /// The secrets page names no SVSM (nothing can be printed yet on SNP).
    pub const NO_SVSM: u64 = 0x40;
    /// The SVSM refused the PVALIDATE rescind of the GHCB page.
    pub const GHCB_RESCIND: u64 = 0x41;
    /// The page-state change of the GHCB page to shared was refused.
    pub const GHCB_PSC: u64 = 0x42;
    /// The C-bit of the guest's tables is not the CPU's (CPUID 0x8000_001F EBX\[5:0\]),
    /// or one of them could not be read.
    pub const C_BIT: u64 = 0x43;
    /// The guest's tables do not have the 2 MiB mapping of the GHCB page to split.
    pub const GHCB_MAPPING: u64 = 0x44;
    /// The host did not register the GHCB page (GFN not echoed).
    pub const GHCB_REGISTER: u64 = 0x45;
    /// A #VC for port I/O at an instruction the decoder does not know.
    pub const VC_IOIO_DECODE: u64 = 0x46;
    /// The host answered a GHCB IOIO (or HLT) exit with SW_EXITINFO1 other than 0.
    pub const VC_GHCB_REFUSED: u64 = 0x47;
    /// A #VC with an exit code the guest does not handle (the code is printed first
    /// when the console works).
    pub const VC_UNEXPECTED: u64 = 0x48;
    /// A #VC before the GHCB was registered (nothing can be forwarded).
    pub const VC_NO_GHCB: u64 = 0x49;
    /// A GHCB-page exit started while another was in flight (a #VC inside the handler's
    /// own exit).
    pub const VC_NESTED: u64 = 0x4a;
}

/// Whether SEV_STATUS says SEV-SNP is active.
pub const fn is_snp(sev_status: u64) -> bool {
    sev_status & SNP_ENABLED != 0
}

/// Where a port instruction takes its port from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortFrom {
    /// DX.
    Dx,
    /// An 8-bit immediate.
    Imm(u8),
}

/// A decoded IN or OUT (not the string forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoInsn {
    /// The port operand.
    pub port: PortFrom,
    /// Operand size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN (else OUT).
    pub is_in: bool,
    /// Instruction length in bytes (what RIP advances by).
    pub len: u8,
}

impl IoInsn {
    /// The port, with DX's value from the interrupted context.
    pub fn port(&self, rdx: u64) -> u16 {
        match self.port {
            PortFrom::Dx => rdx as u16,
            PortFrom::Imm(p) => u16::from(p),
        }
    }
    /// The operand's bits in RAX.
    pub fn mask(&self) -> u64 {
        (1u64 << (8 * u32::from(self.size))) - 1
    }
}

/// Why an instruction was not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the instruction needs.
    Truncated,
    /// A string form (INS/OUTS) or a REP prefix: the guest never uses them.
    StringForm,
    /// Not a port instruction, or a prefix this decoder does not take.
    NotIo(u8),
}

/// Decodes the port instruction at the start of `bytes` (AMD APM vol. 3, IN and OUT):
/// E4/E5 `in al/eax, imm8`, E6/E7 `out imm8, al/eax`, EC/ED `in al/eax, dx`, EE/EF
/// `out dx, al/eax`; an operand-size prefix 0x66 makes the wide forms 16-bit (and is
/// refused on the byte forms). Anything else, including INS/OUTS and REP, is refused:
/// the guest's own code (the `x86_64` crate's `Port`) uses only these.
pub fn decode_io(bytes: &[u8]) -> Result<IoInsn, DecodeError> {
    let first = *bytes.first().ok_or(DecodeError::Truncated)?;
    let (opsize16, rest) = match first {
        0x66 => (true, bytes.get(1..).ok_or(DecodeError::Truncated)?),
        0xf2 | 0xf3 => return Err(DecodeError::StringForm),
        _ => (false, bytes),
    };
    let op = *rest.first().ok_or(DecodeError::Truncated)?;
    let (port, imm) = match op {
        0xe4..=0xe7 => (
            PortFrom::Imm(*rest.get(1).ok_or(DecodeError::Truncated)?),
            1,
        ),
        0xec..=0xef => (PortFrom::Dx, 0),
        0x6c..=0x6f => return Err(DecodeError::StringForm),
        _ => return Err(DecodeError::NotIo(op)),
    };
    let byte_form = op & 1 == 0;
    if byte_form && opsize16 {
        return Err(DecodeError::NotIo(0x66));
    }
    let size = match (byte_form, opsize16) {
        (true, _) => 1,
        (false, true) => 2,
        (false, false) => 4,
    };
    Ok(IoInsn {
        port,
        size,
        is_in: op & 2 == 0,
        len: u8::from(opsize16) + 1 + imm,
    })
}

/// The GHCB of an IOIO exit (#56421, "IOIO" NAE event, as Linux's `vc_handle_ioio`):
/// SW_EXITCODE 0x7B, SW_EXITINFO1 the IOIO information (`svsm_abi::ghcb::ioio::info1`),
/// SW_EXITINFO2 0, RAX the data (an OUT's low bytes; for IN the value the host
/// replaces), each marked valid; protocol version 2, usage 0. `None` for a size other
/// than 1, 2 or 4.
pub fn ioio_ghcb(port: u16, size: u8, is_in: bool, rax: u64) -> Option<Ghcb> {
    let info1 = ioio::info1(port, size, is_in)?;
    let mask = (1u64 << (8 * u32::from(size))) - 1;
    let mut g = exit_ghcb(exit::IOIO, info1);
    g.rax = rax & mask;
    g.set_valid(offset::RAX);
    Some(g)
}

/// The GHCB of a HLT forwarded as a NAE event (exit code 0x78, no information).
pub fn hlt_ghcb() -> Ghcb {
    exit_ghcb(exit::HLT, 0)
}

fn exit_ghcb(code: u64, info1: u64) -> Ghcb {
    let mut g = Ghcb::new_zeroed_v2();
    g.sw_exit_code = code;
    g.sw_exit_info_1 = info1;
    g.sw_exit_info_2 = 0;
    for o in [
        offset::SW_EXIT_CODE,
        offset::SW_EXIT_INFO_1,
        offset::SW_EXIT_INFO_2,
    ] {
        g.set_valid(o);
    }
    g
}

/// The host's answer in the GHCB page after a NAE exit: `Ok(RAX)` when SW_EXITINFO1 is
/// 0, else `Err((SW_EXITINFO1, SW_EXITINFO2))`.
pub fn ghcb_result(page: &[u8]) -> Result<u64, (u64, u64)> {
    match Ghcb::read_from_bytes(page) {
        Ok(g) if g.sw_exit_info_1 == 0 => Ok(g.rax),
        Ok(g) => Err((g.sw_exit_info_1, g.sw_exit_info_2)),
        Err(_) => Err((u64::MAX, 0)),
    }
}

/// RAX after an IN: the operand's bytes from the host's RAX, the rest kept (a 32-bit
/// IN zero-extends, as the CPU does).
pub fn in_result(insn: &IoInsn, rax: u64, host_rax: u64) -> u64 {
    let v = host_rax & insn.mask();
    if insn.size == 4 {
        v
    } else {
        (rax & !insn.mask()) | v
    }
}

/// Why a GHCB MSR protocol answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrError {
    /// GHCBInfo (bits 11:0) is not the response to the request.
    WrongResponse(u64),
    /// The response carries an error code.
    Error(u32),
    /// The register GHCB GPA response names another page.
    WrongGfn(u64),
    /// The CPUID response is for another register.
    WrongRegister(u8),
}

/// Checks a page-state change response (0x015 with bits 63:32 = 0).
pub fn check_psc(resp: u64) -> Result<(), MsrError> {
    if resp & msr::INFO_MASK != msr::PSC_RESP {
        return Err(MsrError::WrongResponse(resp & msr::INFO_MASK));
    }
    match msr::psc_error(resp) {
        0 => Ok(()),
        e => Err(MsrError::Error(e)),
    }
}

/// Checks a register-GHCB-GPA response: 0x013 with the requested GFN echoed.
pub fn check_register(resp: u64, gfn: u64) -> Result<(), MsrError> {
    if resp & msr::INFO_MASK != msr::REGISTER_GHCB_RESP {
        return Err(MsrError::WrongResponse(resp & msr::INFO_MASK));
    }
    if msr::gfn_of(resp) != gfn {
        return Err(MsrError::WrongGfn(msr::gfn_of(resp)));
    }
    Ok(())
}

/// Checks a CPUID response (0x005, the register asked for) and returns its value.
pub fn check_cpuid(resp: u64, register: u8) -> Result<u32, MsrError> {
    if resp & msr::INFO_MASK != msr::CPUID_RESP {
        return Err(MsrError::WrongResponse(resp & msr::INFO_MASK));
    }
    if msr::cpuid_register(resp) != register {
        return Err(MsrError::WrongRegister(msr::cpuid_register(resp)));
    }
    Ok(msr::cpuid_value(resp))
}

/// Why the C-bit could not be derived or was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CbitError {
    /// Not exactly one bit above the guest's RAM (and below bit 52) in the PML4 entry.
    NotOneBit(u64),
    /// CR3 does not carry the same bit as the PML4 entry.
    Cr3Differs(u64),
    /// The CPU's C-bit position (CPUID 0x8000_001F EBX\[5:0\]) is another.
    CpuidDiffers {
        /// From the tables.
        tables: u8,
        /// From CPUID.
        cpuid: u8,
    },
}

/// The bits of a table entry that may hold the C-bit: from the first bit above guest
/// RAM (`ram_end`) to bit 51 (APM vol. 2 §5.3: bits 51:M of an entry are the address,
/// 62:52 available, 63 NX).
fn high_address_bits(ram_end: u64) -> u64 {
    let lowest = 64 - ram_end.saturating_sub(1).leading_zeros();
    let below_52 = (1u64 << 52) - 1;
    below_52 & !((1u64 << lowest.min(52)) - 1)
}

/// The C-bit position from the guest's own tables: the one address bit above guest RAM
/// set in the first PML4 entry (Vigil sets it in every present entry, docs/kernel.md
/// "The SNP boot"), which CR3 must carry too.
pub fn c_bit_from_tables(cr3: u64, pml4e: u64, ram_end: u64) -> Result<u8, CbitError> {
    let high = pml4e & high_address_bits(ram_end);
    if high.count_ones() != 1 {
        return Err(CbitError::NotOneBit(high));
    }
    if cr3 & high_address_bits(ram_end) != high {
        return Err(CbitError::Cr3Differs(cr3));
    }
    Ok(high.trailing_zeros() as u8)
}

/// The tables' C-bit against CPUID 0x8000_001F EBX (bits 5:0 the C-bit position).
pub fn check_c_bit(tables: u8, cpuid_ebx: u32) -> Result<u8, CbitError> {
    let cpuid = (cpuid_ebx & 0x3f) as u8;
    if cpuid != tables {
        return Err(CbitError::CpuidDiffers { tables, cpuid });
    }
    Ok(tables)
}

/// The address in a table entry: bits 51:12 without the C-bit.
pub fn entry_address(e: u64, c_bit_mask: u64) -> u64 {
    e & 0x000f_ffff_ffff_f000 & !c_bit_mask
}

/// The 4 KiB page table that replaces the 2 MiB leaf `pde` (present, large): the same
/// 512 pages with the same flags (without PS) and the C-bit, except `shared_gpa`'s page,
/// mapped without the C-bit. `None` when `pde` is not a present 2 MiB leaf or
/// `shared_gpa` is outside it.
pub fn split_2m(pde: u64, c_bit_mask: u64, shared_gpa: u64) -> Option<[u64; 512]> {
    const PS: u64 = 1 << 7;
    if pde & 1 == 0 || pde & PS == 0 {
        return None;
    }
    let base = pde & 0x000f_ffff_ffe0_0000 & !c_bit_mask;
    if shared_gpa & !0x1f_ffff != base {
        return None;
    }
    // Flags of a 4 KiB PTE: the PDE's bits 8:0 and NX, PS dropped (bit 7 of a PTE is
    // PAT; the PDE's PAT bit is 12, which the guest's tables leave clear).
    let flags = pde & (0x17f | (1 << 63));
    let mut t = [0u64; 512];
    for (i, e) in t.iter_mut().enumerate() {
        let gpa = base + i as u64 * 4096;
        *e = gpa
            | flags
            | if gpa == shared_gpa & !0xfff {
                0
            } else {
                c_bit_mask
            };
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    const C51: u64 = 1 << 51;
    const RAM_END: u64 = 48 << 20;

    #[test]
    fn the_port_forms_the_guest_uses_decode() {
        let out_dx_al = decode_io(&[0xee]).unwrap();
        assert_eq!(
            out_dx_al,
            IoInsn {
                port: PortFrom::Dx,
                size: 1,
                is_in: false,
                len: 1
            }
        );
        assert_eq!(out_dx_al.port(0x1234_03f8), 0x3f8);
        let out_dx_eax = decode_io(&[0xef, 0x90]).unwrap();
        assert_eq!(
            (out_dx_eax.size, out_dx_eax.is_in, out_dx_eax.len),
            (4, false, 1)
        );
        let in_al_dx = decode_io(&[0xec]).unwrap();
        assert_eq!((in_al_dx.size, in_al_dx.is_in), (1, true));
        let out_imm = decode_io(&[0xe7, 0xf4]).unwrap();
        assert_eq!(
            (out_imm.port(0), out_imm.size, out_imm.is_in, out_imm.len),
            (0xf4, 4, false, 2)
        );
        let in_ax = decode_io(&[0x66, 0xed]).unwrap();
        assert_eq!((in_ax.size, in_ax.is_in, in_ax.len), (2, true, 2));
        assert_eq!(decode_io(&[0xe4, 0x71]).unwrap().port(0xffff), 0x71);
    }

    #[test]
    fn what_the_decoder_does_not_know_is_refused() {
        assert_eq!(decode_io(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode_io(&[0x66]), Err(DecodeError::Truncated));
        assert_eq!(decode_io(&[0xe6]), Err(DecodeError::Truncated));
        assert_eq!(decode_io(&[0x6e]), Err(DecodeError::StringForm));
        assert_eq!(decode_io(&[0xf3, 0x6e]), Err(DecodeError::StringForm));
        assert_eq!(decode_io(&[0x66, 0xee]), Err(DecodeError::NotIo(0x66)));
        assert_eq!(decode_io(&[0x90]), Err(DecodeError::NotIo(0x90)));
        assert_eq!(decode_io(&[0x48, 0xee]), Err(DecodeError::NotIo(0x48)));
    }

    #[test]
    fn ioio_ghcb_has_what_56421_and_the_host_check() {
        let g = ioio_ghcb(0x3f8, 1, false, 0xdead_be41).unwrap();
        assert_eq!(g.sw_exit_code, 0x7b);
        assert_eq!(g.sw_exit_info_1, 0x03f8_0210);
        assert_eq!((g.sw_exit_info_2, g.rax), (0, 0x41));
        for o in [
            offset::SW_EXIT_CODE,
            offset::SW_EXIT_INFO_1,
            offset::SW_EXIT_INFO_2,
            offset::RAX,
        ] {
            assert!(g.is_valid(o), "{o:#x} not valid");
        }
        assert!(!g.is_valid(offset::RCX));
        assert_eq!((g.protocol_version, g.ghcb_usage), (2, 0));
        let i = ioio_ghcb(0x3fd, 1, true, 0).unwrap();
        assert_eq!(i.sw_exit_info_1, 0x03fd_0211);
        assert_eq!(ioio_ghcb(0xf4, 4, false, 0x1_0000_0010).unwrap().rax, 0x10);
        assert!(ioio_ghcb(0xf4, 8, false, 0).is_none());
        let h = hlt_ghcb();
        assert_eq!((h.sw_exit_code, h.sw_exit_info_1), (0x78, 0));
        assert!(h.is_valid(offset::SW_EXIT_INFO_2) && !h.is_valid(offset::RAX));
    }

    #[test]
    fn the_hosts_ghcb_answer_is_checked() {
        let mut g = ioio_ghcb(0x3fd, 1, true, 0).unwrap();
        g.sw_exit_info_1 = 0;
        g.rax = 0x60;
        assert_eq!(ghcb_result(g.as_bytes()), Ok(0x60));
        g.sw_exit_info_1 = 2;
        g.sw_exit_info_2 = 3;
        assert_eq!(ghcb_result(g.as_bytes()), Err((2, 3)));
        assert_eq!(ghcb_result(&[0u8; 100]), Err((u64::MAX, 0)));
        let in_al = decode_io(&[0xec]).unwrap();
        assert_eq!(in_result(&in_al, 0x1122_3344, 0xffff_ff60), 0x1122_3360);
        let in_eax = decode_io(&[0xed]).unwrap();
        assert_eq!(in_result(&in_eax, u64::MAX, 0xaaaa_1234_5678), 0x1234_5678);
    }

    #[test]
    fn msr_protocol_answers_are_checked() {
        assert_eq!(check_psc(0x015), Ok(()));
        assert_eq!(check_psc(0x0000_0001_0000_0015), Err(MsrError::Error(1)));
        assert_eq!(check_psc(0x014), Err(MsrError::WrongResponse(0x014)));
        assert_eq!(check_register(0x1002_3013, 0x10023), Ok(()));
        assert_eq!(
            check_register(0x1002_4013, 0x10023),
            Err(MsrError::WrongGfn(0x10024))
        );
        assert_eq!(
            check_register(0x1002_3012, 0x10023),
            Err(MsrError::WrongResponse(0x012))
        );
        let req = msr::cpuid_request(0x8000_001f, 1);
        let resp = (0x0000_0133u64 << 32) | (req & (3 << 30)) | msr::CPUID_RESP;
        assert_eq!(check_cpuid(resp, 1), Ok(0x133));
        assert_eq!(check_cpuid(resp, 2), Err(MsrError::WrongRegister(1)));
        assert_eq!(check_cpuid(req, 1), Err(MsrError::WrongResponse(0x004)));
    }

    #[test]
    fn the_c_bit_comes_from_the_tables_and_must_match_cpuid() {
        let pml4 = 17 << 20;
        let cr3 = pml4 | C51;
        let e = (pml4 + 0x1000) | 3 | C51;
        assert_eq!(c_bit_from_tables(cr3, e, RAM_END), Ok(51));
        assert_eq!(c_bit_from_tables(cr3, e | (1 << 63), RAM_END), Ok(51));
        assert_eq!(
            c_bit_from_tables(cr3, e | (1 << 47), RAM_END),
            Err(CbitError::NotOneBit(C51 | (1 << 47)))
        );
        assert_eq!(
            c_bit_from_tables(cr3, (pml4 + 0x1000) | 3, RAM_END),
            Err(CbitError::NotOneBit(0))
        );
        assert_eq!(
            c_bit_from_tables(pml4, e, RAM_END),
            Err(CbitError::Cr3Differs(pml4))
        );
        // The address itself (below RAM's end) is not taken for the C-bit.
        assert!(matches!(
            c_bit_from_tables(cr3, e, 1 << 20),
            Err(CbitError::NotOneBit(_))
        ));
        assert_eq!(check_c_bit(51, 0x0000_0173), Ok(51));
        assert_eq!(
            check_c_bit(51, 0x0000_0170),
            Err(CbitError::CpuidDiffers {
                tables: 51,
                cpuid: 48
            })
        );
        assert_eq!(entry_address(e, C51), pml4 + 0x1000);
        assert!(is_snp(0x7) && !is_snp(0x3) && !is_snp(0));
    }

    #[test]
    fn the_split_keeps_every_page_private_but_the_ghcb() {
        let pde = (16 << 20) | 0x83 | C51;
        let ghcb = (16 << 20) + 0x5_3000;
        let t = split_2m(pde, C51, ghcb).unwrap();
        for (i, e) in t.iter().enumerate() {
            let gpa = (16 << 20) + i as u64 * 4096;
            assert_eq!(entry_address(*e, C51), gpa);
            assert_eq!(*e & 0xfff, 0x3, "PS dropped, P and RW kept");
            assert_eq!(*e & C51 == 0, gpa == ghcb, "{gpa:#x}");
        }
        assert!(split_2m(pde, C51, 18 << 20).is_none());
        assert!(split_2m((16 << 20) | 0x3 | C51, C51, ghcb).is_none());
        assert!(split_2m(0, C51, ghcb).is_none());
    }
}
