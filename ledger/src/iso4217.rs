//! The active ISO 4217 alphabetic codes (list one: currencies, funds and precious metals), as of
//! 2026. New accounts may only be opened in one of these ([`crate::Currency::parse_active`]).
//!
//! Left out on purpose: `XTS` (reserved for testing) and `XXX` (no currency), and codes
//! withdrawn from the list: `ANG` (replaced by `XCG`, 2025), `BGN` (Bulgaria adopted the euro,
//! 2026), `CUC` (2021), `HRK` (2023), `SLL` (replaced by `SLE`), `ZWL` (replaced by `ZWG`, 2024).
//! Existing accounts in a code later withdrawn stay readable and usable: only opening an
//! account checks this list, and the state machine itself accepts any three-letter code, so
//! replaying an old log never changes meaning when this list is updated.

/// Sorted, so membership is a binary search.
pub const ACTIVE_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
    "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN",
    "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF",
    "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT",
    "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
];

/// True when `code` is an active ISO 4217 code.
pub fn is_active(code: &str) -> bool {
    ACTIVE_CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_well_formed() {
        assert!(
            ACTIVE_CODES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for c in ACTIVE_CODES {
            assert!(
                c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()),
                "{c}"
            );
        }
    }

    #[test]
    fn membership() {
        for c in [
            "USD", "EUR", "GBP", "JPY", "CHF", "XCG", "ZWG", "SLE", "AED", "XAU",
        ] {
            assert!(is_active(c), "{c}");
        }
        for c in [
            "ABC", "XXX", "XTS", "ANG", "BGN", "CUC", "HRK", "SLL", "ZWL", "usd", "US",
        ] {
            assert!(!is_active(c), "{c}");
        }
    }
}
