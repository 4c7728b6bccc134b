//! The PVALIDATE list of the SVSM core protocol (SVSM spec #58019).
