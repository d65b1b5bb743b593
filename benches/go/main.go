// Command errgroup-benches measures golang.org/x/sync/errgroup on the cases
// of errgroup's benches (see ../compare.rs, ../latency.rs, ../memory.rs),
// and prints one "name value" line per number for ../vs-go.sh.
//
//	go run . bench    # per-task, per-group, limit and channel cases (medians)
//	go run . latency  # cancellation latency of 1,000 goroutines, p50 and p99
//	go run . mem      # peak RSS per blocked goroutine, 100,000 of them
//
// Environment: REPS (repetitions per timed case, median taken; default 5),
// BENCHTIME (per repetition, Go duration; default 1s), RUNS (latency runs;
// default 2000), TASKS (memory case; default 100000).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

var errFail = errors.New("fail")

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// median of reps runs of testing.Benchmark(f), in ns per op.
func median(f func(b *testing.B)) float64 {
	reps := envInt("REPS", 5)
	var xs []float64
	for i := 0; i < reps; i++ {
		r := testing.Benchmark(f)
		xs = append(xs, float64(r.T.Nanoseconds())/float64(r.N))
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// spawn runs one group of n trivial tasks.
func spawn(n int, limit int) error {
	g, _ := errgroup.WithContext(context.Background())
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < n; i++ {
		g.Go(func() error { return nil })
	}
	return g.Wait()
}

// channel sends n values from a producer goroutine to a consumer goroutine
// through a channel of capacity 1024, each operation also selecting on
// ctx.Done(), as errgroup code does.
func channel(n int) uint64 {
	g, ctx := errgroup.WithContext(context.Background())
	ch := make(chan uint64, 1024)
	var sum uint64
	g.Go(func() error {
		defer close(ch)
		for i := 0; i < n; i++ {
			select {
			case ch <- uint64(i):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for {
			select {
			case v, ok := <-ch:
				if !ok {
					return nil
				}
				sum += v
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	if err := g.Wait(); err != nil {
		panic(err)
	}
	return sum
}

// blocked runs tasks goroutines in one group: all but one block on
// ctx.Done(), the last fails once they all are blocked. Returns the time
// from the failure to Wait returning.
func blocked(tasks int) time.Duration {
	g, ctx := errgroup.WithContext(context.Background())
	var ready atomic.Int64
	var failedAt time.Time
	for i := 0; i < tasks-1; i++ {
		g.Go(func() error {
			ready.Add(1)
			<-ctx.Done()
			return nil
		})
	}
	g.Go(func() error {
		for ready.Load() < int64(tasks-1) {
			runtime.Gosched()
		}
		runtime.Gosched()
		failedAt = time.Now()
		return errFail
	})
	if err := g.Wait(); err != errFail {
		panic(err)
	}
	return time.Since(failedAt)
}

func bench() {
	for _, n := range []int{1000, 100000} {
		n := n
		ns := median(func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := spawn(n, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		fmt.Printf("spawn_%d_ns_per_task %.1f\n", n, ns/float64(n))
	}
	ns := median(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := spawn(2, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	fmt.Printf("group2_ns %.1f\n", ns)
	ns = median(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := spawn(100000, 64); err != nil {
				b.Fatal(err)
			}
		}
	})
	fmt.Printf("limit64_100000_ns_per_item %.1f\n", ns/100000)
	ns = median(func(b *testing.B) {
		channel(b.N)
	})
	fmt.Printf("channel_ns_per_item %.2f\n", ns)
}

func latency() {
	runs := envInt("RUNS", 2000)
	for i := 0; i < 50; i++ {
		blocked(1000)
	}
	xs := make([]time.Duration, runs)
	for i := range xs {
		xs[i] = blocked(1000)
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	q := func(p float64) time.Duration { return xs[int(float64(len(xs)-1)*p+0.5)] }
	fmt.Printf("cancel_1000_p50_ns %d\n", q(0.5).Nanoseconds())
	fmt.Printf("cancel_1000_p99_ns %d\n", q(0.99).Nanoseconds())
}

// peakRSS is VmHWM from /proc/self/status, in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				panic(err)
			}
			return kb * 1024
		}
	}
	panic("no VmHWM")
}

func mem() {
	tasks := envInt("TASKS", 100000)
	blocked(2) // warm up the scheduler
	base := peakRSS()
	blocked(tasks)
	peak := peakRSS()
	fmt.Printf("mem_blocked_bytes_per_task %.1f\n", float64(peak-base)/float64(tasks))
}

func main() {
	testing.Init()
	flag.Parse()
	if bt := os.Getenv("BENCHTIME"); bt != "" {
		if err := flag.Set("test.benchtime", bt); err != nil {
			panic(err)
		}
	}
	fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
	switch flag.Arg(0) {
	case "bench":
		bench()
	case "latency":
		latency()
	case "mem":
		mem()
	default:
		fmt.Fprintln(os.Stderr, "usage: errgroup-benches bench|latency|mem")
		os.Exit(2)
	}
}
