package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Trailers of a /v1/capture answer.
const (
	trailerWritten = "X-Xdpgate-Written"
	trailerSkipped = "X-Xdpgate-Skipped"
)

// captureSnapLen is the pcap snap length: a whole UMEM frame.
const captureSnapLen = 4096

// captureRequest is a parsed /v1/capture query.
type captureRequest struct {
	cfg      pipeline.CaptureConfig
	count    int
	duration time.Duration
}

func parseCaptureQuery(q url.Values, s *snapshot.Snapshot) (captureRequest, error) {
	var r captureRequest
	r.cfg.SnapLen = captureSnapLen
	switch q.Get("point") {
	case "pre":
		r.cfg.Points = pipeline.CapturePre
	case "post":
		r.cfg.Points = pipeline.CapturePost
	case "both", "":
		r.cfg.Points = pipeline.CapturePre | pipeline.CapturePost
	default:
		return r, fmt.Errorf("point %q: want pre, post or both", q.Get("point"))
	}
	if v := q.Get("host"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return r, fmt.Errorf("host: %w", err)
		}
		r.cfg.Host = a.Unmap()
	}
	if v := q.Get("port"); v != "" {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return r, fmt.Errorf("port %q: want 1-65535", v)
		}
		r.cfg.Port = uint16(p)
	}
	if v := q.Get("service"); v != "" {
		ids, err := serviceIDs(s, v)
		if err != nil {
			return r, err
		}
		r.cfg.AddrPorts = serviceAddrPorts(s, ids)
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return r, fmt.Errorf("count %q: want >= 0", v)
		}
		r.count = n
	}
	if v := q.Get("duration"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return r, fmt.Errorf("duration %q: want a positive duration", v)
		}
		r.duration = d
	}
	return r, nil
}

// serviceAddrPorts lists every address:port a service's packets carry on
// either side of the translation: frontends with the service port,
// NodePort addresses with the NodePort, and endpoints.
func serviceAddrPorts(s *snapshot.Snapshot, ids map[uint32]bool) []netip.AddrPort {
	var out []netip.AddrPort
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if !ids[sp.ID] {
			continue
		}
		for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
			for _, a := range list {
				out = append(out, netip.AddrPortFrom(a, sp.Port))
			}
		}
		if sp.NodePort != 0 {
			for _, a := range s.NodePortAddrs {
				out = append(out, netip.AddrPortFrom(a, sp.NodePort))
			}
		}
		for _, ep := range sp.Endpoints {
			out = append(out, ep.AddrPort())
		}
	}
	return out
}

// serveCapture streams a pcap of the frames the pipeline sees until count
// frames were written, the duration ends or the client goes away. The
// numbers of frames written and skipped (ring full) are sent as trailers.
func serveCapture(src Source, w http.ResponseWriter, r *http.Request) {
	if src.StartCapture == nil {
		http.Error(w, "capture is not available", http.StatusServiceUnavailable)
		return
	}
	req, err := parseCaptureQuery(r.URL.Query(), src.snap())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := src.StartCapture(req.cfg)
	if errors.Is(err, pipeline.ErrCaptureBusy) {
		http.Error(w, "another capture is running (one at a time)", http.StatusConflict)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	written := 0
	defer func() {
		_, skipped := c.Stop()
		w.Header().Set(trailerWritten, strconv.Itoa(written))
		w.Header().Set(trailerSkipped, strconv.FormatUint(skipped, 10))
	}()
	w.Header().Set("Trailer", trailerWritten+", "+trailerSkipped)
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(captureSnapLen, layers.LinkTypeEthernet); err != nil {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	ctx := r.Context()
	if req.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.duration)
		defer cancel()
	}
	for req.count == 0 || written < req.count {
		rec, ok := c.Next(ctx)
		if !ok {
			return
		}
		ci := gopacket.CaptureInfo{Timestamp: rec.Time, CaptureLength: len(rec.Data), Length: rec.Len}
		if err := pw.WritePacket(ci, rec.Data); err != nil {
			return
		}
		written++
		if flusher != nil {
			flusher.Flush()
		}
	}
}
