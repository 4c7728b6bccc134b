//! Hostile and wrong inputs: each gives a named failure or a clear error, never a panic.
//! Also Vigil's test root (refused without --allow-test-root) and the CRL checks.

mod common;
use attestation::certs::{parse_blob, Cert};
use attestation::policy::Policy;
use attestation::product::Product;
use attestation::roots::TrustStore;
use attestation::test_chain::{
    amd_name, build_cert, p384_spki, rsa_spki, test_chip_id, test_validity, Kind, TEST_TCB,
};
use attestation::verify::{Evidence, Status, Verifier};
use common::*;
use der::{Decode, Encode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::signature::{RandomizedSigner, SignatureEncoding};

fn verifier() -> Verifier {
    Verifier::new(TrustStore::builtin().unwrap())
}

fn status(o: &attestation::verify::Outcome, n: &str) -> Status {
    o.check(n).unwrap_or_else(|| panic!("no check {n}")).status
}

fn real(case: &str) -> Evidence {
    let dir = format!("{SNP}/{case}");
    let mut certs = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap() != "report.bin" {
            certs
                .extend(parse_blob(&std::fs::read(&p).unwrap(), &p.display().to_string()).unwrap());
        }
    }
    Evidence {
        report: std::fs::read(format!("{dir}/report.bin")).unwrap(),
        certs,
        ..Default::default()
    }
}

#[test]
fn test_root_is_refused_without_the_flag_and_accepted_loudly_with_it() {
    let mut r = test_report();
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    let v = verifier();
    let no = v.verify(&ev, &opts(false));
    assert!(!no.verified());
    assert_eq!(status(&no, "chain.root"), Status::Fail);
    assert!(no.check("chain.root").unwrap().detail.contains("TEST root"));
    let yes = v.verify(&ev, &opts(true));
    for c in &yes.checks {
        assert_ne!(c.status, Status::Fail, "{}: {}", c.name, c.detail);
    }
    assert!(yes.verified() && yes.test_root);
    assert_eq!(yes.product, Some(Product::VigilTest));
    assert_eq!(status(&yes, "cert.tcb"), Status::Pass);
    assert_eq!(status(&yes, "cert.hwid"), Status::Pass);
    // The built-in test ASK suffices: only the VCEK is needed.
    let only_leaf = Evidence {
        certs: test_chain()[..1].to_vec(),
        ..ev.clone()
    };
    assert!(v.verify(&only_leaf, &opts(true)).verified());
}

#[test]
fn test_vcek_tcb_and_chip_id_must_match_the_report() {
    let v = verifier();
    let mut r = test_report();
    r.reported_tcb = TEST_TCB.to_u64() + 1;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    let o = v.verify(&ev, &opts(true));
    assert_eq!(status(&o, "cert.tcb"), Status::Fail);
    let mut r = test_report();
    r.chip_id[63] ^= 1;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    assert_eq!(
        status(&v.verify(&ev, &opts(true)), "cert.hwid"),
        Status::Fail
    );
    // Masked CHIP_ID: refused unless the policy allows it.
    let mut r = test_report();
    r.chip_id = [0; 64];
    r.key_info |= 2;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    assert_eq!(
        status(&v.verify(&ev, &opts(true)), "cert.hwid"),
        Status::Fail
    );
    let mut o = opts(true);
    o.policy.allow_masked_chip_id = Some(true);
    assert!(v.verify(&ev, &o).verified());
}

#[test]
fn signing_key_none_and_reserved_values_are_refused() {
    let v = verifier();
    for sk in [7u32, 2, 3, 6] {
        let mut r = test_report();
        r.set_signing_key(sk);
        let ev = Evidence {
            report: sign(&mut r, &vcek_key()),
            certs: test_chain(),
            ..Default::default()
        };
        let o = v.verify(&ev, &opts(true));
        assert_eq!(status(&o, "report.signing_key"), Status::Fail, "{sk}");
        assert!(!o.verified());
    }
    let mut r = test_report();
    r.signature_algo = 2;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    assert_eq!(
        status(&v.verify(&ev, &opts(true)), "report.sig_algo"),
        Status::Fail
    );
    for ver in [0u32, 1, 6, 0xFFFF_FFFF] {
        let mut r = test_report();
        r.version = ver;
        let ev = Evidence {
            report: sign(&mut r, &vcek_key()),
            certs: test_chain(),
            ..Default::default()
        };
        assert_eq!(
            status(&v.verify(&ev, &opts(true)), "report.version"),
            Status::Fail
        );
    }
    let mut r = test_report();
    r.reserved_0x208[3] = 1;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    let o = v.verify(&ev, &opts(true));
    assert_eq!(status(&o, "report.reserved"), Status::Fail);
    assert!(o.check("report.reserved").unwrap().detail.contains("0x20B"));
}

#[test]
fn truncated_and_oversized_reports_fail_the_length_check() {
    let v = verifier();
    let ev = real("milan-v3");
    for len in [0usize, 1, 100, 0x2A0, 0x49F] {
        let e = Evidence {
            report: ev.report[..len].to_vec(),
            ..ev.clone()
        };
        let o = v.verify(&e, &opts(false));
        assert!(!o.verified());
        assert_eq!(status(&o, "report.length"), Status::Fail);
        assert!(o
            .check("report.length")
            .unwrap()
            .detail
            .contains("truncated"));
    }
    let mut big = ev.report.clone();
    big.extend_from_slice(&[0; 7]);
    let o = v.verify(
        &Evidence {
            report: big,
            ..ev.clone()
        },
        &opts(false),
    );
    assert!(o
        .check("report.length")
        .unwrap()
        .detail
        .contains("7 trailing bytes"));
}

#[test]
fn swapped_vcek_and_wrong_product_are_rejected() {
    let v = verifier();
    let milan = real("milan-v3");
    let genoa = real("genoa-v3");
    let swapped = Evidence {
        report: milan.report.clone(),
        certs: genoa.certs.clone(),
        ..Default::default()
    };
    let o = v.verify(&swapped, &opts(false));
    assert!(!o.verified());
    for n in ["report.signature", "cert.hwid", "product"] {
        assert_eq!(status(&o, n), Status::Fail, "{n}");
    }
    let mut opt = opts(false);
    opt.product = Some(Product::Genoa);
    let o = v.verify(&milan, &opt);
    assert_eq!(status(&o, "product"), Status::Fail);
    assert!(o.check("product").unwrap().detail.contains("Milan"));
}

/// A self-made chain that copies AMD's names ("ARK-Milan", "SEV-Milan"): the root is
/// refused because it is not pinned, and the leaf fails under the real Milan ARK.
#[test]
fn self_made_root_with_amd_names_is_refused() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let ark_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let ark_spki = rsa_spki(&ark_key).unwrap();
    let ark_name = amd_name("ARK-Milan").unwrap();
    let ask_name = amd_name("SEV-Milan").unwrap();
    let ark = build_cert(
        Kind::Root,
        &[1],
        ark_name.clone(),
        ark_name.clone(),
        test_validity().unwrap(),
        ark_spki.clone(),
        &ark_key,
        &mut rng,
    )
    .unwrap();
    let ask = build_cert(
        Kind::Intermediate(&ark_spki),
        &[2],
        ask_name.clone(),
        ark_name,
        test_validity().unwrap(),
        ark_spki.clone(),
        &ark_key,
        &mut rng,
    )
    .unwrap();
    let vk = p384::SecretKey::from(*vcek_key().as_nonzero_scalar());
    let chip = test_chip_id();
    let vcek = build_cert(
        Kind::Vcek {
            product: "Milan-B0",
            tcb: TEST_TCB,
            hwid: &chip,
        },
        &[0],
        amd_name("SEV-VCEK").unwrap(),
        ask_name,
        test_validity().unwrap(),
        p384_spki(&vk).unwrap(),
        &ark_key,
        &mut rng,
    )
    .unwrap();
    let c = |x: &x509_cert::Certificate, n: &str| Cert::from_der(&x.to_der().unwrap(), n).unwrap();
    let mut r = test_report();
    r.cpuid_mod_id = 0x01;
    let report = sign(&mut r, &vcek_key());
    let v = verifier();
    let ev = Evidence {
        report: report.clone(),
        certs: vec![c(&vcek, "vcek"), c(&ask, "ask"), c(&ark, "ark")],
        ..Default::default()
    };
    let o = v.verify(&ev, &opts(true));
    assert_eq!(status(&o, "chain.root"), Status::Fail);
    assert!(o
        .check("chain.root")
        .unwrap()
        .detail
        .contains("not a pinned AMD root"));
    // Without its ARK, the fake ASK meets the real (pinned) Milan ARK and fails.
    let ev = Evidence {
        report,
        certs: vec![c(&vcek, "vcek"), c(&ask, "ask")],
        ..Default::default()
    };
    let o = v.verify(&ev, &opts(true));
    assert_eq!(status(&o, "chain.intermediate.signature"), Status::Fail);
    assert!(!o.verified());
}

#[test]
fn garbage_and_truncated_certificates_give_errors_not_panics() {
    let der = std::fs::read(format!("{ROOT}/vcek.der")).unwrap();
    for n in 0..der.len() {
        assert!(parse_blob(&der[..n], "t").is_err(), "prefix {n} accepted");
    }
    let mut extra = der.clone();
    extra.push(0);
    assert!(parse_blob(&extra, "t").is_err(), "trailing byte accepted");
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..2000 {
        let mut d = der.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % d.len();
            d[i] = (x >> 32) as u8;
        }
        if let Ok(c) = parse_blob(&d, "fuzz") {
            // Parsed garbage must still never verify under the real chain.
            let _ = c[0].role();
            let _ = attestation::certs::decode_spl(&c[0], &attestation::oids::BL_SPL);
        }
    }
    let e = parse_blob(
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "bad.pem",
    )
    .unwrap_err();
    assert!(e.to_string().contains("bad.pem"), "{e}");
    let e = parse_blob(b"\x30\x82\xff\xff", "short.der").unwrap_err();
    assert!(e.to_string().contains("short.der"), "{e}");
}

#[test]
fn random_reports_never_panic_and_never_verify() {
    let v = verifier();
    let certs = test_chain();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300 {
        let mut rep = vec![0u8; 0x4A0];
        for b in rep.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        rep[0] = 2 + (i % 4) as u8;
        rep[1..4].fill(0);
        rep[0x48] &= 0b11;
        let ev = Evidence {
            report: rep,
            certs: certs.clone(),
            ..Default::default()
        };
        assert!(!v.verify(&ev, &opts(true)).verified());
    }
}

#[test]
fn hostile_policies_are_refused_with_the_field_named() {
    for (text, field) in [
        ("measurements = [\"00\"]", "measurements"),
        ("host_data = \"zz\"", "host_data"),
        ("min_guest_sv = 3", "min_guest_sv"),
        ("vmpl = [7]", "vmpl"),
        ("min_guest_svn = -1", "min_guest_svn"),
        ("min_guest_svn = \"x\"", "min_guest_svn"),
        ("platform_required = [\"SMT\"]", "platform_required"),
        ("min_version = \"1\"", "min_version"),
        ("policy_exact = \"0xZZ\"", "policy_exact"),
        ("[min_tcb.Foo]\nsnp = 1", "min_tcb"),
        ("[min_tcb.Milan]\nsnp = 300", "snp"),
        ("signing_keys = [\"none\"]", "signing_keys"),
        ("report_data = \"", "report_data"),
        ("chip_id = \"00\"", "chip_id"),
        ("report_id = \"0g\"", "report_id"),
    ] {
        let e = Policy::from_toml(text).unwrap_err().to_string();
        assert!(e.contains(field), "{text:?}: {e}");
    }
    let deep = "a = ".to_string() + &"[".repeat(10_000);
    assert!(Policy::from_toml(&deep).is_err());
}

#[test]
fn policy_checks_pass_and_fail_on_the_fields_they_name() {
    let v = verifier();
    let ev = real("genoa-v5");
    let mut o = opts(false);
    o.policy = Policy::from_toml(
        r#"
        min_guest_svn = 0
        vmpl = [0]
        products = ["Genoa"]
        min_version = "1.55"
        platform_required = ["SMT_EN"]
        launch_mit_vector_required = "0x1"
        [min_tcb.Genoa]
        snp = 27
        ucode = 27
        "#,
    )
    .unwrap();
    let out = v.verify(&ev, &o);
    for c in &out.checks {
        assert_ne!(c.status, Status::Fail, "{}: {}", c.name, c.detail);
    }
    assert_eq!(status(&out, "policy.tcb.reported"), Status::Pass);
    let chip = hex::encode(&ev.report[0x1A0..0x1E0]);
    o.policy = Policy::from_toml(&format!("chip_id = \"{chip}\"")).unwrap();
    assert_eq!(status(&v.verify(&ev, &o), "policy.chip_id"), Status::Pass);
    let mut other = ev.report[0x1A0..0x1E0].to_vec();
    other[0] ^= 1;
    o.policy = Policy::from_toml(&format!("chip_id = \"{}\"", hex::encode(other))).unwrap();
    assert_eq!(status(&v.verify(&ev, &o), "policy.chip_id"), Status::Fail);
    o.policy = Policy::from_toml("[min_tcb.Genoa]\nsnp = 28\n").unwrap();
    let out = v.verify(&ev, &o);
    for n in [
        "policy.tcb.reported",
        "policy.tcb.committed",
        "policy.tcb.launch",
        "policy.tcb.current",
    ] {
        assert_eq!(status(&out, n), Status::Fail, "{n}");
    }
    o.policy = Policy::from_toml("min_guest_svn = 1\nrequire_id_block = true\nplatform_forbidden = [\"SMT_EN\"]\nlaunch_mit_vector_required = \"0x10\"").unwrap();
    let out = v.verify(&ev, &o);
    for n in [
        "policy.guest_svn",
        "policy.id_block",
        "policy.platform_forbidden",
        "policy.launch_mit_vector",
    ] {
        assert_eq!(status(&out, n), Status::Fail, "{n}");
    }
    // Debug is refused by default.
    let mut r = test_report();
    r.policy |= 1 << 19;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    assert_eq!(
        status(&v.verify(&ev, &opts(true)), "policy.debug"),
        Status::Fail
    );
    // Provisional firmware is refused by default.
    let mut r = test_report();
    r.current_minor = 56;
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    assert_eq!(
        status(&v.verify(&ev, &opts(true)), "policy.committed_firmware"),
        Status::Fail
    );
}

fn make_crl(revoked: &[&[u8]], next_update: i64, signer: &rsa::RsaPrivateKey) -> Vec<u8> {
    use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::time::Time;
    let t = |s: i64| {
        Time::UtcTime(
            der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(s as u64))
                .unwrap(),
        )
    };
    let alg = attestation::test_chain::pss_sha384_alg().unwrap();
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: alg.clone(),
        issuer: amd_name("ARK-Vigil-Test").unwrap(),
        this_update: t(1_735_689_600),
        next_update: Some(t(next_update)),
        revoked_certificates: if revoked.is_empty() {
            None
        } else {
            Some(
                revoked
                    .iter()
                    .map(|s| RevokedCert {
                        serial_number: SerialNumber::new(s).unwrap(),
                        revocation_date: t(1_735_689_600),
                        crl_entry_extensions: None,
                    })
                    .collect(),
            )
        },
        crl_extensions: None,
    };
    let key = rsa::pss::SigningKey::<sha2::Sha384>::new_with_salt_len(signer.clone(), 48);
    let sig = key.sign_with_rng(&mut ChaCha20Rng::from_seed([1; 32]), &tbs.to_der().unwrap());
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg,
        signature: der::asn1::BitString::from_bytes(&sig.to_bytes()).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn crl_signed_by_the_ark_is_honoured() {
    let v = verifier();
    let mut r = test_report();
    let base = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        ..Default::default()
    };
    let ark = ark_key();
    let far = 2_000_000_000;
    let ok = Evidence {
        crl: Some(make_crl(&[&[9, 9]], far, &ark)),
        ..base.clone()
    };
    let o = v.verify(&ok, &opts(true));
    assert_eq!(status(&o, "crl"), Status::Pass, "{:?}", o.check("crl"));
    let revoked_ask = Evidence {
        crl: Some(make_crl(&[&[1, 0, 1]], far, &ark)),
        ..base.clone()
    };
    let o = v.verify(&revoked_ask, &opts(true));
    assert_eq!(status(&o, "crl"), Status::Fail);
    assert!(o.check("crl").unwrap().detail.contains("revoked"));
    let revoked_leaf = Evidence {
        crl: Some(make_crl(&[&[0]], far, &ark)),
        ..base.clone()
    };
    assert_eq!(
        status(&v.verify(&revoked_leaf, &opts(true)), "crl"),
        Status::Fail
    );
    let expired = Evidence {
        crl: Some(make_crl(&[], NOW - 10, &ark)),
        ..base.clone()
    };
    let o = v.verify(&expired, &opts(true));
    assert!(o.check("crl").unwrap().detail.contains("expired"));
    let by_ask = Evidence {
        crl: Some(make_crl(&[], far, &ask_key())),
        ..base.clone()
    };
    let o = v.verify(&by_ask, &opts(true));
    assert!(o.check("crl").unwrap().detail.contains("does not verify"));
    let garbage = Evidence {
        crl: Some(vec![0x30, 0x03, 1, 2, 3]),
        ..base
    };
    assert_eq!(
        status(&v.verify(&garbage, &opts(true)), "crl"),
        Status::Fail
    );
    let _ = x509_cert::crl::CertificateList::from_der(&make_crl(&[], far, &ark)).unwrap();
}

#[test]
fn both_pss_parameter_encodings_are_accepted_and_others_refused() {
    // AMD's ARK carries an explicit trailer field; the test chain omits it (default).
    let v = verifier();
    assert!(v.verify(&real("milan-v3"), &opts(false)).verified());
    let ask = &test_chain()[1];
    attestation::certs::check_pss_params(&ask.parsed.signature_algorithm).unwrap();
    let mut alg = ask.parsed.signature_algorithm.clone();
    alg.parameters =
        Some(der::Any::encode_from(&rsa::pkcs1::RsaPssParams::new::<sha2::Sha384>(32)).unwrap());
    assert!(attestation::certs::check_pss_params(&alg).is_err());
    alg.parameters =
        Some(der::Any::encode_from(&rsa::pkcs1::RsaPssParams::new::<sha2::Sha256>(48)).unwrap());
    assert!(attestation::certs::check_pss_params(&alg).is_err());
    alg.parameters = None;
    assert!(attestation::certs::check_pss_params(&alg).is_err());
}
