//! The guest's memory as the vCPU sees it: linear addresses through its page tables
//! (`walk`), each page-table read and the final access checked against the RMP at the
//! running VMPL (`access::check`; page-table reads are private walk accesses, APM vol. 2
//! §15.36.10). Used to fetch instruction bytes and to reach the IDT, GDT, TSS and stack.

use crate::access::{self, Access, Kind, Outcome};
use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::decode::MAX_LEN;
use crate::machine::vmsa::{off, Vmsa};
use crate::machine::walk::{self, LinearAccess, Paging, Translation, WalkError};
use crate::machine::Machine;
use crate::rmp::PAGE_SIZE;

/// Why a guest access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GuestFault {
    /// The translation failed.
    Walk(WalkError),
    /// The RMP refused a page-table read or the access itself.
    Rmp {
        /// The access.
        access: Access,
        /// What the RMP check said.
        outcome: Outcome,
    },
}

fn kind_of(a: LinearAccess) -> Kind {
    match (a.fetch, a.write, a.user) {
        (true, _, true) => Kind::UserExec,
        (true, _, false) => Kind::SuperExec,
        (false, true, _) => Kind::Write,
        (false, false, _) => Kind::Read,
    }
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    fn rmp_ok(&self, a: Access) -> Result<(), GuestFault> {
        match access::check(&self.rmp, &a) {
            Outcome::Allowed => Ok(()),
            outcome => Err(GuestFault::Rmp { access: a, outcome }),
        }
    }

    /// Translate `la` for `acc` at `vmpl`. The page-table reads are always checked; the
    /// final access only when `check_final` (PVALIDATE and RMPADJUST translate their
    /// operand without accessing the page).
    pub(super) fn translate(
        &self,
        v: &Vmsa,
        vmpl: u8,
        la: u64,
        acc: LinearAccess,
        check_final: bool,
    ) -> Result<Translation, GuestFault> {
        let t = walk::translate(&self.mem, &Paging::of(v), la, acc).map_err(GuestFault::Walk)?;
        for &gpa in &t.tables[..t.levels] {
            self.rmp_ok(Access {
                gpa,
                private: true,
                kind: Kind::Read,
                user: false,
                vmpl,
                walk: true,
            })?;
        }
        if check_final {
            self.rmp_ok(Access {
                gpa: t.gpa,
                private: t.private,
                kind: kind_of(acc),
                user: acc.user,
                vmpl,
                walk: false,
            })?;
        }
        Ok(t)
    }

    /// Read `out.len()` bytes at `la`, page by page.
    pub(super) fn read_linear(
        &self,
        v: &Vmsa,
        vmpl: u8,
        la: u64,
        acc: LinearAccess,
        out: &mut [u8],
    ) -> Result<(), (u64, GuestFault)> {
        let mut done = 0;
        while done < out.len() {
            let a = la.wrapping_add(done as u64);
            let n = ((PAGE_SIZE - (a & (PAGE_SIZE - 1))) as usize).min(out.len() - done);
            let t = self.translate(v, vmpl, a, acc, true).map_err(|e| (a, e))?;
            let oob = GuestFault::Walk(WalkError::TableOutsideMemory { gpa: t.gpa });
            self.mem
                .read(t.gpa, &mut out[done..done + n])
                .map_err(|_| (a, oob))?;
            done += n;
        }
        Ok(())
    }

    /// Write `data` at `la` (a supervisor write unless `user`), page by page; nothing is
    /// written unless every page translates and passes the RMP check.
    pub(super) fn write_linear(
        &mut self,
        v: &Vmsa,
        vmpl: u8,
        la: u64,
        user: bool,
        data: &[u8],
    ) -> Result<(), (u64, GuestFault)> {
        let acc = LinearAccess {
            write: true,
            fetch: false,
            user,
        };
        let mut pieces = [(0u64, 0usize, 0usize); 2];
        let mut count = 0;
        let mut done = 0;
        while done < data.len() {
            let a = la.wrapping_add(done as u64);
            let n = ((PAGE_SIZE - (a & (PAGE_SIZE - 1))) as usize).min(data.len() - done);
            let t = self.translate(v, vmpl, a, acc, true).map_err(|e| (a, e))?;
            if count == pieces.len() {
                return Err((
                    a,
                    GuestFault::Walk(WalkError::Unsupported("write over 2 pages")),
                ));
            }
            pieces[count] = (t.gpa, done, n);
            count += 1;
            done += n;
        }
        for &(gpa, at, n) in &pieces[..count] {
            let oob = GuestFault::Walk(WalkError::TableOutsideMemory { gpa });
            self.mem
                .write(gpa, &data[at..at + n])
                .map_err(|_| (la, oob))?;
        }
        Ok(())
    }

    /// The bytes at CS:RIP, as many as can be fetched (up to 15).
    pub(super) fn fetch(&self, v: &Vmsa, vmpl: u8) -> ([u8; MAX_LEN], usize) {
        let base = if v.in_64bit_mode() {
            0
        } else {
            v.segment(off::CS).base
        };
        let la = base.wrapping_add(v.rip());
        let acc = LinearAccess {
            write: false,
            fetch: true,
            user: v.cpl() == 3,
        };
        let mut b = [0u8; MAX_LEN];
        // Up to the end of RIP's page, then the rest from the next page; stop at the
        // first part that cannot be fetched.
        let first = ((PAGE_SIZE - (la & (PAGE_SIZE - 1))) as usize).min(MAX_LEN);
        if self.read_linear(v, vmpl, la, acc, &mut b[..first]).is_err() {
            return (b, 0);
        }
        let next = la.wrapping_add(first as u64);
        if first < MAX_LEN
            && self
                .read_linear(v, vmpl, next, acc, &mut b[first..])
                .is_err()
        {
            return (b, first);
        }
        (b, MAX_LEN)
    }
}
