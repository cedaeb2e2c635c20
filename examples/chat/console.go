package main

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"time"
)

// console is the chat's output: messages and answers to commands on
// standard output, notices on standard error, one whole line at a time
// whichever goroutine writes.
type console struct {
	mu       sync.Mutex
	out, err io.Writer
}

// message prints a line a peer sent, as "<name>: <text>".
func (c *console) message(from, text string) { c.printf(c.out, "%s: %s\n", from, text) }

// println prints a line on standard output.
func (c *console) println(s string) { c.printf(c.out, "%s\n", s) }

// notice prints "* <text>" on standard error.
func (c *console) notice(format string, args ...any) { c.printf(c.err, "* "+format+"\n", args...) }

func (c *console) printf(w io.Writer, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// input reads the lines typed on standard input in a goroutine of its
// own, so that the chat can wait for them and for everything else at once.
type input struct {
	r     io.Reader
	lines chan inputLine // closed at the end of input
	err   error          // once lines is closed: the read error, nil at EOF
	quit  chan struct{}  // closed by stop
	done  chan struct{}  // closed when the goroutine returns
}

type inputLine struct {
	text string
	cut  bool // the line was longer than maxLine
}

func readInput(r io.Reader) *input {
	in := &input{r: r, lines: make(chan inputLine), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		defer close(in.lines)
		br := bufio.NewReader(r)
		for {
			text, cut, err := readLine(br)
			if err == nil || (err == io.EOF && text != "") {
				select {
				case in.lines <- inputLine{text, cut}:
				case <-in.quit:
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					in.err = err
				}
				return
			}
		}
	}()
	return in
}

// stop ends the reading and returns when the goroutine has returned. A
// Read that is blocked is interrupted with SetReadDeadline when the reader
// has it and it works (a pipe's *os.File, net.Conn); when it does not (a
// terminal's os.Stdin), stop returns at once and the goroutine stays in
// Read until input comes or the process exits: a Read cannot be cancelled.
func (in *input) stop() {
	close(in.quit)
	select {
	case <-in.done:
		return
	default:
	}
	if d, ok := in.r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Unix(1, 0)) == nil {
		<-in.done
	}
}
