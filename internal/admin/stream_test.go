package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/nat"
)

// writeRecorder records the largest single Write: a handler that builds
// the whole answer in memory writes it at once.
type writeRecorder struct {
	*httptest.ResponseRecorder
	largest int
}

func (w *writeRecorder) Write(b []byte) (int, error) {
	w.largest = max(w.largest, len(b))
	return w.ResponseRecorder.Write(b)
}

// bigSource is testSource with n more flows and affinity entries.
func bigSource(t *testing.T, n int) Source {
	src := testSource(t)
	ct, err := conntrack.New(conntrack.Config{MaxFlows: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	aff, err := affinity.New(affinity.Config{Capacity: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	now := src.clock()
	for i := range n {
		c := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		orig := conntrack.MakeTuple(c, testVIP, uint16(10000+i%50000), 80, nat.ProtoTCP)
		if _, r := ct.Insert(orig, conntrack.MakeTranslation(netip.AddrPortFrom(testEP1, 8080), netip.AddrPort{}), 1, 11, now); r != conntrack.Inserted {
			t.Fatalf("Insert %d = %v", i, r)
		}
		aff.Pin(1, c, 11, 600, now)
	}
	src.Conntrack, src.Affinity = ct, aff
	return src
}

// TestStreamedTables: limit=0 over 20,000 flows is written in bounded
// pieces (before, the whole list was built and written at once) and decodes
// to every flow; `xdpgate inspect`'s table reads the stream.
func TestStreamedTables(t *testing.T) {
	const n = 20000
	src := bigSource(t, n)
	h := Handler(src)
	for _, what := range []string{"conntrack", "affinity"} {
		t.Run(what, func(t *testing.T) {
			w := &writeRecorder{ResponseRecorder: httptest.NewRecorder()}
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/"+what+"?limit=0", nil))
			if w.Code != http.StatusOK {
				t.Fatalf("GET /v1/%s?limit=0 = %d %s", what, w.Code, w.Body)
			}
			if w.largest > streamBuffer {
				t.Errorf("largest write = %d bytes, want <= %d (streamed)", w.largest, streamBuffer)
			}
			body := w.Body.Bytes()
			var got int
			if what == "conntrack" {
				var v Conntrack
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("decode: %v", err)
				}
				if len(v.Flows) != n || v.Matched != n || v.Truncated {
					t.Errorf("flows %d, matched %d, truncated %v; want %d, %d, false", len(v.Flows), v.Matched, v.Truncated, n, n)
				}
				got = len(v.Flows)
			} else {
				var v []Affinity
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("decode: %v", err)
				}
				got = len(v)
			}
			if got != n {
				t.Errorf("entries = %d, want %d", got, n)
			}
			var out bytes.Buffer
			if err := printTable(&out, what, bytes.NewReader(body)); err != nil {
				t.Fatalf("printTable: %v", err)
			}
			rows := strings.Count(out.String(), "198.19.1.10")
			if rows != n {
				t.Errorf("table rows naming the endpoint = %d, want %d", rows, n)
			}
		})
	}
}

// TestStreamOverHTTP: a real client decodes the stream.
func TestStreamOverHTTP(t *testing.T) {
	src := bigSource(t, 5000)
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(srv.URL + "/v1/conntrack?limit=0")
	if err != nil {
		t.Fatal(err)
	}
	var v Conntrack
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Flows) != 5000 {
		t.Errorf("decode = %d flows, %v; want 5000", len(v.Flows), err)
	}
	resp.Body.Close()
}
