//! The model's report layout against reports signed by AMD hardware (Genoa and Turin,
//! version 5; attestation/testdata/snp, whose README gives their source): the fields
//! the model fills sit where hardware puts them, with the values hardware uses where the
//! model copies a convention (REPORT_ID_MA all ones without a migration agent, ECDSA
//! P-384 R and S zero-padded to 72 bytes, reserved ranges zero).

use snp_model::report::{build, off, Guest, Platform, REPORT_LEN};

const HW: [&str; 2] = ["genoa-v5", "turin-v5"];

fn hw(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../attestation/testdata/snp/{name}/report.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn model() -> [u8; REPORT_LEN] {
    let key = p384::ecdsa::SigningKey::from_slice(&[5; 48]).unwrap();
    let p = Platform {
        tcb: 0xD116_0000_0000_0104,
        chip_id: [7; 64],
        fw: (1, 55, 0),
        fms: (0x19, 1, 1),
    };
    let g = Guest {
        measurement: [1; 48],
        policy: 0x30000,
        report_id: [2; 32],
    };
    build(&key, &p, &g, 0, &[3; 64])
}

fn u32_at(r: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(r[o..o + 4].try_into().unwrap())
}

#[test]
fn model_fields_sit_where_hardware_puts_them() {
    let m = model();
    for name in HW {
        let r = hw(name);
        assert_eq!(r.len(), REPORT_LEN, "{name}");
        for rep in [&r[..], &m[..]] {
            assert_eq!(u32_at(rep, off::VERSION), 5, "{name}");
            assert_eq!(u32_at(rep, off::SIGNATURE_ALGO), 1, "{name}");
            assert_eq!(
                &rep[off::REPORT_ID_MA..off::REPORT_ID_MA + 32],
                &[0xff; 32],
                "{name}"
            );
            // Firmware version: build, minor, major at 0x1E8 (major 1 on both parts).
            assert_eq!(rep[off::CURRENT_BUILD + 2], 1, "{name}");
            assert_eq!(rep[off::COMMITTED_BUILD + 2], 1, "{name}");
            // R and S are 48-byte little-endian values in 72-byte fields.
            assert!(rep[off::SIG_R + 48..off::SIG_R + 72]
                .iter()
                .all(|&b| b == 0));
            assert!(rep[off::SIG_S + 48..off::SIG_S + 72]
                .iter()
                .all(|&b| b == 0));
            assert!(rep[off::SIG_R..off::SIG_R + 48].iter().any(|&b| b != 0));
            // Reserved: after CPUID_STEP up to CHIP_ID, and after CURRENT_MIT_VECTOR.
            assert!(rep[0x18b..0x1a0].iter().all(|&b| b == 0), "{name}");
            assert!(rep[0x208..0x2a0].iter().all(|&b| b == 0), "{name}");
        }
        // Family 19h (Genoa) / 1Ah (Turin) in CPUID_FAM_ID.
        assert!(r[off::CPUID_FAM_ID] >= 0x19, "{name}");
    }
}
