//! The port I/O instructions the probe's #VC handler emulates (a #VC for IOIO, exit code
//! 0x7B, carries no operands: the handler decodes the instruction at RIP, as Linux's
//! `vc_ioio_exitinfo` does). IN and OUT with an immediate port or DX, 8/16/32 bits
//! (opcodes E4-E7, EC-EF, 16 bits with the 0x66 prefix; AMD APM vol. 3). String forms are
//! not decoded: the probe does not use them.

/// Where the port number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The DX register.
    Dx,
    /// An immediate byte.
    Imm(u8),
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    /// The port operand.
    pub port: Port,
    /// Operand size in bytes (1, 2 or 4).
    pub size: u8,
    /// IN (true) or OUT.
    pub is_in: bool,
    /// Instruction length in bytes.
    pub len: usize,
}

/// Decode the instruction starting at `bytes[0]`, or `None`.
pub fn decode(bytes: &[u8]) -> Option<Io> {
    let (prefix, rest) = match bytes.first()? {
        0x66 => (1, bytes.get(1..)?),
        _ => (0, bytes),
    };
    let op = *rest.first()?;
    let wide = if prefix == 1 { 2 } else { 4 };
    let (port, imm_len) = match op {
        0xe4..=0xe7 => (Port::Imm(*rest.get(1)?), 1),
        0xec..=0xef => (Port::Dx, 0),
        _ => return None,
    };
    let size = if op & 1 == 0 { 1 } else { wide };
    if size == 1 && prefix == 1 {
        return None;
    }
    Some(Io {
        port,
        size,
        is_in: op & 2 == 0,
        len: prefix + 1 + imm_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_probe_uses() {
        let out_dx_al = Io {
            port: Port::Dx,
            size: 1,
            is_in: false,
            len: 1,
        };
        assert_eq!(decode(&[0xee]), Some(out_dx_al));
        assert_eq!(
            decode(&[0xe6, 0x80]),
            Some(Io {
                port: Port::Imm(0x80),
                size: 1,
                is_in: false,
                len: 2
            })
        );
        assert_eq!(
            decode(&[0x66, 0xed]),
            Some(Io {
                port: Port::Dx,
                size: 2,
                is_in: true,
                len: 2
            })
        );
        assert_eq!(decode(&[0xef]).map(|i| i.size), Some(4));
        assert_eq!(
            decode(&[0xe5, 0x70]).map(|i| (i.is_in, i.len)),
            Some((true, 2))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x6e]), None); // OUTSB
        assert_eq!(decode(&[0x66, 0xee]), None);
        assert_eq!(decode(&[0xe6]), None); // truncated immediate
        assert_eq!(decode(&[0x90]), None);
    }
}
