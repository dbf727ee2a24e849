//! The built-in detectors (email, phone, payment card, IBAN, IP addresses, API keys and tokens,
//! national ids) and the validators that cut their false positives (Luhn, IBAN mod 97, address
//! parsing, SSN ranges).

use std::net::Ipv6Addr;

/// How a regex match is confirmed before it is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every match counts.
    None,
    /// Not glued to a letter or digit on either side.
    Boundary,
    /// Boundary, and 8 to 15 digits (E.164 length).
    Phone,
    /// Boundary, 13 to 19 digits, and the Luhn checksum.
    Luhn,
    /// Boundary and the ISO 13616 mod-97 checksum.
    Iban,
    /// Not glued to a digit, letter or dot (version strings like `1.2.3.4.5`).
    Ipv4,
    /// Parses as an IPv6 address, contains a digit, not glued to a word character or colon.
    Ipv6,
    /// Boundary and the SSA's valid area, group and serial ranges.
    Ssn,
}

/// What a text must contain before a built-in detector can redact anything in it: a cheap
/// test, done for all detectors in one pass over the text ([`Features`]), that lets long texts
/// skip the regexes that have no literal to search for (their scan costs tens of nanoseconds
/// per byte). Each is implied by the detector's pattern, or by its pattern and its [`Check`],
/// so skipping a detector whose need is missing never changes what is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// No test: the regex itself is cheap (it starts with a literal).
    Nothing,
    /// `bearer`, in any case.
    Bearer,
    /// Two uppercase ASCII letters, then two digits.
    Iban,
    /// 13 digits in a row, with at most one space or dash between two of them.
    CardDigits,
    /// A digit, a dash, a digit.
    DigitDashDigit,
    /// A digit, a dot, a digit.
    DigitDotDigit,
    /// 8 digits anywhere (the phone check wants 8 to 15 in the match).
    EightDigits,
    /// A colon, at most four hex digits, a colon.
    HexColons,
}

/// What [`Needs`] asks of one text, found in one pass over its bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Features {
    bearer: bool,
    iban: bool,
    card_digits: bool,
    digit_dash_digit: bool,
    digit_dot_digit: bool,
    n_digits: usize,
    hex_colons: bool,
}

/// Bytes per block of [`Features::of`]'s fast path.
const BLOCK: usize = 32;

/// The state of [`Features::of`]'s pass between two bytes.
#[derive(Default)]
struct Scan {
    res: Features,
    /// The three bytes before the current one (0 before the start).
    p1: u8,
    p2: u8,
    p3: u8,
    /// Digits in the current run that a card number could span, and whether the byte before
    /// is the one separator allowed between two of its digits.
    card_run: usize,
    card_sep: bool,
    /// Hex digits since the last colon, `None` when something else came between.
    hex_since_colon: Option<usize>,
}

impl Scan {
    fn byte(&mut self, b: u8) {
        let (p1, p2, p3) = (self.p1, self.p2, self.p3);
        let res = &mut self.res;
        if b.is_ascii_digit() {
            res.n_digits += 1;
            self.card_run += 1;
            self.card_sep = false;
            res.card_digits |= self.card_run >= 13;
            res.digit_dash_digit |= p1 == b'-' && p2.is_ascii_digit();
            res.digit_dot_digit |= p1 == b'.' && p2.is_ascii_digit();
            res.iban |= p1.is_ascii_digit() && p2.is_ascii_uppercase() && p3.is_ascii_uppercase();
        } else if (b == b' ' || b == b'-') && self.card_run > 0 && !self.card_sep {
            self.card_sep = true;
        } else {
            self.card_run = 0;
            self.card_sep = false;
        }
        if b == b':' {
            res.hex_colons |= self.hex_since_colon.is_some_and(|n| n <= 4);
            self.hex_since_colon = Some(0);
        } else if b.is_ascii_hexdigit() {
            if let Some(n) = &mut self.hex_since_colon {
                *n += 1;
            }
        } else {
            self.hex_since_colon = None;
        }
        (self.p3, self.p2, self.p1) = (p2, p1, b);
    }

    /// Passes a whole block that holds no digit and no colon, as [`Scan::byte`] on each of its
    /// bytes would: no feature can start in it, a card run cannot span it (two non-digits in a
    /// row end it), and the hex run before the next colon is longer than any that counts.
    fn skip_block(&mut self, block: &[u8; BLOCK]) {
        self.card_run = 0;
        self.card_sep = false;
        self.hex_since_colon = None;
        (self.p3, self.p2, self.p1) = (block[BLOCK - 3], block[BLOCK - 2], block[BLOCK - 1]);
    }
}

/// Whether the block holds a digit or a colon (`'0'..=':'` are contiguous in ASCII), written
/// without early exit so that it compiles to a few vector instructions.
fn has_digit_or_colon(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |found, &b| found | (b.wrapping_sub(b'0') <= b':' - b'0'))
}

/// Whether `bytes` holds "bearer" in any case.
fn has_bearer(bytes: &[u8]) -> bool {
    memchr::memchr2_iter(b'b', b'B', bytes)
        .any(|i| bytes.get(i..i + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer")))
}

impl Features {
    /// One pass over the text. Prose is mostly blocks without digits or colons, which are
    /// skipped whole; the others go byte by byte.
    pub(crate) fn of(text: &str) -> Features {
        let bytes = text.as_bytes();
        let mut scan = Scan::default();
        let (blocks, rest) = bytes.as_chunks::<BLOCK>();
        for block in blocks {
            if has_digit_or_colon(block) {
                block.iter().for_each(|&b| scan.byte(b));
            } else {
                scan.skip_block(block);
            }
        }
        rest.iter().for_each(|&b| scan.byte(b));
        let mut res = scan.res;
        res.bearer = has_bearer(bytes);
        res
    }

    /// [`Features::of`] byte by byte, without the fast path: what it must agree with.
    #[cfg(test)]
    pub(crate) fn of_each_byte(text: &str) -> Features {
        let mut scan = Scan::default();
        text.bytes().for_each(|b| scan.byte(b));
        let mut res = scan.res;
        res.bearer = has_bearer(text.as_bytes());
        res
    }

    /// Whether a detector that needs `needs` may find something in the text.
    pub(crate) fn allow(&self, needs: Needs) -> bool {
        match needs {
            Needs::Nothing => true,
            Needs::Bearer => self.bearer,
            Needs::Iban => self.iban,
            Needs::CardDigits => self.card_digits,
            Needs::DigitDashDigit => self.digit_dash_digit,
            Needs::DigitDotDigit => self.digit_dot_digit,
            Needs::EightDigits => self.n_digits >= 8,
            Needs::HexColons => self.hex_colons,
        }
    }
}

/// A built-in detector: its kind (the placeholder's type), its pattern and its check.
pub(crate) struct Builtin {
    pub(crate) kind: &'static str,
    pub(crate) pattern: &'static str,
    pub(crate) check: Check,
    /// What a text must contain for a match to be possible (see [`Needs`]).
    pub(crate) needs: Needs,
}

impl Builtin {
    /// Whether matches are hashed without regard to case (`Jane@X.com` joins `jane@x.com`).
    pub(crate) fn fold_case(&self) -> bool {
        self.kind == "email"
    }
}

/// Every built-in detector, in priority order (earlier wins when two matches start at the same
/// place and have the same length).
pub(crate) const BUILTINS: &[Builtin] = &[
    Builtin {
        kind: "anthropic_key",
        pattern: r"sk-ant-[A-Za-z0-9_\-]{20,}",
        check: Check::None,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "openai_key",
        pattern: r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        check: Check::Boundary,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "aws_key",
        pattern: r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        check: Check::Boundary,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "github_token",
        pattern: r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        check: Check::None,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "slack_token",
        pattern: r"xox[abposr]-[A-Za-z0-9\-]{10,}",
        check: Check::None,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "google_key",
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        check: Check::None,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "jwt",
        pattern: r"eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        check: Check::None,
        needs: Needs::Nothing,
    },
    // Only the token after `Bearer ` is replaced (the `secret` group).
    Builtin {
        kind: "bearer",
        pattern: r"[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+(?P<secret>[A-Za-z0-9_\-.~+/]{16,}=*)",
        check: Check::None,
        needs: Needs::Bearer,
    },
    Builtin {
        kind: "email",
        pattern: r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        check: Check::None,
        needs: Needs::Nothing,
    },
    Builtin {
        kind: "iban",
        pattern: r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
        check: Check::Iban,
        needs: Needs::Iban,
    },
    Builtin {
        kind: "card",
        pattern: r"[3-6][0-9](?:[ \-]?[0-9]){11,17}",
        check: Check::Luhn,
        needs: Needs::CardDigits,
    },
    Builtin {
        kind: "ssn",
        pattern: r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        check: Check::Ssn,
        needs: Needs::DigitDashDigit,
    },
    Builtin {
        kind: "phone",
        pattern: r"(?:\+[0-9]{1,3}[ .\-]?(?:\(?[0-9]{1,4}\)?[ .\-]?){1,5}[0-9]{2,4}|(?:\([0-9]{3}\) ?|[0-9]{3}[.\- ])[0-9]{3}[.\- ][0-9]{4})",
        check: Check::Phone,
        needs: Needs::EightDigits,
    },
    Builtin {
        kind: "ipv4",
        pattern: r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}",
        check: Check::Ipv4,
        needs: Needs::DigitDotDigit,
    },
    Builtin {
        kind: "ipv6",
        pattern: r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?",
        check: Check::Ipv6,
        needs: Needs::HexColons,
    },
];

impl Check {
    /// Whether `text[start..end]` is a real match inside `text`.
    pub(crate) fn accepts(self, text: &str, start: usize, end: usize) -> bool {
        let found = &text[start..end];
        match self {
            Check::None => true,
            Check::Boundary => alnum_boundary(text, start, end),
            Check::Phone => {
                let n_digits = found.bytes().filter(u8::is_ascii_digit).count();
                alnum_boundary(text, start, end) && (8..=15).contains(&n_digits)
            }
            Check::Luhn => alnum_boundary(text, start, end) && luhn(found),
            Check::Iban => alnum_boundary(text, start, end) && iban(found),
            Check::Ipv4 => {
                // A dot next to the address only joins it to more digits (`1.2.3.4.5`) when a
                // digit follows or precedes the dot; a sentence's full stop does not.
                let mut before = text[..start].bytes().rev();
                let mut after = text[end..].bytes();
                let glued = |first: Option<u8>, second: Option<u8>| match first {
                    Some(b'.') => second.is_some_and(|b| b.is_ascii_digit()),
                    Some(b) => b.is_ascii_alphanumeric(),
                    None => false,
                };
                !glued(before.next(), before.next()) && !glued(after.next(), after.next())
            }
            Check::Ipv6 => {
                let before = text[..start].bytes().next_back();
                let after = text[end..].bytes().next();
                let glued = |b: Option<u8>| {
                    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_')
                };
                !glued(before)
                    && !glued(after)
                    && found.bytes().any(|b| b.is_ascii_digit())
                    && found.parse::<Ipv6Addr>().is_ok()
            }
            Check::Ssn => alnum_boundary(text, start, end) && ssn(found),
        }
    }
}

/// Neither neighbour of the match is an ASCII letter or digit.
fn alnum_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].bytes().next_back();
    let after = text[end..].bytes().next();
    let glued = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    !glued(before) && !glued(after)
}

/// The Luhn checksum over the digits of `text`, which must number 13 to 19.
pub(crate) fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 check: move the first four characters to the end, letters to numbers
/// (A = 10), and the number mod 97 must be 1.
pub(crate) fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if value >= 10 { (rem * 100 + value) % 97 } else { (rem * 10 + value) % 97 };
    }
    rem == 1
}

/// US SSN ranges: area not 000, 666 or 900-999; group not 00; serial not 0000.
fn ssn(text: &str) -> bool {
    let mut parts = text.split('-').map(|p| p.parse::<u32>().unwrap_or(0));
    let (area, group, serial) =
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("GB82WEST12345698765433"));
        assert!(ssn("123-45-6789"));
        assert!(!ssn("666-45-6789"));
        assert!(!ssn("123-00-6789"));
    }
}
