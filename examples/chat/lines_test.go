package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	type line struct {
		text string
		cut  bool
	}
	for _, tc := range []struct {
		name, in string
		want     []line
	}{
		{"lines", "a\nb\r\n\nc", []line{{"a", false}, {"b", false}, {"", false}, {"c", false}}},
		{"exactly maxLine", long + "\r\n" + long + "\n", []line{{long, false}, {long, false}}},
		{"one over", long + "y\nz\n", []line{{long, true}, {"z", false}}},
		{"far over", long + long + long + "\nz", []line{{long, true}, {"z", false}}},
		{"over at end", long + long, []line{{long, true}}},
		{"cut at a rune", strings.Repeat("x", maxLine-1) + "é\n", []line{{strings.Repeat("x", maxLine-1), true}}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			var got []line
			for {
				text, cut, err := readLine(br)
				if err == nil || text != "" {
					got = append(got, line{text, cut})
				}
				if err != nil {
					if err != io.EOF {
						t.Fatal(err)
					}
					break
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d lines, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("line %d: %.20q… cut %v, want %.20q… cut %v", i, got[i].text, got[i].cut, tc.want[i].text, tc.want[i].cut)
				}
			}
		})
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcode 🙂":     "plain text, ünïcode 🙂",
		"a\tb":                      "a b",
		"\x1b[2J\x07\x00\x7f\u0085": "\uFFFD[2J\uFFFD\uFFFD\uFFFD\uFFFD",
		"bad \xff utf-8":            "bad \uFFFD utf-8",
		"\u202eevil\u2066x\u2069":   "\uFFFDevil\uFFFDx\uFFFD",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
