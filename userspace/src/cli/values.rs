// SPDX-License-Identifier: GPL-2.0
//! The values of the options that take one of a few words, as clap reads
//! them, each turned into the domain's own type.

use clap::ValueEnum;

use crate::{commands::sweep::Protocol, ko::Variant, output::Format, vm};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// For people.
    Human,
    /// For machines.
    Json,
    /// KTAP version 1 test results, as kernel CI expects them.
    Ktap,
}

impl From<FormatName> for Format {
    fn from(f: FormatName) -> Self {
        match f {
            FormatName::Human => Format::Human,
            FormatName::Json => Format::Json,
            FormatName::Ktap => Format::Ktap,
        }
    }
}

/// A sample's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VariantName {
    /// The buggy code.
    Leaky,
    /// The same code, fixed.
    Fixed,
}

impl From<VariantName> for Variant {
    fn from(v: VariantName) -> Self {
        match v {
            VariantName::Leaky => Variant::Leaky,
            VariantName::Fixed => Variant::Fixed,
        }
    }
}

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchName {
    /// x86_64 (QEMU `pc`, console on ttyS0).
    #[value(name = "x86_64")]
    X86_64,
    /// arm64 (QEMU `virt` with a Cortex-A76, console on ttyAMA0).
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl From<ArchName> for vm::Arch {
    fn from(a: ArchName) -> Self {
        match a {
            ArchName::X86_64 => vm::Arch::X86_64,
            ArchName::Arm64 => vm::Arch::Arm64,
        }
    }
}

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelName {
    /// KVM when it works here, TCG otherwise.
    Auto,
    /// KVM only.
    Kvm,
    /// TCG (software emulation) only.
    Tcg,
}

impl From<AccelName> for vm::Accel {
    fn from(a: AccelName) -> Self {
        match a {
            AccelName::Auto => vm::Accel::Auto,
            AccelName::Kvm => vm::Accel::Kvm,
            AccelName::Tcg => vm::Accel::Tcg,
        }
    }
}

/// How a sweep judges each module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolName {
    /// leaklab's: each module checked in cycles by every detector the
    /// kernel has, its leaks tied to it and confirmed alone.
    Leaklab,
    /// Linaro LKFT's modules test, to compare with: the cycles, then
    /// kmemleak's reports, or MemAvailable's fall beyond 512 KiB.
    Lkft,
}

impl From<ProtocolName> for Protocol {
    fn from(p: ProtocolName) -> Self {
        match p {
            ProtocolName::Leaklab => Protocol::Leaklab,
            ProtocolName::Lkft => Protocol::Lkft,
        }
    }
}
