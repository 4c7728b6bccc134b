//! Object identifiers of AMD's VCEK/VLEK certificate extensions (AMD KDS
//! specification, #57230) and of the algorithms the chain uses.
use spki::ObjectIdentifier as Oid;

/// structVersion (INTEGER).
pub const STRUCT_VERSION: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.1");
/// productName (IA5String), e.g. "Milan-B0".
pub const PRODUCT_NAME: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.2");
/// blSPL: boot loader security patch level.
pub const BL_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
/// teeSPL: PSP OS security patch level.
pub const TEE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
/// snpSPL: SNP firmware security patch level.
pub const SNP_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
/// spl_4 (reserved).
pub const SPL_4: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.4");
/// spl_5 (reserved).
pub const SPL_5: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.5");
/// spl_6 (reserved).
pub const SPL_6: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.6");
/// spl_7 (reserved).
pub const SPL_7: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.7");
/// ucodeSPL: microcode security patch level.
pub const UCODE_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
/// fmcSPL: firmware FMC security patch level (Turin and later).
pub const FMC_SPL: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
/// hwID: the CHIP_ID (64 bytes; 8 bytes on Turin).
pub const HW_ID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.4");
/// cspId: the cloud service provider of a VLEK (IA5String).
pub const CSP_ID: Oid = Oid::new_unwrap("1.3.6.1.4.1.3704.1.5");

/// RSASSA-PSS.
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
/// rsaEncryption (SPKI of the ARK, ASK and ASVK).
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// MGF1.
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
/// SHA-384.
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
/// id-ecPublicKey.
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
/// secp384r1.
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
