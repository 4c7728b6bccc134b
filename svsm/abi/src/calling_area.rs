//! The SVSM calling area and the SVSM call register convention (SVSM spec #58019).
//!
//! Each vCPU of the guest owns one 4 KiB calling area page. The guest writes its call
//! number into RAX (`protocol << 32 | call`), its arguments into RCX, RDX, R8 and R9,
//! sets `call_pending` to 1 and asks the host to run VMPL0 (GHCB "run VMPL" request).
//! The SVSM clears `call_pending` when it has consumed the request, writes its result
//! into RAX (and result registers), and switches back. Only the first two bytes of the
//! page are defined by the spec; the rest is reserved.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of a calling area page.
pub const CALLING_AREA_SIZE: usize = 4096;

/// The defined head of the calling area page (offsets from the spec's table).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct CallingAreaHeader {
    /// 0x000: 1 while a call is pending; the SVSM clears it when it takes the call.
    pub call_pending: u8,
    /// 0x001: set by the SVSM when memory it could return through WITHDRAW_MEM is available.
    pub mem_available: u8,
    /// 0x002..0x008: reserved.
    pub reserved: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<CallingAreaHeader>() == 8);
const _: () = assert!(core::mem::offset_of!(CallingAreaHeader, call_pending) == 0x000);
const _: () = assert!(core::mem::offset_of!(CallingAreaHeader, mem_available) == 0x001);

/// Size of the calling area's defined head (`call_pending`, `mem_available`, reserved);
/// a request buffer in the calling area starts after it (Linux and OVMF put the
/// PVALIDATE list at this offset, their `svsm_buffer`).
pub const CALLING_AREA_HEAD: usize = 8;
const _: () = assert!(core::mem::size_of::<CallingAreaHeader>() == CALLING_AREA_HEAD);

/// Byte offset of `call_pending` in the calling area page.
pub const CALL_PENDING_OFFSET: u64 = 0;
/// Byte offset of `mem_available` in the calling area page.
pub const MEM_AVAILABLE_OFFSET: u64 = 1;

/// The registers of an SVSM call, as the guest left them (in) or as the SVSM returns
/// them (out). On return RAX holds the result code; calls that return values use RCX,
/// RDX and R8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvsmRegs {
    /// `protocol << 32 | call` on entry; the result code on exit.
    pub rax: u64,
    /// First argument / first result.
    pub rcx: u64,
    /// Second argument / second result.
    pub rdx: u64,
    /// Third argument / third result.
    pub r8: u64,
    /// Fourth argument.
    pub r9: u64,
}

impl SvsmRegs {
    /// The protocol number (RAX bits 63:32).
    pub const fn protocol(&self) -> u32 {
        (self.rax >> 32) as u32
    }
    /// The call number within the protocol (RAX bits 31:0).
    pub const fn call(&self) -> u32 {
        self.rax as u32
    }
    /// Builds RAX from a protocol and a call number.
    pub const fn rax_for(protocol: u32, call: u32) -> u64 {
        ((protocol as u64) << 32) | call as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rax_split() {
        let r = SvsmRegs {
            rax: SvsmRegs::rax_for(1, 7),
            ..Default::default()
        };
        assert_eq!(r.protocol(), 1);
        assert_eq!(r.call(), 7);
        let h = CallingAreaHeader::read_from_bytes(&[1, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.call_pending, 1);
        assert_eq!(h.mem_available, 1);
    }
}
