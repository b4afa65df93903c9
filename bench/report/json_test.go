package report

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
	}{
		{"full", func() *Run {
			r := goodRun()
			r.Results[0].PerEndpoint = []uint64{10, 20, 30, 40}
			r.Results[0].Profile = "/tmp/profiles/udp64-1-flow-xdpgate.pprof"
			r.Results[0].Gateway = testGateway()
			r.Results = append(r.Results, makeResult(ScenarioConntrack1M, DataplaneXDPGate, 0, withError("prefill: timeout")))
			return r
		}()},
		{"empty", &Run{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJSON(&b, tc.run); err != nil {
				t.Fatalf("WriteJSON = %v, want nil", err)
			}
			got, err := ReadJSON(&b)
			if err != nil {
				t.Fatalf("ReadJSON = %v, want nil", err)
			}
			if !got.Started.Equal(tc.run.Started) {
				t.Errorf("Started = %v, want %v", got.Started, tc.run.Started)
			}
			got.Started = tc.run.Started
			if !reflect.DeepEqual(got, tc.run) {
				t.Errorf("ReadJSON(WriteJSON(run)) = %+v, want %+v", got, tc.run)
			}
		})
	}
}

// TestJSONFieldNames pins the file format other tools read.
func TestJSONFieldNames(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, goodRun()); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"started"`, `"command"`, `"host"`, `"kernel"`, `"go_version"`, `"commit"`, `"cpus"`,
		`"settings"`, `"results"`, `"notes"`, `"scenario"`, `"dataplane"`, `"steered"`, `"offered"`, `"delivered"`,
		`"seconds"`, `"offered_pps"`, `"delivered_pps"`, `"loss_pct"`, `"gateway_cpu_seconds"`, `"cpu_ms_per_mpkt"`,
		`"clients"`, `"retention"`, `"sampled"`, `"checksum_errors"`, `"translation_errors"`, `"sweep"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("WriteJSON output lacks key %s", key)
		}
	}
	for _, key := range []string{`"per_endpoint"`, `"profile"`, `"error"`, `"gateway"`} {
		if strings.Contains(b.String(), key) {
			t.Errorf("WriteJSON output has empty optional key %s", key)
		}
	}
}

func TestReadJSONRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"garbage",
		"null",
		"[]",
		`"run"`,
		"{",
		`{"results": 5}`,
		`{"results": [{"offered": -1}]}`,
		`{"started": "yesterday"}`,
		`{} {}`,
		`{"notes": []} trailing`,
		"\x00\xff\xfe",
	} {
		if r, err := ReadJSON(strings.NewReader(in)); err == nil {
			t.Errorf("ReadJSON(%q) = %+v, nil; want an error", in, r)
		}
	}
}

func TestWriteJSONRejectsNonFinite(t *testing.T) {
	r := goodRun()
	r.Results[2].Sweep[1].LossPct = math.NaN()
	err := WriteJSON(&bytes.Buffer{}, r)
	if err == nil || !strings.Contains(err.Error(), "sweep[1].loss_pct") {
		t.Errorf("WriteJSON(NaN loss) = %v, want an error naming sweep[1].loss_pct", err)
	}
	r = goodRun()
	r.Results[0].CPUMsPerMpkt = math.Inf(1)
	if err := WriteJSON(&bytes.Buffer{}, r); err == nil || !strings.Contains(err.Error(), "cpu_ms_per_mpkt") {
		t.Errorf("WriteJSON(+Inf cpu) = %v, want an error naming cpu_ms_per_mpkt", err)
	}
	if err := WriteJSON(&bytes.Buffer{}, nil); !errors.Is(err, ErrNoRun) {
		t.Errorf("WriteJSON(nil) = %v, want ErrNoRun", err)
	}
}

// FuzzReadJSON checks that no input crashes ReadJSON and that whatever it
// accepts writes back and reads back to the same bytes.
func FuzzReadJSON(f *testing.F) {
	var b bytes.Buffer
	if err := WriteJSON(&b, goodRun()); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"results":[{"retention":0.5,"sweep":[{"offered_pps":1}]}]}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		var once bytes.Buffer
		if err := WriteJSON(&once, r); err != nil {
			return // e.g. a time JSON can read but not write (year > 9999)
		}
		r2, err := ReadJSON(bytes.NewReader(once.Bytes()))
		if err != nil {
			t.Fatalf("ReadJSON(WriteJSON(r)) = %v, want nil", err)
		}
		var twice bytes.Buffer
		if err := WriteJSON(&twice, r2); err != nil {
			t.Fatalf("WriteJSON(second) = %v", err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("round trip changed the file:\n%s\n%s", once.Bytes(), twice.Bytes())
		}
	})
}
