package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"

	"github.com/xdpgate/xdpgate/internal/cli"
)

// version is set with -ldflags "-X main.version=..."; otherwise the module
// build information is used.
var version = ""

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// mainArgs runs a subcommand and returns the exit code.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cli.ExitCode("xdpgate", run(args[1:], stderr), stderr)
	case "version":
		fmt.Fprintln(stdout, "xdpgate", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		if c, ok := subcommands[args[0]]; ok {
			return cli.ExitCode("xdpgate "+args[0], c.run(args[1:], stdout, stderr), stderr)
		}
		fmt.Fprintf(stderr, "xdpgate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

// subcommand is a command registered from its own file's init function, so
// that commands stay in separate files: xdpgate <name> [flags].
type subcommand struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// subcommands holds the registered commands besides run and version.
var subcommands = map[string]subcommand{}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: xdpgate <command> [flags]

commands:
  run      run the dataplane (xdpgate run -h for flags)
  version  print the version
`)
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, subcommands[n].summary)
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		return v
	}
	return "unknown"
}
