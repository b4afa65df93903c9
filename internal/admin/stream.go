package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
)

// streamBuffer is what a streamed answer holds in memory: the answer is
// written as it is walked, in writes of at most this size, so /v1/conntrack
// and /v1/affinity cost the same memory for ten flows and for ten million
// (limit=0), and the table walk never builds the list. The JSON is the
// same as a Conntrack or []Affinity value, one element a line.
const streamBuffer = 32 << 10

// jsonStream writes a JSON array element by element through a bounded
// buffer. A write error (the client went away) stops it: ok reports false
// and every later call does nothing.
type jsonStream struct {
	bw  *bufio.Writer
	enc *json.Encoder
	n   int
	err error
}

func newJSONStream(w http.ResponseWriter, open string) *jsonStream {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, streamBuffer)
	s := &jsonStream{bw: bw, enc: json.NewEncoder(bw)}
	_, s.err = bw.WriteString(open)
	return s
}

// elem writes one array element.
func (s *jsonStream) elem(v any) bool {
	if s.err != nil {
		return false
	}
	if s.n > 0 {
		if s.err = s.bw.WriteByte(','); s.err != nil {
			return false
		}
	}
	s.n++
	s.err = s.enc.Encode(v) // one element a line
	return s.err == nil
}

// close writes the closing text and flushes.
func (s *jsonStream) close(tail string) {
	if s.err != nil {
		return
	}
	if _, s.err = s.bw.WriteString(tail); s.err == nil {
		s.err = s.bw.Flush()
	}
}

// streamConntrack answers /v1/conntrack: {"flows":[...],"matched":N,"truncated":B}.
func streamConntrack(w http.ResponseWriter, src Source, f flowFilter) {
	s := newJSONStream(w, `{"flows":[`+"\n")
	matched, truncated := walkConntrack(src, f, func(fl *Flow) bool { return s.elem(fl) })
	s.close(`],"matched":` + strconv.Itoa(matched) + `,"truncated":` + strconv.FormatBool(truncated) + "}\n")
}

// streamAffinity answers /v1/affinity: a JSON array.
func streamAffinity(w http.ResponseWriter, src Source, f flowFilter) {
	s := newJSONStream(w, "[\n")
	walkAffinity(src, f, func(a *Affinity) bool { return s.elem(a) })
	s.close("]\n")
}
