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
//! * Linux's page-state order (`arch/x86/coco/sev/core.c`, `__set_pages_state`): memory
//!   is made private by the host first (the GHCB page-state change exit, [`psc`], #56421
//!   4.1.6) and validated through the SVSM after; made shared, it is rescinded through
//!   the SVSM first and handed to the host after. The SVSM PVALIDATE with Linux's
//!   FAIL_SIZEMISMATCH fallback (`svsm_pval_pages`) is [`svsm_pval_pages`].
//!
//! Every value the host returns is checked here before the guest uses it.
#![forbid(unsafe_code)]

use svsm_abi::core_protocol::result;
use svsm_abi::ghcb::{
    exit, ioio, msr, offset, Ghcb, PscDesc, PscEntry, PscHeader, PSC_MAX_ENTRIES,
    SHARED_BUFFER_OFFSET,
};
use svsm_abi::pvalidate::{PvalidateEntry, ENTRY_SIZE, HEADER_SIZE, MAX_ENTRIES};
use svsm_abi::sev_status::SNP_ENABLED;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

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
    /// The host refused (or answered inconsistently) a page-state change that the
    /// guest cannot go on without (Linux terminates with `GHCB_TERM_PSC` here).
    pub const PSC: u64 = 0x4b;
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

// ---------------------------------------------------------------------------------------
// Page-state changes through the GHCB page (#56421 4.1.6, "Page State Change").

/// The PSC entry for the pages a PVALIDATE entry names: the same GFN and size (a 2 MiB
/// entry for a 2 MiB validation), `op` from `svsm_abi::ghcb::psc_op`.
pub fn psc_entry_of(e: PvalidateEntry, op: u64) -> PscEntry {
    PscEntry::new(e.gpa() >> 12, op, e.size_field() == 1)
}

/// The GHCB of a page-state change (#56421 4.1.6, as Linux's `vmgexit_psc`): exit code
/// 0x8000_0010, SW_EXITINFO1/2 0, SW_SCRATCH the GPA of the GHCB's own shared buffer
/// (offset 0x800), which holds the descriptor: header cur_entry 0, end_entry the last
/// index, then the entries. `None` for no entries or more than 253 (the buffer's size).
pub fn psc_ghcb(ghcb_gpa: u64, entries: &[PscEntry]) -> Option<Ghcb> {
    if entries.is_empty() || entries.len() > PSC_MAX_ENTRIES {
        return None;
    }
    let mut desc = PscDesc::new_zeroed();
    desc.header = PscHeader {
        cur_entry: 0,
        end_entry: (entries.len() - 1) as u16,
        reserved: 0,
    };
    for (slot, e) in desc.entries.iter_mut().zip(entries) {
        *slot = e.0;
    }
    let mut g = exit_ghcb(exit::SNP_PSC, 0);
    g.shared_buffer.copy_from_slice(desc.as_bytes());
    g.sw_scratch = ghcb_gpa + SHARED_BUFFER_OFFSET;
    g.set_valid(offset::SW_SCRATCH);
    Some(g)
}

/// Why a page-state change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscError {
    /// SW_EXITINFO1 bits 31:0 not 0 (Linux `verify_exception_info`: the host did not
    /// take the exit) or SW_EXITINFO2 not 0 (#56421 4.1.6: the host's error code), as
    /// (SW_EXITINFO1, SW_EXITINFO2).
    Refused(u64, u64),
    /// The answer contradicts the request (the field is named).
    Inconsistent(&'static str),
    /// The host answered without moving cur_entry (no progress).
    NoProgress,
    /// No entries, or a request that could not be built.
    BadRequest,
}

/// Progress of a page-state change after one exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscProgress {
    /// cur_entry moved past end_entry: every entry is done.
    Done,
    /// The host stopped before the end: re-issue from this entry.
    Partial(u16),
}

/// Checks the host's answer (the GHCB page after the exit) against the GHCB sent. The
/// rules are Linux's `vmgexit_psc` ones, made strict: SW_EXITINFO2 must be 0 (and
/// SW_EXITINFO1 bits 31:0, `verify_exception_info`); the header's reserved word 0;
/// end_entry unchanged; cur_entry never going back and at most end_entry + 1; no entry
/// changed except its cur_page (bits 11:0, the host's progress inside a 2 MiB entry);
/// an answer that does not move cur_entry is refused (else the guest would loop).
pub fn check_psc_answer(sent: &Ghcb, answer: &[u8]) -> Result<PscProgress, PscError> {
    let a = Ghcb::read_from_bytes(answer).map_err(|_| PscError::Inconsistent("GHCB size"))?;
    if a.sw_exit_info_1 & 0xffff_ffff != 0 || a.sw_exit_info_2 != 0 {
        return Err(PscError::Refused(a.sw_exit_info_1, a.sw_exit_info_2));
    }
    let s = PscDesc::read_from_bytes(&sent.shared_buffer)
        .map_err(|_| PscError::Inconsistent("descriptor size"))?;
    let d = PscDesc::read_from_bytes(&a.shared_buffer)
        .map_err(|_| PscError::Inconsistent("descriptor size"))?;
    if d.header.reserved != 0 {
        return Err(PscError::Inconsistent(
            "header reserved (shared buffer 0x4)",
        ));
    }
    if d.header.end_entry != s.header.end_entry {
        return Err(PscError::Inconsistent("end_entry (shared buffer 0x2)"));
    }
    let n = usize::from(s.header.end_entry) + 1;
    if n > PSC_MAX_ENTRIES {
        return Err(PscError::BadRequest);
    }
    if (0..n).any(|i| d.entries[i] & !0xfff != s.entries[i] & !0xfff) {
        return Err(PscError::Inconsistent("an entry (shared buffer 0x8 + 8 i)"));
    }
    let cur = usize::from(d.header.cur_entry);
    if d.header.cur_entry < s.header.cur_entry || cur > n {
        return Err(PscError::Inconsistent("cur_entry (shared buffer 0x0)"));
    }
    if cur == n {
        Ok(PscProgress::Done)
    } else if d.header.cur_entry == s.header.cur_entry {
        Err(PscError::NoProgress)
    } else {
        Ok(PscProgress::Partial(d.header.cur_entry))
    }
}

/// A page-state change of `entries` through the GHCB page at `ghcb_gpa` (#56421
/// 4.1.6; Linux `vmgexit_psc`): at most 253 entries per descriptor; each exit made by
/// `exit` (write the GHCB, VMGEXIT, read the page back into the buffer); each answer
/// checked ([`check_psc_answer`]); a partial answer re-issued from the host's
/// cur_entry (the entries as sent, only cur_entry changed). Every round must move
/// cur_entry forward, so a descriptor of n entries takes at most n exits.
pub fn psc(
    ghcb_gpa: u64,
    entries: &[PscEntry],
    exit: &mut impl FnMut(&Ghcb, &mut [u8; 4096]),
) -> Result<(), PscError> {
    if entries.is_empty() {
        return Err(PscError::BadRequest);
    }
    let mut answer = [0u8; 4096];
    for chunk in entries.chunks(PSC_MAX_ENTRIES) {
        let mut g = psc_ghcb(ghcb_gpa, chunk).ok_or(PscError::BadRequest)?;
        let mut done = false;
        for _ in 0..chunk.len() {
            exit(&g, &mut answer);
            match check_psc_answer(&g, &answer)? {
                PscProgress::Done => {
                    done = true;
                    break;
                }
                // The host's cur_entry, checked above to lie within the descriptor.
                PscProgress::Partial(from) => {
                    g.shared_buffer[0..2].copy_from_slice(&from.to_le_bytes())
                }
            }
        }
        if !done {
            return Err(PscError::NoProgress);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The SVSM PVALIDATE as Linux makes it (`svsm_pval_pages`, arch/x86/coco/sev/core.c).

/// Most 2 MiB entries of one [`svsm_pval_pages`] call that may fall back to 4 KiB
/// (Linux keeps them in `pv_4k[VMGEXIT_PSC_MAX_ENTRY]`; the test guest's lists hold
/// far fewer).
pub const MAX_FALLBACK: usize = 32;
/// Calls that only ask again (INCOMPLETE, BUSY) allowed beyond one per entry.
const RETRY_LIMIT: usize = 64;

/// Entries a PVALIDATE list at `list_gpa` can hold: the list must lie within its 4 KiB
/// page (#58019 6.2), its 8-byte header first. 510 in the calling area's buffer
/// (offset 8), as Linux's `SVSM_PVALIDATE_MAX_COUNT`; 511 at the start of a page.
pub fn list_capacity(list_gpa: u64) -> usize {
    let room = 4096 - (list_gpa & 0xfff) as usize;
    (room.saturating_sub(HEADER_SIZE) / ENTRY_SIZE).min(MAX_ENTRIES)
}

/// A successful [`svsm_pval_pages`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalDone {
    /// 2 MiB entries answered FAIL_SIZEMISMATCH and then done as 512 4 KiB entries.
    pub fallback_2m: u32,
    /// SVSM calls made.
    pub calls: u32,
}

/// Why [`svsm_pval_pages`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalError {
    /// The SVSM's result (RAX) and the GPA of the entry it stopped at.
    Svsm {
        /// RAX.
        rax: u64,
        /// The entry's page (0 when `next` named none).
        gpa: u64,
    },
    /// The SVSM wrote back a `next` outside the list or behind where the call began,
    /// or reported SUCCESS before the end of the list.
    BadNext(u16),
    /// More 2 MiB fallbacks than [`MAX_FALLBACK`], or an empty list, or a list page
    /// without room.
    TooLong,
    /// INCOMPLETE/BUSY for ever.
    NoProgress,
}

/// The SVSM PVALIDATE of `entries` as Linux's `svsm_pval_pages` makes it. `call`
/// writes a list (header: the entries' count, `next`; then the entries) and makes the
/// call, returning RAX and the `next` the SVSM wrote back (#58019 6.2: where to
/// resume). Lists hold at most `capacity` entries ([`list_capacity`]).
///
/// * INCOMPLETE and BUSY are asked again from `next` (Linux
///   `svsm_perform_call_protocol` retries while `svsm_process_result_codes` says
///   -EAGAIN).
/// * FAIL_SIZEMISMATCH on a 2 MiB entry (the page is 4 KiB in the RMP): the entry is
///   kept for later, the call resumes after it (`pc->cur_index++`); once the lists are
///   done every kept entry is done as 512 4 KiB entries of the same action, in lists
///   of at most `capacity` (`svsm_build_ca_from_pfn_range`).
/// * Any other failure ends it (Linux terminates there, `svsm_pval_terminate`).
pub fn svsm_pval_pages(
    entries: &[PvalidateEntry],
    capacity: usize,
    call: &mut impl FnMut(&[PvalidateEntry], u16) -> (u64, u16),
) -> Result<PvalDone, PvalError> {
    if entries.is_empty() || capacity == 0 {
        return Err(PvalError::TooLong);
    }
    let mut kept = Kept {
        e: [PvalidateEntry(0); MAX_FALLBACK],
        n: 0,
    };
    let mut calls = 0u32;
    for chunk in entries.chunks(capacity) {
        run_list(chunk, call, &mut calls, Some(&mut kept))?;
    }
    // The kept 2 MiB entries at 4 KiB (Linux: "Process any entries that failed to be
    // validated at 2M and validate them at 4K").
    let mut batch = [PvalidateEntry(0); MAX_ENTRIES];
    for big in &kept.e[..kept.n] {
        let base = big.gpa() >> 12;
        let mut pfn = 0u64;
        while pfn < 512 {
            let n = (capacity as u64).min(512 - pfn) as usize;
            for (i, e) in batch[..n].iter_mut().enumerate() {
                *e = PvalidateEntry::new(
                    base + pfn + i as u64,
                    false,
                    big.validate(),
                    big.ignore_cf(),
                );
            }
            run_list(&batch[..n], call, &mut calls, None)?;
            pfn += n as u64;
        }
    }
    Ok(PvalDone {
        fallback_2m: kept.n as u32,
        calls,
    })
}

/// 2 MiB entries kept for the 4 KiB pass.
struct Kept {
    e: [PvalidateEntry; MAX_FALLBACK],
    n: usize,
}

/// One list, called until its end: INCOMPLETE/BUSY asked again from `next`; with
/// `kept`, a 2 MiB entry answered FAIL_SIZEMISMATCH is kept and skipped.
fn run_list(
    list: &[PvalidateEntry],
    call: &mut impl FnMut(&[PvalidateEntry], u16) -> (u64, u16),
    calls: &mut u32,
    mut kept: Option<&mut Kept>,
) -> Result<(), PvalError> {
    let n = list.len();
    let mut next = 0u16;
    let mut rounds = 0;
    while usize::from(next) < n {
        rounds += 1;
        if rounds > n + RETRY_LIMIT {
            return Err(PvalError::NoProgress);
        }
        let (rax, got) = call(list, next);
        *calls += 1;
        // #58019 6.2: `next` only moves forward, and not past the list.
        if got < next || usize::from(got) > n {
            return Err(PvalError::BadNext(got));
        }
        let at = list.get(usize::from(got)).copied();
        match (rax, at, kept.as_deref_mut()) {
            (result::SUCCESS, None, _) => next = got,
            (result::SUCCESS, Some(_), _) => return Err(PvalError::BadNext(got)),
            (result::ERR_INCOMPLETE | result::ERR_BUSY, _, _) => next = got,
            (result::ERR_PVALIDATE_FAIL_SIZEMISMATCH, Some(e), Some(k)) if e.size_field() == 1 => {
                *k.e.get_mut(k.n).ok_or(PvalError::TooLong)? = e;
                k.n += 1;
                next = got + 1;
            }
            (rax, at, _) => {
                return Err(PvalError::Svsm {
                    rax,
                    gpa: at.map_or(0, |e| e.gpa()),
                })
            }
        }
    }
    Ok(())
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

    use svsm_abi::ghcb::psc_op;

    /// A host answering page-state changes as KVM's `snp_begin_psc` loop does (the
    /// model's `psc::descriptor`), `per_exit` entries at a time, with `tamper` applied
    /// to its answer.
    fn host<'a>(
        per_exit: usize,
        seen: &'a mut Vec<u64>,
        tamper: impl Fn(&mut Ghcb) + 'a,
    ) -> impl FnMut(&Ghcb, &mut [u8; 4096]) + 'a {
        move |g, out| {
            assert_eq!(g.sw_exit_code, exit::SNP_PSC);
            assert!(g.is_valid(offset::SW_SCRATCH) && g.is_valid(offset::SW_EXIT_INFO_2));
            assert_eq!(g.sw_scratch, 0x1805_9000 + 0x800);
            let mut a = g.clone();
            let mut d = PscDesc::read_from_bytes(&a.shared_buffer).unwrap();
            let mut done = 0;
            while d.header.cur_entry <= d.header.end_entry && done < per_exit {
                let i = usize::from(d.header.cur_entry);
                let e = PscEntry(d.entries[i]);
                seen.push(d.entries[i] & !0xfff);
                d.entries[i] = (e.0 & !0xfff) | if e.size_2m() { 512 } else { 1 };
                d.header.cur_entry += 1;
                done += 1;
            }
            a.shared_buffer.copy_from_slice(d.as_bytes());
            tamper(&mut a);
            out.copy_from_slice(a.as_bytes());
        }
    }

    fn psc_list() -> [PscEntry; 3] {
        [
            psc_entry_of(crate::entry(20 << 20, true, true), psc_op::PRIVATE),
            psc_entry_of(crate::entry(24 << 20, false, true), psc_op::PRIVATE),
            psc_entry_of(
                crate::entry((24 << 20) + 0x1000, false, true),
                psc_op::PRIVATE,
            ),
        ]
    }

    #[test]
    fn the_psc_descriptor_is_56421s_and_a_2m_validation_gets_a_2m_entry() {
        let es = psc_list();
        assert!(es[0].size_2m() && !es[1].size_2m());
        assert_eq!((es[0].gfn(), es[0].op()), (0x1400, psc_op::PRIVATE));
        let g = psc_ghcb(0x1805_9000, &es).unwrap();
        assert_eq!(
            (g.sw_exit_code, g.sw_exit_info_1, g.sw_exit_info_2),
            (0x8000_0010, 0, 0)
        );
        assert_eq!(g.sw_scratch, 0x1805_9800);
        let d = PscDesc::read_from_bytes(&g.shared_buffer).unwrap();
        assert_eq!((d.header.cur_entry, d.header.end_entry), (0, 2));
        assert_eq!(d.entries[1], es[1].0);
        assert_eq!(d.entries[3], 0);
        assert!(psc_ghcb(0, &[]).is_none());
        assert!(psc_ghcb(0, &[es[0]; PSC_MAX_ENTRIES + 1]).is_none());
        assert!(psc_ghcb(0, &[es[0]; PSC_MAX_ENTRIES]).is_some());
    }

    #[test]
    fn a_psc_is_done_in_one_exit_or_reissued_from_cur_entry() {
        let es = psc_list();
        let mut seen = Vec::new();
        assert_eq!(
            psc(0x1805_9000, &es, &mut host(9, &mut seen, |_| {})),
            Ok(())
        );
        assert_eq!(seen.len(), 3);
        // One entry per exit: re-issued twice, each entry once.
        let mut seen = Vec::new();
        assert_eq!(
            psc(0x1805_9000, &es, &mut host(1, &mut seen, |_| {})),
            Ok(())
        );
        assert_eq!(seen, es.iter().map(|e| e.0).collect::<Vec<_>>());
        // More than a descriptor holds: split into descriptors of 253.
        let many = [es[1]; 300];
        let mut seen = Vec::new();
        assert_eq!(
            psc(0x1805_9000, &many, &mut host(400, &mut seen, |_| {})),
            Ok(())
        );
        assert_eq!(seen.len(), 300);
        assert_eq!(
            psc(0x1805_9000, &[], &mut host(1, &mut Vec::new(), |_| {})),
            Err(PscError::BadRequest)
        );
    }

    #[test]
    fn every_psc_answer_field_is_checked() {
        let es = psc_list();
        let run = |per: usize, t: fn(&mut Ghcb)| {
            psc(0x1805_9000, &es, &mut host(per, &mut Vec::new(), t))
        };
        assert_eq!(
            run(9, |a| a.sw_exit_info_2 = 0x1_0000_0002),
            Err(PscError::Refused(0, 0x1_0000_0002))
        );
        assert_eq!(
            run(9, |a| a.sw_exit_info_1 = 2),
            Err(PscError::Refused(2, 0))
        );
        // No progress at all.
        assert_eq!(run(0, |_| {}), Err(PscError::NoProgress));
        // cur_entry going back, or past end_entry + 1.
        assert!(matches!(
            run(9, |a| a.shared_buffer[0] = 7),
            Err(PscError::Inconsistent(_))
        ));
        assert!(matches!(
            run(1, |a| a.shared_buffer[2] = 5),
            Err(PscError::Inconsistent(_))
        ));
        assert!(matches!(
            run(9, |a| a.shared_buffer[4] = 1),
            Err(PscError::Inconsistent(_))
        ));
        // An entry changed beyond its cur_page (here its GFN).
        assert!(matches!(
            run(9, |a| a.shared_buffer[8 + 2] ^= 1),
            Err(PscError::Inconsistent(_))
        ));
        // cur_page moved inside a 2 MiB entry: allowed.
        assert_eq!(run(9, |a| a.shared_buffer[8] = 0x10), Ok(()));
    }

    /// An SVSM whose RMP holds 4 KiB pages only below `rmp_4k_from` (2 MiB requests
    /// there are FAIL_SIZEMISMATCH), doing at most `batch` entries a call (INCOMPLETE).
    struct FakeSvsm {
        rmp_4k_from: u64,
        batch: usize,
        lists: Vec<(Vec<u64>, u16)>,
        validated: Vec<u64>,
        fail_at: Option<u64>,
    }

    impl FakeSvsm {
        fn new(rmp_4k_from: u64, batch: usize) -> Self {
            Self {
                rmp_4k_from,
                batch,
                lists: Vec::new(),
                validated: Vec::new(),
                fail_at: None,
            }
        }
        fn call(&mut self, list: &[PvalidateEntry], next: u16) -> (u64, u16) {
            self.lists.push((list.iter().map(|e| e.0).collect(), next));
            let mut i = usize::from(next);
            let stop = (i + self.batch).min(list.len());
            while i < stop {
                let e = list[i];
                if Some(e.gpa()) == self.fail_at {
                    return (result::ERR_PVALIDATE_FAIL_INPUT, i as u16);
                }
                if e.size_field() == 1 && e.gpa() >= self.rmp_4k_from {
                    return (result::ERR_PVALIDATE_FAIL_SIZEMISMATCH, i as u16);
                }
                let pages = if e.size_field() == 1 { 512 } else { 1 };
                for p in 0..pages {
                    self.validated.push(e.gpa() + p * 4096);
                }
                i += 1;
            }
            if i < list.len() {
                (result::ERR_INCOMPLETE, i as u16)
            } else {
                (result::SUCCESS, i as u16)
            }
        }
    }

    fn linux_ca_list() -> [PvalidateEntry; 5] {
        let mut es = [crate::entry(26 << 20, true, true); 5];
        for (i, e) in es.iter_mut().enumerate().skip(1) {
            *e = crate::entry((28 << 20) + (i as u64 - 1) * 4096, false, true);
        }
        es
    }

    #[test]
    fn a_2m_entry_answered_sizemismatch_is_redone_as_512_4k_entries_like_linux() {
        let es = linux_ca_list();
        let mut svsm = FakeSvsm::new(0, 1000);
        let cap = list_capacity(0x1801_0008);
        assert_eq!(cap, 510);
        let r = svsm_pval_pages(&es, cap, &mut |l, n| svsm.call(l, n)).unwrap();
        assert_eq!(r.fallback_2m, 1);
        // The list, again from entry 1, then 510 + 2 4 KiB entries.
        assert_eq!(svsm.lists.len(), 4);
        assert_eq!((svsm.lists[0].1, svsm.lists[1].1), (0, 1));
        assert_eq!((svsm.lists[2].0.len(), svsm.lists[3].0.len()), (510, 2));
        assert_eq!(r.calls, 4);
        let mut v = svsm.validated.clone();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 512 + 4);
        let first = PvalidateEntry(svsm.lists[2].0[0]);
        assert_eq!(
            (first.gpa(), first.size_field(), first.validate()),
            (26 << 20, 0, true)
        );
        // Where the RMP has 2 MiB pages: one call, no fallback.
        let mut svsm = FakeSvsm::new(u64::MAX, 1000);
        let r = svsm_pval_pages(&es, cap, &mut |l, n| svsm.call(l, n)).unwrap();
        assert_eq!((r.fallback_2m, r.calls), (0, 1));
        // A rescind falls back the same way and keeps its action.
        let mut svsm = FakeSvsm::new(0, 1000);
        let r = svsm_pval_pages(&[crate::entry(20 << 20, true, false)], 511, &mut |l, n| {
            svsm.call(l, n)
        })
        .unwrap();
        assert_eq!((r.fallback_2m, r.calls), (1, 3));
        assert!(!PvalidateEntry(svsm.lists[1].0[0]).validate());
    }

    #[test]
    fn incomplete_is_asked_again_and_other_failures_end_it() {
        let es = linux_ca_list();
        let mut svsm = FakeSvsm::new(u64::MAX, 2);
        let r = svsm_pval_pages(&es, 510, &mut |l, n| svsm.call(l, n)).unwrap();
        assert_eq!(r.calls, 3);
        assert_eq!(
            svsm.lists.iter().map(|l| l.1).collect::<Vec<_>>(),
            [0, 2, 4]
        );
        let mut svsm = FakeSvsm::new(u64::MAX, 1000);
        svsm.fail_at = Some((28 << 20) + 0x1000);
        assert_eq!(
            svsm_pval_pages(&es, 510, &mut |l, n| svsm.call(l, n)),
            Err(PvalError::Svsm {
                rax: result::ERR_PVALIDATE_FAIL_INPUT,
                gpa: (28 << 20) + 0x1000
            })
        );
        // A 4 KiB entry answered SIZEMISMATCH is no fallback case.
        let one = [crate::entry(18 << 20, false, true)];
        assert_eq!(
            svsm_pval_pages(&one, 511, &mut |_, n| (
                result::ERR_PVALIDATE_FAIL_SIZEMISMATCH,
                n
            )),
            Err(PvalError::Svsm {
                rax: result::ERR_PVALIDATE_FAIL_SIZEMISMATCH,
                gpa: 18 << 20
            })
        );
        // `next` going back, past the end, or SUCCESS before the end.
        assert_eq!(
            svsm_pval_pages(&es, 510, &mut |_, _| (result::SUCCESS, 9)),
            Err(PvalError::BadNext(9))
        );
        assert_eq!(
            svsm_pval_pages(&es, 510, &mut |_, _| (result::SUCCESS, 2)),
            Err(PvalError::BadNext(2))
        );
        let mut k = 0;
        assert_eq!(
            svsm_pval_pages(&es, 510, &mut |_, n| {
                k += 1;
                (result::ERR_INCOMPLETE, if k == 1 { 2 } else { n - 1 })
            }),
            Err(PvalError::BadNext(1))
        );
        // BUSY for ever is bounded.
        assert_eq!(
            svsm_pval_pages(&es, 510, &mut |_, n| (result::ERR_BUSY, n)),
            Err(PvalError::NoProgress)
        );
        assert_eq!(
            svsm_pval_pages(&[], 510, &mut |_, n| (0, n)),
            Err(PvalError::TooLong)
        );
        assert_eq!(
            svsm_pval_pages(&es, 0, &mut |_, n| (0, n)),
            Err(PvalError::TooLong)
        );
        assert_eq!(
            (list_capacity(0x1802_0000), list_capacity(0x1802_0ff8)),
            (511, 0)
        );
    }
}
