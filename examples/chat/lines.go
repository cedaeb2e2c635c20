package main

import (
	"bufio"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The framing of the chat: one message per line, "\n"-terminated UTF-8,
// on standard input and on every stream alike. A peer's text is shown
// after clean, never as it came.

// maxLine is the longest message in bytes; a longer line is cut there.
const maxLine = 4096

// readLine reads the next line from br without its "\n" or "\r\n". A line
// longer than maxLine comes back cut to maxLine bytes (at a rune
// boundary), with cut set, and the rest of it is discarded. When the input
// ends, a last line without "\n" is returned together with the error
// (io.EOF); after that, or on an error with nothing read, line is empty.
func readLine(br *bufio.Reader) (line string, cut bool, err error) {
	var buf []byte
	n := 0 // bytes of this line read, including what did not fit
	for {
		frag, ferr := br.ReadSlice('\n')
		n += len(frag)
		// Keep up to two bytes more than maxLine: the "\r\n" of a line of
		// exactly maxLine bytes.
		if room := maxLine + 2 - len(buf); room > 0 {
			buf = append(buf, frag[:min(room, len(frag))]...)
		}
		if ferr == bufio.ErrBufferFull {
			continue
		}
		err = ferr
		break
	}
	cut = n > len(buf)
	line, _ = strings.CutSuffix(string(buf), "\n")
	line, _ = strings.CutSuffix(line, "\r")
	if len(line) > maxLine {
		cut = true
		i := maxLine
		for i > 0 && !utf8.RuneStart(line[i]) {
			i--
		}
		line = line[:i]
	}
	return line, cut, err
}

// clean makes a peer's text safe to print on a terminal: invalid UTF-8,
// control characters (escape sequences start with one) and the
// bidirectional overrides that could make a line read as someone else's
// become U+FFFD; a tab becomes a space.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r == utf8.RuneError, unicode.IsControl(r), isBidiControl(r):
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// isBidiControl reports the explicit directional formatting characters of
// Unicode's bidirectional algorithm (UAX #9 §2): embeddings, overrides,
// isolates and their terminators.
func isBidiControl(r rune) bool {
	return ('\u202A' <= r && r <= '\u202E') || ('\u2066' <= r && r <= '\u2069')
}
