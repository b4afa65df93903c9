package statefile

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

func spec() Spec {
	return Spec{Kind: "test", Version: 3, Params: []uint64{100, 8}, Size: 3 * 4096}
}

// TestAdopt: data written through one mapping is adopted by the next Open
// with the same spec, seed included.
func TestAdopt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t")
	f, err := Open(path, spec())
	if err != nil {
		t.Fatal(err)
	}
	if f.Adopted || f.Discarded != nil || f.Seed == 0 || len(f.Data) != 3*4096 {
		t.Fatalf("first Open = adopted %v, discarded %v, seed %#x, %d bytes; want new, random seed, 12288 bytes",
			f.Adopted, f.Discarded, f.Seed, len(f.Data))
	}
	copy(f.Data[5000:], "hello")
	seed := f.Seed
	// No Close: a crashed process never unmaps.
	g, err := Open(path, spec())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.Adopted || g.Seed != seed || string(g.Data[5000:5005]) != "hello" {
		t.Errorf("second Open = adopted %v, seed %#x (want %#x), data %q; want the first one's",
			g.Adopted, g.Seed, seed, g.Data[5000:5005])
	}
	f.Close()
}

// TestDiscard: every incompatibility is reported with its reason and the
// data starts zeroed.
func TestDiscard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *Spec, path string)
		want   string
	}{
		{"version", func(_ *testing.T, s *Spec, _ string) { s.Version = 4 }, "format version 3, want 4"},
		{"params", func(_ *testing.T, s *Spec, _ string) { s.Params[0] = 200 }, "param 0 is 100, want 200"},
		{"size", func(_ *testing.T, s *Spec, _ string) { s.Size = 4 * 4096 }, "file is 16384 bytes, want 20480"},
		{"seed", func(_ *testing.T, s *Spec, _ string) { s.Seed = 42 }, "hash seed"},
		{"kind", func(_ *testing.T, s *Spec, _ string) { s.Kind = "other" }, `kind "test", want "other"`},
		{"checksum", func(t *testing.T, _ *Spec, path string) { flip(t, path, offSeed) }, "checksum"},
		{"boot", func(t *testing.T, _ *Spec, path string) { flip(t, path, offBoot); fixChecksum(t, path) }, "another boot"},
		{"garbage", func(t *testing.T, _ *Spec, path string) { flip(t, path, 0) }, "no header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t")
			f, err := Open(path, spec())
			if err != nil {
				t.Fatal(err)
			}
			copy(f.Data, "old")
			f.Close()
			s := spec()
			tc.change(t, &s, path)
			g, err := Open(path, s)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Adopted || !errors.Is(g.Discarded, ErrIncompatible) || !strings.Contains(g.Discarded.Error(), tc.want) {
				t.Fatalf("Open after %s = adopted %v, discarded %v; want discarded naming %q", tc.name, g.Adopted, g.Discarded, tc.want)
			}
			if g.Data[0] != 0 {
				t.Errorf("data after discard starts %q, want zeroed", g.Data[:3])
			}
			// The replacement is adoptable.
			h, err := Open(path, s)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if !h.Adopted {
				t.Errorf("Open of the replacement: discarded %v, want adopted", h.Discarded)
			}
		})
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b := make([]byte, 1)
	fd.ReadAt(b, off)
	b[0] ^= 0x55
	if _, err := fd.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func fixChecksum(t *testing.T, path string) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	page := make([]byte, HeaderSize)
	fd.ReadAt(page, 0)
	binary.LittleEndian.PutUint64(page[offChecksum:], xxhash.Sum64(page[:offChecksum]))
	if _, err := fd.WriteAt(page, 0); err != nil {
		t.Fatal(err)
	}
}

func TestNowAdvances(t *testing.T) {
	a := Now()
	b := Now()
	if a <= 0 || b < a {
		t.Errorf("Now() = %d then %d, want positive and not decreasing", a, b)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, 100*time.Millisecond); err == nil {
		t.Errorf("second Lock while held = nil error, want in use")
	}
	unlock()
	unlock2, err := Lock(dir, 0)
	if err != nil {
		t.Errorf("Lock after unlock = %v, want nil", err)
	} else {
		unlock2()
	}
}
