//! Byte offset -> 1-based line and character column.

use crate::Position;

/// Converts byte offsets of one text into positions. Offsets asked in increasing order cost one
/// scan of the text in total; asking for an earlier offset restarts from the beginning.
#[derive(Debug)]
pub(crate) struct Locator<'t> {
    text: &'t str,
    offset: usize,
    line: u32,
    column: u32,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Locator {
            text,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    /// The position of byte `offset` (clamped to the text, rounded down to a character boundary).
    pub(crate) fn locate(&mut self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset < self.offset {
            *self = Locator::new(self.text);
        }
        let bytes = self.text.as_bytes();
        for (i, c) in self.text[self.offset..offset].char_indices() {
            let newline = match c {
                '\n' => true,
                // `\r\n` ends the line at the `\n`; a lone `\r` ends it by itself.
                '\r' => bytes.get(self.offset + i + 1) != Some(&b'\n'),
                _ => false,
            };
            if newline {
                self.line = self.line.saturating_add(1);
                self.column = 1;
            } else if c != '\r' {
                self.column = self.column.saturating_add(1);
            }
        }
        self.offset = offset;
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    #[test]
    fn lines_and_character_columns() {
        let text = "ab\nçé<x\r\n<y\r<z";
        let mut locator = Locator::new(text);
        assert_eq!(locator.locate(0), at(1, 1));
        assert_eq!(locator.locate(2), at(1, 3));
        // `ç` and `é` are two bytes each but one column each.
        assert_eq!(locator.locate(text.find('<').expect("<x")), at(2, 3));
        assert_eq!(locator.locate(text.find("<y").expect("<y")), at(3, 1));
        assert_eq!(locator.locate(text.find("<z").expect("<z")), at(4, 1));
        // Going back restarts, past the end clamps.
        assert_eq!(locator.locate(1), at(1, 2));
        assert_eq!(locator.locate(10_000), at(4, 3));
        // Inside a multi-byte character: rounded down.
        assert_eq!(locator.locate(4), at(2, 1));
    }
}
