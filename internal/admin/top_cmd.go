package admin

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/xdpgate/xdpgate/internal/config"
)

const topUsage = `usage: xdpgate top [--socket PATH] [--interval 1s] [--count N] [-o table|json]

A live view of a running gateway from its admin socket, redrawn every
interval: traffic, new flows and drops per second, conntrack and affinity
fill, and per service port its flows, packet and byte rates (from the live
flows' counters) and affinity entries; drops by reason. -o json prints one
sample (the admin API's /v1/top answer) and exits.

flags:
`

// topOptions are the parsed flags of xdpgate top.
type topOptions struct {
	socket   string
	output   string
	interval time.Duration
	count    int
	timeout  time.Duration
}

func parseTopFlags(args []string, stderr io.Writer) (topOptions, error) {
	var o topOptions
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, topUsage); fs.PrintDefaults() }
	fs.StringVar(&o.socket, "socket", "/run/xdpgate/admin.sock", "admin socket of the running xdpgate (its --admin-socket)")
	fs.StringVar(&o.output, "o", "table", "output format: table (live) or json (one sample)")
	fs.DurationVar(&o.interval, "interval", time.Second, "time between samples")
	fs.IntVar(&o.count, "count", 0, "stop after this many frames (0: until Ctrl-C)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on one sample after this long")
	if err := fs.Parse(args); err != nil {
		return o, config.ErrUsage
	}
	bad := func(format string, a ...any) (topOptions, error) {
		fmt.Fprintf(stderr, "xdpgate top: "+format+"\n", a...)
		fs.Usage()
		return o, config.ErrUsage
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case o.output != "table" && o.output != "json":
		return bad("-o %q: want table or json", o.output)
	case o.interval < 100*time.Millisecond:
		return bad("--interval %v: want at least 100ms", o.interval)
	case o.count < 0:
		return bad("--count %d: want >= 0", o.count)
	case o.timeout <= 0:
		return bad("--timeout must be positive")
	}
	return o, nil
}

// GetTop fetches one /v1/top sample from the admin socket at path.
func GetTop(path string, timeout time.Duration) (*Top, error) {
	body, err := get(newClient(path, timeout), path, "top", nil)
	if err != nil {
		return nil, err
	}
	var t Top
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("decode top answer: %w", err)
	}
	return &t, nil
}

// TopCommand is `xdpgate top`.
func TopCommand(args []string, stdout, stderr io.Writer) error {
	o, err := parseTopFlags(args, stderr)
	if err != nil {
		return err
	}
	c := newClient(o.socket, o.timeout)
	if o.output == "json" {
		body, err := get(c, o.socket, "top", nil)
		if err != nil {
			return err
		}
		_, err = stdout.Write(body)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := isTTY(stdout)
	var prev *Top
	for n := 0; o.count == 0 || n < o.count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(o.interval):
			}
		}
		cur, err := GetTop(o.socket, o.timeout)
		if err != nil {
			return err
		}
		var b strings.Builder
		if tty {
			b.WriteString("\x1b[H\x1b[2J")
		} else if n > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "xdpgate top  %s  socket %s\n", cur.Time.Format(time.DateTime), o.socket)
		RenderTop(&b, prev, cur)
		if _, err := io.WriteString(stdout, b.String()); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

// isTTY reports whether w is a terminal (a character device).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// topSeconds is the time between two samples: by the gateway's pipeline
// clock when both have it, else by its wall clock; 0 without prev.
func topSeconds(prev, cur *Top) float64 {
	if prev == nil {
		return 0
	}
	if prev.Clock != 0 && cur.Clock != 0 {
		return float64(cur.Clock-prev.Clock) / 1e9
	}
	return cur.Time.Sub(prev.Time).Seconds()
}

// perSecond is (cur-prev)/secs, 0 when the counter went down (flows that
// ended took their counts with them) or there is no interval.
func perSecond(cur, prev uint64, secs float64) float64 {
	if secs <= 0 || cur < prev {
		return 0
	}
	return float64(cur-prev) / secs
}

// si prints v with a k/M/G suffix.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func percent(t TopTable) string {
	if t.Capacity == 0 {
		return fmt.Sprintf("%d", t.Entries)
	}
	return fmt.Sprintf("%d of %d (%.1f%%)", t.Entries, t.Capacity, 100*float64(t.Entries)/float64(t.Capacity))
}

// renderEndpointLoad writes, for every ClientIP service port, its
// endpoints' pinned clients, live flows and new connections per second.
func renderEndpointLoad(w io.Writer, prevSvc map[uint32]TopService, cur *Top, rate func(c, p uint64) string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	any := false
	for _, s := range cur.Services {
		if len(s.Load) == 0 {
			continue
		}
		if !any {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "CLIENTIP SERVICE\tENDPOINT\tPINNED\tFLOWS\tNEW CONNS/S\t")
			any = true
		}
		prev := map[uint32]uint64{}
		p, seen := prevSvc[s.ID]
		for _, e := range p.Load {
			prev[e.ID] = e.NewConnections
		}
		name := s.Namespace + "/" + s.Name
		if s.PortName != "" {
			name += ":" + s.PortName
		}
		for _, e := range s.Load {
			ep := e.Endpoint
			if e.Departed {
				ep += " (departed)"
			}
			cps := "-"
			if pc, ok := prev[e.ID]; ok && seen {
				cps = rate(e.NewConnections, pc)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", name, ep, e.Pinned, e.Flows, cps)
			name = ""
		}
	}
	if any {
		tw.Flush()
	}
}

// RenderTop writes the view of sample cur, with rates against prev (nil:
// the first sample, rates shown as "-"). `xdpgate top` and `xdpgate demo`
// both draw with it.
func RenderTop(w io.Writer, prev, cur *Top) {
	secs := topSeconds(prev, cur)
	rate := func(c, p uint64) string {
		if prev == nil {
			return "-"
		}
		return si(perSecond(c, p, secs))
	}
	var pt TopTotals
	if prev != nil {
		pt = prev.Totals
	}
	t := cur.Totals
	fmt.Fprintf(w, "  frames/s   rx %s (%sB/s)  tx %s (%sB/s)   new flows/s %s   forwarded/s %s   drops/s %s\n",
		rate(t.RxFrames, pt.RxFrames), rate(t.RxBytes, pt.RxBytes), rate(t.TxFrames, pt.TxFrames), rate(t.TxBytes, pt.TxBytes),
		rate(t.NewFlows, pt.NewFlows), rate(t.Forwarded, pt.Forwarded), rate(t.Drops, pt.Drops))
	fmt.Fprintf(w, "  affinity   hits %d (%s/s)  misses %d (%s/s)  entries %s\n",
		t.AffinityHits, rate(t.AffinityHits, pt.AffinityHits), t.AffinityMisses, rate(t.AffinityMisses, pt.AffinityMisses), percent(cur.Affinity))
	fmt.Fprintf(w, "  conntrack  entries %s   snapshot generation %d\n\n", percent(cur.Conntrack), cur.Generation)

	prevSvc := map[uint32]TopService{}
	if prev != nil {
		for _, s := range prev.Services {
			prevSvc[s.ID] = s
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SERVICE\tPORT\tENDPOINTS\tFLOWS\tACTIVE\tPKTS/S IN\tPKTS/S OUT\tBYTES/S IN\tBYTES/S OUT\tAFFINITY\t")
	for _, s := range cur.Services {
		name := s.Name
		if s.Namespace != "" {
			name = s.Namespace + "/" + s.Name
		}
		if s.PortName != "" {
			name += ":" + s.PortName
		}
		port, eps, aff := "-", "-", "-"
		if s.ID != 0 {
			port = fmt.Sprintf("%d/%s", s.Port, s.Protocol)
			eps = fmt.Sprintf("%d/%d", s.Ready, s.Endpoints)
		}
		if s.AffinitySeconds != 0 || s.Affinity != 0 {
			aff = fmt.Sprint(s.Affinity)
		}
		p, seen := prevSvc[s.ID]
		r := func(c, pv uint64) string {
			if !seen {
				return "-"
			}
			return rate(c, pv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, port, eps, s.Flows, s.Active,
			r(s.Packets[0], p.Packets[0]), r(s.Packets[1], p.Packets[1]), r(s.Bytes[0], p.Bytes[0]), r(s.Bytes[1], p.Bytes[1]), aff)
	}
	tw.Flush()
	fmt.Fprintf(w, "  (per service: live flows' counters, IN client->endpoint; ACTIVE: a packet within %v)\n", TopActiveWindow)
	renderEndpointLoad(w, prevSvc, cur, rate)

	if len(cur.Drops) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DROP REASON\tFRAMES\tPER SECOND")
		for _, r := range slices.Sorted(maps.Keys(cur.Drops)) {
			var p uint64
			if prev != nil {
				p = prev.Drops[r]
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\n", r, cur.Drops[r], rate(cur.Drops[r], p))
		}
		tw.Flush()
	} else {
		fmt.Fprintln(w, "\n  drops      none")
	}
}
