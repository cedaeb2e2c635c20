// Command benchtable runs hipnet's comparative benchmarks and prints the
// table of issue 12: every hipnet figure beside its baseline measured in
// the same run, the ratio, the goal and the verdict, for each stream
// transport. The figures are the medians, over -count runs, of the
// medians each benchmark reports (hipnet/bench_test.go measures hipnet and
// its baselines interleaved, iteration by iteration).
//
//	make benchtable                                        # about six minutes on 2 cores (as root)
//	go run ./internal/tools/benchtable -count 5 -benchtime 30x -latency-benchtime 200x
//
// # What it must not do
//
// It is a development tool: nothing imports it, and it measures nothing
// itself; the benchmarks do, and it only runs them and reads their output.
package main
