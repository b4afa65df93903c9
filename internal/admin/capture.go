package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpgate/xdpgate/internal/config"
)

const captureUsage = `usage: xdpgate capture -w FILE|- [--point pre|post|both] [--host ADDR] [--port N] [--service ns/name] [-c N] [--duration D]

Frames handled by xdpgate never reach the kernel stack: tcpdump on the host does not see them.
With --point both, every translated frame appears twice: as received, then as sent.

flags:
`

// captureOptions are the parsed flags of xdpgate capture.
type captureOptions struct {
	socket string
	out    string
	query  url.Values
}

func parseCaptureFlags(args []string, stderr io.Writer) (captureOptions, error) {
	o := captureOptions{query: url.Values{}}
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, captureUsage); fs.PrintDefaults() }
	fs.StringVar(&o.socket, "socket", "/run/xdpgate/admin.sock", "admin socket of the running xdpgate (its --admin-socket)")
	fs.StringVar(&o.out, "w", "", `pcap file to write ("-": stdout)`)
	point := fs.String("point", "both", "pre (as received), post (as sent, translated) or both")
	host := fs.String("host", "", "only frames with this IP address as source or destination")
	port := fs.Uint("port", 0, "only frames with this TCP/UDP/SCTP port as source or destination")
	service := fs.String("service", "", "only frames of this service (namespace/name): its frontends, NodePorts and endpoints")
	count := fs.Int("c", 0, "stop after this many frames (0: no limit)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit; Ctrl-C stops too)")
	if err := fs.Parse(args); err != nil {
		return o, config.ErrUsage
	}
	bad := func(format string, a ...any) (captureOptions, error) {
		fmt.Fprintf(stderr, "xdpgate capture: "+format+"\n", a...)
		fs.Usage()
		return o, config.ErrUsage
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case o.out == "":
		return bad("-w FILE is required")
	case *point != "pre" && *point != "post" && *point != "both":
		return bad("--point %q: want pre, post or both", *point)
	case *port > 65535:
		return bad("--port %d: want 1-65535", *port)
	case *count < 0 || *duration < 0:
		return bad("-c and --duration must not be negative")
	}
	o.query.Set("point", *point)
	if *host != "" {
		o.query.Set("host", *host)
	}
	if *port != 0 {
		o.query.Set("port", strconv.FormatUint(uint64(*port), 10))
	}
	if *service != "" {
		o.query.Set("service", *service)
	}
	if *count != 0 {
		o.query.Set("count", strconv.Itoa(*count))
	}
	if *duration != 0 {
		o.query.Set("duration", duration.String())
	}
	return o, nil
}

// Capture is `xdpgate capture`: it streams the pcap from the admin socket
// and rewrites it record by record, so that an interrupted capture still
// leaves a valid file.
func Capture(args []string, stdout, stderr io.Writer) error {
	o, err := parseCaptureFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://xdpgate/v1/capture?"+o.query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := newClient(o.socket, 0).Do(req)
	if err != nil {
		return fmt.Errorf("admin socket %s (is xdpgate running with --admin-socket %s, and are you root?): %w", o.socket, o.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s", strings.TrimSpace(string(body)))
	}
	var out io.Writer = stdout
	if o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	r, err := pcapgo.NewReader(resp.Body)
	if err != nil {
		return fmt.Errorf("read pcap header: %w", err)
	}
	w := pcapgo.NewWriterNanos(out)
	if err := w.WriteFileHeader(r.Snaplen(), layers.LinkTypeEthernet); err != nil {
		return err
	}
	n := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				return fmt.Errorf("read capture: %w", err)
			}
			break
		}
		if err := w.WritePacket(ci, data); err != nil {
			return err
		}
		n++
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%d frames captured (interrupted)\n", n)
		return nil
	}
	skipped := resp.Trailer.Get(trailerSkipped)
	fmt.Fprintf(stderr, "%d frames captured, %s skipped (capture ring full)\n", n, orDash(skipped))
	return nil
}
