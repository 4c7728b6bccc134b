//! The one table of vigil-verify's named checks: each check's stable name, what it
//! proves when it passes, and where it applies. The verifier can only emit a check that
//! is in this table (every emitting call takes a `&'static CheckDef` from it), `--json`
//! carries the same name and `proves` text, `vigil-verify --list-checks` prints the
//! table, and a test holds docs/verifier.md's check table byte-equal to
//! [`markdown_table`].

use serde::Serialize;

/// One named check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CheckDef {
    /// Stable dotted name (part of the JSON schema vigil-verify/1: never renamed).
    pub name: &'static str,
    /// What a pass proves.
    pub proves: &'static str,
    /// When the check runs (otherwise it is absent or a skip with the reason).
    pub applies: &'static str,
}

macro_rules! checks {
    ($($id:ident = $name:literal, $proves:literal, $applies:expr;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $proves)]
            pub const $id: &CheckDef = &CheckDef { name: $name, proves: $proves, applies: $applies };
        )*
        /// Every check, in the order the verifier runs them.
        pub const CHECKS: &[&CheckDef] = &[$($id),*];
    };
}

const ALWAYS: &str = "every report";
const CHAIN: &str = "every report with a valid SIGNING_KEY";

checks! {
    REPORT_LENGTH = "report.length", "the input is exactly one 0x4A0-byte report (names truncation or trailing bytes)", "every input";
    REPORT_VERSION = "report.version", "VERSION is 2..5, a layout this verifier reads", ALWAYS;
    REPORT_SIG_ALGO = "report.sig_algo", "SIG_ALGO is 1, ECDSA P-384 with SHA-384", ALWAYS;
    REPORT_SIGNING_KEY = "report.signing_key", "SIGNING_KEY is VCEK (0) or VLEK (1); none (7) and reserved values refused", ALWAYS;
    REPORT_RESERVED = "report.reserved", "every reserved field of that version is zero (names the first non-zero byte offset)", ALWAYS;
    CHAIN_LEAF = "chain.leaf", "a VCEK or VLEK (as SIGNING_KEY says) was given or fetched; of several, the one whose hwID matches CHIP_ID", CHAIN;
    CHAIN_INTERMEDIATE = "chain.intermediate", "an ASK (VCEK) or ASVK (VLEK) whose subject is the leaf's issuer, given or built in", CHAIN;
    CHAIN_ROOT = "chain.root", "the ARK that issued the intermediate is pinned by SHA-256 (AMD's, --trust-root, or the TEST root with --allow-test-root)", CHAIN;
    CHAIN_ROOT_SIGNATURE = "chain.root.signature", "the ARK signed itself (RSASSA-PSS SHA-384, salt 48, over the TBS bytes as received)", CHAIN;
    CHAIN_INTERMEDIATE_SIGNATURE = "chain.intermediate.signature", "the ARK signed the intermediate (RSASSA-PSS SHA-384 over the TBS bytes as received)", CHAIN;
    CHAIN_LEAF_SIGNATURE = "chain.leaf.signature", "the intermediate signed the leaf (RSASSA-PSS SHA-384 over the TBS bytes as received)", CHAIN;
    CHAIN_PROFILE = "chain.profile", "X.509 v3; CAs: basicConstraints CA, keyUsage keyCertSign, non-zero serial; leaf not a CA with an EC P-384 key; subject O is AMD; leaf issuer = intermediate subject", "a complete chain";
    CHAIN_VALIDITY = "chain.validity", "all three certificates are valid at --at (default now)", "a complete chain";
    REPORT_SIGNATURE = "report.signature", "the leaf key signed bytes 0x000-0x29F exactly as received (ECDSA P-384 SHA-384, R and S little-endian)", "a leaf certificate";
    PRODUCT = "product", "every source of the product agrees (--product, leaf productName, pinned root, CPUID on v3+); picks the TCB layout", ALWAYS;
    CERT_TCB = "cert.tcb", "the leaf's SPL extensions equal REPORTED_TCB (fmcSPL on Turin only)", "a leaf and a known product";
    CERT_HWID = "cert.hwid", "the VCEK's hwID equals CHIP_ID (8 bytes on Turin, rest zero); a masked CHIP_ID only with allow_masked_chip_id", "a VCEK and a known product (skip for a VLEK)";
    CERT_CSP_ID = "cert.csp_id", "the VLEK's cspId is in the policy's vlek_csp_ids", "a VLEK (skip for a VCEK, or with no allow-list)";
    CERT_PRODUCT_NAME = "cert.product_name", "the leaf's productName is a known product", "a leaf with productName";
    CRL = "crl", "the ARK signed the CRL, it is current at --at, and lists neither the intermediate nor the leaf", "--crl, a CRL in --certs, or --fetch-crl";
    POLICY_MEASUREMENT = "policy.measurement", "MEASUREMENT is in the policy's measurements", "policy measurements";
    POLICY_HOST_DATA = "policy.host_data", "HOST_DATA equals the policy's", "policy host_data";
    POLICY_REPORT_DATA = "policy.report_data", "REPORT_DATA equals the policy's", "policy report_data";
    POLICY_FAMILY_ID = "policy.family_id", "FAMILY_ID equals the policy's", "policy family_id";
    POLICY_IMAGE_ID = "policy.image_id", "IMAGE_ID equals the policy's", "policy image_id";
    POLICY_REPORT_ID = "policy.report_id", "REPORT_ID equals the policy's", "policy report_id";
    POLICY_REPORT_ID_MA = "policy.report_id_ma", "REPORT_ID_MA equals the policy's", "policy report_id_ma";
    POLICY_CHIP_ID = "policy.chip_id", "CHIP_ID equals the policy's", "policy chip_id";
    POLICY_GUEST_SVN = "policy.guest_svn", "GUEST_SVN is at least min_guest_svn", "policy min_guest_svn";
    POLICY_VMPL = "policy.vmpl", "the report was requested at an allowed VMPL", "policy vmpl";
    POLICY_PRODUCT = "policy.product", "the product is in the policy's products", "policy products";
    POLICY_DEBUG = "policy.debug", "guest POLICY bit 19 (DEBUG) is clear, or allow_debug", ALWAYS;
    POLICY_MIGRATION_AGENT = "policy.migration_agent", "guest POLICY bit 18 (MIGRATE_MA) is clear, or allow_migration_agent", ALWAYS;
    POLICY_RESERVED_BITS = "policy.reserved_bits", "guest POLICY bit 17 is one and bits 63:26 are zero", ALWAYS;
    POLICY_SMT = "policy.smt", "guest POLICY bit 16 (SMT) is clear", "policy allow_smt = false";
    POLICY_CXL = "policy.cxl", "guest POLICY bit 21 (CXL_ALLOW) is clear", "policy allow_cxl = false";
    POLICY_SINGLE_SOCKET = "policy.single_socket", "guest POLICY bit 20 (SINGLE_SOCKET) is set", "policy require_single_socket";
    POLICY_AES_256_XTS = "policy.aes_256_xts", "guest POLICY bit 22 (MEM_AES_256_XTS) is set", "policy require_aes_256_xts";
    POLICY_RAPL_DISABLED = "policy.rapl_disabled", "guest POLICY bit 23 (RAPL_DIS) is set", "policy require_rapl_disabled";
    POLICY_CIPHERTEXT_HIDING = "policy.ciphertext_hiding", "guest POLICY bit 24 (CIPHERTEXT_HIDING) is set", "policy require_ciphertext_hiding";
    POLICY_PAGE_SWAP_DISABLED = "policy.page_swap_disabled", "guest POLICY bit 25 (PAGE_SWAP_DISABLE) is set", "policy require_page_swap_disabled";
    POLICY_ABI_MINIMUM = "policy.abi_minimum", "the ABI minimum in the guest POLICY is at least min_policy_abi", "policy min_policy_abi";
    POLICY_EXACT = "policy.exact", "guest POLICY equals policy_exact", "policy policy_exact";
    POLICY_TCB_REPORTED = "policy.tcb.reported", "REPORTED_TCB meets the product's min_tcb", "policy min_tcb for the product";
    POLICY_TCB_COMMITTED = "policy.tcb.committed", "COMMITTED_TCB meets the product's min_tcb", "policy min_tcb for the product";
    POLICY_TCB_LAUNCH = "policy.tcb.launch", "LAUNCH_TCB meets the product's min_tcb", "policy min_tcb for the product";
    POLICY_TCB_CURRENT = "policy.tcb.current", "CURRENT_TCB meets the product's min_tcb", "policy min_tcb for the product";
    POLICY_COMMITTED_FIRMWARE = "policy.committed_firmware", "the running firmware (version and FMC/BL/TEE/SNP SPLs) is the committed one, or allow_provisional_firmware", ALWAYS;
    POLICY_MIN_BUILD = "policy.min_build", "CURRENT_BUILD is at least min_build", "policy min_build";
    POLICY_MIN_VERSION = "policy.min_version", "CURRENT_MAJOR.CURRENT_MINOR is at least min_version", "policy min_version";
    POLICY_PLATFORM_REQUIRED = "policy.platform_required", "every PLATFORM_INFO bit named in platform_required is set", "policy platform_required";
    POLICY_PLATFORM_FORBIDDEN = "policy.platform_forbidden", "no PLATFORM_INFO bit named in platform_forbidden is set", "policy platform_forbidden";
    POLICY_LAUNCH_MIT_VECTOR = "policy.launch_mit_vector", "LAUNCH_MIT_VECTOR has every required bit (v5 reports)", "policy launch_mit_vector_required";
    POLICY_CURRENT_MIT_VECTOR = "policy.current_mit_vector", "CURRENT_MIT_VECTOR has every required bit (v5 reports)", "policy current_mit_vector_required";
    POLICY_ID_BLOCK = "policy.id_block", "the guest was launched with an ID block (ID_KEY_DIGEST non-zero)", "policy require_id_block";
    POLICY_ID_KEY_DIGEST = "policy.id_key_digest", "ID_KEY_DIGEST is in id_key_digests", "policy id_key_digests";
    POLICY_AUTHOR_KEY_DIGEST = "policy.author_key_digest", "AUTHOR_KEY_EN is set and AUTHOR_KEY_DIGEST is in author_key_digests", "policy author_key_digests";
    POLICY_SIGNING_KEY = "policy.signing_key", "the signing key kind (vcek, vlek) is in signing_keys", "policy signing_keys";
    SVSM_REPORT_DATA = "svsm.report_data", "REPORT_DATA = SHA-512(nonce || manifest) (#58019 attestation protocol)", "--nonce with --manifest (or a configfs-tsm manifestblob)";
    SVSM_VMPL = "svsm.vmpl", "the report was requested at VMPL0, by the SVSM", "--nonce with --manifest";
    SVSM_MANIFEST = "svsm.manifest", "the manifest parses strictly: regions tile the bytes after the table, distinct GUIDs, Vigil's entry a version-1 64-byte record", "--nonce with --manifest";
    SVSM_EVENT_LOG = "svsm.event_log", "replaying the log gives the head the manifest binds; a following record is this ATTEST call's; counts the refused guest accesses bound", "--event-log (skip without it)";
    SVSM_PROTECTION = "svsm.protection", "the protection records the head binds are ones Vigil writes (at most one successful lock, its ranges sorted, counted and of known kinds); names the locked ranges and the text SHA-384, or says the guest never locked", "an event log that passed svsm.event_log";
    POLICY_LOCKED_TEXT = "policy.locked_text", "the guest locked its text with Vigil's protection protocol (a successful PROTECT_LOCK among the records the head binds); fails without a bound log", "policy require_locked_text = true";
    POLICY_TEXT_DIGEST = "policy.text_digest", "the locked text's SHA-384 is in text_digests; fails if the guest never locked or without a bound log", "policy text_digests";
    REFS = "refs", "reference values were given (this line appears only as a skip)", "no --refs";
    REFS_MEASUREMENT = "refs.measurement", "MEASUREMENT = the refs' launch_digest (skip for native refs)", "--refs";
    REFS_POLICY = "refs.policy", "guest POLICY = the refs' policy (skip for native and emulated refs: their security processor reports a fixed POLICY of the project's own)", "--refs";
    REFS_GUEST_VMPL = "refs.guest_vmpl", "the refs' guest_vmpl equals the manifest's (and the launch record's)", "--refs with guest_vmpl and a Vigil manifest";
    REFS_SEV_FEATURES = "refs.sev_features", "never passes: the report does not carry the boot VMSA's SEV features (covered by MEASUREMENT); always a skip", "--refs";
    REFS_VCPUS = "refs.vcpus", "never passes: the evidence does not carry the launch vCPU count (their VMSAs are covered by MEASUREMENT); always a skip naming the refs' value", "--refs";
    REFS_MONITOR_POLICY = "refs.monitor_policy", "never passes: the evidence does not carry the monitor policy digest (its page is covered by MEASUREMENT); always a skip naming the refs' value", "--refs";
    REFS_IGVM_FILE = "refs.igvm_file", "never passes: the evidence does not carry the IGVM file's SHA-256 (its pages are covered by MEASUREMENT); always a skip naming the refs' value", "--refs";
}

/// The check named `name`.
pub fn find(name: &str) -> Option<&'static CheckDef> {
    CHECKS.iter().copied().find(|c| c.name == name)
}

/// The table as docs/verifier.md holds it (between its `checks:begin` and `checks:end`
/// markers).
pub fn markdown_table() -> String {
    let mut s = String::from("| name | what a pass proves | applies to |\n|---|---|---|\n");
    for c in CHECKS {
        let esc = |t: &str| t.replace('|', "\\|");
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            c.name,
            esc(c.proves),
            esc(c.applies)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dotted_lower_case() {
        for (i, c) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS[..i].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
            assert!(
                c.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'_'),
                "{}",
                c.name
            );
            assert!(!c.proves.is_empty() && !c.applies.is_empty(), "{}", c.name);
        }
        assert_eq!(find("report.signature"), Some(REPORT_SIGNATURE));
        assert_eq!(find("no.such.check"), None);
    }
}
