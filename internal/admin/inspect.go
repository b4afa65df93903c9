package admin

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/config"
	"github.com/xdpgate/xdpgate/pipeline"
)

// inspectUsage is printed for -h and bad arguments.
const inspectUsage = `usage: xdpgate inspect services|conntrack|affinity|stats|devices [flags]

  services   frontends, endpoints (local/ready/terminating), policies, affinity timeout
  conntrack  flows like conntrack -L (--host, --port, --proto, --service, --limit)
  affinity   ClientIP entries: client -> endpoint, remaining time (--host, --service, --limit);
             with --service, first its endpoints' load (pinned clients, flows, new connections,
             imbalance) and with --top N its N heaviest client addresses by connections and by
             packets (-o json: with --top, the load answer instead of the entries)
  stats      per-queue counters and drops by reason
  devices    devices in use (managed interfaces, pod veths, bridges, overlays) and why

flags:
`

// inspectOptions are the parsed flags of xdpgate inspect.
type inspectOptions struct {
	what    string
	socket  string
	output  string
	query   url.Values
	timeout time.Duration
	// service and top ask affinity for the service's load first.
	service string
	top     int
}

func parseInspectFlags(args []string, stderr io.Writer) (inspectOptions, error) {
	o := inspectOptions{query: url.Values{}}
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inspectUsage); fs.PrintDefaults() }
	fs.StringVar(&o.socket, "socket", "/run/xdpgate/admin.sock", "admin socket of the running xdpgate (its --admin-socket)")
	fs.StringVar(&o.output, "o", "table", "output format: table or json")
	host := fs.String("host", "", "only flows/entries with this address (either side, either direction)")
	port := fs.Uint("port", 0, "only flows with this port (either side, either direction)")
	proto := fs.String("proto", "", "only flows of this protocol: tcp, udp, sctp, icmp, icmpv6")
	service := fs.String("service", "", "only flows/entries of this service (namespace/name)")
	limit := fs.Int("limit", defaultConntrackLimit, "at most this many flows/entries (0: no limit)")
	fs.IntVar(&o.top, "top", 0, "affinity --service: also its N heaviest client addresses (by connections, by packets)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long")
	// Accept the command before or after the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.what, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return o, config.ErrUsage
	}
	if o.what == "" && fs.NArg() > 0 {
		o.what = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return o, config.ErrUsage
		}
	}
	bad := func(format string, a ...any) (inspectOptions, error) {
		fmt.Fprintf(stderr, "xdpgate inspect: "+format+"\n", a...)
		fs.Usage()
		return o, config.ErrUsage
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	switch o.what {
	case "services", "conntrack", "affinity", "stats", "devices":
	case "":
		return bad("missing command")
	default:
		return bad("unknown command %q", o.what)
	}
	if o.output != "table" && o.output != "json" {
		return bad("-o %q: want table or json", o.output)
	}
	if *port > 65535 {
		return bad("--port %d: want 1-65535", *port)
	}
	if *limit < 0 {
		return bad("--limit %d: want >= 0", *limit)
	}
	if o.top < 0 || o.top > 1000 {
		return bad("--top %d: want 0-1000", o.top)
	}
	if o.top > 0 && (o.what != "affinity" || *service == "") {
		return bad("--top needs affinity --service NS/NAME")
	}
	if o.what == "affinity" {
		o.service = *service
	}
	if o.timeout <= 0 {
		return bad("--timeout must be positive")
	}
	set := func(k, v string) {
		if v != "" {
			o.query.Set(k, v)
		}
	}
	set("host", *host)
	if *port != 0 {
		set("port", strconv.FormatUint(uint64(*port), 10))
	}
	set("proto", *proto)
	set("service", *service)
	set("limit", strconv.Itoa(*limit))
	return o, nil
}

// newClient returns an HTTP client whose every connection goes to the unix
// socket path.
func newClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: timeout,
		},
	}
}

// get fetches /v1/<what>?query from the admin socket and returns the
// body of a 200 answer.
func get(c *http.Client, socket, what string, query url.Values) ([]byte, error) {
	body, err := open(c, socket, what, query)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return b, nil
}

// open fetches /v1/<what>?query from the admin socket and returns the
// body of a 200 answer, to be read as it arrives and closed.
func open(c *http.Client, socket, what string, query url.Values) (io.ReadCloser, error) {
	u := "http://xdpgate/v1/" + what
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := c.Get(u)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s (is xdpgate running with --admin-socket %s, and are you root?): %w", socket, socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s: %s", what, strings.TrimSpace(string(b)))
	}
	return resp.Body, nil
}

// Inspect is `xdpgate inspect`. Flows and affinity entries are streamed:
// the server writes them as it walks its table and this side prints them
// as they arrive, so --limit 0 on a table of millions costs neither side
// more than a buffer (a table is aligned per inspectChunk rows).
func Inspect(args []string, stdout, stderr io.Writer) error {
	o, err := parseInspectFlags(args, stderr)
	if err != nil {
		return err
	}
	q := o.query
	if o.what == "services" || o.what == "stats" {
		q = nil
	}
	c := newClient(o.socket, o.timeout)
	if o.service != "" {
		lq := url.Values{"service": {o.service}, "top": {strconv.Itoa(o.top)}}
		b, err := get(c, o.socket, "load", lq)
		if err != nil {
			return err
		}
		if o.output == "json" && o.top > 0 {
			_, err := stdout.Write(b)
			return err
		}
		if o.output == "table" {
			if err := printLoad(stdout, b); err != nil {
				return fmt.Errorf("decode load answer: %w", err)
			}
		}
	}
	if o.what == "conntrack" || o.what == "affinity" {
		c.Timeout = 0 // o.timeout bounds the answer's start (ResponseHeaderTimeout), not its length
	}
	body, err := open(c, o.socket, o.what, q)
	if err != nil {
		return err
	}
	defer body.Close()
	if o.output == "json" {
		_, err := io.Copy(stdout, body)
		return err
	}
	return printTable(stdout, o.what, body)
}

// inspectChunk is how many streamed rows one aligned table holds.
const inspectChunk = 1000

// printTable renders an admin answer as a table.
func printTable(stdout io.Writer, what string, body io.Reader) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	var err error
	switch what {
	case "conntrack":
		err = printConntrack(tw, stdout, body)
	case "affinity":
		err = printAffinity(tw, body)
	default:
		var b []byte
		if b, err = io.ReadAll(body); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		switch what {
		case "services":
			err = printServices(tw, b)
		case "stats":
			err = printStats(tw, b)
		case "devices":
			err = printDevices(tw, b)
		}
	}
	if err != nil {
		return fmt.Errorf("decode %s answer: %w", what, err)
	}
	return tw.Flush()
}

// streamArray decodes the JSON array at dec's position element by element
// into v, calling each after every element.
func streamArray[T any](dec *json.Decoder, each func(*T) error) error {
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return fmt.Errorf("want an array, got %v: %w", t, err)
	}
	var v T
	for dec.More() {
		v = *new(T)
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if err := each(&v); err != nil {
			return err
		}
	}
	_, err := dec.Token() // ]
	return err
}

// printDevices lists the devices in use: the managed interfaces and the
// devices followed because endpoints are reached through them.
func printDevices(tw *tabwriter.Writer, body []byte) error {
	var v []dataplane.DeviceStatus
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	fmt.Fprintln(tw, "IFINDEX\tDEVICE\tKIND\tMODE\tQUEUES\tWHY\tERROR")
	for _, d := range v {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Ifindex, d.Name, d.Kind, orDash(d.Mode), d.Queues, d.Why, orDash(d.Error))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printServices(tw *tabwriter.Writer, body []byte) error {
	var v Services
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	fmt.Fprintln(tw, "SERVICE\tPORT\tFRONTENDS\tNODEPORT\tEXT/INT POLICY\tAFFINITY\tENDPOINTS")
	for _, s := range v.Services {
		name := s.Namespace + "/" + s.Name
		if s.PortName != "" {
			name += ":" + s.PortName
		}
		fe := append(append(append([]string{}, strs(s.ClusterIPs)...), strs(s.ExternalIPs)...), strs(s.LoadBalancerIPs)...)
		np := "-"
		if s.NodePort != 0 {
			np = strconv.Itoa(int(s.NodePort))
		}
		aff := "-"
		if s.AffinitySeconds != 0 {
			aff = (time.Duration(s.AffinitySeconds) * time.Second).String()
		}
		eps := make([]string, 0, len(s.Endpoints))
		for _, ep := range s.Endpoints {
			var flags []string
			for _, f := range []struct {
				on   bool
				name string
			}{{ep.Local, "local"}, {ep.Ready, "ready"}, {ep.Serving && !ep.Ready, "serving"}, {ep.Terminating, "terminating"}} {
				if f.on {
					flags = append(flags, f.name)
				}
			}
			eps = append(eps, ep.Addr.String()+"("+orDash(strings.Join(flags, ","))+")")
		}
		fmt.Fprintf(tw, "%s\t%d/%s\t%s\t%s\t%s/%s\t%s\t%s\n", name, s.Port, s.Protocol, orDash(strings.Join(fe, ",")), np,
			s.ExternalPolicy, s.InternalPolicy, aff, orDash(strings.Join(eps, " ")))
	}
	return nil
}

func strs[T fmt.Stringer](xs []T) []string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return s
}

func printConntrack(tw *tabwriter.Writer, stdout io.Writer, body io.Reader) error {
	const header = "PROTO\tSTATE\tORIG SRC\tORIG DST\tREPLY SRC\tREPLY DST\tSERVICE\tIDLE\tPACKETS\tBYTES"
	fmt.Fprintln(tw, header)
	var v Conntrack
	shown := 0
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("want an object, got %v: %w", t, err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case "flows":
			err = streamArray(dec, func(f *Flow) error {
				state := f.State
				if !f.Replied && !strings.Contains(state, "UNREPLIED") {
					state += " [UNREPLIED]"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\n", f.Proto, orDash(state),
					f.Orig.Src, f.Orig.Dst, f.Reply.Src, f.Reply.Dst, orDash(f.Service),
					(time.Duration(f.IdleMilli) * time.Millisecond).String(),
					f.Packets[0], f.Packets[1], f.Bytes[0], f.Bytes[1])
				if shown++; shown%inspectChunk == 0 {
					return tw.Flush()
				}
				return nil
			})
		case "matched":
			err = dec.Decode(&v.Matched)
		case "truncated":
			err = dec.Decode(&v.Truncated)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v.Truncated {
		fmt.Fprintf(stdout, "%d of %d matching flows shown (raise --limit, 0: no limit)\n", shown, v.Matched)
	} else {
		fmt.Fprintf(stdout, "%d flows\n", v.Matched)
	}
	return nil
}

func printAffinity(tw *tabwriter.Writer, body io.Reader) error {
	fmt.Fprintln(tw, "SERVICE\tCLIENT\tENDPOINT\tREMAINING\tTIMEOUT")
	shown := 0
	return streamArray(json.NewDecoder(body), func(e *Affinity) error {
		ep := e.Endpoint
		if ep == "" {
			ep = fmt.Sprintf("#%d (gone)", e.EndpointID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\n", orDash(e.Service), e.Client, ep,
			(time.Duration(e.RemainingMilli) * time.Millisecond).Round(time.Second), e.TimeoutSeconds)
		if shown++; shown%inspectChunk == 0 {
			return tw.Flush()
		}
		return nil
	})
}

// printLoad prints, per service port, its endpoints' load and its
// heaviest clients.
func printLoad(w io.Writer, body []byte) error {
	var v Load
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	for _, s := range v.Services {
		name := s.Namespace + "/" + s.Name
		if s.PortName != "" {
			name += ":" + s.PortName
		}
		bound := "off"
		if s.AffinityMaxLoadPercent != 0 {
			bound = strconv.FormatFloat(float64(s.AffinityMaxLoadPercent)/100, 'f', -1, 64)
		}
		scale := ""
		if s.RebalanceOnScale {
			scale = fmt.Sprintf("  rebalance-on-scale (%d pins expired early)", s.ScaleExpiries)
		}
		fmt.Fprintf(w, "%s/%s  affinity %v  max-load %s  imbalance %.2f (max/mean pinned)  departed pins %d, re-balanced %d%s\n",
			name, s.Protocol, time.Duration(s.AffinitySeconds)*time.Second, bound, s.Imbalance, s.DepartedPins, s.Rebalanced, scale)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tPINNED\tFLOWS\tNEW CONNS\tCONNS/S\tMOVED IN\tMOVED OUT")
		for _, e := range s.Endpoints {
			ep := e.Endpoint
			if e.Departed {
				ep += " (departed)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%d\t%d\n", ep, e.Pinned, e.Flows, e.NewConnections, e.ConnectionsPerSecond, e.MovedIn, e.MovedOut)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if h := s.Heavy; h != nil {
			for _, list := range []struct {
				what string
				cs   []pipeline.HeavyClient
			}{{"CONNECTIONS", h.Connections}, {"PACKETS", h.Packets}} {
				fmt.Fprintln(w)
				tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "TOP CLIENTS BY %s\t%s\tRANGE\n", list.what, list.what)
				for _, c := range list.cs {
					fmt.Fprintf(tw, "%s\t%d\t%d-%d\n", c.Client, c.Count, c.Count-c.Err, c.Count+c.Spill+h.Lost)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			fmt.Fprintf(w, "(over the last %v-%v; RANGE bounds the sketch's error: connections lie in it; packets are\n"+
				" estimated from 1 in %d sampled, so their RANGE holds the sampled estimate, not the exact count)\n",
				pipeline.HeavyWindow, 2*pipeline.HeavyWindow, pipeline.HeavySampleMean)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func printStats(tw *tabwriter.Writer, body []byte) error {
	var v Stats
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	fmt.Fprintln(tw, "INTERFACE\tQUEUE\tZEROCOPY\tRX FRAMES\tRX BYTES\tTX FRAMES\tTX BYTES\tTX RING FULL\tDROPS")
	for _, q := range v.Queues {
		var drops uint64
		for _, n := range q.Drops {
			drops += n
		}
		fmt.Fprintf(tw, "%s\t%d\t%t\t%d\t%d\t%d\t%d\t%d\t%d\n", q.Interface, q.Queue, q.ZeroCopy,
			q.RxFrames, q.RxBytes, q.TxFrames, q.TxBytes, q.TxRingFull, drops)
	}
	var sum struct{ est, rep, newf, fwd, rej uint64 }
	for _, p := range v.Pipeline {
		sum.est += p.Established
		sum.rep += p.Replies
		sum.newf += p.NewFlows
		sum.fwd += p.Forwarded
		sum.rej += p.Rejects
	}
	fmt.Fprintf(tw, "\nPIPELINE\tnew flows %d\testablished %d\treplies %d\tforwarded %d\trejects %d\n", sum.newf, sum.est, sum.rep, sum.fwd, sum.rej)
	if len(v.Drops) > 0 {
		fmt.Fprintln(tw, "\nDROP REASON\tFRAMES")
		for _, r := range slices.Sorted(maps.Keys(v.Drops)) {
			fmt.Fprintf(tw, "%s\t%d\n", r, v.Drops[r])
		}
	}
	return nil
}
