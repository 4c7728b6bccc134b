//! The SNP secrets page (SNP firmware ABI #56860) and the SVSM fields in it (SVSM spec #58019).
