//! The model's layouts (written from the specs) against `svsm-abi`'s (Vigil's), byte
//! for byte: two implementations written apart. Each test builds a structure with one
//! side and reads it with the other. Where they disagree, `disagreements.rs` names it.

use snp_model::{ghcb_page, guest_msg, page_info, report, secrets};
use svsm_abi::ghcb::{exit, msr as abi_msr, offset, Ghcb as AbiGhcb, PscEntry};
use svsm_abi::guest_request::MsgHeader;
use svsm_abi::page_info::{PageInfo, PageType as AbiPageType};
use svsm_abi::report::AttestationReport;
use svsm_abi::secrets::SecretsPage;
use zerocopy::{FromBytes, IntoBytes};

#[test]
fn ghcb_offsets_and_valid_bitmap_agree() {
    use ghcb_page::off;
    for (m, a) in [
        (off::RAX, offset::RAX),
        (off::SW_EXIT_CODE, offset::SW_EXIT_CODE),
        (off::SW_EXIT_INFO_1, offset::SW_EXIT_INFO_1),
        (off::SW_EXIT_INFO_2, offset::SW_EXIT_INFO_2),
        (off::SW_SCRATCH, offset::SW_SCRATCH),
    ] {
        assert_eq!(m, a);
    }
    // A GHCB built by svsm-abi reads the same in the model.
    let mut a = AbiGhcb::new_zeroed_v2();
    a.sw_exit_code = exit::SNP_GUEST_REQUEST;
    a.set_valid(offset::SW_EXIT_CODE);
    a.rcx = 0x1234;
    a.set_valid(0x308);
    a.xcr0 = 7;
    a.set_valid(0x3e8);
    let mut m = ghcb_page::Ghcb::new();
    m.0.copy_from_slice(a.as_bytes());
    assert_eq!(m.get(off::SW_EXIT_CODE), Some(exit::SNP_GUEST_REQUEST));
    assert_eq!(m.get(off::RCX), Some(0x1234));
    assert_eq!(m.get(off::XCR0), Some(7));
    assert_eq!(m.get(off::RAX), None);
    assert_eq!((m.version(), m.usage()), (2, 0));
    // And the other way.
    let mut g = ghcb_page::Ghcb::new();
    g.set(off::SW_EXIT_INFO_2, 0x55);
    g.set_cpl(3);
    let back = AbiGhcb::read_from_bytes(&g.0).unwrap();
    assert!(back.is_valid(offset::SW_EXIT_INFO_2) && back.is_valid(0x0cb));
    assert_eq!((back.sw_exit_info_2, back.cpl), (0x55, 3));
}

#[test]
fn exit_codes_and_msr_protocol_codes_agree() {
    use snp_model::exit_codes as ec;
    use snp_model::msr_protocol::code;
    for (m, a) in [
        (ec::PSC, exit::SNP_PSC),
        (ec::GUEST_REQUEST, exit::SNP_GUEST_REQUEST),
        (ec::EXT_GUEST_REQUEST, exit::SNP_EXT_GUEST_REQUEST),
        (ec::AP_CREATION, exit::SNP_AP_CREATION),
        (ec::SNP_RUN_VMPL, exit::SNP_RUN_VMPL),
        (ec::HV_FEATURES, exit::HV_FEATURES),
        (ec::TERM_REQUEST, exit::TERMINATE),
        (code::SEV_INFO_REQ, abi_msr::SEV_INFO_REQ),
        (code::SEV_INFO_RESP, abi_msr::SEV_INFO_RESP),
        (code::CPUID_REQ, abi_msr::CPUID_REQ),
        (code::CPUID_RESP, abi_msr::CPUID_RESP),
        (code::REG_GPA_REQ, abi_msr::REGISTER_GHCB_REQ),
        (code::REG_GPA_RESP, abi_msr::REGISTER_GHCB_RESP),
        (code::PSC_REQ, abi_msr::PSC_REQ),
        (code::PSC_RESP, abi_msr::PSC_RESP),
        (code::VMPL_REQ, abi_msr::RUN_VMPL_REQ),
        (code::VMPL_RESP, abi_msr::RUN_VMPL_RESP),
        (code::HV_FT_REQ, abi_msr::HV_FEATURES_REQ),
        (code::HV_FT_RESP, abi_msr::HV_FEATURES_RESP),
        (code::TERM_REQ, abi_msr::TERMINATE_REQ),
    ] {
        assert_eq!(m, a, "{m:#x}");
    }
}

#[test]
fn psc_entries_built_by_svsm_abi_are_processed_by_the_model_as_meant() {
    use snp_model::memory::Memory;
    use snp_model::psc::{descriptor, PSC_BUFFER_LEN, PSC_MAX_ENTRIES};
    use snp_model::rmp::Rmp;
    assert_eq!(PSC_MAX_ENTRIES, svsm_abi::ghcb::PSC_MAX_ENTRIES);
    let mut b = [0u8; PSC_BUFFER_LEN];
    b[2..4].copy_from_slice(&1u16.to_le_bytes());
    let es = [PscEntry::new(0x5, 1, false), PscEntry::new(0x200, 1, true)];
    for (i, e) in es.iter().enumerate() {
        b[8 + 8 * i..16 + 8 * i].copy_from_slice(&e.0.to_le_bytes());
    }
    let (mut m, mut r) = (Memory::new(4 << 20), Rmp::new(1024));
    assert_eq!(descriptor(&mut m, &mut r, &mut b), 0);
    assert!(r.entry(0x5000).unwrap().assigned);
    assert!(r.entry(0x3f_f000).unwrap().assigned);
    let done = PscEntry(u64::from_le_bytes(b[16..24].try_into().unwrap()));
    assert_eq!(done.cur_page(), 512);
}

#[test]
fn page_info_agrees_byte_for_byte() {
    for (m, a) in [
        (page_info::PageType::Normal, AbiPageType::Normal),
        (page_info::PageType::Vmsa, AbiPageType::Vmsa),
        (page_info::PageType::Zero, AbiPageType::Zero),
        (page_info::PageType::Unmeasured, AbiPageType::Unmeasured),
        (page_info::PageType::Secrets, AbiPageType::Secrets),
        (page_info::PageType::Cpuid, AbiPageType::Cpuid),
    ] {
        let ours = page_info::page_info(&[1; 48], &[2; 48], m, 0xfff_f000);
        let theirs = PageInfo::new([1; 48], [2; 48], a, 0xfff_f000);
        assert_eq!(&ours[..], theirs.as_bytes(), "{m:?}");
    }
}

#[test]
fn secrets_page_vmpcks_agree() {
    let keys = [[1u8; 32], [2; 32], [3; 32], [4; 32]];
    let p = SecretsPage::read_from_bytes(&secrets::secrets_page(&keys)).unwrap();
    assert_eq!(
        (p.vmpck0, p.vmpck1, p.vmpck2, p.vmpck3),
        (keys[0], keys[1], keys[2], keys[3])
    );
    assert_eq!(p.version, 3);
    assert_eq!(
        p.svsm_base, 0,
        "the firmware leaves the SVSM fields to the SVSM"
    );
}

#[test]
fn guest_message_header_agrees() {
    let h = guest_msg::Header {
        seqno: 7,
        msg_type: guest_msg::msg_type::REPORT_REQ,
        msg_version: 1,
        vmpck: 2,
    };
    let page = guest_msg::seal(&[5; 32], h, &[0; 0x60]).unwrap();
    let (a, _) = MsgHeader::read_from_prefix(&page).unwrap();
    assert_eq!(a.msg_seqno, 7);
    assert_eq!((a.algo, a.hdr_version, a.hdr_size), (1, 1, 0x60));
    assert_eq!(
        (a.msg_type, a.msg_version, a.msg_size, a.msg_vmpck),
        (5, 1, 0x60, 2)
    );
}

#[test]
fn report_fields_agree() {
    let key = p384::ecdsa::SigningKey::from_slice(&[9; 48]).unwrap();
    let p = report::Platform {
        tcb: 0xD116_0000_0000_0104,
        chip_id: [7; 64],
        fw: (1, 55, 3),
        fms: (0x19, 1, 1),
    };
    let g = report::Guest {
        measurement: [4; 48],
        policy: 0x30000,
        report_id: [6; 32],
    };
    let bytes = report::build(&key, &p, &g, 2, &[8; 64]);
    let r = AttestationReport::read_from_bytes(&bytes).unwrap();
    assert_eq!(
        (r.version, r.vmpl, r.signature_algo, r.policy),
        (5, 2, 1, 0x30000)
    );
    assert_eq!((r.measurement, r.report_data), ([4; 48], [8; 64]));
    assert_eq!(
        (r.current_tcb, r.reported_tcb, r.launch_tcb),
        (p.tcb, p.tcb, p.tcb)
    );
    assert_eq!(r.chip_id, [7; 64]);
    assert_eq!(
        (r.current_major, r.current_minor, r.current_build),
        (1, 55, 3)
    );
    assert_eq!((r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step), (0x19, 1, 1));
    assert_eq!(r.signing_key(), 0);
}

#[test]
fn sev_status_bits_agree() {
    use snp_model::sev_status::sev_status;
    use svsm_abi::sev_status as abi;
    let pairs = [
        (1u64 << 1, abi::VTOM),
        (1 << 2, abi::REFLECT_VC),
        (1 << 3, abi::RESTRICTED_INJECTION),
        (1 << 4, abi::ALTERNATE_INJECTION),
        (1 << 5, abi::DEBUG_SWAP),
        (1 << 6, abi::PREVENT_HOST_IBS),
        (1 << 7, abi::BTB_ISOLATION),
        (1 << 8, abi::VMPL_SSS),
        (1 << 9, abi::SECURE_TSC),
        (1 << 14, abi::VMSA_REG_PROT),
        (1 << 15, abi::SMT_PROTECTION),
        (1 << 16, abi::SECURE_AVIC),
    ];
    let base = abi::SEV_ENABLED | abi::SEV_ES_ENABLED | abi::SNP_ENABLED;
    assert_eq!(sev_status(1), base);
    for (feature, status) in pairs {
        assert_eq!(
            sev_status(1 | feature),
            base | status,
            "feature {feature:#x}"
        );
    }
}

#[test]
fn reset_vmsa_fields_agree_with_svsm_abi_vmsa() {
    let v = snp_model::reset_vmsa::reset_vmsa(0xffff_fff0, 0x21, 0x800f12);
    let a = svsm_abi::vmsa::Vmsa::read_from_bytes(&v).unwrap();
    assert_eq!((a.efer, a.cr4, a.cr0, a.rip), (0x1000, 0x40, 0x10, 0xfff0));
    assert_eq!((a.rdx, a.sev_features, a.xcr0), (0x800f12, 0x21, 1));
    assert_eq!(
        (a.g_pat, a.mxcsr, a.x87_fcw),
        (0x0007_0406_0007_0406, 0x1f80, 0x37f)
    );
    assert_eq!(a.cs.base, 0xffff_0000);
}

#[test]
fn machine_vmsa_fields_agree_with_svsm_abi_vmsa() {
    use snp_model::machine::vmsa::{off, Gpr, Segment, Vmsa};
    let mut v = Vmsa::zeroed();
    let seg = |i: u16| Segment {
        selector: 0x10 * i,
        attrib: 0x100 + i,
        limit: 0x1000 + u32::from(i),
        base: 0xffff_8000_0000_0000 + u64::from(i),
    };
    let segs = [
        off::ES,
        off::CS,
        off::SS,
        off::DS,
        off::FS,
        off::GS,
        off::GDTR,
        off::LDTR,
        off::IDTR,
        off::TR,
    ];
    for (i, o) in segs.iter().enumerate() {
        v.set_segment(*o, seg(i as u16 + 1));
    }
    v.set_vmpl(2);
    v.set_cpl(3);
    v.set_efer(0xd01);
    v.set_cr0(0x8000_0011);
    v.set_cr2(0x22);
    v.set_cr3(0x33);
    v.set_cr4(0x44);
    v.set_dr6(0x66);
    v.set_dr7(0x77);
    v.set_rflags(0x202);
    v.set_rip(0x1234);
    v.set_rsp(0x5678);
    v.set_g_pat(0x0007_0406_0007_0406);
    v.set_sev_features(0x21);
    v.set_event_inj(0x8000_0b0e);
    v.set_xcr0(7);
    let gprs = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
    ];
    for (i, r) in gprs.iter().enumerate() {
        v.set_gpr(*r, 0xa0 + i as u64);
    }
    for n in 8..16u8 {
        v.set_gpr(Gpr::R(n), 0xb0 + u64::from(n));
    }
    let a = svsm_abi::vmsa::Vmsa::read_from_bytes(&v.0).unwrap();
    let abi_segs = [
        a.es, a.cs, a.ss, a.ds, a.fs, a.gs, a.gdtr, a.ldtr, a.idtr, a.tr,
    ];
    for (i, s) in abi_segs.iter().enumerate() {
        let want = seg(i as u16 + 1);
        assert_eq!(
            (s.selector, s.attrib, s.limit, s.base),
            (want.selector, want.attrib, want.limit, want.base),
            "segment {i}"
        );
    }
    assert_eq!((a.vmpl, a.cpl, a.efer), (2, 3, 0xd01));
    assert_eq!(
        (a.cr0, a.cr2, a.cr3, a.cr4),
        (0x8000_0011, 0x22, 0x33, 0x44)
    );
    assert_eq!(
        (a.dr6, a.dr7, a.rflags, a.rip, a.rsp),
        (0x66, 0x77, 0x202, 0x1234, 0x5678)
    );
    assert_eq!(a.g_pat, 0x0007_0406_0007_0406);
    assert_eq!(
        (a.sev_features, a.event_inj, a.xcr0),
        (0x21, 0x8000_0b0e, 7)
    );
    assert_eq!(
        [a.rax, a.rcx, a.rdx, a.rbx, a.rbp, a.rsi, a.rdi],
        [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6]
    );
    assert_eq!(
        [a.r8, a.r9, a.r10, a.r11, a.r12, a.r13, a.r14, a.r15],
        [0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf]
    );
}
