package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/xdpgate/xdpgate/internal/config"
)

func init() {
	subcommands["config"] = subcommand{
		summary: "print the default configuration file or validate one",
		run:     configCmd,
	}
}

const configUsage = `usage: xdpgate config print-defaults
       xdpgate config validate FILE [run flags]

  print-defaults  print the default ` + config.Kind + ` (YAML) for xdpgate run --config
  validate        check FILE as xdpgate run --config FILE [run flags] would,
                  including the flags' overrides and the hostname default;
                  prints "ok" or the problems
`

// configCmd is `xdpgate config`.
func configCmd(args []string, stdout, stderr io.Writer) error {
	bad := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "xdpgate config: "+format+"\n", a...)
		fmt.Fprint(stderr, configUsage)
		return errUsage
	}
	if len(args) == 0 {
		return bad("missing command")
	}
	switch args[0] {
	case "print-defaults":
		if len(args) > 1 {
			return bad("print-defaults takes no arguments")
		}
		b, err := config.Marshal(config.Default())
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "validate":
		if len(args) < 2 || args[1] == "" || args[1][0] == '-' {
			return bad("validate needs a FILE")
		}
		c, err := config.Parse(append([]string{"--config", args[1]}, args[2:]...), stderr)
		if err == nil {
			_, err = optionsFrom(c)
		}
		switch {
		case errors.Is(err, config.ErrUsage):
			return errUsage
		case err != nil:
			return err
		}
		fmt.Fprintln(stdout, "ok")
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return nil
	default:
		return bad("unknown command %q", args[0])
	}
}
