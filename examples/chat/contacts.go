package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"hipnet.dev/hipnet"
)

// contacts is the address book of -contacts: petnames for HITs. Every HIT
// in it is authorized to chat. The zero value is an empty book.
type contacts struct {
	byName map[string]hipnet.HIT
	byHIT  map[hipnet.HIT]string
}

// readContacts reads a contacts file.
func readContacts(path string) (*contacts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseContacts(f, path)
}

// parseContacts parses lines "petname HIT"; '#' starts a comment, blank
// lines are skipped. A petname is letters, digits, '-', '_' and '.', so
// that it reads unambiguously in "-peer name@host:port" and in output; a
// petname or a HIT may appear once. Errors name file:line.
func parseContacts(r io.Reader, file string) (*contacts, error) {
	c := &contacts{byName: map[string]hipnet.HIT{}, byHIT: map[hipnet.HIT]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", file, n, fmt.Sprintf(format, args...))
		}
		if len(fields) != 2 {
			return nil, bad("want \"petname HIT\", got %d fields", len(fields))
		}
		name, text := fields[0], fields[1]
		if !validPetname(name) {
			return nil, bad("petname %q: use letters, digits, '-', '_' and '.'", name)
		}
		hit, err := hipnet.ParseHIT(text)
		if err != nil {
			return nil, bad("%v", err)
		}
		if _, dup := c.byName[name]; dup {
			return nil, bad("petname %q appears twice", name)
		}
		if other, dup := c.byHIT[hit]; dup {
			return nil, bad("%v is already %q", hit, other)
		}
		c.byName[name] = hit
		c.byHIT[hit] = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

func validPetname(s string) bool {
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return s != ""
}

// name returns the petname of h, or h in text form.
func (c *contacts) name(h hipnet.HIT) string {
	if n, ok := c.byHIT[h]; ok {
		return n
	}
	return h.String()
}

// hit returns the HIT of a petname.
func (c *contacts) hit(name string) (hipnet.HIT, bool) {
	h, ok := c.byName[name]
	return h, ok
}

// hits returns every HIT of the book, in order.
func (c *contacts) hits() []hipnet.HIT {
	out := make([]hipnet.HIT, 0, len(c.byHIT))
	for h := range c.byHIT {
		out = append(out, h)
	}
	slices.SortFunc(out, hipnet.HIT.Compare)
	return out
}
