package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/bench/rig"
)

func runBench(ctx context.Context, o benchOptions, command string, stdout, stderr io.Writer) error {
	removed, err := rig.Cleanup()
	if len(removed) > 0 {
		fmt.Fprintf(stderr, "removed namespaces left by an earlier run: %s\n", strings.Join(removed, " "))
	}
	if err != nil || o.cleanup {
		return err
	}
	if missing, err := missingCaps(); err != nil {
		return err
	} else if len(missing) > 0 {
		return fmt.Errorf("%w: %s (the rig creates namespaces and attaches XDP: run as root)", errMissingCaps, strings.Join(missing, ", "))
	}
	ro := rig.Options{Scenarios: o.scenarios, Dataplanes: o.dataplanes, Duration: o.duration, Repeat: o.repeat,
		SweepPoint: o.sweepPoint, Unsteered: o.unsteered, External: o.external, XDPGateArgs: o.xdpgateArgs, Command: command, Log: stderr}
	if o.profiles {
		ro.ProfileDir = filepath.Join(o.out, "profiles")
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
	if serr != nil {
		return serr
	}
	if werr := report.WriteMarkdown(stdout, run); werr != nil {
		return werr
	}
	fmt.Fprintf(stderr, "results: %s/%s.{json,md}, plots in %s/%s/ (also %s/latest.*)\n", o.out, stamp, o.out, stamp, o.out)
	return err
}
