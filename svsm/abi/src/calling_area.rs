//! The SVSM calling area and the SVSM call register convention (SVSM spec #58019).
