package main

import "github.com/xdpgate/xdpgate/internal/admin"

func init() {
	subcommands["inspect"] = subcommand{
		summary: "show services, conntrack, affinity or stats of a running xdpgate",
		run:     admin.Inspect,
	}
	subcommands["top"] = subcommand{
		summary: "live view of a running xdpgate: rates, flows and affinity per service, drops by reason",
		run:     admin.TopCommand,
	}
	subcommands["capture"] = subcommand{
		summary: "write a pcap of the frames a running xdpgate handles (before/after translation)",
		run:     admin.Capture,
	}
}
