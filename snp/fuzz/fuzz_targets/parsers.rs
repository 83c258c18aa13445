//! Fuzz every parser that sees outsider bytes: the SNP report, the Azure
//! HCL report, certificate files and AMD extensions, and policies (YAML and
//! JSON). The first byte picks the parser. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultlet_snp::{HclReport, Policy, Report, certs};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(r) = Report::parse(rest) {
                // Serializing a parsed report keeps every non-reserved byte.
                assert_eq!(Report::parse(&r.to_bytes()).ok(), Some(r));
            }
        }
        1 => {
            if let Ok(h) = HclReport::parse(rest) {
                assert_eq!(h.snp_report_bytes().len(), vaultlet_snp::report::REPORT_LEN);
            }
        }
        2 => {
            let _ = certs::certs_from_file_bytes(rest);
            let _ = certs::vek_extensions(rest);
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = Policy::from_yaml(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = Policy::from_json(text);
            }
        }
    }
});
