//! Guest-physical addresses, page sizes and VMPL numbers as types, so that a raw `u64`
//! from a register can never be used as an address before it has been checked.

/// 4 KiB.
pub const PAGE_SIZE_4K: u64 = 4096;
/// 2 MiB.
pub const PAGE_SIZE_2M: u64 = 2 * 1024 * 1024;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gpa(pub u64);

impl Gpa {
    /// The 4 KiB frame number.
    pub const fn gfn(self) -> u64 {
        self.0 >> 12
    }
    /// The address of frame `gfn`.
    pub const fn from_gfn(gfn: u64) -> Self {
        Self(gfn << 12)
    }
    /// Whether the address is aligned to `size`.
    pub const fn is_aligned(self, size: PageSize) -> bool {
        self.0.is_multiple_of(size.bytes())
    }
    /// `self + off`, or None on overflow.
    pub const fn checked_add(self, off: u64) -> Option<Self> {
        match self.0.checked_add(off) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
    /// Offset within its 4 KiB page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE_4K - 1)
    }
}

/// An RMP page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB.
    Size2M,
}

impl PageSize {
    /// Bytes in the page.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_SIZE_4K,
            Self::Size2M => PAGE_SIZE_2M,
        }
    }
    /// Number of 4 KiB frames in the page.
    pub const fn frames(self) -> u64 {
        self.bytes() / PAGE_SIZE_4K
    }
    /// From the 2-bit size field of PVALIDATE lists and RMP instructions.
    pub const fn from_field(v: u64) -> Option<Self> {
        match v {
            0 => Some(Self::Size4K),
            1 => Some(Self::Size2M),
            _ => None,
        }
    }
}

/// A VMPL number, 0 to 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vmpl(u8);

impl Vmpl {
    /// VMPL0, where Vigil runs.
    pub const VMPL0: Self = Self(0);
    /// Checks the range.
    pub const fn new(v: u8) -> Option<Self> {
        if v <= 3 {
            Some(Self(v))
        } else {
            None
        }
    }
    /// The number.
    pub const fn get(self) -> u8 {
        self.0
    }
}
