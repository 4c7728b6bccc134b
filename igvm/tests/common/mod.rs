//! Helpers shared by the integration tests: a minimal ELF64 writer (so that tests do not
//! depend on a built kernel) and fixture paths.
#![allow(dead_code)]

/// A minimal little-endian x86-64 ELF64 executable with one PT_LOAD segment per
/// `(paddr, bytes, memsz)`, entry `entry`.
pub fn elf(entry: u64, segs: &[(u64, Vec<u8>, u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let mut data_off = phoff + 56 * segs.len() as u64;
    data_off = data_off.next_multiple_of(4096);
    let mut out = vec![0u8; data_off as usize];
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // version
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    let mut file_off = data_off;
    for (i, (paddr, bytes, memsz)) in segs.iter().enumerate() {
        let ph = (phoff + 56 * i as u64) as usize;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes()); // RWX
        out[ph + 8..ph + 16].copy_from_slice(&file_off.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes()); // vaddr
        out[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes()); // paddr
        out[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&4096u64.to_le_bytes());
        out.resize((file_off as usize).max(out.len()), 0);
        out.extend_from_slice(bytes);
        file_off = (out.len() as u64).next_multiple_of(4096);
        out.resize(file_off as usize, 0);
    }
    out
}

/// A small "kernel": text at 1 MiB (two pages of a pattern), data + bss after it.
pub fn test_kernel() -> Vec<u8> {
    let text: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 256) as u8).collect();
    let data = vec![0x5a; 100];
    elf(
        0x10_0000,
        &[(0x10_0000, text, 8192), (0x10_2000, data, 5 * 4096)],
    )
}

/// A small test guest ELF at 16 MiB.
pub fn test_guest() -> Vec<u8> {
    elf(0x100_0000, &[(0x100_0000, vec![0xf4; 4096], 4096)])
}

/// A fixture file of testdata/measure.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/measure/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}
