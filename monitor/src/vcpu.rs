//! The guest's vCPUs as the monitor knows them: APIC ID, calling area, VMSA.
use crate::addr::Gpa;
use alloc::vec::Vec;

/// One guest vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vcpu {
    /// APIC ID.
    pub apic_id: u32,
    /// Its calling area.
    pub caa: Gpa,
    /// Its VMSA page (None for the boot vCPU, whose VMSA is part of the launch image).
    pub vmsa: Option<Gpa>,
}

/// The set of vCPUs.
#[derive(Clone, Debug, Default)]
pub struct Vcpus {
    list: Vec<Vcpu>,
}

impl Vcpus {
    /// The vCPU that serves APIC ID `apic_id`: the newest one with it (a CPU brought
    /// back online gets its new VMSA before the old one is deleted, #58019 6.3).
    pub fn by_apic(&self, apic_id: u32) -> Option<&Vcpu> {
        self.list.iter().rev().find(|v| v.apic_id == apic_id)
    }
    /// [`Vcpus::by_apic`], mutably.
    pub fn by_apic_mut(&mut self, apic_id: u32) -> Option<&mut Vcpu> {
        self.list.iter_mut().rev().find(|v| v.apic_id == apic_id)
    }
    /// Finds a vCPU by VMSA.
    pub fn by_vmsa(&self, vmsa: Gpa) -> Option<&Vcpu> {
        self.list.iter().find(|v| v.vmsa == Some(vmsa))
    }
    /// Whether a calling area is in use by any vCPU.
    pub fn caa_in_use(&self, caa: Gpa) -> bool {
        self.list.iter().any(|v| v.caa == caa)
    }
    /// Adds a vCPU.
    pub fn add(&mut self, v: Vcpu) {
        self.list.push(v);
    }
    /// Removes the vCPU with this VMSA.
    pub fn remove_vmsa(&mut self, vmsa: Gpa) {
        self.list.retain(|v| v.vmsa != Some(vmsa));
    }
    /// All vCPUs.
    pub fn iter(&self) -> impl Iterator<Item = &Vcpu> {
        self.list.iter()
    }
}
