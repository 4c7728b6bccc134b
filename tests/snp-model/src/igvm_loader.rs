//! The host's IGVM loader through the `igvm` crate (feature `host`): the file is parsed
//! by the crate QEMU's loader uses (`backends/igvm.c` links the same library), and its
//! directives are loaded by the shared rules of [`crate::host_loader`].
//!
//! The model's bare-metal program cannot use the `igvm` crate (it needs std); it reads
//! files with [`crate::igvm_file`], and `tests/igvm_readers.rs` checks that both
//! readers give the same plan.

use alloc::string::ToString;
use alloc::vec::Vec;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use zerocopy::IntoBytes;

pub use crate::host_loader::{
    memory_map, HostConfig, LoadError, MAX_PARAMETER_AREA, MEMORY_MAP_ENTRY_LEN,
};
use crate::host_loader::{plan_directives, snp_mask, snp_policy, Directive};
use crate::launch::Plan;

/// Build the launch plan of `data` for `cfg`.
pub fn plan(data: &[u8], cfg: HostConfig) -> Result<Plan, LoadError> {
    let file =
        IgvmFile::new_from_binary(data, None).map_err(|e| LoadError::Parse(e.to_string()))?;
    let platforms: Vec<(u8, u32)> = file
        .platforms()
        .iter()
        .map(|p| match p {
            IgvmPlatformHeader::SupportedPlatform(sp) => {
                (sp.platform_type.0, sp.compatibility_mask)
            }
        })
        .collect();
    let mask = snp_mask(&platforms)?;
    let policies: Vec<(u64, u32)> = file
        .initializations()
        .iter()
        .filter_map(|h| match h {
            IgvmInitializationHeader::GuestPolicy {
                policy,
                compatibility_mask,
            } => Some((*policy, *compatibility_mask)),
            _ => None,
        })
        .collect();
    let policy = snp_policy(&policies, mask)?;
    plan_directives(file.directives().iter().map(directive), mask, policy, cfg)
}

/// The igvm crate's header as the loader's [`Directive`].
fn directive(h: &IgvmDirectiveHeader) -> Directive<'_> {
    match h {
        IgvmDirectiveHeader::PageData {
            gpa,
            compatibility_mask,
            flags,
            data_type,
            data,
        } => Directive::PageData {
            gpa: *gpa,
            mask: *compatibility_mask,
            flags: u32::from(*flags),
            data_type: data_type.0,
            data,
        },
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes,
            parameter_area_index,
            initial_data,
        } => Directive::ParameterArea {
            bytes: *number_of_bytes,
            area: *parameter_area_index,
            initial: initial_data,
        },
        IgvmDirectiveHeader::VpCount(p) => Directive::VpCount {
            area: p.parameter_area_index,
            offset: p.byte_offset,
        },
        IgvmDirectiveHeader::MemoryMap(p) => Directive::MemoryMap {
            area: p.parameter_area_index,
            offset: p.byte_offset,
        },
        IgvmDirectiveHeader::ParameterInsert(p) => Directive::ParameterInsert {
            gpa: p.gpa,
            mask: p.compatibility_mask,
            area: p.parameter_area_index,
        },
        IgvmDirectiveHeader::RequiredMemory {
            gpa,
            compatibility_mask,
            number_of_bytes,
            ..
        } => Directive::RequiredMemory {
            gpa: *gpa,
            mask: *compatibility_mask,
            bytes: *number_of_bytes,
        },
        IgvmDirectiveHeader::SnpVpContext {
            vp_index,
            compatibility_mask,
            vmsa,
            ..
        } => Directive::SnpVpContext {
            vp: *vp_index,
            mask: *compatibility_mask,
            vmsa: vmsa.as_bytes(),
        },
        IgvmDirectiveHeader::SnpIdBlock {
            compatibility_mask, ..
        } => Directive::SnpIdBlock {
            mask: *compatibility_mask,
        },
        IgvmDirectiveHeader::ErrorRange {
            compatibility_mask, ..
        } => Directive::ErrorRange {
            mask: *compatibility_mask,
        },
        other => Directive::Other {
            mask: other.compatibility_mask(),
        },
    }
}
