//! Yes/no facts packed one bit each into one 16-bit word: a connection and its session keep
//! several for their whole life, and a million open sessions should not pay a byte (and its
//! padding) for each. The owner names its bits with constants.

/// A word of yes/no facts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits(u16);

impl Bits {
    /// The word with each `(bit, on)` set as given.
    pub fn of(bits: &[(u16, bool)]) -> Bits {
        let mut b = Bits::default();
        for &(bit, on) in bits {
            b.set_to(bit, on);
        }
        b
    }

    #[inline(always)]
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    #[inline(always)]
    pub fn set(&mut self, bit: u16) {
        self.0 |= bit;
    }

    #[inline(always)]
    pub fn set_to(&mut self, bit: u16, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_set_and_cleared_one_at_a_time() {
        let mut b = Bits::of(&[(1, true), (1 << 3, true), (1 << 15, false)]);
        assert!(b.has(1) && b.has(1 << 3) && !b.has(1 << 1) && !b.has(1 << 15));
        b.set(1 << 15);
        b.set_to(1, false);
        assert!(!b.has(1) && b.has(1 << 3) && b.has(1 << 15));
    }
}
