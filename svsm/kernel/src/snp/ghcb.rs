//! Exits through the GHCB page (#56421, "GHCB Protocol", non-automatic exits): the
//! request goes into a shared 4 KiB page (registers, their valid bits, SW_EXITCODE,
//! SW_EXITINFO1/2), the GHCB MSR holds the page's GPA, VMGEXIT hands it to the host,
//! and the host's answer comes back in the same page.
//!
//! Vigil uses two exits so far: IOIO (0x7B: the console, and port I/O from the #VC
//! handler) and MSR (0x7C: RDMSR/WRMSR from the #VC handler). The pure half of this file
//! builds a request ([`fill`]) and checks an answer ([`check_answer`]): the host's
//! status in SW_EXITINFO1[31:0] must be 0, and every register the answer needs must be
//! marked valid by the host; anything else is refused by name ([`GhcbError`]). The
//! page itself is copied in and out whole (`read_volatile`/`write_volatile`): Vigil never
//! reads a field of the shared page twice, so the host cannot change it between the
//! check and the use.

use core::fmt;

use svsm_abi::ghcb::{exit, ioio, offset, term, Ghcb};

/// One page-based exit Vigil makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// IN of `bytes` (1, 2 or 4) from `port`.
    In {
        /// The port.
        port: u16,
        /// Operand size in bytes.
        bytes: u8,
    },
    /// OUT of the low `bytes` of `value` to `port`.
    Out {
        /// The port.
        port: u16,
        /// Operand size in bytes.
        bytes: u8,
        /// The value (only the low `bytes` bytes go out).
        value: u32,
    },
    /// RDMSR.
    RdMsr {
        /// The MSR (ECX).
        msr: u32,
    },
    /// WRMSR.
    WrMsr {
        /// The MSR (ECX).
        msr: u32,
        /// EDX:EAX.
        value: u64,
    },
}

/// A refused request or answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GhcbError {
    /// An I/O operand size other than 1, 2 or 4 bytes.
    BadIoSize {
        /// The size asked for.
        bytes: u8,
    },
    /// The host reported an error: SW_EXITINFO1[31:0] is not 0 (1 = it wants an
    /// exception injected, described in SW_EXITINFO2).
    HostError {
        /// SW_EXITINFO1 as returned.
        info1: u64,
        /// SW_EXITINFO2 as returned.
        info2: u64,
    },
    /// A register the answer needs is not marked valid.
    NotValid {
        /// The register's offset in the GHCB.
        offset: usize,
    },
    /// The GHCB page was in use when another exit started (an exit from the #VC
    /// handler, or an NMI's report, in the middle of another exit).
    Busy,
    /// No GHCB page is registered yet.
    NotReady,
}

impl GhcbError {
    /// The termination reason (set 1) that ends Vigil on this error.
    pub const fn reason(&self) -> u64 {
        match self {
            GhcbError::BadIoSize { .. } => term::VC_UNEXPECTED,
            GhcbError::HostError { .. } => term::HOST_REFUSED,
            GhcbError::NotValid { .. } => term::HOST_INCONSISTENT,
            GhcbError::Busy | GhcbError::NotReady => term::VC_NESTED,
        }
    }
}

impl fmt::Display for GhcbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GhcbError::BadIoSize { bytes } => write!(f, "I/O operand of {bytes} bytes"),
            GhcbError::HostError { info1, info2 } => write!(
                f,
                "host answered SW_EXITINFO1 {info1:#x} (SW_EXITINFO2 {info2:#x}), not success"
            ),
            GhcbError::NotValid { offset } => write!(
                f,
                "host answer lacks the valid bit of the register at GHCB offset {offset:#x}"
            ),
            GhcbError::Busy => write!(f, "GHCB page re-entered while in use"),
            GhcbError::NotReady => write!(f, "no GHCB page registered yet"),
        }
    }
}

fn set(g: &mut Ghcb, off: usize, value: u64) {
    match off {
        offset::RAX => g.rax = value,
        offset::RCX => g.rcx = value,
        offset::RDX => g.rdx = value,
        offset::SW_EXIT_CODE => g.sw_exit_code = value,
        offset::SW_EXIT_INFO_1 => g.sw_exit_info_1 = value,
        offset::SW_EXIT_INFO_2 => g.sw_exit_info_2 = value,
        _ => return,
    }
    g.set_valid(off);
}

/// Writes the request for `e` into `g` (which the caller zeroed, with the protocol
/// version and usage set: `Ghcb::new_zeroed_v2`): SW_EXITCODE, SW_EXITINFO1/2 and the
/// input registers, each marked valid (#56421, "IOIO" and "MSR_PROT" NAE events).
pub fn fill(g: &mut Ghcb, e: &Exit) -> Result<(), GhcbError> {
    let (code, info1) = match *e {
        Exit::In { port, bytes } => (
            exit::IOIO,
            ioio::info1(port, bytes, true).ok_or(GhcbError::BadIoSize { bytes })?,
        ),
        Exit::Out { port, bytes, value } => {
            let info = ioio::info1(port, bytes, false).ok_or(GhcbError::BadIoSize { bytes })?;
            set(g, offset::RAX, u64::from(value) & size_mask(bytes));
            (exit::IOIO, info)
        }
        Exit::RdMsr { msr } => {
            set(g, offset::RCX, u64::from(msr));
            (exit::MSR, 0)
        }
        Exit::WrMsr { msr, value } => {
            set(g, offset::RCX, u64::from(msr));
            set(g, offset::RAX, value & 0xffff_ffff);
            set(g, offset::RDX, value >> 32);
            (exit::MSR, 1)
        }
    };
    if matches!(e, Exit::In { .. }) {
        // RAX carries no input for IN, but Linux and the spec's IOIO table list it as
        // "RAX: valid" for both directions: sent as 0.
        set(g, offset::RAX, 0);
    }
    set(g, offset::SW_EXIT_CODE, code);
    set(g, offset::SW_EXIT_INFO_1, info1);
    set(g, offset::SW_EXIT_INFO_2, 0);
    Ok(())
}

const fn size_mask(bytes: u8) -> u64 {
    match bytes {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

/// Checks the host's answer `g` to `e` and returns the value the exit produced (the
/// data of an IN, masked to its size; EDX:EAX of an RDMSR; 0 for OUT and WRMSR).
pub fn check_answer(g: &Ghcb, e: &Exit) -> Result<u64, GhcbError> {
    if g.sw_exit_info_1 & 0xffff_ffff != 0 {
        return Err(GhcbError::HostError {
            info1: g.sw_exit_info_1,
            info2: g.sw_exit_info_2,
        });
    }
    let need = |off: usize| {
        if g.is_valid(off) {
            Ok(())
        } else {
            Err(GhcbError::NotValid { offset: off })
        }
    };
    match *e {
        Exit::In { bytes, .. } => {
            need(offset::RAX)?;
            Ok(g.rax & size_mask(bytes))
        }
        Exit::RdMsr { .. } => {
            need(offset::RAX)?;
            need(offset::RDX)?;
            Ok((g.rax & 0xffff_ffff) | (g.rdx << 32))
        }
        Exit::Out { .. } | Exit::WrMsr { .. } => Ok(0),
    }
}

/// The GHCB pages, one per CPU (#56421 2.3.2: each vCPU registers its own GHCB GPA with
/// the MSR protocol, and the host takes only that page from that vCPU), and their state.
///
/// CPU 0 (the boot CPU) uses the image's static page; each AP of Vigil's own
/// (`snp::ap`) gets one of Vigil's frames, made shared by the CPU that starts it and
/// registered by the AP itself ([`install`]). The CPU running is [`current`]: the
/// selector in its task register, which Vigil sets for every CPU (`snp::ap`).
#[cfg(target_os = "none")]
pub mod page {
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use svsm_abi::ghcb::{Ghcb, GHCB_SIZE, MSR_GHCB};

    use super::{check_answer, fill, Exit, GhcbError};
    use crate::cpu::instr::{vmgexit, wrmsr};

    /// CPUs Vigil runs on at most: the boot CPU and three APs of its own.
    pub const MAX_CPUS: usize = 4;

    /// The boot CPU's page, in .bss (validated at launch like the whole image) until
    /// `snp::shared::make_shared` turns it into a shared page.
    #[repr(C, align(4096))]
    pub struct GhcbPage(UnsafeCell<[u8; GHCB_SIZE]>);

    // SAFETY: only accessed through `call`/`call_raw` on the boot CPU, which the
    // slot's IN_USE flag makes exclusive.
    unsafe impl Sync for GhcbPage {}

    /// The boot CPU's page.
    pub static GHCB_PAGE: GhcbPage = GhcbPage(UnsafeCell::new([0; GHCB_SIZE]));

    /// One CPU's GHCB: its GPA (0 for CPU 0: the static page), registered yet, in use.
    struct Slot {
        gpa: AtomicU64,
        ready: AtomicBool,
        in_use: AtomicBool,
    }

    static SLOTS: [Slot; MAX_CPUS] = [const {
        Slot {
            gpa: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            in_use: AtomicBool::new(false),
        }
    }; MAX_CPUS];

    /// The CPU running this code, from its task register's selector
    /// (`snp::ap::tr_selector`); None for a task register Vigil never set.
    pub fn current() -> Option<usize> {
        let tr = crate::cpu::gdt::current_cs_tr().1;
        let off = tr.checked_sub(crate::cpu::gdt::TSS_SEL)?;
        let cpu = usize::from(off / 0x10);
        (off % 0x10 == 0 && cpu < MAX_CPUS).then_some(cpu)
    }

    fn slot() -> Option<&'static Slot> {
        current().map(|c| &SLOTS[c])
    }

    /// The GHCB page's GPA of the running CPU (0 if it has none).
    pub fn gpa() -> u64 {
        match current() {
            Some(0) => GHCB_PAGE.0.get() as u64,
            Some(c) => SLOTS[c].gpa.load(Ordering::SeqCst),
            None => 0,
        }
    }

    /// The running CPU's page is shared and registered: exits may use it.
    pub fn set_ready() {
        if let Some(s) = slot() {
            s.ready.store(true, Ordering::SeqCst);
        }
    }

    /// On an AP: its page `gpa` (shared, registered by this CPU) is the one it uses.
    pub fn install(gpa: u64) {
        if let Some(s) = slot() {
            s.gpa.store(gpa, Ordering::SeqCst);
            s.ready.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the running CPU's page is registered.
    pub fn ready() -> bool {
        slot().is_some_and(|s| s.ready.load(Ordering::SeqCst))
    }

    /// One exit through the running CPU's page: the request for `e` written, VMGEXIT,
    /// the answer copied out once and checked.
    pub fn call(e: &Exit) -> Result<u64, GhcbError> {
        let s = begin()?;
        let r = exchange(e);
        s.in_use.store(false, Ordering::SeqCst);
        r
    }

    fn begin() -> Result<&'static Slot, GhcbError> {
        let s = slot().ok_or(GhcbError::NotReady)?;
        if !s.ready.load(Ordering::SeqCst) {
            return Err(GhcbError::NotReady);
        }
        if s.in_use.swap(true, Ordering::SeqCst) {
            return Err(GhcbError::Busy);
        }
        Ok(s)
    }

    fn exchange(e: &Exit) -> Result<u64, GhcbError> {
        let mut g = Ghcb::new_zeroed_v2();
        fill(&mut g, e)?;
        let answer = round_trip(&g);
        check_answer(&answer, e)
    }

    /// One exit with a whole GHCB built by the caller (the monitor's requests: PSC, AP
    /// creation, guest requests, run VMPL); the answer is returned unchecked, copied out
    /// of the shared page once (the caller checks it).
    pub fn call_raw(g: &Ghcb) -> Result<Ghcb, GhcbError> {
        let s = begin()?;
        let a = round_trip(g);
        s.in_use.store(false, Ordering::SeqCst);
        Ok(a)
    }

    fn round_trip(g: &Ghcb) -> Ghcb {
        use zerocopy::{FromZeros, IntoBytes};
        let gpa = gpa();
        let p = gpa as *mut u64;
        for (i, chunk) in g.as_bytes().chunks_exact(8).enumerate() {
            let mut q = [0u8; 8];
            q.copy_from_slice(chunk);
            // SAFETY: `p` is the running CPU's GHCB page (the static one, or an AP's
            // frame mapped shared at its GPA), 4096 bytes, held exclusively through
            // the slot's IN_USE flag; volatile, because the host reads it.
            unsafe { p.add(i).write_volatile(u64::from_le_bytes(q)) };
        }
        // SAFETY: the GHCB MSR takes the registered page's GPA; writing it changes no
        // state Rust relies on.
        unsafe { wrmsr(MSR_GHCB, gpa) };
        vmgexit();
        let mut answer = Ghcb::new_zeroed();
        for (i, chunk) in answer.as_mut_bytes().chunks_exact_mut(8).enumerate() {
            // SAFETY: as above; each word is read once.
            let q = unsafe { p.add(i).read_volatile() };
            chunk.copy_from_slice(&q.to_le_bytes());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(e: &Exit) -> Ghcb {
        let mut g = Ghcb::new_zeroed_v2();
        fill(&mut g, e).unwrap();
        g
    }

    #[test]
    fn out_to_com1_is_an_ioio_exit_with_port_size_and_data() {
        let g = request(&Exit::Out {
            port: 0x3f8,
            bytes: 1,
            value: 0x1241,
        });
        assert_eq!(g.sw_exit_code, exit::IOIO);
        assert_eq!(g.sw_exit_info_1, 0x03f8_0210);
        assert_eq!(g.sw_exit_info_2, 0);
        assert_eq!(g.rax, 0x41, "only the operand's byte goes out");
        for off in [
            offset::RAX,
            offset::SW_EXIT_CODE,
            offset::SW_EXIT_INFO_1,
            offset::SW_EXIT_INFO_2,
        ] {
            assert!(g.is_valid(off), "offset {off:#x} not marked valid");
        }
        assert_eq!(g.protocol_version, 2);
    }

    #[test]
    fn msr_exits_put_the_msr_in_rcx_and_the_value_in_edx_eax() {
        let g = request(&Exit::WrMsr {
            msr: 0xc000_0080,
            value: 0x1234_5678_9abc_def0,
        });
        assert_eq!(
            (g.sw_exit_code, g.sw_exit_info_1, g.rcx, g.rax, g.rdx),
            (exit::MSR, 1, 0xc000_0080, 0x9abc_def0, 0x1234_5678)
        );
        assert!(g.is_valid(offset::RCX) && g.is_valid(offset::RDX));
        let g = request(&Exit::RdMsr { msr: 0x10 });
        assert_eq!((g.sw_exit_info_1, g.rcx), (0, 0x10));
        assert!(!g.is_valid(offset::RDX));
    }

    #[test]
    fn bad_io_sizes_are_refused() {
        let mut g = Ghcb::new_zeroed_v2();
        assert_eq!(
            fill(&mut g, &Exit::In { port: 1, bytes: 8 }),
            Err(GhcbError::BadIoSize { bytes: 8 })
        );
    }

    fn answer(info1: u64, valid: &[(usize, u64)]) -> Ghcb {
        let mut g = Ghcb::new_zeroed_v2();
        g.sw_exit_info_1 = info1;
        for &(off, v) in valid {
            set(&mut g, off, v);
        }
        g.sw_exit_info_1 = info1;
        g
    }

    #[test]
    fn in_answers_need_a_valid_rax_and_are_masked_to_their_size() {
        let e = Exit::In {
            port: 0x3fd,
            bytes: 1,
        };
        assert_eq!(
            check_answer(&answer(0, &[(offset::RAX, 0xdead_be60)]), &e),
            Ok(0x60)
        );
        let err = check_answer(&answer(0, &[]), &e).unwrap_err();
        assert_eq!(
            err,
            GhcbError::NotValid {
                offset: offset::RAX
            }
        );
        assert_eq!(err.reason(), term::HOST_INCONSISTENT);
    }

    #[test]
    fn host_errors_are_refused_with_their_info() {
        let e = Exit::Out {
            port: 0x3f8,
            bytes: 1,
            value: 0,
        };
        let mut g = answer(1, &[]);
        g.sw_exit_info_2 = 0x8000_0b0d;
        let err = check_answer(&g, &e).unwrap_err();
        assert_eq!(
            err,
            GhcbError::HostError {
                info1: 1,
                info2: 0x8000_0b0d
            }
        );
        assert_eq!(err.reason(), term::HOST_REFUSED);
        // Bits 63:32 of SW_EXITINFO1 are not the status.
        assert_eq!(check_answer(&answer(0x5_0000_0000, &[]), &e), Ok(0));
    }

    #[test]
    fn rdmsr_answers_need_rax_and_rdx() {
        let e = Exit::RdMsr { msr: 0x1b };
        let ok = answer(0, &[(offset::RAX, 0xfee0_0900), (offset::RDX, 0x1)]);
        assert_eq!(check_answer(&ok, &e), Ok(0x1_fee0_0900));
        let no_rdx = answer(0, &[(offset::RAX, 1)]);
        assert_eq!(
            check_answer(&no_rdx, &e),
            Err(GhcbError::NotValid {
                offset: offset::RDX
            })
        );
    }
}
