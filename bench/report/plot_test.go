package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// checkPNG fails unless path is a non-empty PNG that image/png decodes.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("png.Decode(%s) = %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("%s is %dx%d pixels, want a real plot", path, b.Dx(), b.Dy())
	}
}

// checkSVG fails unless path is well-formed XML whose root element is svg
// and which draws something.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	root, elements := "", 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: XML error %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			elements++
		}
	}
	if root != "svg" || elements < 10 {
		t.Errorf("%s: root %q with %d elements, want an svg drawing", path, root, elements)
	}
}

func TestPlot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots") // Plot creates it
	files, err := Plot(goodRun(), dir)
	if err != nil {
		t.Fatalf("Plot = %v, want nil", err)
	}
	want := []string{"sweep-udp64-1k-flows.png", "sweep-udp64-1k-flows.svg", "throughput.png", "throughput.svg"}
	var got []string
	for _, f := range files {
		if filepath.Dir(f) != dir {
			t.Errorf("Plot returned %s, outside %s", f, dir)
		}
		got = append(got, filepath.Base(f))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("Plot files = %v, want %v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("%s holds %d entries, want %d", dir, len(entries), len(want))
	}
	for _, f := range files {
		switch filepath.Ext(f) {
		case ".png":
			checkPNG(t, f)
		case ".svg":
			checkSVG(t, f)
		}
	}
}

func TestPlotBadInput(t *testing.T) {
	t.Run("nil run", func(t *testing.T) {
		if _, err := Plot(nil, t.TempDir()); !errors.Is(err, ErrNoRun) {
			t.Errorf("Plot(nil) = %v, want ErrNoRun", err)
		}
	})
	t.Run("no results writes nothing", func(t *testing.T) {
		dir := t.TempDir()
		files, err := Plot(&Run{}, dir)
		if !errors.Is(err, ErrNoResults) || len(files) != 0 {
			t.Errorf("Plot(empty) = %v, %v; want nil, ErrNoResults", files, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("Plot(empty) wrote %d files", len(entries))
		}
	})
	t.Run("failures, zeros, non-finite numbers and hostile names", func(t *testing.T) {
		r := &Run{Results: []Result{
			makeResult("../../escape", DataplaneXDPGate, 0, withError("down")),
			makeResult("../../escape", "custom-dp", math.NaN(), func(res *Result) {
				res.Sweep = []Point{{OfferedPPS: math.Inf(1), DeliveredPPS: 1}, {OfferedPPS: 1e6, DeliveredPPS: 0.5e6}}
			}),
			makeResult("a/b", DataplaneNFTables, 0, withSweep(0, 0)),
			makeResult("a_b", DataplaneNFTables, math.Inf(1), withSweep(1, 1e6)),
		}}
		dir := t.TempDir()
		files, err := Plot(r, dir)
		if err != nil {
			t.Fatalf("Plot = %v, want nil", err)
		}
		want := []string{"sweep-.._.._escape.png", "sweep-.._.._escape.svg", "sweep-a_b-2.png", "sweep-a_b-2.svg", "sweep-a_b.png", "sweep-a_b.svg", "throughput.png", "throughput.svg"}
		var got []string
		for _, f := range files {
			if filepath.Dir(f) != dir {
				t.Errorf("Plot wrote %s, outside %s", f, dir)
			}
			got = append(got, filepath.Base(f))
			if filepath.Ext(f) == ".png" {
				checkPNG(t, f)
			} else {
				checkSVG(t, f)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Plot files = %v, want %v", got, want)
		}
	})
}
