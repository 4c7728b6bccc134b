//! The PVH boot information: `hvm_start_info`, its memory map and the command line.
//!
//! Layout (Xen's public `arch-x86/hvm/start_info.h`, version 1, which QEMU's PVH option
//! ROM fills in): a 56-byte `hvm_start_info` at the physical address the loader passes in
//! EBX, pointing to an array of 24-byte `hvm_memmap_table_entry`, to an array of 32-byte
//! `hvm_modlist_entry` (QEMU passes `-initrd` as module 0, hw/i386/x86.c) and to a
//! NUL-terminated command line.
//!
//! Trust: the boot information comes from the host's loader, so everything in it is
//! checked: the magic, the version, the entry count against a fixed maximum, every range
//! against overflow, the command line against a length bound and for UTF-8. The parser
//! copies what it needs into a [`BootInfo`] held by value, so that the pages the loader
//! wrote are never read again (and are not mapped by the final page tables). It reads
//! memory only through [`PhysReader`], so it runs unchanged in host unit tests.

use core::fmt;

use zerocopy::{FromBytes, Immutable, KnownLayout};

/// `hvm_start_info.magic`: "xEn3" with the top bit of the first byte set.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Largest memory map the kernel accepts (QEMU's has fewer than 10 entries).
pub const MAX_MEMMAP_ENTRIES: usize = 64;
/// Largest command line the kernel accepts, without its NUL.
pub const MAX_CMDLINE: usize = 255;
/// Most boot modules kept (QEMU passes at most one, the `-initrd` file).
pub const MAX_MODULES: usize = 4;

/// `struct hvm_start_info` (version 1).
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmStartInfo {
    /// Must be [`HVM_START_MAGIC`].
    pub magic: u32,
    /// Structure version; 1 adds the memory map.
    pub version: u32,
    /// SIF_* flags.
    pub flags: u32,
    /// Number of boot modules.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, 0 for none.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, 0 for none.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version >= 1).
    pub memmap_paddr: u64,
    /// Number of memory map entries (version >= 1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, cmdline_paddr) == 24);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, memmap_paddr) == 40);
const _: () = assert!(core::mem::offset_of!(HvmStartInfo, memmap_entries) == 48);

/// `struct hvm_memmap_table_entry`.
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmMemmapEntry {
    /// Base address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820-style type (1 = RAM).
    pub kind: u32,
    /// Must be zero.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<HvmMemmapEntry>() == 24);
const _: () = assert!(core::mem::offset_of!(HvmMemmapEntry, kind) == 16);

/// `struct hvm_modlist_entry`.
#[derive(Clone, Copy, Debug, FromBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of the module's command line, 0 for none.
    pub cmdline_paddr: u64,
    /// Must be zero.
    pub reserved: u64,
}

const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == 32);
const _: () = assert!(core::mem::offset_of!(HvmModlistEntry, size) == 8);

/// One checked boot module: `[start, end)` in physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// First byte.
    pub start: u64,
    /// One past the last byte (no wrap: checked at parse time).
    pub end: u64,
}

/// The kinds of memory in the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Usable RAM.
    Ram,
    /// Reserved.
    Reserved,
    /// ACPI tables (reclaimable).
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
    /// Unusable (bad) memory.
    Unusable,
    /// Disabled.
    Disabled,
    /// Persistent memory.
    Pmem,
    /// A type this kernel does not know: treated as not usable.
    Other(u32),
}

impl MemKind {
    /// Decodes the E820 type number.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            1 => MemKind::Ram,
            2 => MemKind::Reserved,
            3 => MemKind::Acpi,
            4 => MemKind::Nvs,
            5 => MemKind::Unusable,
            6 => MemKind::Disabled,
            7 => MemKind::Pmem,
            n => MemKind::Other(n),
        }
    }

    /// Short name for the memory map listing.
    pub const fn name(self) -> &'static str {
        match self {
            MemKind::Ram => "RAM",
            MemKind::Reserved => "reserved",
            MemKind::Acpi => "ACPI",
            MemKind::Nvs => "ACPI NVS",
            MemKind::Unusable => "unusable",
            MemKind::Disabled => "disabled",
            MemKind::Pmem => "persistent",
            MemKind::Other(_) => "unknown",
        }
    }
}

/// One checked memory map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte (no wrap: checked at parse time).
    pub end: u64,
    /// What the memory is.
    pub kind: MemKind,
}

/// The reader could not read the memory asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Reads physical memory for the parser.
pub trait PhysReader {
    /// Fills `buf` from physical address `paddr`, or fails if that memory is not readable.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// Why the boot information was refused. Each variant names the field and its byte
/// offset (inside `hvm_start_info`, or inside the memory map table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhError {
    /// The start info could not be read at the address the loader passed.
    StartInfoUnreadable {
        /// The address from EBX.
        paddr: u64,
    },
    /// `magic` (offset 0) is wrong.
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// `version` (offset 4) is 0: no memory map.
    NoMemoryMap {
        /// The value found.
        version: u32,
    },
    /// `memmap_entries` (offset 48) is 0 or above [`MAX_MEMMAP_ENTRIES`].
    BadEntryCount {
        /// The value found.
        count: u32,
    },
    /// The memory map table at `memmap_paddr` (offset 40) could not be read.
    MemmapUnreadable {
        /// The address found.
        paddr: u64,
    },
    /// Entry `index` (table offset `index * 24`) has `addr + size` beyond 2^64.
    EntryWraps {
        /// Entry index.
        index: usize,
    },
    /// The command line at `cmdline_paddr` (offset 24) could not be read.
    CmdlineUnreadable {
        /// The address found.
        paddr: u64,
    },
    /// The command line has no NUL within [`MAX_CMDLINE`] bytes.
    CmdlineTooLong,
    /// The command line is not UTF-8 (byte offset of the first bad byte).
    CmdlineNotUtf8 {
        /// Offset into the command line.
        offset: usize,
    },
    /// `nr_modules` (offset 12) is above [`MAX_MODULES`].
    BadModuleCount {
        /// The value found.
        count: u32,
    },
    /// The module list at `modlist_paddr` (offset 16) could not be read.
    ModlistUnreadable {
        /// The address found.
        paddr: u64,
    },
    /// Module `index` (list offset `index * 32`) has `paddr + size` beyond 2^64.
    ModuleWraps {
        /// Module index.
        index: usize,
    },
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PvhError::StartInfoUnreadable { paddr } => {
                write!(f, "hvm_start_info at {paddr:#x} (from EBX) is not readable")
            }
            PvhError::BadMagic { found } => write!(
                f,
                "hvm_start_info.magic (offset 0) is {found:#x}, expected {HVM_START_MAGIC:#x}"
            ),
            PvhError::NoMemoryMap { version } => write!(
                f,
                "hvm_start_info.version (offset 4) is {version}: no memory map (need >= 1)"
            ),
            PvhError::BadEntryCount { count } => write!(
                f,
                "hvm_start_info.memmap_entries (offset 48) is {count}, allowed 1..={MAX_MEMMAP_ENTRIES}"
            ),
            PvhError::MemmapUnreadable { paddr } => write!(
                f,
                "hvm_start_info.memmap_paddr (offset 40) = {paddr:#x} is not readable"
            ),
            PvhError::EntryWraps { index } => write!(
                f,
                "memory map entry {index} (table offset {}): addr + size overflows",
                index * 24
            ),
            PvhError::CmdlineUnreadable { paddr } => write!(
                f,
                "hvm_start_info.cmdline_paddr (offset 24) = {paddr:#x} is not readable"
            ),
            PvhError::CmdlineTooLong => {
                write!(f, "command line longer than {MAX_CMDLINE} bytes")
            }
            PvhError::CmdlineNotUtf8 { offset } => {
                write!(f, "command line byte {offset} is not UTF-8")
            }
            PvhError::BadModuleCount { count } => write!(
                f,
                "hvm_start_info.nr_modules (offset 12) is {count}, allowed 0..={MAX_MODULES}"
            ),
            PvhError::ModlistUnreadable { paddr } => write!(
                f,
                "hvm_start_info.modlist_paddr (offset 16) = {paddr:#x} is not readable"
            ),
            PvhError::ModuleWraps { index } => write!(
                f,
                "module {index} (list offset {}): paddr + size overflows",
                index * 32
            ),
        }
    }
}

/// What the kernel keeps from the boot information.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// Address of `hvm_start_info`.
    pub start_info_paddr: u64,
    /// ACPI RSDP address (0 when absent).
    pub rsdp_paddr: u64,
    memmap: [MemRegion; MAX_MEMMAP_ENTRIES],
    memmap_len: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    modules: [Module; MAX_MODULES],
    modules_len: usize,
}

impl BootInfo {
    /// The boot modules, in the loader's order (QEMU: `-initrd` is module 0).
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.modules_len]
    }

    /// The memory map, in the order the loader gave it.
    pub fn memory_map(&self) -> &[MemRegion] {
        &self.memmap[..self.memmap_len]
    }

    /// The command line (checked UTF-8 at parse time).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The value of `key=value` on the command line (the last one wins).
    pub fn option(&self, key: &str) -> Option<&str> {
        cmdline_option(self.cmdline(), key)
    }
}

/// The value of `key=value` in a space-separated command line (the last one wins).
pub fn cmdline_option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next()
}

/// Parses and checks the boot information at `start_info_paddr`.
pub fn parse(reader: &impl PhysReader, start_info_paddr: u64) -> Result<BootInfo, PvhError> {
    let mut raw = [0u8; core::mem::size_of::<HvmStartInfo>()];
    reader
        .read(start_info_paddr, &mut raw)
        .map_err(|Unreadable| PvhError::StartInfoUnreadable {
            paddr: start_info_paddr,
        })?;
    let si = HvmStartInfo::read_from_bytes(&raw).map_err(|_| PvhError::StartInfoUnreadable {
        paddr: start_info_paddr,
    })?;
    if si.magic != HVM_START_MAGIC {
        return Err(PvhError::BadMagic { found: si.magic });
    }
    if si.version < 1 {
        return Err(PvhError::NoMemoryMap {
            version: si.version,
        });
    }
    let count = si.memmap_entries as usize;
    if count == 0 || count > MAX_MEMMAP_ENTRIES {
        return Err(PvhError::BadEntryCount {
            count: si.memmap_entries,
        });
    }

    let mut info = BootInfo {
        start_info_paddr,
        rsdp_paddr: si.rsdp_paddr,
        memmap: [MemRegion {
            start: 0,
            end: 0,
            kind: MemKind::Reserved,
        }; MAX_MEMMAP_ENTRIES],
        memmap_len: count,
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
        modules: [Module { start: 0, end: 0 }; MAX_MODULES],
        modules_len: 0,
    };
    parse_memmap(reader, &si, &mut info)?;
    parse_modules(reader, &si, &mut info)?;
    parse_cmdline(reader, &si, &mut info)?;
    Ok(info)
}

/// Copies and checks the memory map (`count` already checked by `parse`).
fn parse_memmap(
    reader: &impl PhysReader,
    si: &HvmStartInfo,
    info: &mut BootInfo,
) -> Result<(), PvhError> {
    for index in 0..info.memmap_len {
        let mut e = [0u8; core::mem::size_of::<HvmMemmapEntry>()];
        let paddr = (index as u64)
            .checked_mul(24)
            .and_then(|off| si.memmap_paddr.checked_add(off))
            .ok_or(PvhError::MemmapUnreadable {
                paddr: si.memmap_paddr,
            })?;
        reader
            .read(paddr, &mut e)
            .map_err(|Unreadable| PvhError::MemmapUnreadable {
                paddr: si.memmap_paddr,
            })?;
        let entry =
            HvmMemmapEntry::read_from_bytes(&e).map_err(|_| PvhError::MemmapUnreadable {
                paddr: si.memmap_paddr,
            })?;
        let end = entry
            .addr
            .checked_add(entry.size)
            .ok_or(PvhError::EntryWraps { index })?;
        info.memmap[index] = MemRegion {
            start: entry.addr,
            end,
            kind: MemKind::from_raw(entry.kind),
        };
    }
    Ok(())
}

/// Copies and checks the module list.
fn parse_modules(
    reader: &impl PhysReader,
    si: &HvmStartInfo,
    info: &mut BootInfo,
) -> Result<(), PvhError> {
    let count = si.nr_modules as usize;
    if count > MAX_MODULES {
        return Err(PvhError::BadModuleCount {
            count: si.nr_modules,
        });
    }
    let unreadable = PvhError::ModlistUnreadable {
        paddr: si.modlist_paddr,
    };
    for index in 0..count {
        let mut e = [0u8; core::mem::size_of::<HvmModlistEntry>()];
        let paddr = (index as u64)
            .checked_mul(32)
            .and_then(|off| si.modlist_paddr.checked_add(off))
            .ok_or(unreadable)?;
        reader
            .read(paddr, &mut e)
            .map_err(|Unreadable| unreadable)?;
        let entry = HvmModlistEntry::read_from_bytes(&e).map_err(|_| unreadable)?;
        let end = entry
            .paddr
            .checked_add(entry.size)
            .ok_or(PvhError::ModuleWraps { index })?;
        info.modules[index] = Module {
            start: entry.paddr,
            end,
        };
    }
    info.modules_len = count;
    Ok(())
}

/// Copies and checks the command line.
fn parse_cmdline(
    reader: &impl PhysReader,
    si: &HvmStartInfo,
    info: &mut BootInfo,
) -> Result<(), PvhError> {
    if si.cmdline_paddr != 0 {
        let mut len = None;
        for i in 0..=MAX_CMDLINE {
            let mut b = [0u8; 1];
            let paddr = si
                .cmdline_paddr
                .checked_add(i as u64)
                .ok_or(PvhError::CmdlineTooLong)?;
            reader
                .read(paddr, &mut b)
                .map_err(|Unreadable| PvhError::CmdlineUnreadable {
                    paddr: si.cmdline_paddr,
                })?;
            if b[0] == 0 {
                len = Some(i);
                break;
            }
            if i < MAX_CMDLINE {
                info.cmdline[i] = b[0];
            }
        }
        let len = len.ok_or(PvhError::CmdlineTooLong)?;
        if let Err(e) = core::str::from_utf8(&info.cmdline[..len]) {
            return Err(PvhError::CmdlineNotUtf8 {
                offset: e.valid_up_to(),
            });
        }
        info.cmdline_len = len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A fake physical memory: one buffer at a base address.
    struct Mem {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysReader for Mem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            let off = paddr.checked_sub(self.base).ok_or(Unreadable)? as usize;
            let src = self.bytes.get(off..off + buf.len()).ok_or(Unreadable)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    const BASE: u64 = 0x6000;

    /// Builds start info at BASE, memmap at BASE+0x100, cmdline at BASE+0x800.
    fn image(magic: u32, version: u32, entries: &[(u64, u64, u32)], cmdline: &[u8]) -> Mem {
        let mut b = vec![0u8; 0x1000];
        b[0..4].copy_from_slice(&magic.to_le_bytes());
        b[4..8].copy_from_slice(&version.to_le_bytes());
        b[24..32].copy_from_slice(&(BASE + 0x800).to_le_bytes());
        b[40..48].copy_from_slice(&(BASE + 0x100).to_le_bytes());
        b[48..52].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        for (i, (a, s, k)) in entries.iter().enumerate() {
            let o = 0x100 + i * 24;
            b[o..o + 8].copy_from_slice(&a.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&s.to_le_bytes());
            b[o + 16..o + 20].copy_from_slice(&k.to_le_bytes());
        }
        b[0x800..0x800 + cmdline.len()].copy_from_slice(cmdline);
        Mem {
            base: BASE,
            bytes: b,
        }
    }

    /// The map QEMU 7.2 passes for `-m 256M` on q35 (as printed by `cargo xtask run`).
    const QEMU_MAP: [(u64, u64, u32); 4] = [
        (0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0xf0000, 0x10000, 2),
        (0x100000, 0xff00000, 1),
    ];

    #[test]
    fn parses_a_qemu_like_start_info() {
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"log=debug ktest=all\0");
        let info = parse(&m, BASE).unwrap();
        assert_eq!(info.memory_map().len(), 4);
        assert_eq!(
            info.memory_map()[3],
            MemRegion {
                start: 0x100000,
                end: 0x10000000,
                kind: MemKind::Ram
            }
        );
        assert_eq!(info.memory_map()[1].kind, MemKind::Reserved);
        assert_eq!(info.cmdline(), "log=debug ktest=all");
        assert_eq!(info.option("ktest"), Some("all"));
        assert_eq!(info.option("log"), Some("debug"));
        assert_eq!(info.option("missing"), None);
    }

    #[test]
    fn refuses_bad_magic_and_version() {
        let m = image(0x1234, 1, &QEMU_MAP, b"\0");
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::BadMagic { found: 0x1234 }
        );
        let m = image(HVM_START_MAGIC, 0, &QEMU_MAP, b"\0");
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::NoMemoryMap { version: 0 }
        );
    }

    #[test]
    fn refuses_unreadable_start_info() {
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"\0");
        assert_eq!(
            parse(&m, 0x10).unwrap_err(),
            PvhError::StartInfoUnreadable { paddr: 0x10 }
        );
    }

    #[test]
    fn refuses_entry_counts_out_of_bounds() {
        let m = image(HVM_START_MAGIC, 1, &[], b"\0");
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::BadEntryCount { count: 0 }
        );
        let mut m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"\0");
        m.bytes[48..52].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::BadEntryCount { count: 1000 }
        );
        // A plausible count whose table runs off readable memory.
        m.bytes[48..52].copy_from_slice(&64u32.to_le_bytes());
        m.bytes[40..48].copy_from_slice(&(BASE + 0xf00).to_le_bytes());
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::MemmapUnreadable {
                paddr: BASE + 0xf00
            }
        );
    }

    #[test]
    fn refuses_wrapping_entry_and_names_it() {
        let m = image(
            HVM_START_MAGIC,
            1,
            &[(0, 0x1000, 1), (u64::MAX - 5, 0x10, 1)],
            b"\0",
        );
        let e = parse(&m, BASE).unwrap_err();
        assert_eq!(e, PvhError::EntryWraps { index: 1 });
        assert!(std::format!("{e}").contains("table offset 24"));
    }

    #[test]
    fn refuses_bad_command_lines() {
        let long = [b'a'; 400];
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, &long);
        assert_eq!(parse(&m, BASE).unwrap_err(), PvhError::CmdlineTooLong);
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"ok \xff\xfe\0");
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::CmdlineNotUtf8 { offset: 3 }
        );
        // Exactly MAX_CMDLINE bytes plus the NUL is accepted.
        let mut max = vec![b'x'; MAX_CMDLINE];
        max.push(0);
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, &max);
        assert_eq!(parse(&m, BASE).unwrap().cmdline().len(), MAX_CMDLINE);
    }

    /// Puts `mods` as the module list at BASE+0xa00.
    fn with_modules(mut m: Mem, mods: &[(u64, u64)]) -> Mem {
        m.bytes[12..16].copy_from_slice(&(mods.len() as u32).to_le_bytes());
        m.bytes[16..24].copy_from_slice(&(BASE + 0xa00).to_le_bytes());
        for (i, (a, s)) in mods.iter().enumerate() {
            let o = 0xa00 + i * 32;
            m.bytes[o..o + 8].copy_from_slice(&a.to_le_bytes());
            m.bytes[o + 8..o + 16].copy_from_slice(&s.to_le_bytes());
        }
        m
    }

    #[test]
    fn parses_the_initrd_module() {
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"\0");
        assert!(parse(&m, BASE).unwrap().modules().is_empty());
        let m = with_modules(m, &[(0x3f00_0000, 0x1234)]);
        let info = parse(&m, BASE).unwrap();
        assert_eq!(
            info.modules(),
            &[Module {
                start: 0x3f00_0000,
                end: 0x3f00_1234
            }]
        );
    }

    #[test]
    fn refuses_bad_module_lists() {
        let m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"\0");
        let m = with_modules(m, &[(u64::MAX - 4, 0x10)]);
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::ModuleWraps { index: 0 }
        );
        let mut m = with_modules(m, &[(0x1000, 0x10)]);
        m.bytes[12..16].copy_from_slice(&(MAX_MODULES as u32 + 1).to_le_bytes());
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::BadModuleCount {
                count: MAX_MODULES as u32 + 1
            }
        );
        m.bytes[12..16].copy_from_slice(&1u32.to_le_bytes());
        m.bytes[16..24].copy_from_slice(&0x10u64.to_le_bytes());
        assert_eq!(
            parse(&m, BASE).unwrap_err(),
            PvhError::ModlistUnreadable { paddr: 0x10 }
        );
    }

    #[test]
    fn no_command_line_is_empty() {
        let mut m = image(HVM_START_MAGIC, 1, &QEMU_MAP, b"\0");
        m.bytes[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(parse(&m, BASE).unwrap().cmdline(), "");
    }

    #[test]
    fn last_option_wins_and_bare_words_are_ignored() {
        assert_eq!(cmdline_option("a=1 quiet a=2", "a"), Some("2"));
        assert_eq!(cmdline_option("quiet", "quiet"), None);
    }
}
