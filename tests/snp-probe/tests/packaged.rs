//! The packaged probe (an IGVM file that `vigil-igvm build --kernel <snp-probe ELF>
//! --firmware <ELF> --platforms snp` wrote, named by `SNP_PROBE_IGVM`): both of the
//! model's IGVM readers give the same plan, the model launches it, its launch digest is
//! `vigil-igvm measure`'s, the probe's image is launched and the page it validates
//! itself (GPA 0x700000) is not. Ignored by default because the file needs the
//! bare-metal build; run with
//! `SNP_PROBE_IGVM=probe.igvm cargo test -p snp-probe --test packaged -- --ignored`.

use snp_model::host_loader::HostConfig;
use snp_model::launch::launch;
use snp_model::memory::Memory;
use snp_model::rmp::Rmp;
use snp_model::{igvm_file, igvm_loader};
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

#[test]
#[ignore = "needs SNP_PROBE_IGVM, a packaged bare-metal build"]
fn packaged_probe_loads_and_measures_alike() {
    let path = std::env::var("SNP_PROBE_IGVM").expect("SNP_PROBE_IGVM names the IGVM file");
    let bytes = std::fs::read(&path).expect("read SNP_PROBE_IGVM");
    let mem = 64 << 20;
    let cfg = HostConfig {
        vcpus: 1,
        memory: mem,
        reset_aps: Some(0x800f12),
    };
    let ours = igvm_file::plan(&bytes, cfg).expect("the model's reader loads it");
    assert_eq!(Ok(&ours), igvm_loader::plan(&bytes, cfg).as_ref());
    let mut m = Memory::new(mem);
    let mut rmp = Rmp::new(mem / 4096);
    let l = launch(&ours, &mut m, &mut rmp, &[[0; 32]; 4]).expect("launch");
    let rules = LoaderRules {
        vcpus: Some(1),
        vcpu_sig: 0x800f12,
        ..LoaderRules::default()
    };
    let v = measure_file(&bytes, Platform::Snp, &rules, false).expect("measure");
    assert_eq!(l.digest, v.measurement.digest);
    assert!(
        rmp.entry(0x10_0000).expect("entry").validated,
        "the probe's entry page"
    );
    assert!(
        !rmp.entry(0x70_0000).expect("entry").assigned,
        "the page the probe validates"
    );
    let hex: String = l.digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("launch digest {hex}, {} pages", l.pages);
}
