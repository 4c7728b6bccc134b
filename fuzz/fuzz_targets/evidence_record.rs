//! Fuzzes the evidence record reader (svsm-abi's `evidence::items`, what xtask and a
//! relying party use on the bytes that leave the VM over the serial port): arbitrary
//! bytes never panic, every item it hands out lies inside the record, and a record
//! re-encoded from the items it read reads back to the same items.
#![no_main]
use libfuzzer_sys::fuzz_target;
use svsm_abi::evidence;

fuzz_target!(|data: &[u8]| {
    let Ok(it) = evidence::items(data) else {
        return;
    };
    let mut good: Vec<(u16, Vec<u8>)> = Vec::new();
    for item in it {
        match item {
            Ok((t, offset, bytes)) => {
                assert!(offset + bytes.len() <= data.len(), "item outside the record");
                assert_eq!(&data[offset..offset + bytes.len()], bytes);
                good.push((t, bytes.to_vec()));
            }
            Err(_) => return,
        }
    }
    let refs: Vec<(u16, &[u8])> = good.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    let mut out = vec![0u8; evidence::encoded_len(good.iter().map(|(_, b)| b.len()))];
    let n = evidence::encode(&refs, &mut out).expect("sized by encoded_len");
    let again: Vec<(u16, Vec<u8>)> = evidence::items(&out[..n])
        .expect("a record we encoded has a good header")
        .map(|i| i.map(|(t, _, b)| (t, b.to_vec())).expect("a record we encoded reads back"))
        .collect();
    assert_eq!(again, good);
});
