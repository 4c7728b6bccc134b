//! Choosing where the heap goes, from the PVH memory map.
//!
//! The heap must lie in RAM the map calls usable, above the kernel image, clear of every
//! range the kernel must not reuse (the image, the boot information pages) and clear of
//! any non-RAM entry even if a RAM entry overlaps it (a host may pass an inconsistent
//! map: overlap is resolved in favour of "not usable"). Among the candidates the lowest
//! address wins, so the choice is deterministic for a given map.

use super::address::PhysRange;
use crate::boot::pvh::{MemKind, MemRegion};

const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The lowest `size`-byte, `align`-aligned range at or above `min_addr` inside one RAM
/// region that overlaps neither `avoid` nor any non-RAM region. `align` must be a power
/// of two.
pub fn choose_heap(
    map: &[MemRegion],
    avoid: &[PhysRange],
    size: u64,
    align: u64,
    min_addr: u64,
) -> Option<PhysRange> {
    if size == 0 || !align.is_power_of_two() {
        return None;
    }
    let mut best: Option<PhysRange> = None;
    for region in map.iter().filter(|r| r.kind == MemKind::Ram) {
        let mut start = align_up(region.start.max(min_addr), align)?;
        while let Some(cand) = PhysRange::from_len(start, size) {
            if cand.end > region.end {
                break;
            }
            let blocker = avoid
                .iter()
                .copied()
                .chain(
                    map.iter()
                        .filter(|r| r.kind != MemKind::Ram)
                        .map(|r| PhysRange {
                            start: r.start,
                            end: r.end,
                        }),
                )
                .filter(|r| r.overlaps(&cand))
                .map(|r| r.end)
                .max();
            match blocker {
                None => {
                    if best.is_none_or(|b| cand.start < b.start) {
                        best = Some(cand);
                    }
                    break;
                }
                Some(end) => match align_up(end, align) {
                    Some(next) if next > start => start = next,
                    _ => break,
                },
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ram(start: u64, end: u64) -> MemRegion {
        MemRegion {
            start,
            end,
            kind: MemKind::Ram,
        }
    }

    #[test]
    fn picks_lowest_aligned_range_above_the_image() {
        let map = [ram(0, 0x9fc00), ram(MIB, 256 * MIB)];
        let image = PhysRange {
            start: MIB,
            end: MIB + 0x50000,
        };
        let h = choose_heap(&map, &[image], 8 * MIB, 2 * MIB, image.end).unwrap();
        assert_eq!(
            h,
            PhysRange {
                start: 2 * MIB,
                end: 10 * MIB
            }
        );
    }

    #[test]
    fn skips_avoided_and_non_ram_ranges() {
        let map = [
            ram(MIB, 64 * MIB),
            MemRegion {
                start: 3 * MIB,
                end: 4 * MIB,
                kind: MemKind::Reserved,
            },
        ];
        let avoid = [PhysRange {
            start: 2 * MIB,
            end: 2 * MIB + 1,
        }];
        let h = choose_heap(&map, &avoid, 2 * MIB, 2 * MIB, 0).unwrap();
        assert_eq!(h.start, 4 * MIB);
        assert!(!h.overlaps(&avoid[0]));
    }

    #[test]
    fn none_when_nothing_fits() {
        let map = [ram(MIB, 4 * MIB)];
        assert_eq!(choose_heap(&map, &[], 8 * MIB, 2 * MIB, 0), None);
        assert_eq!(choose_heap(&map, &[], 0, 2 * MIB, 0), None);
        assert_eq!(choose_heap(&map, &[], MIB, 3, 0), None);
        // Near the top of the address space: no wrap, just no room.
        let top = [ram(u64::MAX - 4 * MIB, u64::MAX)];
        assert_eq!(choose_heap(&top, &[], 8 * MIB, 2 * MIB, 0), None);
    }

    #[test]
    fn prefers_the_lowest_region_whatever_the_map_order() {
        let map = [ram(128 * MIB, 256 * MIB), ram(16 * MIB, 64 * MIB)];
        let h = choose_heap(&map, &[], 8 * MIB, 2 * MIB, 0).unwrap();
        assert_eq!(h.start, 16 * MIB);
    }
}
