package statefile

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Sentinel errors.
var (
	// ErrNotSupported: state files need Linux (mmap of a tmpfs file).
	ErrNotSupported = errors.New("state files not supported on this OS")
	// ErrIncompatible is wrapped by File.Discarded: the existing file
	// could not be adopted.
	ErrIncompatible = errors.New("incompatible state file")
)

// HeaderSize is the size of the header page; the data starts after it,
// page-aligned.
const HeaderSize = 4096

// MaxParams is the number of parameter words a header holds.
const MaxParams = 16

const (
	magic       = "XDPGSTAT"
	offMagic    = 0
	offKind     = 8
	kindLen     = 16
	offVersion  = 24
	offBoot     = 28
	offSeed     = 44
	offSize     = 52
	offNParams  = 60
	offParams   = 64
	offChecksum = offParams + 8*MaxParams
)

// Spec is what the caller expects of a state file.
type Spec struct {
	// Kind names the table (at most 16 bytes).
	Kind string
	// Version is the table's format version: bump it whenever the data's
	// layout or meaning changes.
	Version uint32
	// Params must equal the stored ones (capacities, sizes, layout).
	Params []uint64
	// Seed is the table's hash seed: 0 adopts the stored seed (or, for a
	// new file, picks a random one); any other value must equal the
	// stored one.
	Seed uint64
	// Size is the number of data bytes.
	Size int
}

func (s Spec) check() error {
	switch {
	case s.Kind == "" || len(s.Kind) > kindLen:
		return fmt.Errorf("state file kind %q: want 1..%d bytes", s.Kind, kindLen)
	case len(s.Params) > MaxParams:
		return fmt.Errorf("state file %s: %d params, at most %d", s.Kind, len(s.Params), MaxParams)
	case s.Size <= 0:
		return fmt.Errorf("state file %s: size %d", s.Kind, s.Size)
	}
	return nil
}

// header is a decoded header page.
type header struct {
	kind    string
	version uint32
	boot    [16]byte
	seed    uint64
	size    uint64
	params  []uint64
}

// encode writes h into page (HeaderSize bytes), checksum included.
func (h *header) encode(page []byte) {
	clear(page)
	copy(page[offMagic:], magic)
	copy(page[offKind:offKind+kindLen], h.kind)
	binary.LittleEndian.PutUint32(page[offVersion:], h.version)
	copy(page[offBoot:offBoot+16], h.boot[:])
	binary.LittleEndian.PutUint64(page[offSeed:], h.seed)
	binary.LittleEndian.PutUint64(page[offSize:], h.size)
	binary.LittleEndian.PutUint32(page[offNParams:], uint32(len(h.params)))
	for i, p := range h.params {
		binary.LittleEndian.PutUint64(page[offParams+8*i:], p)
	}
	binary.LittleEndian.PutUint64(page[offChecksum:], xxhash.Sum64(page[:offChecksum]))
}

// decode parses and checks page against want (nothing of want's Seed is
// checked when it is 0) and boot, and returns the stored header or an
// error naming the first difference.
func decode(page []byte, want Spec, boot [16]byte) (header, error) {
	var h header
	if len(page) < HeaderSize {
		return h, fmt.Errorf("%w: short header (%d bytes)", ErrIncompatible, len(page))
	}
	if string(page[offMagic:offMagic+8]) != magic {
		return h, fmt.Errorf("%w: no header (magic %q)", ErrIncompatible, page[offMagic:offMagic+8])
	}
	if sum := binary.LittleEndian.Uint64(page[offChecksum:]); sum != xxhash.Sum64(page[:offChecksum]) {
		return h, fmt.Errorf("%w: header checksum %#x does not match its contents", ErrIncompatible, sum)
	}
	k := page[offKind : offKind+kindLen]
	for len(k) > 0 && k[len(k)-1] == 0 {
		k = k[:len(k)-1]
	}
	h.kind = string(k)
	h.version = binary.LittleEndian.Uint32(page[offVersion:])
	copy(h.boot[:], page[offBoot:offBoot+16])
	h.seed = binary.LittleEndian.Uint64(page[offSeed:])
	h.size = binary.LittleEndian.Uint64(page[offSize:])
	n := binary.LittleEndian.Uint32(page[offNParams:])
	if n > MaxParams {
		return h, fmt.Errorf("%w: %d params", ErrIncompatible, n)
	}
	for i := range n {
		h.params = append(h.params, binary.LittleEndian.Uint64(page[offParams+8*i:]))
	}
	switch {
	case h.kind != want.Kind:
		return h, fmt.Errorf("%w: kind %q, want %q", ErrIncompatible, h.kind, want.Kind)
	case h.version != want.Version:
		return h, fmt.Errorf("%w: format version %d, want %d", ErrIncompatible, h.version, want.Version)
	case h.boot != boot:
		return h, fmt.Errorf("%w: written on another boot (times are per boot)", ErrIncompatible)
	case want.Seed != 0 && h.seed != want.Seed:
		return h, fmt.Errorf("%w: hash seed %#x, want %#x", ErrIncompatible, h.seed, want.Seed)
	case h.size != uint64(want.Size):
		return h, fmt.Errorf("%w: data size %d, want %d", ErrIncompatible, h.size, want.Size)
	case len(h.params) != len(want.Params):
		return h, fmt.Errorf("%w: %d params, want %d", ErrIncompatible, len(h.params), len(want.Params))
	}
	for i := range h.params {
		if h.params[i] != want.Params[i] {
			return h, fmt.Errorf("%w: param %d is %d, want %d (sizes differ)", ErrIncompatible, i, h.params[i], want.Params[i])
		}
	}
	return h, nil
}

// File is an open state file.
type File struct {
	// Data is the table's memory: Spec.Size bytes, 4096-aligned, valid
	// until Close.
	Data []byte
	// Seed is the table's hash seed: the stored one when adopted.
	Seed uint64
	// Adopted reports that Data holds the previous process's table.
	Adopted bool
	// Discarded, when not nil, says why an existing file was not adopted
	// (it wraps ErrIncompatible); Data is then zero.
	Discarded error
	// Path is the file's path.
	Path string

	unmap func() error
}

// Close unmaps the file. The file itself stays for the next process.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.Data = nil, nil
	return err
}
