package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/bench/rig"
)

func runBench(ctx context.Context, o benchOptions, binary, command string, stdout, stderr io.Writer) error {
	removed, err := rig.Cleanup()
	if len(removed) > 0 {
		fmt.Fprintf(stderr, "removed namespaces left by an earlier run: %s\n", strings.Join(removed, " "))
	}
	if err != nil || o.cleanup {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: the rig creates network namespaces and attaches XDP programs")
	}
	ro := rig.Options{Binary: binary, Scenarios: o.scenarios, Dataplanes: o.dataplanes, Duration: o.duration, Repeat: o.repeat,
		SweepPoint: o.sweepPoint, Unsteered: o.unsteered, External: o.external, XDPGateArgs: o.xdpgateArgs, NativeReplySinks: o.nativeReplySinks, Command: command, Log: stderr}
	runs := filepath.Join(o.out, runsDir)
	if o.profiles {
		ro.ProfileDir = filepath.Join(runs, profilesDir)
	}
	if binary != "" {
		fmt.Fprintf(stderr, "measuring %s as the xdpgate dataplane\n", binary)
	}
	run, err := rig.Run(ctx, ro)
	if run == nil {
		return err
	}
	if err != nil {
		run.Notes = append(run.Notes, "run interrupted: "+err.Error())
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	stamp, serr := report.Save(run, o.out)
	if aerr := archiveRun(o.out, runs, stamp); aerr != nil {
		return errors.Join(serr, aerr)
	}
	if serr != nil {
		return serr
	}
	if werr := report.WriteMarkdown(stdout, run); werr != nil {
		return werr
	}
	fmt.Fprintf(stderr, "results: %s/%s.{json,md}, plots in %s/%s/; this run also in %s/%s.{json,md} and %s/%s/\n",
		o.out, report.Latest, o.out, report.Latest, runs, stamp, runs, stamp)
	return err
}
