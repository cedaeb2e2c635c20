package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// row is one line of the table: metric names as the benchmarks report
// them (hipnet/bench_test.go).
type row struct {
	figure         string
	bench          string
	hip, base      string // metrics
	baseName, unit string
	lower          bool    // lower is better (times)
	goal           float64 // the ratio hip/base to reach
	stretch        float64 // 0: none
}

var rows = []row{
	{"first contact: dial + 1-octet echo", "FirstContact", "hip-µs", "tls-µs", "TLS 1.3 mTLS, X25519, over TCP", "µs", true, 1.0, 0},
	// The same across a path with a 10 ms round trip, in round trips:
	// what a network adds, where CPU hardly counts.
	{"first contact, 10 ms round trip", "FirstContactRTT", "hip-rtts", "tls-rtts", "TLS 1.3 mTLS, X25519, over TCP, same delay", "RTTs", true, 0, 0},
	{"warm dial + echo + close", "SecondDial", "hip-µs", "tls-µs", "TLS 1.3 mTLS, X25519, over TCP", "µs", true, 0.10, 0},
	{"bulk, one stream", "Throughput", "hip-MB/s", "quic-MB/s", "quic-go on its own UDP sockets", "MB/s", false, 0.8, 0},
	{"bulk, one stream", "Throughput", "hip-MB/s", "tls-MB/s", "TLS 1.3 over TCP", "MB/s", false, 0.5, 0},
	{"bulk CPU, both ends", "Throughput", "hip-cpu-s/GB", "tls-cpu-s/GB", "TLS 1.3 over TCP", "CPU s/GB", true, 0, 0},
	// Across a real 1,500-octet link (network namespaces; the benchmark
	// skips, and these rows are left out, without root).
	{"bulk across a 1500-octet veth", "ThroughputVeth", "hip-MB/s", "tls-MB/s", "TLS 1.3 over TCP, same veth", "MB/s", false, 0, 0},
	{"bulk CPU across the veth", "ThroughputVeth", "hip-cpu-s/GB", "tls-cpu-s/GB", "TLS 1.3 over TCP, same veth", "CPU s/GB", true, 0, 0},
	{"1200-octet datagrams/s", "Datagrams", "hip-dgram/s", "udp-dgram/s", "UDP, one write per datagram", "/s", false, 1.0, 0},
	{"1200-octet datagrams/s", "Datagrams", "hip-dgram/s", "mmsg-dgram/s", "UDP, sendmmsg/recvmmsg", "/s", false, 0.8, 0},
	{"base exchanges/s (one responder)", "BEXRate", "bex/s", "tls/s", "TLS 1.3 mTLS handshakes/s, X25519", "/s", false, 1.0, 0},
}

func main() {
	count := flag.Int("count", 3, "runs of each benchmark (the table shows medians)")
	benchtime := flag.String("benchtime", "20x", "go test -benchtime")
	latencyTime := flag.String("latency-benchtime", "100x",
		"go test -benchtime of the first-contact and warm-dial benchmarks: an iteration takes milliseconds, and their medians need many")
	transports := flag.String("streams", "quic,netstack", "stream transports to measure, comma-separated")
	flag.Parse()

	results := map[string]map[string][]float64{} // transport -> bench/metric -> values
	for _, tr := range strings.Split(*transports, ",") {
		bench := "Throughput|ThroughputVeth|FirstContactRTT"
		if tr == "quic" {
			bench += "|Datagrams|BEXRate" // the same for both transports: measured once
		}
		var all []byte
		for _, b := range []struct{ names, time string }{{"FirstContact|SecondDial", *latencyTime}, {bench, *benchtime}} {
			out, err := runBench(b.names, b.time, *count, tr)
			if err != nil {
				fmt.Fprintf(os.Stderr, "benchtable: %s: %v\n%s", tr, err, out)
				os.Exit(1)
			}
			all = append(all, out...)
		}
		results[tr] = parse(bytes.NewReader(all))
	}
	printTable(os.Stdout, results, strings.Split(*transports, ","))
}

func runBench(bench, benchtime string, count int, transport string) ([]byte, error) {
	args := []string{"test", "-run", "^$", "-bench", "^Benchmark(" + bench + ")$", "-benchtime", benchtime,
		"-count", strconv.Itoa(count), "-timeout", "60m", "./hipnet/", "-args", "-hipnet.streams", transport}
	fmt.Fprintf(os.Stderr, "go %s\n", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	return cmd.Output()
}

// parse reads `go test -bench` output: "BenchmarkName-2 N ns/op v unit v unit ...".
func parse(r io.Reader) map[string][]float64 {
	m := map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[name+"/"+f[i+1]] = append(m[name+"/"+f[i+1]], v)
		}
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func printTable(w io.Writer, results map[string]map[string][]float64, transports []string) {
	fmt.Fprintln(w, "| figure | streams | hipnet | baseline, same run | ratio | goal | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		for _, tr := range transports {
			m := results[tr]
			hv, bv := m[r.bench+"/"+r.hip], m[r.bench+"/"+r.base]
			if len(hv) == 0 || len(bv) == 0 {
				continue // not measured for this transport
			}
			h, b := median(hv), median(bv)
			ratio := 0.0
			if b != 0 {
				ratio = h / b
			}
			fmt.Fprintf(w, "| %s | %s | %s %s | %s %s (%s) | %s× | %s | %s |\n",
				r.figure, transportName(r, tr), num(h), r.unit, num(b), r.unit, r.baseName, ratioText(r, ratio), goal(r), verdict(r, ratio))
		}
	}
}

func transportName(r row, tr string) string {
	if r.bench == "Datagrams" || r.bench == "BEXRate" {
		return "—"
	}
	return tr
}

func goal(r row) string {
	switch {
	case r.goal == 0:
		return "report"
	case r.lower:
		return fmt.Sprintf("≤ %.2f×", r.goal)
	default:
		return fmt.Sprintf("≥ %.2f×", r.goal)
	}
}

// ratioText is the ratio to two decimals, or to three where two would
// round it onto the goal and hide which side of it it falls (0.797× shown
// as 0.80× beside "missed").
func ratioText(r row, ratio float64) string {
	t := strconv.FormatFloat(ratio, 'f', 2, 64)
	if r.goal != 0 && t == strconv.FormatFloat(r.goal, 'f', 2, 64) && ratio != r.goal {
		t = strconv.FormatFloat(ratio, 'f', 3, 64)
	}
	return t
}

func verdict(r row, ratio float64) string {
	switch {
	case r.goal == 0:
		return "—"
	case r.lower && ratio <= r.goal, !r.lower && ratio >= r.goal:
		return "met"
	default:
		return "missed"
	}
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
