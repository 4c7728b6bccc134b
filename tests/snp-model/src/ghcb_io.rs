//! The GHCB exits that move data through a scratch buffer: IOIO (string and not),
//! MMIO read and write. Scratch rules are KVM's `setup_vmgexit_scratch`.

use crate::exit_codes::err;
use crate::ghcb_page::{off, Ghcb};
use crate::host::{read_guest, Devices, Fault, Host};
use crate::memory::Memory;
use crate::rmp::Rmp;

/// Largest scratch area outside the GHCB (KVM `GHCB_SCRATCH_AREA_LIMIT`, 16 pages).
pub const SCRATCH_LIMIT: u64 = 16 * 4096;

/// Where a scratch buffer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scratch {
    /// Inside the GHCB's shared buffer, at this offset in the page.
    InGhcb(usize),
    /// In (shared) guest memory outside the GHCB.
    Guest(u64),
}

/// Check the scratch area of `len` bytes named by SW_SCRATCH (KVM
/// `setup_vmgexit_scratch`): present, no wrap; inside the GHCB page it must lie within
/// the shared buffer 0x800..0xFF0; outside it is at most 16 pages. Else the guest gets
/// GHCB_ERR_INVALID_SCRATCH_AREA.
pub fn scratch(g: &Ghcb, ghcb_gpa: u64, len: u64) -> Result<Scratch, u64> {
    let beg = g.get_or_zero(off::SW_SCRATCH);
    let bad = err::INVALID_SCRATCH_AREA;
    if beg == 0 {
        return Err(bad);
    }
    let end = beg.checked_add(len).ok_or(bad)?;
    if beg & !0xfff == ghcb_gpa {
        let lo = ghcb_gpa + off::SHARED_BUFFER as u64;
        let hi = ghcb_gpa + off::SHARED_BUFFER_END as u64;
        if beg < lo || end > hi {
            return Err(bad);
        }
        return Ok(Scratch::InGhcb((beg - ghcb_gpa) as usize));
    }
    if len > SCRATCH_LIMIT {
        return Err(bad);
    }
    Ok(Scratch::Guest(beg))
}

/// Read the scratch bytes.
pub fn scratch_read(
    g: &Ghcb,
    s: Scratch,
    mem: &Memory,
    rmp: &Rmp,
    out: &mut [u8],
) -> Result<(), Fault> {
    match s {
        Scratch::InGhcb(o) => {
            out.copy_from_slice(&g.0[o..o + out.len()]);
            Ok(())
        }
        Scratch::Guest(gpa) => read_guest(mem, rmp, gpa, out),
    }
}

/// Write the scratch bytes (KVM writes them back when the exit completes).
pub fn scratch_write(
    g: &mut Ghcb,
    s: Scratch,
    host: &mut Host,
    mem: &mut Memory,
    rmp: &Rmp,
    data: &[u8],
) -> Result<(), Fault> {
    match s {
        Scratch::InGhcb(o) => {
            g.0[o..o + data.len()].copy_from_slice(data);
            Ok(())
        }
        Scratch::Guest(gpa) => host.write_guest(mem, rmp, gpa, data),
    }
}

/// IOIO info bits (APM vol. 2 §15.10.2, "IOIO intercept information"): bit 0 IN, bit 2
/// string, bit 3 REP, bits 6:4 size (8/16/32), bits 31:16 port.
fn ioio_fields(info1: u64) -> Option<(u16, u8, bool, bool)> {
    let size = match (info1 >> 4) & 7 {
        1 => 1,
        2 => 2,
        4 => 4,
        _ => return None,
    };
    Some(((info1 >> 16) as u16, size, info1 & 1 != 0, info1 & 4 != 0))
}

/// The result of a data-moving exit: Ok(()) answered, Err(Ok(reason)) a GHCB error to
/// the guest, Err(Err(fault)) the host stops.
pub type ExitResult = Result<(), Result<u64, Fault>>;

/// IOIO. Non-string: OUT sends RAX's low bytes; IN replaces RAX's low bytes (a 4-byte
/// IN zero-extends), as KVM's `kvm_fast_pio`. String: SW_EXITINFO2 is the count and the
/// data is in the scratch buffer (KVM `sev_es_string_io`).
pub fn ioio(
    inp: &Ghcb,
    g: &mut Ghcb,
    ghcb_gpa: u64,
    regs: &mut [u64; 4],
    ctx: (&mut Host, &mut Memory, &Rmp, &mut dyn Devices),
) -> ExitResult {
    let (host, mem, rmp, dev) = ctx;
    let info1 = inp.get_or_zero(off::SW_EXIT_INFO_1);
    let (port, size, input, string) = ioio_fields(info1).ok_or(Ok(err::INVALID_INPUT))?;
    let mask = (1u64 << (8 * size)) - 1;
    if !string {
        if input {
            let v = u64::from(dev.io_in(port, size)) & mask;
            regs[0] = if size == 4 { v } else { (regs[0] & !mask) | v };
        } else {
            dev.io_out(port, size, (regs[0] & mask) as u32);
        }
        return Ok(());
    }
    let count = inp.get_or_zero(off::SW_EXIT_INFO_2);
    let bytes = count
        .checked_mul(u64::from(size))
        .ok_or(Ok(err::INVALID_SCRATCH_AREA))?;
    let s = scratch(inp, ghcb_gpa, bytes).map_err(Ok)?;
    let mut buf = alloc::vec![0u8; bytes as usize];
    if input {
        for c in buf.chunks_mut(usize::from(size)) {
            let v = dev.io_in(port, size).to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        scratch_write(g, s, host, mem, rmp, &buf).map_err(Err)?;
    } else {
        scratch_read(inp, s, mem, rmp, &mut buf).map_err(Err)?;
        for c in buf.chunks(usize::from(size)) {
            let mut v = [0u8; 4];
            v[..c.len()].copy_from_slice(c);
            dev.io_out(port, size, u32::from_le_bytes(v));
        }
    }
    Ok(())
}

/// MMIO read/write: SW_EXITINFO1 the GPA, SW_EXITINFO2 the length, the data in the
/// scratch buffer (KVM `kvm_sev_es_mmio_read`/`_write`).
pub fn mmio(
    inp: &Ghcb,
    g: &mut Ghcb,
    ghcb_gpa: u64,
    write: bool,
    ctx: (&mut Host, &mut Memory, &Rmp, &mut dyn Devices),
) -> ExitResult {
    let (host, mem, rmp, dev) = ctx;
    let gpa = inp.get_or_zero(off::SW_EXIT_INFO_1);
    let len = inp.get_or_zero(off::SW_EXIT_INFO_2);
    let s = scratch(inp, ghcb_gpa, len).map_err(Ok)?;
    let mut buf = alloc::vec![0u8; len as usize];
    if write {
        scratch_read(inp, s, mem, rmp, &mut buf).map_err(Err)?;
        dev.mmio_write(gpa, &buf);
    } else {
        dev.mmio_read(gpa, &mut buf);
        scratch_write(g, s, host, mem, rmp, &buf).map_err(Err)?;
    }
    Ok(())
}
