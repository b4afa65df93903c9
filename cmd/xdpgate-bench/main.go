package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/bench/rig"
	"github.com/xdpgate/xdpgate/internal/cli"
	"github.com/xdpgate/xdpgate/internal/config"
)

// errUsage: bad flags or arguments; the flag package has said why.
var errUsage = config.ErrUsage

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// mainArgs runs the rig and returns the exit code: 0, 1 on failure, 2 on a
// usage error.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	return cli.ExitCode("xdpgate-bench", bench(args, stdout, stderr), stderr)
}

// benchOptions are the flags of xdpgate-bench.
type benchOptions struct {
	scenarios, dataplanes []string
	duration, sweepPoint  time.Duration
	repeat                int
	out                   string
	profiles              bool
	unsteered             bool
	nativeReplySinks      bool
	cleanup               bool
	external              map[string]string
	xdpgate               string // --xdpgate as given; "" looks next to this binary
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
	fs := flag.NewFlagSet("xdpgate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var scenarios, dataplanes, xdpgateArgs string
	var allScenarios []string
	for _, sc := range rig.Scenarios {
		allScenarios = append(allScenarios, sc.Name)
	}
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios (default all: "+strings.Join(allScenarios, ", ")+")")
	fs.StringVar(&dataplanes, "dataplanes", "", "comma-separated dataplanes (default all: "+strings.Join(rig.Dataplanes, ", ")+
		"; xdp-redirect is the kernel's own XDP forwarding, the rig's ceiling; xdpgate-fastpath is xdpgate with --fast-path xdp, measured in reply scenarios only)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one measured burst")
	fs.IntVar(&o.repeat, "repeat", 3, "bursts per scenario and dataplane; the median is reported with the range")
	fs.DurationVar(&o.sweepPoint, "sweep-point", 2*time.Second, "length of one point of a delivered-vs-offered sweep")
	fs.StringVar(&o.out, "out", "bench/results", "directory for latest.json, latest.md and the plots in latest/ (replaced by every run); each run's own files and the CPU profiles go to its "+runsDir+"/ subdirectory")
	fs.BoolVar(&o.profiles, "profiles", true, "write a CPU profile of each xdpgate run to "+runsDir+"/"+profilesDir+"/ under --out")
	fs.BoolVar(&o.unsteered, "unsteered", true, "also measure xdpgate and nftables once without softirq steering")
	fs.BoolVar(&o.nativeReplySinks, "native-reply-sinks", false, "reply scenarios: native-mode sinks for the xdpgate dataplane too, as xdpgate-fastpath and xdp-redirect always have (compare xdpgate then with xdpgate-fastpath, not with the kernel baselines)")
	fs.StringVar(&o.xdpgate, "xdpgate", "", "the xdpgate binary measured as the xdpgate dataplane (default: xdpgate next to this binary, then bin/xdpgate, then xdpgate on PATH)")
	fs.StringVar(&xdpgateArgs, "xdpgate-args", "", "extra `xdpgate run` flags for the xdpgate and xdpgate-fastpath dataplanes, space-separated (they override the rig's, e.g. \"--busy-poll 50us\")")
	o.external = map[string]string{}
	fs.Var(externalFlag(o.external), "external", "NAME=COMMAND: also measure your own dataplane, COMMAND run by sh in the gateway namespace (repeatable; see bench/rig's documentation for its environment)")
	fs.BoolVar(&o.cleanup, "cleanup", false, "only remove namespaces (xgb-*) left by an interrupted run, then exit")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xdpgate-bench: unexpected arguments %q\n", fs.Args())
		return o, errUsage
	}
	if o.duration <= 0 || o.sweepPoint <= 0 || o.repeat < 1 {
		fmt.Fprintln(stderr, "xdpgate-bench: --duration, --sweep-point and --repeat must be positive")
		return o, errUsage
	}
	o.scenarios, o.dataplanes = config.SplitList(scenarios), config.SplitList(dataplanes)
	o.xdpgateArgs = strings.Fields(xdpgateArgs)
	return o, nil
}

// measuresXDPGate reports whether the run includes a dataplane that runs
// the xdpgate binary (no --dataplanes means all of them).
func (o benchOptions) measuresXDPGate() bool {
	return !o.cleanup && (len(o.dataplanes) == 0 || slices.Contains(o.dataplanes, rig.DataplaneXDPGate) ||
		slices.Contains(o.dataplanes, rig.DataplaneXDPGateFastPath))
}

func bench(args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	var binary string
	if o.measuresXDPGate() {
		if binary, err = findXDPGate(o.xdpgate); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return runBench(ctx, o, binary, "xdpgate-bench "+strings.Join(args, " "), stdout, stderr)
}
