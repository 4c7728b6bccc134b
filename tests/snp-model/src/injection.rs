//! What the host may inject into a VMSA (APM vol. 2 §15.36.16, "Restricted Injection",
//! and §15.20, EVENTINJ): with RestrictedInjection set in the VMSA's SEV_FEATURES (bit
//! 3) the host may inject only #HV (vector 28) as an exception; VMRUN with any other
//! EVENTINJ fails. The model refuses virtual interrupts (V_IRQ) into such a VMSA too (its
//! reading: the guest takes its interrupts through the #HV doorbell only). Without the
//! feature, any event goes. The model's host applies this to itself before every entry,
//! since QEMU's SVM knows nothing of it.

/// SEV_FEATURES bit 3: RestrictedInjection.
pub const RESTRICTED_INJECTION: u64 = 1 << 3;
/// #HV.
pub const HV_VECTOR: u8 = 28;

/// An event the host wants to deliver on entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// EVENTINJ of type external interrupt (0) with this vector.
    Interrupt(u8),
    /// EVENTINJ of type NMI (2).
    Nmi,
    /// EVENTINJ of type exception (3) with this vector.
    Exception(u8),
    /// EVENTINJ of type software interrupt (4).
    SoftwareInterrupt(u8),
    /// A virtual interrupt (V_IRQ in the VMCB).
    VirtualInterrupt(u8),
}

/// The entry would fail: VMRUN with this event and these features is #VMEXIT(INVALID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub Event);

/// Whether the host may deliver `e` into a VMSA with `sev_features`.
pub fn check(sev_features: u64, e: Event) -> Result<(), Refused> {
    if sev_features & RESTRICTED_INJECTION == 0 || e == Event::Exception(HV_VECTOR) {
        Ok(())
    } else {
        Err(Refused(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_vmsa_takes_only_hv() {
        let r = 1 | RESTRICTED_INJECTION;
        assert_eq!(check(r, Event::Exception(28)), Ok(()));
        for e in [
            Event::Interrupt(0x20),
            Event::Nmi,
            Event::Exception(13),
            Event::Exception(29),
            Event::SoftwareInterrupt(0x80),
            Event::VirtualInterrupt(0x30),
            Event::Interrupt(28),
        ] {
            assert_eq!(check(r, e), Err(Refused(e)), "{e:?}");
        }
    }

    #[test]
    fn unrestricted_vmsa_takes_anything() {
        for e in [Event::Interrupt(0x20), Event::Nmi, Event::Exception(13)] {
            assert_eq!(check(1, e), Ok(()));
        }
    }
}
