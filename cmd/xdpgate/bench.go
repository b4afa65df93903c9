package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/internal/config"
)

func init() {
	subcommands["bench"] = subcommand{
		summary: "run the benchmark rig: xdpgate vs the kernel (nftables, iptables) vs the raw AF_XDP forwarder",
		run:     bench,
	}
}

// benchOptions are the flags of `xdpgate bench`.
type benchOptions struct {
	scenarios, dataplanes []string
	duration, sweepPoint  time.Duration
	repeat                int
	out                   string
	profiles              bool
	unsteered             bool
	cleanup               bool
	external              map[string]string
	xdpgateArgs           []string
}

// externalFlag collects repeated --external NAME=COMMAND.
type externalFlag map[string]string

func (e externalFlag) String() string { return "" }
func (e externalFlag) Set(v string) error {
	name, cmd, ok := strings.Cut(v, "=")
	if !ok || name == "" || cmd == "" {
		return fmt.Errorf("want NAME=COMMAND, got %q", v)
	}
	if _, dup := e[name]; dup {
		return fmt.Errorf("dataplane %q given twice", name)
	}
	e[name] = cmd
	return nil
}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("xdpgate bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var scenarios, dataplanes, xdpgateArgs string
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios (default all: udp64-1-flow, udp64-1k-flows, udp64-100k-flows, tcp-syn, affinity-100k, conntrack-1m)")
	fs.StringVar(&dataplanes, "dataplanes", "", "comma-separated dataplanes (default all: afxdp-forwarder, xdpgate, nftables, iptables)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one measured burst")
	fs.IntVar(&o.repeat, "repeat", 3, "bursts per scenario and dataplane; the median is reported with the range")
	fs.DurationVar(&o.sweepPoint, "sweep-point", 2*time.Second, "length of one point of a delivered-vs-offered sweep")
	fs.StringVar(&o.out, "out", "bench/results", "directory for the JSON, Markdown and plots (latest.* are updated)")
	fs.BoolVar(&o.profiles, "profiles", true, "write a CPU profile of each xdpgate run next to the results")
	fs.BoolVar(&o.unsteered, "unsteered", true, "also measure xdpgate and nftables once without softirq steering")
	fs.StringVar(&xdpgateArgs, "xdpgate-args", "", "extra `xdpgate run` flags for the xdpgate dataplane, space-separated (they override the rig's, e.g. \"--busy-poll 50us\")")
	o.external = map[string]string{}
	fs.Var(externalFlag(o.external), "external", "NAME=COMMAND: also measure your own dataplane, COMMAND run by sh in the gateway namespace (repeatable; see bench/rig's documentation for its environment)")
	fs.BoolVar(&o.cleanup, "cleanup", false, "only remove namespaces (xgb-*) left by an interrupted run, then exit")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xdpgate bench: unexpected arguments %q\n", fs.Args())
		return o, errUsage
	}
	if o.duration <= 0 || o.sweepPoint <= 0 || o.repeat < 1 {
		fmt.Fprintln(stderr, "xdpgate bench: --duration, --sweep-point and --repeat must be positive")
		return o, errUsage
	}
	o.scenarios, o.dataplanes = config.SplitList(scenarios), config.SplitList(dataplanes)
	o.xdpgateArgs = strings.Fields(xdpgateArgs)
	return o, nil
}

func bench(args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return runBench(ctx, o, "xdpgate bench "+strings.Join(args, " "), stdout, stderr)
}
