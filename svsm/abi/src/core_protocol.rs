//! SVSM core protocol (0): call numbers, arguments and result codes (SVSM spec #58019).
