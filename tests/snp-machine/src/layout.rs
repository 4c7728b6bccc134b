//! Where the model's heap goes: the largest piece of RAM in the PVH memory map that lies
//! above the model's image, inside the entry's bootstrap identity map, and clear of every
//! boot module (the IGVM file stays where QEMU put it until it is copied).

/// A half-open physical range.
pub type Range = (u64, u64);

const PAGE: u64 = 4096;
/// Most holes `choose_heap` honours (the boot modules: at most `pvh::MAX_MODULES`).
const MAX_HOLES: usize = 8;
const _: () = assert!(bare::boot::pvh::MAX_MODULES <= MAX_HOLES);

/// The largest page-aligned piece of the `ram` ranges within `[floor, ceiling)` that
/// overlaps none of `holes` (the first [`MAX_HOLES`] of them); None if nothing is left.
pub fn choose_heap(ram: &[Range], floor: u64, ceiling: u64, holes: &[Range]) -> Option<Range> {
    let mut best: Option<Range> = None;
    for &(start, end) in ram {
        let mut piece_start = start.max(floor);
        let end = end.min(ceiling);
        // Walk the holes in address order, cutting the range at each.
        let mut sorted: [Range; MAX_HOLES] = [(u64::MAX, u64::MAX); MAX_HOLES];
        for (slot, h) in sorted.iter_mut().zip(holes) {
            *slot = *h;
        }
        sorted.sort_unstable();
        for &(hs, he) in sorted.iter().chain(core::iter::once(&(end, end))) {
            let cut = hs.min(end);
            consider(&mut best, piece_start, cut);
            piece_start = piece_start.max(he);
            if piece_start >= end {
                break;
            }
        }
    }
    best
}

fn consider(best: &mut Option<Range>, start: u64, end: u64) {
    let Some(s) = start.checked_add(PAGE - 1).map(|s| s & !(PAGE - 1)) else {
        return;
    };
    let e = end & !(PAGE - 1);
    if s < e && best.is_none_or(|(bs, be)| e - s > be - bs) {
        *best = Some((s, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_heap_avoids_image_module_and_low_memory() {
        // QEMU -m 1G: low RAM, then 1 MiB..1 GiB; the image ends at 3 MiB; the IGVM file
        // sits near the top.
        let ram = [(0, 0x9fc00), (MIB, 1024 * MIB)];
        let module = (1000 * MIB, 1001 * MIB + 0x123);
        let heap = choose_heap(&ram, 3 * MIB, 4096 * MIB, &[module]).unwrap();
        assert_eq!(heap, (3 * MIB, 1000 * MIB));
        // With the module low, the piece above it is the larger one (aligned up).
        let module = (4 * MIB, 5 * MIB + 1);
        let heap = choose_heap(&ram, 3 * MIB, 4096 * MIB, &[module]).unwrap();
        assert_eq!(heap, (5 * MIB + PAGE, 1024 * MIB));
    }

    #[test]
    fn the_ceiling_and_empty_maps_are_respected() {
        let ram = [(MIB, 8192 * MIB)];
        assert_eq!(
            choose_heap(&ram, 2 * MIB, 4096 * MIB, &[]),
            Some((2 * MIB, 4096 * MIB))
        );
        assert_eq!(choose_heap(&[], 0, u64::MAX, &[]), None);
        assert_eq!(choose_heap(&ram, 8192 * MIB, u64::MAX, &[]), None);
    }
}
