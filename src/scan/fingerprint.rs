//! A near-duplicate fingerprint of a message's text: a MinHash sketch
//! (Broder 1997) of its word pairs, in the one-permutation form (Li, Owen
//! & Zhang 2012): each pair's hash picks one of 16 bins, and each bin keeps
//! the smallest hash that fell into it, one byte of it. Two texts agree in
//! a bin with the probability that a pair drawn from both is in both
//! (their Jaccard similarity). Pairs, not words: two English texts share
//! many words ("the", "of") but few pairs. A mail merge sends one text to
//! many recipients, each copy personalised ("Dear Alice", a tracking
//! link): those copies share nearly all their pairs and so nearly every
//! bin, while different texts share few. The response ladder uses it so that a
//! hundred held copies of one newsletter count as one piece of evidence
//! against its sender, not a hundred (`submission::fate`).

/// Words read from a message (subject and text): enough for any letter or
/// newsletter, and a bound on the work for a huge one.
const MAX_WORDS: usize = 8192;
const BINS: usize = 16;
/// Bins that must be filled (in either text) for a comparison to mean
/// anything: a text of a handful of words matches nothing.
const MIN_BINS: u32 = 8;

/// The fingerprint of a subject and text parts: one byte per bin, 0 for
/// an empty bin, so 0 altogether when there is no text (and 0 is never
/// "the same" as anything, see [`same_text`]).
pub fn of<'a>(subject: Option<&'a str>, texts: impl Iterator<Item = &'a str>) -> u128 {
    let mut sketch = Sketch {
        mins: [u64::MAX; BINS],
        words: 0,
    };
    for text in subject.into_iter().chain(texts) {
        if !sketch.text(text) {
            break;
        }
    }
    sketch.mins.iter().enumerate().fold(0u128, |fp, (i, &m)| {
        if m == u64::MAX {
            fp
        } else {
            // 1..=255: 0 stays "empty".
            fp | u128::from((m % 255 + 1) as u8) << (8 * i)
        }
    })
}

struct Sketch {
    mins: [u64; BINS],
    words: usize,
}

impl Sketch {
    /// Adds the word pairs of one text (pairs do not span the subject and
    /// the body, or two parts); false once `MAX_WORDS` words are read.
    /// Words are the runs of alphanumeric characters, lower-cased, each
    /// ASCII digit read as `9`, hashed (FNV-1a) as they are read: byte by
    /// byte for ASCII, the scan's hot path, with no allocation.
    fn text(&mut self, text: &str) -> bool {
        let mut prev: Option<u64> = None;
        let mut h = FNV_OFFSET;
        let mut in_word = false;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let class = ASCII[usize::from(bytes[i])];
            let alnum = if class == NON_ASCII {
                // A whole character (`i` is on a char boundary: the bytes
                // before it were ASCII or whole characters).
                let c = text[i..].chars().next().unwrap_or(' ');
                i += c.len_utf8();
                let alnum = c.is_alphanumeric();
                if alnum {
                    let mut buf = [0u8; 4];
                    for l in c.to_lowercase() {
                        for &b in l.encode_utf8(&mut buf).as_bytes() {
                            h = fnv_step(h, b);
                        }
                    }
                }
                alnum
            } else {
                i += 1;
                if class != SEPARATOR {
                    h = fnv_step(h, class);
                }
                class != SEPARATOR
            };
            if alnum {
                in_word = true;
            } else if in_word {
                if !self.word(h, &mut prev) {
                    return false;
                }
                h = FNV_OFFSET;
                in_word = false;
            }
        }
        !in_word || self.word(h, &mut prev)
    }

    /// One word read (its hash): the pair it closes goes to its bin.
    fn word(&mut self, h: u64, prev: &mut Option<u64>) -> bool {
        self.words += 1;
        if self.words > MAX_WORDS {
            return false;
        }
        if let Some(p) = *prev {
            let pair = mix(p.rotate_left(23) ^ h);
            let bin = (pair >> 60) as usize;
            self.mins[bin] = self.mins[bin].min(pair & ((1 << 60) - 1));
        }
        *prev = Some(h);
        true
    }
}

/// Whether two fingerprints are of the same text, give or take a
/// personalisation: at least 5 in 8 of the bins filled in either agree
/// (a Jaccard similarity of about 0.6 or more). Copies of one newsletter
/// are at 0.9 or more; different mail, even on one subject, far below.
pub fn same_text(a: u128, b: u128) -> bool {
    let (mut filled, mut agree) = (0u32, 0u32);
    for i in 0..BINS {
        let (x, y) = ((a >> (8 * i)) as u8, (b >> (8 * i)) as u8);
        if x != 0 || y != 0 {
            filled += 1;
            agree += u32::from(x == y);
        }
    }
    filled >= MIN_BINS && agree * 8 >= filled * 5
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
}

/// What each byte is to the reader: a word byte as it is hashed (lower
/// case, a digit as `9`), a separator, or the start of a non-ASCII
/// character.
const SEPARATOR: u8 = 0;
const NON_ASCII: u8 = 0xff;
static ASCII: [u8; 256] = {
    let mut t = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            b'9'
        } else if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            SEPARATOR
        };
        b += 1;
    }
    t
};

/// splitmix64's finaliser: every input bit moves about half the output
/// bits, so the 64 votes are independent.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LETTER: &str = "Our spring catalogue is out. This month every garden \
        tool is twenty percent off, and orders over fifty pounds ship free. \
        Visit the shop on Saturday for the seed swap, with tea and cake from \
        ten until four. You receive this letter because you subscribed at our \
        counter; reply STOP to be removed from the list.";

    fn fp(subject: &str, body: &str) -> u128 {
        of(Some(subject), [body].into_iter())
    }

    #[test]
    fn personalised_copies_are_the_same_text() {
        let a = fp(
            "Spring news",
            &format!("Dear Alice Smith,\n\n{LETTER}\nRef 10443"),
        );
        let b = fp(
            "Spring news",
            &format!("Dear Bob Jones,\n\n{LETTER}\nRef 20871"),
        );
        assert!(same_text(a, b), "{a:032x} {b:032x}");
    }

    #[test]
    fn different_texts_are_not() {
        let a = fp("Spring news", LETTER);
        let b = fp(
            "Invoice",
            "Hello, please find the invoice for last month attached. Payment \
             is due within fourteen days of receipt. Kind regards, the accounts team",
        );
        assert!(!same_text(a, b), "{a:032x} {b:032x}");
    }

    /// The definition, plainly: split, normalise, hash, pair.
    fn reference(texts: &[&str]) -> u128 {
        let mut mins = [u64::MAX; BINS];
        let mut read = 0;
        'texts: for text in texts {
            let mut prev: Option<u64> = None;
            for w in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                read += 1;
                if read > MAX_WORDS {
                    break 'texts;
                }
                let mut word = String::new();
                for c in w.chars() {
                    if c.is_ascii_digit() {
                        word.push('9');
                    } else {
                        word.extend(c.to_lowercase());
                    }
                }
                let h = word.bytes().fold(FNV_OFFSET, fnv_step);
                if let Some(p) = prev {
                    let pair = mix(p.rotate_left(23) ^ h);
                    let bin = (pair >> 60) as usize;
                    mins[bin] = mins[bin].min(pair & ((1 << 60) - 1));
                }
                prev = Some(h);
            }
        }
        mins.iter().enumerate().fold(0u128, |fp, (i, &m)| {
            if m == u64::MAX {
                fp
            } else {
                fp | u128::from((m % 255 + 1) as u8) << (8 * i)
            }
        })
    }

    #[test]
    fn the_fast_reader_is_the_definition() {
        let long = "word ".repeat(MAX_WORDS + 10);
        let cases: [&[&str]; 8] = [
            &["Spring news", LETTER],
            &["", "  ...  "],
            &[
                "Größe ÄRGER straße",
                "İstanbul'da 2002 yılında ÇOK güzel; Ωμέγα ΣΟΦΙΑ",
            ],
            &[
                "中文 text 日本語テキスト mixed",
                "naïve café — résumé, 10 €",
            ],
            &["ends with a word", "and\u{a0}a no-break space\u{2003}em"],
            &["x", &long],
            &[&long, "after the limit"],
            &["tab\tseparated\r\nlines", "digits 0123 ٣٤٥ mixed7up"],
        ];
        for texts in cases {
            assert_eq!(
                of(Some(texts[0]), texts[1..].iter().copied()),
                reference(texts),
                "{texts:?}"
            );
        }
    }

    #[test]
    fn no_text_matches_nothing() {
        assert_eq!(fp("", "  \r\n ... "), 0);
        assert!(!same_text(0, 0));
        let few = fp("x", "one two");
        assert_ne!(few, 0);
        assert!(!same_text(few, few), "too few words to compare");
        let a = fp("Spring news", LETTER);
        assert!(same_text(a, a));
    }
}
