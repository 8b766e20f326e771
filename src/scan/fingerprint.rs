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
    let mut mins = [u64::MAX; BINS];
    let mut word = String::new();
    let mut read = 0;
    'texts: for text in subject.into_iter().chain(texts) {
        // Word pairs do not span the subject and the body, or two parts.
        let mut prev: Option<u64> = None;
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if w.is_empty() {
                continue;
            }
            read += 1;
            if read > MAX_WORDS {
                break 'texts;
            }
            normalise(w, &mut word);
            let h = fnv64(word.as_bytes());
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
            // 1..=255: 0 stays "empty".
            fp | u128::from((m % 255 + 1) as u8) << (8 * i)
        }
    })
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

/// Lower case, every digit a `9`: "invoice 10443" and "invoice 20871" of
/// one mail merge are the same words.
fn normalise(w: &str, out: &mut String) {
    out.clear();
    for c in w.chars() {
        if c.is_ascii_digit() {
            out.push('9');
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

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
