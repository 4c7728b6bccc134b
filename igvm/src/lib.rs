//! Build, measure, sign and inspect IGVM files that package Vigil with its guest
//! firmware. The `vigil-igvm` binary is a thin layer over this library.
#![forbid(unsafe_code)]
